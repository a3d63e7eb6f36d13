/**
 * What the bootstrap commands (`migrate`, `admin create`) run in: the same configuration as the
 * server (loadConfig), the same database (the embedded PostgreSQL under PAYGATE_DATA_DIR, or
 * DATABASE_URL), migrated by openRuntime, and the same services as the HTTP API, so the same rules
 * apply. Every other command speaks the HTTP API and never loads this module (commands import it
 * lazily), so they neither open the database nor need the server's configuration.
 *
 * Embedded mode is single-process: the embedded PostgreSQL can be run by only one process at a time,
 * so while a Paygate server runs in embedded mode on the same data directory a bootstrap command
 * fails with an "already in use" message (exit code 3). Those commands are for before the server
 * runs; once it does, its HTTP API (and so the rest of the CLI) does everything else.
 */
import { ConfigError, loadConfig } from '../config.js';
import { EmbeddedDatabaseInUse } from '../db/embedded.js';
import { AppError } from '../errors.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { createServices, type Logger, type Services } from '../services.js';
import { CliError, EXIT } from './errors.js';

export interface CommandContext {
  services: Services;
  runtime: Runtime;
}

/** Warnings and errors of background parts go to stderr; stdout stays pure JSON. */
const stderrLogger: Logger = {
  info: () => undefined,
  warn: (obj, msg) => process.stderr.write(`paygate: warning: ${msg} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`paygate: error: ${msg} ${JSON.stringify(obj)}\n`),
};

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };
const CLOSE_TIMEOUT_MS = 15_000;

/**
 * Opens the runtime, builds the services, runs `command`, then stops the services and closes the
 * runtime, whatever happened. Only the invalidation bus is started, as a publisher: the CLI caches
 * nothing (so no server waits for it), but it listens for the servers' acknowledgements, so a change
 * returns as soon as every live server has applied it, exactly like a change made through a node.
 */
export async function withServices<T>(command: (context: CommandContext) => Promise<T>): Promise<T> {
  try {
    return await runWithServices(command);
  } catch (error) {
    throw asCliError(error);
  }
}

/** Paygate's own errors as the CLI reports them (errors.ts knows nothing of the server's classes). */
function asCliError(error: unknown): unknown {
  // The message of an AppError is the problem `detail` the HTTP API would send; the code is the same too.
  if (error instanceof AppError) return new CliError(`${error.code}: ${error.message}`, EXIT.failed);
  if (error instanceof ConfigError) return new CliError(`configuration error: ${error.message}`, EXIT.usage);
  if (error instanceof EmbeddedDatabaseInUse) return new CliError(error.message, EXIT.unreachable);
  return error;
}

async function runWithServices<T>(command: (context: CommandContext) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const opening = openRuntime(config);
  let services: Services | null = null;

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      const runtime = await opening.catch(() => null);
      if (!runtime) return; // openRuntime cleans up after itself when it fails
      if (services) await services.stop();
      await runtime.close();
    })());

  // A signal while the embedded PostgreSQL runs must stop it: it is our child process and would
  // otherwise outlive us and keep the data directory locked for the server.
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    process.stderr.write(`paygate: ${signal} received, closing the database\n`);
    setTimeout(() => process.exit(1), CLOSE_TIMEOUT_MS).unref();
    void close()
      .catch(() => undefined)
      .finally(() => process.exit(SIGNAL_EXIT[signal] ?? 1));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const runtime = await opening;
    // Interrupted while the database opened: do not start the command (the signal handler exits).
    if (interrupted) throw new CliError(`interrupted by ${interrupted}`, SIGNAL_EXIT[interrupted] ?? EXIT.failed);
    services = createServices(config, runtime.db, runtime.secrets, stderrLogger, { role: 'publisher' });
    await services.bus.start();
    return await command({ services, runtime });
  } finally {
    await close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
