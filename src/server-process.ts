/**
 * The server process: config -> database -> migrate -> services -> server -> listen; signals.
 * `npm start` (src/main.ts) and `paygate serve` (src/cli) both run it.
 *
 * Exit codes: 0 after a clean SIGTERM/SIGINT shutdown, 1 on a failed start, a shutdown that hung or
 * an embedded PostgreSQL that died and could not be restarted (a supervisor then restarts us), 2 on a
 * configuration error, 3 when the embedded database is already in use by another process.
 */
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { loadConfig, ConfigError, type Config } from './config.js';
import { openRuntime, type Runtime } from './runtime.js';
import { createServices, type Services } from './services.js';
import { buildServer } from './http/server.js';
import { EmbeddedDatabaseInUse } from './db/embedded.js';
import { ClusterConfigError } from './cache/invalidation.js';

/** How long a shutdown may take before the process gives up and exits 1. */
const SHUTDOWN_TIMEOUT_MS = 15_000;
/**
 * When the embedded PostgreSQL is gone for good, /healthz answers 503 this long before the process
 * exits, so that a prober sees why the node went away rather than only a refused connection.
 */
const LOST_LINGER_MS = 2_000;

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`paygate: configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}

function printFirstAdmin(first: { email: string; generatedPassword: string | null }): void {
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

/**
 * Starts Paygate and keeps it running until SIGTERM or SIGINT. Resolves once the server listens;
 * the process then lives on the open server and exits from the signal handler.
 */
export async function runServer(): Promise<void> {
  const config = loadConfigOrExit();
  const log = pino({ level: config.logLevel });
  log.info({ mode: config.databaseUrl ? 'server' : 'embedded', dataDir: config.databaseUrl ? undefined : config.dataDir }, 'starting Paygate');

  let runtime: Runtime | null = null;
  let services: Services | null = null;
  let app: FastifyInstance | null = null;
  let stopSignal: string | null = null;

  // Closes whatever the start has opened so far, in order: HTTP first (stops accepting, drains
  // in-flight requests), then background work (flushes lastUsedAt, closes the listener), then the
  // pool and the embedded PostgreSQL. The embedded PostgreSQL is a child process that would outlive
  // us if we exited without stopping it, and it would keep the data directory locked.
  const closeAll = async () => {
    if (app) await app.close();
    if (services) await services.stop();
    if (runtime) await runtime.close();
  };

  const start = async () => {
    runtime = await openRuntime(
      config,
      (message) => log.debug({ postgres: message }, 'embedded postgres'),
      (message) => log.warn(message),
    );
    void runtime.embedded?.lost.then(lose);
    if (stopSignal) return;
    services = createServices(config, runtime.db, runtime.secrets, log);
    await services.start();
    if (stopSignal) return;
    const first = await services.users.bootstrapFirstAdmin(config.adminEmail, config.adminPassword);
    if (first) printFirstAdmin(first);
    if (stopSignal) return;
    app = await buildServer(services, { liveness: () => runtime?.embedded?.alive ?? true });
    await app.listen({ port: config.port, host: config.host });
    log.info({ url: `http://${config.host}:${config.port}`, docs: `${config.publicUrl}/docs` }, 'Paygate is listening');
  };
  const starting = start();

  // Installed before the first await that opens anything: a signal that arrives while the embedded
  // PostgreSQL starts must still stop it rather than leave it running without us.
  const shutdown = async (signal: string) => {
    if (stopSignal) return;
    stopSignal = signal;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    force.unref();
    await starting.catch(() => undefined); // a half-done start finishes its current step first
    try {
      await closeAll();
    } catch (error) {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
    log.info('stopped');
    process.exit(0);
  };
  // The embedded PostgreSQL died and could not be restarted: one line on stderr, /healthz 503 for a
  // moment, then close what still closes and exit 1.
  async function lose(error: Error): Promise<void> {
    if (stopSignal) return;
    stopSignal = 'embedded PostgreSQL lost';
    console.error(`paygate: ${error.message}`);
    log.error({ err: error }, 'embedded PostgreSQL lost');
    setTimeout(() => process.exit(1), LOST_LINGER_MS + SHUTDOWN_TIMEOUT_MS).unref();
    await new Promise((resolve) => setTimeout(resolve, LOST_LINGER_MS));
    await starting.catch(() => undefined);
    await closeAll().catch(() => undefined);
    process.exit(1);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    await starting;
  } catch (error) {
    if (stopSignal) return; // the signal handler owns the exit now
    await closeAll().catch(() => undefined);
    if (error instanceof EmbeddedDatabaseInUse) {
      console.error(`paygate: ${error.message}`);
      process.exit(3);
    }
    // A node that would break the revocation bound, or an embedded PostgreSQL that cannot run here
    // (ConfigError from db/embedded.ts), is a configuration error: one line, exit 2.
    if (error instanceof ClusterConfigError || error instanceof ConfigError) {
      console.error(`paygate: configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
}
