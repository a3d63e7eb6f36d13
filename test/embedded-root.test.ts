/**
 * Embedded mode run as root (SPEC §11: "It works when run as root, also from a directory only root
 * may enter"), with the real server process (`node --import tsx src/main.ts`) on a real 0700
 * directory of root's. PostgreSQL refuses to run as root; Paygate runs it in a user namespace
 * mapped to root (src/db/postgres-process.ts), and otherwise as the postgres user where that user
 * can reach the directories, else refuses with one line.
 *
 * "This system allows no user namespaces" is made real, not simulated by a switch: the server runs
 * inside a user namespace that maps every id to itself (so it is root, with root's files and the
 * postgres user, as before) but whose limit of nested user namespaces is 0, as on a system that
 * forbids them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 60_000; // the first start runs initdb (a few seconds on a busy machine)
const TEST_TIMEOUT_MS = 120_000;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/embedded-root.test.ts: skipped, these tests need to run as root');

/** The handshake of postgres-process.ts: the namespace's shell waits on fd 3 until its maps are written. */
const HANDSHAKE = 'printf x >&3 && read -r go <&3 && exec "$@" 3<&-';
/** Run inside the identity namespace before the server: no nested user namespace may be made there. */
const FORBID_NAMESPACES = 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"';

/** Whether this machine lets root make an identity-mapped user namespace (the way to forbid nested ones). */
const canForbidNamespaces =
  isRoot &&
  process.platform === 'linux' &&
  spawnSync('unshare', ['-U', '--map-root-user', '/bin/sh', '-c', FORBID_NAMESPACES, 'true'], { stdio: 'ignore' }).status === 0;
const hasPostgresUser = spawnSync('id', ['-u', 'postgres'], { stdio: 'ignore' }).status === 0;
const postgresUid = () => Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
const postgresGid = () => Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
/** Whether the postgres user can enter this repository (not in a clone under a 0700 home), where the binaries are. */
const postgresReachesRepository =
  isRoot && hasPostgresUser && spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', ROOT], { uid: postgresUid(), gid: postgresGid(), stdio: 'ignore' }).status === 0;
const userNamespacesAllowed = isRoot && process.platform === 'linux' && spawnSync('unshare', ['-U', 'true'], { stdio: 'ignore' }).status === 0;

interface ServerProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(pattern: RegExp): Promise<void>;
}

const running = new Set<ServerProcess>();

