/**
 * Embedded mode survives its own processes dying (SPEC §11, Faults), with real processes and real
 * signals: the server (`node --import tsx src/main.ts`) on an embedded PostgreSQL, killed with
 * SIGKILL; then its PostgreSQL killed under it; then its PostgreSQL killed with its data directory
 * made unusable. (A live server refusing a second one with exit 3 is test/main.test.ts's.)
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 60_000; // the first start runs initdb (a few seconds on a busy machine)
const TEST_TIMEOUT_MS = 90_000;
/** What SPEC §11 allows a restart of the embedded PostgreSQL, with room for a loaded machine. */
const RECOVERY_BOUND_MS = 30_000;
const ADMIN = { email: 'supervision@example.com', password: 'supervision-admin-password-0123' };

interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
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

function startMain(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: childEnv(env) });
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk) => {
    out += chunk;
    for (const check of [...waiters]) check();
  });
  child.stderr.on('data', (chunk) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const proc: ServerProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = START_TIMEOUT_MS) {
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
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}\nstdout: ${out}\nstderr: ${err}`)), timeoutMs);
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `pid` runs (a zombie does not: it has exited and only waits to be reaped). */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat !== null) return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` every 100 ms until it returns true or `timeoutMs` passes. */
async function eventually(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await sleep(100);
  }
  return false;
}

describe('embedded mode when its processes die', () => {
  const dataDir = path.join(ROOT, '.test-data', `sup-${randomBytes(4).toString('hex')}`);
  const databaseDir = path.join(dataDir, 'postgres');
  let port: number;
  let base: string;
  let env: Record<string, string>;
  let server: ServerProcess;

  const postmasterPid = async () => Number((await fs.readFile(path.join(databaseDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
  const login = () =>
    fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) }).catch(() => null);

  beforeAll(async () => {
    // Inside the repository, not os.tmpdir(): as root PostgreSQL runs as `postgres`, which cannot
    // enter a 0700 temporary directory.
    await fs.mkdir(dataDir, { recursive: true, mode: 0o755 });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = { PAYGATE_DATA_DIR: dataDir, PORT: String(port), PAYGATE_ADMIN_EMAIL: ADMIN.email, PAYGATE_ADMIN_PASSWORD: ADMIN.password };
    server = startMain(env);
    await server.waitFor(/"msg":"Paygate is listening"/);
  }, START_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    // Whatever failed: kill our servers, then any PostgreSQL of this directory they left behind.
    for (const proc of running) proc.child.kill('SIGKILL');
    const pid = await postmasterPid();
    const cwd = pid > 0 ? await fs.readlink(`/proc/${pid}/cwd`).catch(() => null) : null;
    if (pid > 0 && (cwd === null || cwd === (await fs.realpath(databaseDir).catch(() => databaseDir))) && (await isRunning(pid))) {
      process.kill(pid, 'SIGINT');
      if (!(await eventually(async () => !(await isRunning(pid)), 10_000))) process.kill(pid, 'SIGKILL');
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it('a Paygate killed with SIGKILL leaves its PostgreSQL running; the next start stops that one and reuses the data', { timeout: TEST_TIMEOUT_MS }, async () => {
    const before = await login();
    expect(before?.status, await before?.text()).toBe(200);
    const orphan = await postmasterPid();
    expect(orphan).toBeGreaterThan(0);

    server.child.kill('SIGKILL');
    await server.exited;
    expect(await isRunning(orphan), 'the PostgreSQL of the killed Paygate').toBe(true);

    // Pid reuse must not pass for a live owner: the lock now names a running process (this test
    // worker), but with the start time of the killed Paygate.
    if (process.platform === 'linux') {
      const lockFile = path.join(dataDir, 'paygate.lock');
      const lock = JSON.parse(await fs.readFile(lockFile, 'utf8')) as { owner: { pid: number } };
      lock.owner.pid = process.pid;
      await fs.writeFile(lockFile, JSON.stringify(lock));
    }

    server = startMain(env);
    await server.waitFor(/"msg":"Paygate is listening"/);
    expect(server.stdout()).toMatch(new RegExp(`stopping the orphaned embedded PostgreSQL \\(pid ${orphan}\\)`));
    expect(server.stdout()).not.toMatch(/first global admin/);
    expect(await isRunning(orphan), 'the orphaned PostgreSQL').toBe(false);
    expect(await postmasterPid()).not.toBe(orphan);

    const after = await login();
    expect(after?.status, await after?.text()).toBe(200);
  });

  it('a PostgreSQL killed with SIGKILL under a running Paygate is restarted; requests succeed again and /healthz answers throughout', { timeout: TEST_TIMEOUT_MS }, async () => {
    const killed = await postmasterPid();
    const health: Array<number | string> = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        health.push(await fetch(`${base}/healthz`).then((r) => r.status, (e: Error) => e.message));
        await sleep(100);
      }
    })();

    process.kill(killed, 'SIGKILL');
    const began = Date.now();
    const recovered = await eventually(async () => (await login())?.status === 200, RECOVERY_BOUND_MS);
    const tookMs = Date.now() - began;
    polling = false;
    await poller;

    expect(recovered, `no successful login within ${RECOVERY_BOUND_MS} ms\nstdout: ${server.stdout().slice(-3000)}\nstderr: ${server.stderr()}`).toBe(true);
    expect(tookMs).toBeLessThan(RECOVERY_BOUND_MS);
    expect(server.child.exitCode, server.stderr()).toBeNull();
    expect(health.length).toBeGreaterThan(0);
    expect(health.filter((status) => status !== 200), 'every /healthz answer while PostgreSQL restarted').toEqual([]);
    expect(server.stdout()).toMatch(/the embedded PostgreSQL exited unexpectedly \(signal SIGKILL\); restarting it/);
    expect(server.stdout()).toMatch(/the embedded PostgreSQL is back/);
    const restarted = await postmasterPid();
    expect(restarted).not.toBe(killed);
    expect(await isRunning(restarted)).toBe(true);
    expect(server.stderr()).toBe('');
  });

  it('a PostgreSQL that cannot come back: /healthz answers 503, then the process exits non-zero with one line on stderr', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Gone for good: the data directory no longer is one (PostgreSQL checks PG_VERSION at start).
    await fs.rename(path.join(databaseDir, 'PG_VERSION'), path.join(databaseDir, 'PG_VERSION.gone'));
    process.kill(await postmasterPid(), 'SIGKILL');

    const saw503 = await eventually(async () => (await fetch(`${base}/healthz`).then((r) => r.status, () => 0)) === 503, 40_000);
    const { code, signal } = await server.exited;

    expect(saw503, `no 503 from /healthz\nstdout: ${server.stdout().slice(-3000)}\nstderr: ${server.stderr()}`).toBe(true);
    expect(signal).toBeNull();
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    const lines = server.stderr().trimEnd().split('\n');
    expect(lines, server.stderr()).toHaveLength(1);
    expect(lines[0]).toMatch(/^paygate: the embedded PostgreSQL in .* could not be restarted within \d+ s .*not a valid data directory/);
    // The process is gone and so is its ownership: nothing of it refuses the next start.
    expect(await fs.access(path.join(dataDir, 'paygate.lock')).then(() => true, () => false)).toBe(false);
  });
});
