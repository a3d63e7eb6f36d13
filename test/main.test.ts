/**
 * The real server process (`node --import tsx src/main.ts`, as `npm start` runs the built file) in
 * embedded mode: first start, the single-process guard, a clean SIGTERM, a restart on the same data
 * directory. And start-up (SPEC §11): every configuration problem is one line on stderr and exit 2
 * before anything is created or printed; a DATABASE_URL that is not up yet is waited for (30 s by
 * default), one that refuses us is a configuration error; the port is bound before the first admin
 * is created and printed; any other failure is one line and exit 1; logs are human-readable on
 * request, and still redacted.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRETS, createTestDatabase, type TestDatabase } from './harness.js';
import { startTcpProxy, type TcpProxy } from './faults/tcp-proxy.js';

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
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'PORT', 'HOST', 'LOG_LEVEL', 'LOG_FORMAT'].includes(name)) delete env[name];
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

  it('says where it listens, with the admin panel, the API reference and the public URL', { timeout: TEST_TIMEOUT_MS }, async () => {
    const line = first.stdout().split('\n').find((l) => l.includes('"msg":"Paygate is listening"'));
    expect(JSON.parse(line!)).toMatchObject({ url: base, publicUrl: base, admin: `${base}/admin`, docs: `${base}/docs` });
    // The credentials come before it: whoever waits for this line can sign in.
    expect(first.stdout().indexOf('first global admin')).toBeLessThan(first.stdout().indexOf(line!));
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


/** The lines of a child's stderr (a trailing newline ends the last one). */
const linesOf = (text: string) => text.split('\n').filter((line) => line !== '');

/** A fresh path under the temporary directory that nothing has created. */
const unusedPath = (name: string) => path.join(os.tmpdir(), `paygate-main-${name}-${process.pid}-${Math.random().toString(36).slice(2)}`);

/** The environment of a server-mode node on `databaseUrl`, with the secrets every node needs. */
function serverEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
    PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
    PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
    ...extra,
  };
}

/** `url` with its host and port replaced (where nothing listens yet, or a proxy will). */
function atPort(url: string, port: number): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
}

async function countUsers(ownerUrl: string): Promise<number> {
  const client = new pg.Client(ownerUrl);
  await client.connect();
  try {
    return (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM users')).rows[0]!.n;
  } finally {
    await client.end();
  }
}

describe('configuration errors: one line on stderr, exit 2, before anything is created or printed', () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a LOG_LEVEL pino does not know', { LOG_LEVEL: 'verbose' }, /LOG_LEVEL must be one of .*info.*got "verbose"/],
    ['a LOG_FORMAT other than json or pretty', { LOG_FORMAT: 'xml' }, /LOG_FORMAT must be json or pretty/],
    ['a PAYGATE_ADMIN_PASSWORD below the password policy', { PAYGATE_ADMIN_PASSWORD: 'tiny-pw' }, /PAYGATE_ADMIN_PASSWORD must be at least 10 characters/],
    ['a PAYGATE_ADMIN_EMAIL that is not an address', { PAYGATE_ADMIN_EMAIL: 'admin' }, /PAYGATE_ADMIN_EMAIL must be an e-mail address/],
    ['an invalid PAYGATE_NODE_ID (no longer silently ignored)', { PAYGATE_NODE_ID: 'node a' }, /PAYGATE_NODE_ID must be/],
    ['a PORT that is not a port', { PORT: 'http' }, /PORT must be an integer between 0 and 65535/],
    ['a HOST that is neither an address nor a name', { HOST: 'local host' }, /HOST must be an IP address or a host name/],
    ['a PAYGATE_TRUSTED_PROXIES entry that is no address or CIDR', { PAYGATE_TRUSTED_PROXIES: '10.0.0.0/8, proxy.internal' }, /PAYGATE_TRUSTED_PROXIES must be .*"proxy\.internal"/],
    ['a PAYGATE_PUBLIC_URL that is not http(s)', { PAYGATE_PUBLIC_URL: 'pay.example.com' }, /PAYGATE_PUBLIC_URL must be an http:\/\/ or https:\/\/ URL/],
    ['a REDIS_URL that is not redis://', { REDIS_URL: 'localhost:6379' }, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
    ['a numeric knob out of range', { PAYGATE_HEARTBEAT_MS: '5' }, /PAYGATE_HEARTBEAT_MS must be an integer between 50 and 10000/],
    ['a DATABASE_URL that is not postgres://', { DATABASE_URL: 'mysql://db.example/paygate' }, /DATABASE_URL must be a postgres:\/\/ URL/],
    [
      'DATABASE_URL without the secrets every node shares',
      { DATABASE_URL: 'postgres://paygate@127.0.0.1:1/paygate', PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret },
      /PAYGATE_SECRET_PEPPER must be set when DATABASE_URL is set.*PAYGATE_AUDIT_SIGNING_KEY must be set/,
    ],
  ];

  it.concurrent.each(cases)('%s', { timeout: TEST_TIMEOUT_MS }, async (_name, env, message) => {
    const dataDir = unusedPath('config');
    const result = await runToExit(['src/main.ts'], { PAYGATE_DATA_DIR: dataDir, PORT: '0', ...env });
    expect(result.code, result.stderr).toBe(2);
    expect(linesOf(result.stderr), result.stderr).toHaveLength(1);
    expect(result.stderr).toMatch(/^paygate: configuration error: /);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
    expect(await exists(dataDir)).toBe(false);
  });

  it('names every problem of one start in its one line, and never repeats a password', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await runToExit(['src/main.ts'], {
      PAYGATE_DATA_DIR: unusedPath('config'),
      LOG_LEVEL: 'loud',
      PAYGATE_ADMIN_EMAIL: 'not-an-address',
      PAYGATE_ADMIN_PASSWORD: 'hunter2',
    });
    expect(result.code).toBe(2);
    expect(linesOf(result.stderr), result.stderr).toHaveLength(1);
    for (const name of ['LOG_LEVEL', 'PAYGATE_ADMIN_EMAIL', 'PAYGATE_ADMIN_PASSWORD']) expect(result.stderr).toContain(name);
    expect(result.stderr).not.toContain('hunter2');
  });
});