/** Nothing of the run's own configuration (CI sets DATABASE_URL and REDIS_URL), only what the test gives. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'PORT', 'HOST', 'LOG_LEVEL'].includes(name)) delete env[name];
  }
  return { ...env, LOG_LEVEL: 'info', ...extra };
}

/** The server; `withoutUserNamespaces`: inside an identity-mapped namespace that allows no nested ones. */
function startMain(env: Record<string, string>, options: { withoutUserNamespaces?: boolean } = {}): ServerProcess {
  const node = [process.execPath, '--import', 'tsx', 'src/main.ts'];
  let child: ChildProcess;
  if (options.withoutUserNamespaces) {
    child = spawn('unshare', ['-U', '/bin/sh', '-c', HANDSHAKE, 'sh', '/bin/sh', '-c', FORBID_NAMESPACES, ...node], {
      cwd: ROOT,
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    const channel = child.stdio[3] as Duplex;
    channel.once('data', () => {
      // Every id to itself: inside, the server is root with root's files, and the postgres user is there.
      writeFileSync(`/proc/${child.pid}/uid_map`, '0 0 4294967295\n');
      writeFileSync(`/proc/${child.pid}/gid_map`, '0 0 4294967295\n');
      channel.end('\n');
    });
  } else {
    child = spawn(node[0]!, node.slice(1), { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  }
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout!.on('data', (chunk) => {
    out += chunk;
    for (const check of [...waiters]) check();
  });
  child.stderr!.on('data', (chunk) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const proc: ServerProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const done = (error?: Error) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (error) reject(error);
          else resolve();
        };
        const check = () => {
          if (pattern.test(out)) done();
        };
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}\nstdout: ${out}\nstderr: ${err}`)), START_TIMEOUT_MS);
        waiters.add(check);
        void exited.then(({ code, signal }) => {
          if (waiters.has(check)) done(new Error(`exited (${code ?? signal}) before ${pattern}\nstdout: ${out}\nstderr: ${err}`));
        });
        check();
      });
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const login = (base: string, email: string, password: string) =>
  fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });

/** Every path under `dir` (itself included) whose owner or group is not root, with its ids. */
async function notRoots(dir: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (file: string) => {
    const stat = await fs.lstat(file);
    if (stat.uid !== 0 || stat.gid !== 0) found.push(`${file} (${stat.uid}:${stat.gid})`);
    if (stat.isDirectory()) for (const entry of await fs.readdir(file)) await visit(path.join(file, entry));
  };
  await visit(dir);
  return found;
}

/** Stops what a failed test left: our servers, then any PostgreSQL still running in `dataDir`. */
async function cleanUp(dataDir: string): Promise<void> {
  for (const proc of running) proc.child.kill('SIGKILL');
  const pid = Number((await fs.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      /* already gone */
    }
  }
}

describe.skipIf(!isRoot)('embedded mode as root, from a directory only root may enter', () => {
  let privateDir: string;

  beforeAll(async () => {
    privateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-root-'));
    const stat = await fs.stat(privateDir);
    expect({ mode: stat.mode & 0o777, uid: stat.uid }).toEqual({ mode: 0o700, uid: 0 });
  });

  afterAll(async () => {
    await cleanUp(path.join(privateDir, 'data'));
    await fs.rm(privateDir, { recursive: true, force: true });
  }, 30_000);

  it.skipIf(!userNamespacesAllowed)(
    'starts, signs in with the printed credentials, stops cleanly, restarts on the same directory, and leaves only root-owned files',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const dataDir = path.join(privateDir, 'data');
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = { PAYGATE_DATA_DIR: dataDir, PORT: String(port) };

      const first = startMain(env);
      await first.waitFor(/"msg":"Paygate is listening"/);
      const password = /password: +(\S+)\n/.exec(first.stdout())?.[1];
      expect(password, first.stdout()).toBeDefined();
      const signedIn = await login(base, 'admin@localhost', password!);
      expect(signedIn.status, await signedIn.clone().text()).toBe(200);
      first.child.kill('SIGTERM');
      expect(await first.exited, first.stderr()).toEqual({ code: 0, signal: null });
      expect(first.stderr()).toBe('');

      const again = startMain(env);
      await again.waitFor(/"msg":"Paygate is listening"/);
      expect(again.stdout()).not.toMatch(/first global admin/);
      const signedInAgain = await login(base, 'admin@localhost', password!);
      expect(signedInAgain.status, await signedInAgain.clone().text()).toBe(200);
      again.child.kill('SIGTERM');
      expect(await again.exited, again.stderr()).toEqual({ code: 0, signal: null });

      expect(await fs.access(path.join(dataDir, 'postgres', 'PG_VERSION')).then(() => true, () => false)).toBe(true);
      expect(await notRoots(privateDir)).toEqual([]);
    },
  );

  it.skipIf(!canForbidNamespaces)(
    'where user namespaces are not allowed and the postgres user cannot enter the directory, refuses to start with one line and exit 2, creating nothing',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const dataDir = path.join(privateDir, 'refused');
      const server = startMain({ PAYGATE_DATA_DIR: dataDir, PORT: String(await freePort()) }, { withoutUserNamespaces: true });
      const { code } = await server.exited;

      expect(code, server.stderr()).toBe(2);
      const lines = server.stderr().trimEnd().split('\n');
      expect(lines, server.stderr()).toHaveLength(1);
      const why = 'paygate: configuration error: as root, PostgreSQL must run as another user, but this system allows no user namespaces (unshare: ';
      expect(lines[0]!.startsWith(why), lines[0]).toBe(true);
      // The first directory on its way that the postgres user cannot enter: the binaries' (in a clone
      // under a 0700 home) or else the data directory's, and the advice for that one.
      expect(lines[0]).toMatch(
        postgresReachesRepository
          ? /\) and the postgres user cannot enter (\S+): run Paygate as a non-root user, set PAYGATE_DATA_DIR to a directory the postgres user can enter, or use DATABASE_URL$/
          : /\) and the postgres user cannot enter (\S+): run Paygate as a non-root user, install Paygate in a directory the postgres user can enter, or use DATABASE_URL$/,
      );
      if (postgresReachesRepository) expect(lines[0]).toContain(`cannot enter ${privateDir}:`);
      expect(server.stdout()).not.toMatch(/first global admin/);
      expect(await fs.access(dataDir).then(() => true, () => false), 'the data directory').toBe(false);
    },
  );
});

describe.skipIf(!isRoot)('embedded mode as root on PostgreSQL files of the postgres user (made by an earlier version)', () => {
  const dataDir = path.join(ROOT, '.test-data', `root-upgrade-${process.pid}`);

  afterAll(async () => {
    await cleanUp(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it.skipIf(!userNamespacesAllowed || !postgresReachesRepository)('starts as that user and keeps its data', { timeout: TEST_TIMEOUT_MS }, async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const admin = { email: 'root-upgrade@example.com', password: 'root-upgrade-password-0123' };
    const env = { PAYGATE_DATA_DIR: dataDir, PORT: String(port), PAYGATE_ADMIN_EMAIL: admin.email, PAYGATE_ADMIN_PASSWORD: admin.password };
    const first = startMain(env);
    await first.waitFor(/"msg":"Paygate is listening"/);
    first.child.kill('SIGTERM');
    expect(await first.exited, first.stderr()).toEqual({ code: 0, signal: null });
    // What earlier versions left as root: the cluster owned by the postgres user.
    expect(spawnSync('chown', ['-R', 'postgres:postgres', path.join(dataDir, 'postgres')]).status).toBe(0);

    const again = startMain(env);
    await again.waitFor(/"msg":"Paygate is listening"/);
    const response = await login(base, admin.email, admin.password);
    expect(response.status, await response.clone().text()).toBe(200);
    const postmaster = Number((await fs.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    expect(/^Uid:\s+(\d+)/m.exec(await fs.readFile(`/proc/${postmaster}/status`, 'utf8'))?.[1], 'the postmaster runs as').toBe(String(postgresUid()));
    again.child.kill('SIGTERM');
    expect(await again.exited, again.stderr()).toEqual({ code: 0, signal: null });
  });
});

describe.skipIf(!isRoot)('embedded mode as root where user namespaces are not allowed', () => {
  // In the repository (0755 on the way here): a directory the postgres user can enter.
  const dataDir = path.join(ROOT, '.test-data', `root-fallback-${process.pid}`);

  afterAll(async () => {
    await cleanUp(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it.skipIf(!canForbidNamespaces || !postgresReachesRepository)(
    'runs PostgreSQL as the postgres user when that user can reach the binaries and the data directory',
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      // Skipped where the postgres user cannot enter the repository (a clone in a 0700 home): the test above covers that.
      const port = await freePort();
      const admin = { email: 'root-fallback@example.com', password: 'root-fallback-password-0123' };
      const server = startMain(
        { PAYGATE_DATA_DIR: dataDir, PORT: String(port), PAYGATE_ADMIN_EMAIL: admin.email, PAYGATE_ADMIN_PASSWORD: admin.password },
        { withoutUserNamespaces: true },
      );
      await server.waitFor(/"msg":"Paygate is listening"/);
      const response = await login(`http://127.0.0.1:${port}`, admin.email, admin.password);
      expect(response.status, await response.clone().text()).toBe(200);
      const postmaster = Number((await fs.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
      const status = await fs.readFile(`/proc/${postmaster}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1], 'the postmaster runs as').toBe(String(postgresUid()));
      expect((await fs.stat(path.join(dataDir, 'postgres'))).uid).toBe(postgresUid());

      server.child.kill('SIGTERM');
      expect(await server.exited, server.stderr()).toEqual({ code: 0, signal: null });
    },
  );
});
