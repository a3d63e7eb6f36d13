/** Paygate's entry point: config -> database -> migrate -> services -> server -> listen; signals. */
import { pino } from 'pino';
import { loadConfig, ConfigError } from './config.js';
import { openRuntime } from './runtime.js';
import { createServices } from './services.js';
import { buildServer } from './http/server.js';
import { EmbeddedDatabaseInUse } from './db/embedded.js';

export async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`paygate: configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const log = pino({ level: config.logLevel });
  log.info({ mode: config.databaseUrl ? 'server' : 'embedded', dataDir: config.databaseUrl ? undefined : config.dataDir }, 'starting Paygate');

  let runtime;
  try {
    runtime = await openRuntime(config, (message) => log.debug({ postgres: message }, 'embedded postgres'));
  } catch (error) {
    if (error instanceof EmbeddedDatabaseInUse) {
      console.error(`paygate: ${error.message}`);
      process.exit(3);
    }
    throw error;
  }
  const services = createServices(config, runtime.db, runtime.secrets, log);
  await services.start();

  const first = await services.users.bootstrapFirstAdmin(config.adminEmail, config.adminPassword);
  if (first) {
    // Printed once, on the console only (never into the structured log stream).
    const lines = [
      '',
      '  Paygate created the first global admin.',
      `  email:    ${first.email}`,
      first.generatedPassword ? `  password: ${first.generatedPassword}` : '  password: the value of PAYGATE_ADMIN_PASSWORD',
      first.generatedPassword ? '  This password is shown once. Sign in and keep it in a password manager.' : '',
      '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }

  const app = await buildServer(services);
  await app.listen({ port: config.port, host: config.host });
  log.info({ url: `http://${config.host}:${config.port}`, docs: `${config.publicUrl}/docs` }, 'Paygate is listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    await app.close(); // stops accepting, drains in-flight requests
    await services.stop(); // flushes lastUsedAt, closes the listener
    await runtime.close(); // closes the pool, stops the embedded PostgreSQL
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

serve().catch((error) => {
  console.error('paygate: failed to start:', error);
  process.exit(1);
});