describe('start-up failures other than a variable', () => {
  it('a port in use is one line and exit 2, before the data directory or any credential exists', { timeout: TEST_TIMEOUT_MS }, async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const dataDir = unusedPath('port');
    try {
      const result = await runToExit(['src/main.ts'], { PAYGATE_DATA_DIR: dataDir, PORT: String(port) });
      expect(result.code, result.stderr).toBe(2);
      expect(linesOf(result.stderr), result.stderr).toEqual([`paygate: port ${port} on 127.0.0.1 is already in use (another Paygate, or another program): stop it, or choose another PORT`]);
      expect(result.stdout).not.toMatch(/first global admin|password:/);
      expect(await exists(dataDir)).toBe(false);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('any other failure is one line without a stack trace, and exit 1', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A data directory that is a file: nothing Paygate can start on.
    const file = unusedPath('file');
    await fs.writeFile(file, '');
    try {
      const result = await runToExit(['src/main.ts'], { PAYGATE_DATA_DIR: file, PORT: '0' });
      expect(result.code, result.stderr).toBe(1);
      expect(linesOf(result.stderr), result.stderr).toHaveLength(1);
      expect(result.stderr).toMatch(/^paygate: failed to start: .*EEXIST/);
      expect(result.stderr).not.toMatch(/\bat .*\.ts:\d+/);
    } finally {
      await fs.rm(file, { force: true });
    }
  });
});

describe('the server process with DATABASE_URL', () => {
  let database: TestDatabase;
  /** host and port of the run's PostgreSQL, where proxies forward to. */
  let target: { host: string; port: number };
  const proxies: TcpProxy[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    const u = new URL(database.url);
    target = { host: u.hostname, port: Number(u.port || 5432) };
  });

  afterAll(async () => {
    for (const proc of running) proc.child.kill('SIGKILL');
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await database.drop();
  }, 30_000);

  /** A proxy to the run's PostgreSQL on `port`, where Paygate already tries to connect. */
  async function databaseComesUp(port: number): Promise<void> {
    proxies.push(await startTcpProxy({ targetHost: target.host, targetPort: target.port, listenPort: port }));
  }

  it('a refused login (no such role) is a configuration error at once: one line, exit 2, no retry', { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = new URL(database.url);
    url.username = 'paygate_no_such_role';
    const result = await runToExit(['src/main.ts'], serverEnv(url.toString(), { PORT: '0' }));
    expect(result.code, result.stderr).toBe(2);
    expect(linesOf(result.stderr), result.stderr).toHaveLength(1);
    expect(result.stderr).toMatch(/^paygate: configuration error: DATABASE_URL: the server at .* refused the connection: .*paygate_no_such_role/);
    expect(result.stdout).not.toMatch(/not reachable|first global admin/);
  });

  it('an unknown database is a configuration error at once: one line, exit 2, no retry', { timeout: TEST_TIMEOUT_MS }, async () => {
    const url = new URL(database.url);
    url.pathname = '/paygate_no_such_database';
    const result = await runToExit(['src/main.ts'], serverEnv(url.toString(), { PORT: '0' }));
    expect(result.code, result.stderr).toBe(2);
    expect(linesOf(result.stderr), result.stderr).toHaveLength(1);
    expect(result.stderr).toMatch(/^paygate: configuration error: DATABASE_URL: .*paygate_no_such_database/);
    expect(result.stdout).not.toMatch(/not reachable/);
  });

  it('a database still unreachable at the end of the wait is one line and exit 1, after a warning per retry', { timeout: TEST_TIMEOUT_MS }, async () => {
    const closed = await freePort();
    // The wait is 30 s by default; the variable shortens it for this test.
    const result = await runToExit(['src/main.ts'], serverEnv(atPort(database.url, closed), { PORT: '0', PAYGATE_DATABASE_WAIT_SECONDS: '2' }));
    expect(result.code, result.stderr).toBe(1);
    expect(linesOf(result.stderr), result.stderr).toEqual([expect.stringMatching(new RegExp(`^paygate: failed to start: cannot reach the database of DATABASE_URL at 127\\.0\\.0\\.1:${closed} \\(waited 2 s\\)`))]);
    const retries = linesOf(result.stdout).filter((line) => line.includes('not reachable'));
    expect(retries.length).toBeGreaterThanOrEqual(2);
    for (const line of retries) expect(JSON.parse(line)).toMatchObject({ level: 40, msg: expect.stringMatching(/retrying in [\d.]+ s/) });
    expect(result.stdout).not.toMatch(/first global admin/);
  });

  it('waits for a database that comes up within the wait, then serves; the credentials are printed once it listens', { timeout: TEST_TIMEOUT_MS }, async () => {
    const dbPort = await freePort();
    const port = await freePort();
    const node = startMain(serverEnv(atPort(database.url, dbPort), { PORT: String(port) }));
    await node.waitFor(/"level":40,.*not reachable.*retrying in/);
    await databaseComesUp(dbPort);
    await node.waitFor(/"msg":"Paygate is listening"/);
    expect(node.stdout()).toMatch(/created the first global admin/);
    // Listening, it is ready once its invalidation channel confirms a heartbeat; under a loaded
    // machine that can come a beat or two after the listen, and /readyz rightly says not_ready till then.
    let ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    for (const deadline = Date.now() + 10_000; ready.status !== 200 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    }
    expect(ready.status, await ready.clone().text()).toBe(200);
    node.child.kill('SIGTERM');
    expect((await node.exited).code, node.stderr()).toBe(0);
    expect(node.stderr()).toBe('');
  });

  it('a port taken while the database is awaited: exit 2 with one line, and no admin created or printed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const fresh = await createTestDatabase();
    const blocker = net.createServer();
    try {
      const dbPort = await freePort();
      const port = await freePort();
      const node = startMain(serverEnv(atPort(fresh.url, dbPort), { PORT: String(port) }));
      // Past the early port check, waiting for the database: now something else takes the port.
      await node.waitFor(/not reachable/);
      await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
      proxies.push(await startTcpProxy({ targetHost: target.host, targetPort: target.port, listenPort: dbPort }));
      const { code } = await node.exited;
      expect(code, node.stderr()).toBe(2);
      expect(linesOf(node.stderr())).toEqual([expect.stringMatching(new RegExp(`^paygate: port ${port} on 127\\.0\\.0\\.1 is already in use`))]);
      expect(node.stdout()).not.toMatch(/first global admin|password:/);
      expect(await countUsers(fresh.url)).toBe(0);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      await fresh.drop();
    }
  });

  it('LOG_FORMAT=pretty logs for people, still without secrets, and names /admin where it listens', { timeout: TEST_TIMEOUT_MS }, async () => {
    const port = await freePort();
    const node = startMain(serverEnv(database.url, { PORT: String(port), LOG_FORMAT: 'pretty' }));
    await node.waitFor(/Paygate is listening/);
    const secret = `pretty-${randomSuffix()}`;
    await fetch(`http://127.0.0.1:${port}/v1/auth/whoami?token=${secret}`, { headers: { authorization: `Bearer ${secret}` } });
    await node.waitFor(/request completed/);
    const out = node.stdout();
    expect(out).not.toMatch(/^\{"level"/m);
    expect(out).toMatch(/INFO.*Paygate is listening/);
    expect(out).toContain(`http://127.0.0.1:${port}/admin`);
    expect(out).toContain('token=[REDACTED]');
    expect(out).not.toContain(secret);
    node.child.kill('SIGTERM');
    expect((await node.exited).code, node.stderr()).toBe(0);
    expect(node.stdout()).toMatch(/INFO.*stopped/);
  });
});

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}
