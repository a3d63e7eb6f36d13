/**
 * The `paygate` CLI, run as a child process exactly as an operator would (through tsx, so no build is
 * needed), against a database of its own that an in-process server also uses: what the CLI creates
 * must work over HTTP, and what it revokes must stop working there.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations.js';
import { TEST_SECRETS, createTestDatabase, expectProblem, expectStatus, startPaygate, type TestApp, type TestDatabase } from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** One CLI run (tsx transpiles on every start); a test runs several, so it gets more. */
const RUN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  json: any;
}

/** The environment of the CLI: this run's settings only, none inherited from CI (DATABASE_URL, REDIS_URL). */
function cliEnv(databaseUrl: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PAYGATE_') || name === 'DATABASE_URL' || name === 'REDIS_URL') delete env[name];
  }
  Object.assign(env, {
    DATABASE_URL: databaseUrl,
    PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
    PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
  });
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

function runCli(args: string[], options: { env: NodeJS.ProcessEnv; input?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], { cwd: ROOT, env: options.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown = null;
      try {
        json = stdout ? JSON.parse(stdout) : null;
      } catch {
        /* not JSON: the assertions below print stdout */
      }
      resolve({ code, stdout, stderr, json });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Asserts a successful run, printing its output when it failed. */
function expectOk(result: CliResult): void {
  expect(result.code, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0);
  expect(result.json, `stdout is not JSON: ${result.stdout}`).not.toBeNull();
}

/** Asserts a failed run: the exit code, nothing on stdout, and one line on stderr. */
function expectFailure(result: CliResult, code: number): string {
  expect(result.code, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(code);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^paygate: /);
  return lines[0]!;
}

describe('paygate CLI', () => {
  let database: TestDatabase;
  let server: TestApp;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, { env });

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startPaygate({ database });
    env = cliEnv(database.url);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('migrate brings an empty database to the current schema, and running it again changes nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const adminUrl = inject('pgAdminUrl');
    // Named like the harness's databases, so the run's teardown drops it even if this test fails.
    const name = `paygate_t_${inject('runId')}_empty_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client(adminUrl);
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    try {
      const first = await runCli(['migrate'], { env: cliEnv(url.toString()) });
      expectOk(first);
      expect(first.json).toMatchObject({ ok: true, database: 'server', schemaVersion: Math.max(...MIGRATIONS.map((m) => m.id)) });
      const again = await runCli(['migrate'], { env: cliEnv(url.toString()) });
      expectOk(again);

      const check = new pg.Client(url.toString());
      await check.connect();
      const { rows } = await check.query<{ id: number }>('SELECT id FROM schema_migrations ORDER BY id');
      await check.end();
      expect(rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });

  it('admin create without a password generates one, prints it once, and it signs in over HTTP', { timeout: TEST_TIMEOUT_MS }, async () => {
    const email = `ops-${randomBytes(3).toString('hex')}@example.com`;
    const result = await cli('admin', 'create', '--email', email);
    expectOk(result);
    expect(result.json).toMatchObject({ object: 'user', email, isGlobalAdmin: true });
    expect(result.json.password).toMatch(/^[A-Za-z0-9_-]{24}$/);

    const login = await server.request('POST', '/v1/auth/login', { body: { email, password: result.json.password } });
    expectStatus(login, 200);
    expect(login.body.user.id).toBe(result.json.id);
  });

  it('admin create --password-stdin takes the password from standard input and prints no password', { timeout: TEST_TIMEOUT_MS }, async () => {
    const email = `ops-${randomBytes(3).toString('hex')}@example.com`;
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const result = await runCli(['admin', 'create', '--email', email, '--password-stdin'], { env, input: `${password}\n` });
    expectOk(result);
    expect(result.json.password).toBeUndefined();
    expect(result.stdout).not.toContain(password);
    expectStatus(await server.request('POST', '/v1/auth/login', { body: { email, password } }), 200);
  });

  it('admin create refuses a short password with a validation error', { timeout: TEST_TIMEOUT_MS }, async () => {
    const line = expectFailure(await cli('admin', 'create', '--email', 'short@example.com', '--password', 'short'), 1);
    expect(line).toMatch(/validation_error.*password.*at least 10/);
  });

  it('org create with a key prints the secret once, and that secret authenticates over HTTP', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await cli('org', 'create', '--name', 'Acme CLI', '--owner-email', 'owner-cli@example.com', '--key-name', 'backend', '--scopes', 'client:read, checkout:create');
    expectOk(result);
    const org = result.json;
    expect(org).toMatchObject({ object: 'organization', name: 'Acme CLI', status: 'active' });
    expect(org.id).toMatch(/^org_/);
    expect(org.owner).toMatchObject({ email: 'owner-cli@example.com', role: 'owner' });
    expect(org.initialApiKey).toMatchObject({ object: 'api_key', tier: 'organization', organizationId: org.id, name: 'backend', scopes: ['checkout:create', 'client:read'] });
    expect(org.initialApiKey.secret).toMatch(/^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/);

    const who = await server.request('GET', '/v1/auth/whoami', { token: org.initialApiKey.secret });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ type: 'api_key', keyId: org.initialApiKey.id, tier: 'organization', organizationId: org.id, scopes: ['checkout:create', 'client:read'] });
  });

  it('key create, rotate and revoke: the new secret works, the old one ends with its grace, the revoked key gets 401 api_key_revoked', { timeout: TEST_TIMEOUT_MS }, async () => {
    const org = await cli('org', 'create', '--name', 'Keys CLI');
    expectOk(org);
    expect(org.json.initialApiKey).toBeUndefined();

    const created = await cli('key', 'create', '--org', org.json.id, '--name', 'reporting', '--scopes', 'transaction:read', '--expires-at', '2099-01-01T00:00:00Z');
    expectOk(created);
    expect(created.json).toMatchObject({ tier: 'organization', organizationId: org.json.id, name: 'reporting', scopes: ['transaction:read'], status: 'active', expiresAt: '2099-01-01T00:00:00.000Z' });
    const first = created.json.secret as string;
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: first }), 200);

    const rotated = await cli('key', 'rotate', created.json.id, '--grace-minutes', '0');
    expectOk(rotated);
    expect(rotated.json.id).toBe(created.json.id);
    expect(rotated.json.secret).toMatch(/^sk_/);
    expect(rotated.json.secret).not.toBe(first);
    expect(rotated.json.previousSecretExpiresAt).toBeNull();
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token: first }), 401, 'invalid_api_key');
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: rotated.json.secret }), 200);

    const revoked = await cli('key', 'revoke', created.json.id);
    expectOk(revoked);
    // The running server acknowledged the CLI's change like a node's: no "did not acknowledge" wait.
    expect(revoked.stderr).toBe('');
    expect(rotated.stderr).toBe('');
    expect(revoked.json).toMatchObject({ id: created.json.id, status: 'revoked' });
    expect(revoked.json.secret).toBeUndefined();
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token: rotated.json.secret }), 401, 'api_key_revoked');

    const again = expectFailure(await cli('key', 'rotate', created.json.id), 1);
    expect(again).toMatch(/conflict.*revoked/);
  });

  it('key rotate with a grace period keeps the previous secret working', { timeout: TEST_TIMEOUT_MS }, async () => {
    const org = await cli('org', 'create', '--name', 'Grace CLI', '--scopes', 'client:read');
    expectOk(org);
    const key = org.json.initialApiKey;
    const rotated = await cli('key', 'rotate', key.id, '--grace-minutes', '30');
    expectOk(rotated);
    expect(Date.parse(rotated.json.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(25 * 60_000);
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: key.secret }), 200);
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: rotated.json.secret }), 200);
  });

  it('key create --system makes a system key', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await cli('key', 'create', '--system', '--name', 'provisioning', '--scopes', 'organization:create,health:read');
    expectOk(result);
    expect(result.json).toMatchObject({ tier: 'system', organizationId: null, scopes: ['health:read', 'organization:create'] });
    const who = await server.request('GET', '/v1/auth/whoami', { token: result.json.secret });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ tier: 'system', organizationId: null });
  });

  it('bad scopes fail with a non-zero exit and a message naming each bad scope', { timeout: TEST_TIMEOUT_MS }, async () => {
    const org = expectFailure(await cli('org', 'create', '--name', 'Bad scopes', '--scopes', 'client:read,bogus:read,client:frob'), 1);
    expect(org).toContain('validation_error');
    expect(org).toContain('bogus:read');
    expect(org).toContain('client:frob');
    expect(org).not.toContain('"client:read"');

    const system = expectFailure(await cli('key', 'create', '--system', '--name', 'x', '--scopes', 'client:read'), 1);
    expect(system).toMatch(/client:read.*unknown system resource/);
  });

  it('unknown organizations and keys are not found', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect(expectFailure(await cli('key', 'create', '--org', 'org_doesnotexist', '--name', 'x', '--scopes', 'client:read'), 1)).toContain('not_found');
    expect(expectFailure(await cli('key', 'revoke', 'AAAAAAAAAAAAAAAAAAAA'), 1)).toContain('not_found');
    expect(expectFailure(await cli('key', 'rotate', 'not-a-key-id'), 1)).toContain('not_found');
  });

  it('usage and configuration errors exit 2 with one line', { timeout: TEST_TIMEOUT_MS }, async () => {
    expect(expectFailure(await cli('key', 'create', '--name', 'x', '--scopes', 'client:read'), 2)).toMatch(/--org.*--system/);
    expect(expectFailure(await cli('key', 'create', '--org', 'org_x', '--system', '--name', 'x', '--scopes', 'client:read'), 2)).toMatch(/cannot be used with/);
    expect(expectFailure(await cli('key', 'rotate', 'AAAAAAAAAAAAAAAAAAAA', '--grace-minutes', 'soon'), 2)).toContain('--grace-minutes');
    expect(expectFailure(await cli('org', 'create', '--name', 'x', '--key-name', 'k'), 2)).toContain('--scopes');
    expect(expectFailure(await cli('frobnicate'), 2)).toContain('unknown command');
    const config = await runCli(['migrate'], { env: cliEnv(database.url, { PAYGATE_SECRET_PEPPER: undefined }) });
    expect(expectFailure(config, 2)).toContain('PAYGATE_SECRET_PEPPER');
  });
});
