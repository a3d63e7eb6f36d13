/**
 * The server process: config -> port -> database -> migrate -> services -> server -> listen -> first
 * admin; signals. `npm start` (src/main.ts) and `paygate serve` (src/cli) both run it.
 *
 * Start-up (SPEC §11): the configuration is checked before anything is created or printed; the port
 * is tried before the database is touched and held (Fastify listening) before the first admin is
 * created and its credentials are printed, so a port in use never costs a printed password; until
 * the first admin exists, /readyz answers 503. Every failed start is one line on stderr (the stack
 * goes to the debug log).
 *
 * Exit codes: 0 after a clean SIGTERM/SIGINT shutdown; 1 on a failed start (the database of
 * DATABASE_URL unreachable after PAYGATE_DATABASE_WAIT_SECONDS included), a shutdown that hung or
 * an embedded PostgreSQL that died and could not be restarted (a supervisor then restarts us); 2 on a
 * configuration error (a bad variable, DATABASE_URL's credentials or database refused, the port in
 * use or not bindable); 3 when the embedded database is already in use by another process.
 */
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { loadConfig, ConfigError, type Config } from './config.js';
import { openRuntime, type Runtime } from './runtime.js';
import { createServices, type Services } from './services.js';
import { buildServer } from './http/server.js';
import { createLogger } from './logging.js';
import { EmbeddedDatabaseInUse } from './db/embedded.js';
import { ClusterConfigError } from './cache/invalidation.js';

/** How long a shutdown may take before the process gives up and exits 1. */
const SHUTDOWN_TIMEOUT_MS = 15_000;
/**
 * When the embedded PostgreSQL is gone for good, /healthz answers 503 this long before the process
 * exits, so that a prober sees why the node went away rather than only a refused connection.
 */
const LOST_LINGER_MS = 2_000;

/** A start refused before it began: printed as `paygate: <message>`, exit `code`. */
class StartRefused extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'StartRefused';
  }
}

/** Whatever an error says, as one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function exitWith(line: string, code: number): never {
  process.stderr.write(`paygate: ${oneLine(line)}\n`);
  process.exit(code);
}

function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) exitWith(`configuration error: ${error.message}`, 2);
    throw error;
  }
}

/** Why the port cannot be bound, as the operator should read it; null for an unexpected error. */
function bindRefusal(error: unknown, host: string, port: number): StartRefused | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new StartRefused(`port ${port} on ${host} is already in use (another Paygate, or another program): stop it, or choose another PORT`, 2);
    case 'EACCES':
      return new StartRefused(`port ${port} on ${host} may not be bound by this user (ports below 1024 need privileges): choose another PORT`, 2);
    case 'EADDRNOTAVAIL':
      return new StartRefused(`configuration error: HOST ${host} is not an address of this machine`, 2);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartRefused(`configuration error: HOST ${host} does not resolve to an address`, 2);
    default:
      return null;
  }
}

/**
 * Tries the port before anything is created (data directory, initdb, database connections), so the
 * common case, something already listening there, stops the start at once. The real bind, later, is
 * what guarantees it: see runServer. Port 0 (any free port) cannot be taken.
 */
async function checkPort(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (error) => reject(bindRefusal(error, host, port) ?? error));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
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
  const log = createLogger({ level: config.logLevel, format: config.logFormat });
  try {
    await checkPort(config.host, config.port);
  } catch (error) {
    if (error instanceof StartRefused) exitWith(error.message, error.code);
    throw error;
  }
  log.info({ mode: config.databaseUrl ? 'server' : 'embedded', dataDir: config.databaseUrl ? undefined : config.dataDir }, 'starting Paygate');

  let runtime: Runtime | null = null;
  let services: Services | null = null;
  let app: FastifyInstance | null = null;
  let stopSignal: string | null = null;
  /** Whether the first admin is bootstrapped: /readyz says 503 until then. */
  let started = false;

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
    app = await buildServer(services, { liveness: () => runtime?.embedded?.alive ?? true, readiness: () => started });
    // Bound before the first admin exists: a port taken since checkPort fails here, before any
    // credential is created or printed. Requests meanwhile find no user to sign in as, and /readyz
    // keeps load balancers away until the admin exists (a few milliseconds).
    try {
      await app.listen({ port: config.port, host: config.host });
    } catch (error) {
      throw bindRefusal(error, config.host, config.port) ?? error;
    }
    if (stopSignal) return;
    const first = await services.users.bootstrapFirstAdmin(config.adminEmail, config.adminPassword);
    if (first) printFirstAdmin(first);
    started = true;
    if (stopSignal) return;
    log.info(
      { url: listeningUrl(app, config), publicUrl: config.publicUrl, admin: `${config.publicUrl}/admin`, docs: `${config.publicUrl}/docs` },
      'Paygate is listening',
    );
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
    if (error instanceof StartRefused) exitWith(error.message, error.code);
    if (error instanceof EmbeddedDatabaseInUse) exitWith(error.message, 3);
    // A node that would break the revocation bound, DATABASE_URL's credentials or database refused,
    // or an embedded PostgreSQL that cannot run here (ConfigError from db/embedded.ts) is a
    // configuration error: one line, exit 2.
    if (error instanceof ClusterConfigError || error instanceof ConfigError) exitWith(`configuration error: ${error.message}`, 2);
    // Anything else (the database unreachable for the whole wait, a failed migration, a bug): one
    // line, exit 1; the stack only in the debug log.
    log.debug({ err: error }, 'start failed');
    exitWith(`failed to start: ${error instanceof Error ? error.message : String(error)}`, 1);
  }
}

/** The address the server actually listens on (PORT=0 picks one). */
function listeningUrl(app: FastifyInstance, config: Config): string {
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  return `http://${net.isIPv6(config.host) ? `[${config.host}]` : config.host}:${port}`;
}
