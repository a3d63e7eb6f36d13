/**
 * The real server process (`node --import tsx src/main.ts`, as `npm start` runs the built file) in
 * embedded mode: first start, the single-process guard, a clean SIGTERM, a restart on the same data
 * directory; and the configuration check that a DATABASE_URL deployment needs its secrets.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 60_000; // the first start runs initdb (a few seconds on a busy machine)
const TEST_TIMEOUT_MS = 90_000;

interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when stdout has a line matching `pattern`; rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

const running = new Set<ServerProcess>();

/**
 * The environment of a child: nothing of the run's own configuration (CI sets DATABASE_URL and
 * REDIS_URL; a developer may have PAYGATE_* set), only what the test gives.
 */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'PORT', 'HOST', 'LOG_LEVEL'].includes(name)) delete env[name];
  }
  return { ...env, LOG_LEVEL: 'info', ...extra };
}

function start(entry: string[], env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...entry], { cwd: ROOT, env: childEnv(env) });
  let out = '';
  let err = '';
  const waiters: Array<() => void> = [];
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
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}\nstdout: ${out}\nstderr: ${err}`)), timeoutMs);
        const check = () => {
          if (pattern.test(out)) done();
        };
        const done = (error?: Error) => {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          if (error) reject(error);
          else resolve();
        };
        waiters.push(check);
        void exited.then(({ code, signal }) => {
          if (waiters.includes(check)) done(new Error(`exited (${code ?? signal}) before ${pattern}\nstdout: ${out}\nstderr: ${err}`));
        });
        check();
      });
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

const startMain = (env: Record<string, string>) => start(['src/main.ts'], env);

/** Runs a process to its end; for the ones expected to refuse to start. */
async function runToExit(entry: string[], env: Record<string, string>) {
  const proc = start(entry, env);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), START_TIMEOUT_MS);
  const { code } = await proc.exited;
  clearTimeout(timer);
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
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

async function login(base: string, email: string, password: string): Promise<Response> {
  return fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
}

const exists = (file: string) => fs.access(file).then(() => true, () => false);

describe('the server process in embedded mode', () => {
  let dataDir: string;
  let port: number;
  let base: string;
  let first: ServerProcess;
  let password: string;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-main-'));
    // As root, the embedded PostgreSQL runs as the `postgres` user, which must be able to enter the directory.
    await fs.chmod(dataDir, 0o755);
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    first = startMain({ PAYGATE_DATA_DIR: dataDir, PORT: String(port) });
    await first.waitFor(/"msg":"Paygate is listening"/);
  }, START_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    // A failed test may leave processes behind: stop ours, then any embedded PostgreSQL they left.
    for (const proc of running) proc.child.kill('SIGKILL');
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).split('\n')[0]);
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        /* already gone */
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it('prints the first admin credentials once on the first start, and they sign in', { timeout: TEST_TIMEOUT_MS }, async () => {
    const out = first.stdout();
    expect(out.match(/created the first global admin/g), out).toHaveLength(1);
    expect(out).toMatch(/email: +admin@localhost\n/);
    const match = /password: +(\S+)\n/.exec(out);
    expect(match, out).not.toBeNull();
    password = match![1]!;
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(out.match(new RegExp(password, 'g'))).toHaveLength(1);

    const response = await login(base, 'admin@localhost', password);
    expect(response.status, await response.clone().text()).toBe(200);
    const body = (await response.json()) as { user: { email: string }; token: string };
    expect(body.user.email).toBe('admin@localhost');
    expect(body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it('answers /healthz and /readyz', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status, await ready.clone().text()).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { database: true, invalidationChannel: true } });
  });

  it('refuses a second server on the same data directory with a clear message', { timeout: TEST_TIMEOUT_MS }, async () => {
    const second = await runToExit(['src/main.ts'], { PAYGATE_DATA_DIR: dataDir, PORT: String(await freePort()) });
    expect(second.code, second.stderr).not.toBe(0);
    expect(second.stderr).toMatch(/already in use/);
    expect(second.stderr).toContain(dataDir);
    expect(second.stdout).not.toMatch(/first global admin/);
  });

  it('refuses a CLI bootstrap command on the embedded database the server is using (exit 3)', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Only the bootstrap commands open the database; the rest of the CLI speaks HTTP (test/cli.test.ts).
    const cli = await runToExit(['src/cli/index.ts', 'admin', 'create', '--email', 'x@example.com'], { PAYGATE_DATA_DIR: dataDir });
    expect(cli.code, cli.stderr).toBe(3);
    expect(cli.stdout).toBe('');
    expect(cli.stderr).toMatch(/^paygate: .*already in use/);
  });

  it('stops on SIGTERM with exit code 0, and its embedded PostgreSQL stops too', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect(await exists(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(true);
    first.child.kill('SIGTERM');
    const { code, signal } = await first.exited;
    expect({ code, signal }, first.stderr()).toEqual({ code: 0, signal: null });
    expect(first.stdout()).toMatch(/"msg":"stopped"/);
    expect(await exists(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  });

  it('restarts on the same data directory (via `paygate serve`) without new credentials, and the old password still works', { timeout: TEST_TIMEOUT_MS }, async () => {
    const again = start(['src/cli/index.ts', 'serve'], { PAYGATE_DATA_DIR: dataDir, PORT: String(port) });
    await again.waitFor(/"msg":"Paygate is listening"/);
    expect(again.stdout()).not.toMatch(/first global admin|password:/);
    const response = await login(base, 'admin@localhost', password);
    expect(response.status, await response.text()).toBe(200);

    again.child.kill('SIGTERM');
    expect((await again.exited).code, again.stderr()).toBe(0);
    expect(await exists(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  });
});

describe('the server process with DATABASE_URL', () => {
  it('refuses to start without PAYGATE_SECRET_PEPPER and names it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await runToExit(['src/main.ts'], {
      // Never reached: the configuration is checked before any connection.
      DATABASE_URL: 'postgres://paygate@127.0.0.1:1/paygate',
      PAYGATE_SESSION_SECRET: 'test-session-0123456789abcdefghijklmnopqrstuvwxyz',
      PORT: String(await freePort()),
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/configuration error: .*PAYGATE_SECRET_PEPPER/);
    expect(result.stderr).not.toContain('PAYGATE_SESSION_SECRET must');
  });
});
