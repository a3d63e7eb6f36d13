/**
 * The `paygate` CLI, run as a child process exactly as an operator would (through tsx, so no build is
 * needed). Its HTTP commands speak to a real server through PAYGATE_URL, with a credentials file of
 * their own (XDG_CONFIG_HOME), and with a DATABASE_URL that leads nowhere and no server secrets: they
 * must never open the database, or they would fail. What they create must work over HTTP, and what
 * they revoke must stop working there. The bootstrap commands (`migrate`, `admin create`) run on the
 * test database directly, as they are meant to.
 *
 * Each CLI start costs about a second (tsx), so each test batches its assertions per run.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations.js';
import {
  TEST_SECRETS,
  createOrgKey,
  createOrgWithKey,
  createTestDatabase,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type TestApp,
  type TestDatabase,
} from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** One CLI run (tsx transpiles on every start); a test runs several, so it gets more. */
const RUN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;
const SECRET = /sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}/g;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json: any;
}

/** Nothing of the run's own configuration (CI sets DATABASE_URL and REDIS_URL), then `extra`; undefined removes. */
function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'XDG_CONFIG_HOME', 'PORT', 'HOST', 'LOG_LEVEL'].includes(name)) delete env[name];
  }
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** The environment of the bootstrap commands: the test database and the server's secrets. */
function bootstrapEnv(databaseUrl: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    DATABASE_URL: databaseUrl,
    PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
    PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
    PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
    ...extra,
  });
}

function startCli(args: string[], env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], { cwd: ROOT, env });
}

function runCli(args: string[], options: { env: NodeJS.ProcessEnv; input?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, options.env);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let json: unknown = null;
      try {
        json = stdout ? JSON.parse(stdout) : null;
      } catch {
        /* not JSON: the assertions print stdout */
      }
      resolve({ code, signal, stdout, stderr, json });
    });
    child.stdin.end(options.input ?? '');
  });
}

const show = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

/** Asserts a successful run with a JSON result (the default when stdout is not a terminal) and a quiet stderr. */
function expectJson(result: CliResult): any {
  expect(result.code, show(result)).toBe(0);
  expect(result.json, `stdout is not JSON: ${result.stdout}`).not.toBeNull();
  expect(result.stderr, show(result)).toBe('');
  return result.json;
}

/** Asserts a successful run printing text (--table). */
function expectText(result: CliResult): string {
  expect(result.code, show(result)).toBe(0);
  expect(result.json, `expected a table, got JSON: ${result.stdout}`).toBeNull();
  expect(result.stderr, show(result)).toBe('');
  return result.stdout;
}

/** Asserts a failed run: the exit code, nothing on stdout, and one line on stderr. */
function expectFailure(result: CliResult, code: number): string {
  expect(result.code, show(result)).toBe(code);
  expect(result.stdout, show(result)).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^paygate: \S/);
  return lines[0]!;
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

const uniqueEmail = (label: string) => `${label}-${randomBytes(4).toString('hex')}@example.com`;

describe('paygate CLI over the HTTP API', () => {
  let server: TestApp;
  let configHome: string;
  let admin: { id: string; email: string; password: string };
  /** The HTTP commands' environment: the server's URL, our own credentials file, and a database they must not use. */
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, { env });
  const cliWith = (extra: Record<string, string | undefined>, ...args: string[]) => runCli(args, { env: { ...env, ...extra } });

  beforeAll(async () => {
    server = await startPaygate();
    configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-cli-'));
    admin = await createUser(server, { globalAdmin: true });
    env = cleanEnv({
      PAYGATE_URL: server.url,
      XDG_CONFIG_HOME: configHome,
      // Never reached: the HTTP commands load nothing of the server. Were they to open the
      // database, this (and the missing secrets) would fail every one of them.
      DATABASE_URL: 'postgres://nobody@127.0.0.1:9/nothing',
    });
    const signedIn = await runCli(['login', '--email', admin.email, '--password-stdin'], { env, input: `${admin.password}\n` });
    expect(signedIn.code, show(signedIn)).toBe(0);
  });
  afterAll(async () => {
    await server?.close();
    if (configHome) await fs.rm(configHome, { recursive: true, force: true });
  });

  it('login --password-stdin saves the session 0600 in the credentials file by URL, prints no token, and whoami names the user', { timeout: TEST_TIMEOUT_MS }, async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-cli-login-'));
    try {
      const own = { ...env, XDG_CONFIG_HOME: home };
      const result = await runCli(['login', '--email', admin.email, '--password-stdin'], { env: own, input: `${admin.password}\n` });
      const body = expectJson(result);
      expect(body).toMatchObject({ object: 'login', url: server.url, user: { id: admin.id, email: admin.email, isGlobalAdmin: true } });

      const file = path.join(home, 'paygate', 'credentials.json');
      expect(body.credentialsFile).toBe(file);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect((await fs.stat(path.dirname(file))).mode & 0o777).toBe(0o700);
      const saved = JSON.parse(await fs.readFile(file, 'utf8'));
      const token = saved.sessions[server.url].token as string;
      expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(result.stdout).not.toContain(token);
      expect(result.stdout).not.toContain(admin.password);
      const me = await server.request('GET', '/v1/auth/whoami', { token });
      expectStatus(me, 200);
      expect(me.body.userId).toBe(admin.id);

      const [whoami, table, wrong] = await Promise.all([
        runCli(['whoami'], { env: own }),
        runCli(['whoami', '--table'], { env: own }),
        runCli(['login', '--email', admin.email, '--password-stdin'], { env: own, input: 'not-the-password\n' }),
      ]);
      expect(expectJson(whoami)).toMatchObject({ type: 'user', userId: admin.id, email: admin.email, isGlobalAdmin: true, url: server.url, credentialSource: 'credentials_file' });
      const text = expectText(table);
      expect(text).toMatch(new RegExp(`user +${admin.id} ${admin.email}`));
      expect(text).toMatch(/global admin +yes/);
      expect(text).toMatch(/credential +saved session/);
      expect(expectFailure(wrong, 1)).toMatch(/^paygate: invalid_session: The email or password is wrong \(request req_/);
      // A failed login keeps the saved session.
      expectStatus(await server.request('GET', '/v1/auth/whoami', { token }), 200);
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('logging in again ends the replaced session; logout ends the session on the server and removes it from the file; the next command says to log in', { timeout: TEST_TIMEOUT_MS }, async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-cli-logout-'));
    try {
      const own = { ...env, XDG_CONFIG_HOME: home };
      const file = path.join(home, 'paygate', 'credentials.json');
      const savedToken = async () => JSON.parse(await fs.readFile(file, 'utf8')).sessions[server.url].token as string;
      expectJson(await runCli(['login', '--email', admin.email, '--password-stdin'], { env: own, input: `${admin.password}\n` }));
      const replaced = await savedToken();
      expectJson(await runCli(['login', '--email', admin.email, '--password-stdin'], { env: own, input: `${admin.password}\n` }));
      const token = await savedToken();
      expect(token).not.toBe(replaced);
      expectProblem(await server.request('GET', '/v1/auth/whoami', { token: replaced }), 401, 'invalid_session');

      expect(expectJson(await runCli(['logout'], { env: own }))).toEqual({ object: 'logout', url: server.url, signedOut: true, sessionEnded: true });
      expectProblem(await server.request('GET', '/v1/auth/whoami', { token }), 401, 'invalid_session');
      await expect(fs.access(file)).rejects.toThrow(); // the only session gone, the file too

      const after = await runCli(['whoami'], { env: own });
      expect(expectFailure(after, 2)).toBe(`paygate: not signed in to ${server.url}: run \`paygate login\`, or set PAYGATE_TOKEN to an API key`);
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('org create prints the organization, the owner invitation and the initial key with its secret once; org list is JSON when piped and a table with --table', { timeout: TEST_TIMEOUT_MS }, async () => {
    const name = `Acme CLI ${randomBytes(3).toString('hex')}`;
    const created = await cli('org', 'create', '--name', name, '--owner-email', 'owner-cli@example.com', '--key-name', 'backend', '--scopes', 'client:read, checkout:create');
    const org = expectJson(created);
    expect(org).toMatchObject({ object: 'organization', name, status: 'active' });
    expect(org.owner).toMatchObject({ object: 'invitation', email: 'owner-cli@example.com', role: 'owner', status: 'pending' });
    expect(org.owner.url).toMatch(/^http:\/\/.*token=/); // no SMTP in the test server: the link is handed over
    expect(org.initialApiKey).toMatchObject({ object: 'api_key', tier: 'organization', organizationId: org.id, name: 'backend', scopes: ['checkout:create', 'client:read'] });
    expect(created.stdout.match(SECRET)).toEqual([org.initialApiKey.secret]);
    const who = await server.request('GET', '/v1/auth/whoami', { token: org.initialApiKey.secret });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ keyId: org.initialApiKey.id, organizationId: org.id });

    const [piped, table, got] = await Promise.all([cli('org', 'list', '--limit', '100'), cli('org', 'list', '--table', '--limit', '100'), cli('org', 'get', org.id, '--table')]);
    const list = expectJson(piped);
    expect(list).toMatchObject({ object: 'list' });
    expect(list.data.map((o: { id: string }) => o.id)).toContain(org.id);
    const text = expectText(table);
    expect(text.split('\n')[0]).toMatch(/^ID +NAME +STATUS +CREATED$/);
    expect(text).toMatch(new RegExp(`^${org.id} +${name} +active +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`, 'm'));
    expect(expectText(got)).toMatch(new RegExp(`^name +${name}$`, 'm'));
  });

  it('org delete needs --yes without a terminal, then deletes the organization and its keys stop working', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId, token } = await createOrgWithKey(server, ['client:read']);
    const refused = await cli('org', 'delete', organizationId);
    expect(expectFailure(refused, 2)).toMatch(/refusing to delete an organization without confirmation: pass --yes/);
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token }), 200);

    expect(expectJson(await cli('org', 'delete', organizationId, '--yes'))).toMatchObject({ id: organizationId, status: 'deleted' });
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token }), 401, 'api_key_revoked');
  });

  it('the key lifecycle: create prints the secret once and it works; update; rotate ends the old secret; revoke refuses the new one; delete makes it not found', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org } = await createOrgWithKey(server, ['client:read']);

    const created = await cli('key', 'create', '--org', org, '--name', 'reporting', '--scopes', 'transaction:read,client:read', '--expires-at', '2099-01-01T00:00:00Z', '--table');
    const text = expectText(created);
    const secrets = text.match(SECRET) ?? [];
    expect(secrets, text).toHaveLength(1);
    expect(text).toContain('Secret (shown once');
    expect(text).toMatch(/^scopes +client:read,transaction:read$/m);
    const first = secrets[0]!;
    const id = first.slice(3, 23);
    const who = await server.request('GET', '/v1/auth/whoami', { token: first });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ keyId: id, organizationId: org, scopes: ['client:read', 'transaction:read'] });

    const updated = expectJson(await cli('key', 'update', id, '--org', org, '--name', 'nightly reporting', '--description', 'exports', '--rate-limit', '100/1m', '--allowed-ips', '127.0.0.1/32', '--expires-at', 'none'));
    expect(updated).toMatchObject({ id, name: 'nightly reporting', description: 'exports', rateLimit: { requests: 100, windowSeconds: 60 }, allowedIps: ['127.0.0.1/32'], expiresAt: null });
    expect(updated.secret).toBeUndefined();

    const rotated = expectJson(await cli('key', 'rotate', id, '--org', org, '--grace-minutes', '0'));
    expect(rotated.id).toBe(id);
    expect(rotated.secret).toMatch(SECRET);
    expect(rotated.secret).not.toBe(first);
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token: first }), 401, 'invalid_api_key');
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: rotated.secret }), 200);

    const [revoked, list] = await Promise.all([cli('key', 'revoke', id, '--org', org), cli('key', 'list', '--org', org, '--table')]);
    expect(expectJson(revoked)).toMatchObject({ id, status: 'revoked' });
    expect(revoked.json.secret).toBeUndefined();
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token: rotated.secret }), 401, 'api_key_revoked');
    expect(expectText(list)).toMatch(new RegExp(`^${id} +nightly reporting +(active|revoked) +client:read,transaction:read +${rotated.secret.slice(-4)} `, 'm'));

    expect(expectFailure(await cli('key', 'delete', id, '--org', org), 2)).toMatch(/pass --yes/);
    expect(expectJson(await cli('key', 'delete', id, '--org', org, '--yes'))).toEqual({ id, object: 'api_key', deleted: true });
    expect(expectFailure(await cli('key', 'get', id, '--org', org), 1)).toMatch(/^paygate: not_found: No such API key \(request req_[0-9A-Za-z_-]+\)$/);
  });

  it('an organization key in PAYGATE_TOKEN acts in its own organization without --org, and cannot grant scopes it lacks', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId, token } = await createOrgWithKey(server, ['api_key:*', 'client:read']);
    const withKey = (...args: string[]) => cliWith({ PAYGATE_TOKEN: token }, ...args);
    const [who, created, escalating, session] = await Promise.all([
      withKey('whoami'),
      withKey('key', 'create', '--name', 'reader', '--scopes', 'client:read'),
      withKey('key', 'create', '--name', 'too much', '--scopes', 'transaction:read'),
      // A session acts in no organization unless told which: the line says how.
      cli('key', 'list'),
    ]);
    expect(expectJson(who)).toMatchObject({ type: 'api_key', tier: 'organization', organizationId, credentialSource: 'environment' });
    expect(expectJson(created)).toMatchObject({ organizationId, scopes: ['client:read'] });
    expect(expectFailure(escalating, 1)).toMatch(/^paygate: insufficient_scope: .*transaction:read/);
    expect(expectFailure(session, 1)).toMatch(/^paygate: organization_required: .*pass --org <orgId>/);
  });

  it('system keys: --system creates and lists them (a global admin session)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const created = expectJson(await cli('key', 'create', '--system', '--name', 'provisioning', '--scopes', 'organization:create,health:read'));
    expect(created).toMatchObject({ tier: 'system', organizationId: null, scopes: ['health:read', 'organization:create'] });
    expect((await server.request('GET', '/v1/auth/whoami', { token: created.secret })).body).toMatchObject({ tier: 'system', organizationId: null });
    const list = expectJson(await cli('key', 'list', '--system', '--all'));
    expect(list.data.map((k: { id: string }) => k.id)).toContain(created.id);
  });

  it('key list --status, --flag and --search filter on the server; a bad value is the server\'s 400', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org, keyId } = await createOrgWithKey(server, ['client:read']);
    const broad = await createOrgKey(server, org, ['client:*'], { name: 'broad reporting' });
    const revoked = await createOrgKey(server, org, ['client:read']);
    const admin = await createOrgKey(server, org, ['api_key:*']);
    expectStatus(await server.request('POST', `/v1/api-keys/${revoked.id}/revoke`, { token: admin.secret! }), 200);
    const [byStatus, byFlag, bySearch, bad] = await Promise.all([
      cli('key', 'list', '--org', org, '--status', 'revoked', '--all'),
      cli('key', 'list', '--org', org, '--flag', 'broad_scopes', '--all'),
      cli('key', 'list', '--org', org, '--search', 'BROAD rep', '--all'),
      cli('key', 'list', '--org', org, '--status', 'sleeping'),
    ]);
    expect(expectJson(byStatus).data.map((k: { id: string }) => k.id)).toEqual([revoked.id]);
    expect(expectJson(byFlag).data.map((k: { id: string }) => k.id).sort()).toEqual([broad.id, admin.id].sort());
    expect(expectJson(bySearch).data.map((k: { id: string }) => k.id)).toEqual([broad.id]);
    expect(expectFailure(bad, 1)).toMatch(/^paygate: validation_error: /);
    expect(keyId).not.toBe(broad.id);
  });

  it('list --all follows hasMore through every page; one page says how to get the rest', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org, keyId } = await createOrgWithKey(server, ['client:read']);
    const ids = [keyId];
    for (let i = 0; i < 4; i++) ids.push((await createOrgKey(server, org, ['client:read'])).id);

    const [all, page, table] = await Promise.all([
      cli('key', 'list', '--org', org, '--all', '--limit', '2'),
      cli('key', 'list', '--org', org, '--limit', '2'),
      cli('key', 'list', '--org', org, '--limit', '2', '--table'),
    ]);
    // Progress goes to stderr only on a terminal: expectJson checks stderr is empty here.
    const everything = expectJson(all);
    expect(everything.hasMore).toBe(false);
    expect(everything.data.map((k: { id: string }) => k.id).sort()).toEqual([...ids].sort());
    const first = expectJson(page);
    expect(first.data).toHaveLength(2);
    expect(first.hasMore).toBe(true);
    expect(expectText(table)).toContain(`(more API keys: --all, or --starting-after ${first.data[1].id})`);

    const next = expectJson(await cli('key', 'list', '--org', org, '--limit', '2', '--starting-after', first.data[1].id));
    expect(next.data.map((k: { id: string }) => k.id)).toEqual(everything.data.slice(2, 4).map((k: { id: string }) => k.id));
  });

  it('member invite prints the invitation and its link; member list shows it as invited; member remove cancels it by email and removes a member by id', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org } = await createOrgWithKey(server, ['client:read']);
    const member = await createUser(server, { organizationId: org, role: 'viewer' });
    const invitee = uniqueEmail('invitee');

    const invited = await cli('member', 'invite', '--org', org, '--email', invitee, '--role', 'developer', '--table');
    const text = expectText(invited);
    expect(text).toMatch(/^id +ivt_\w+$/m);
    expect(text).toMatch(/^status +pending$/m);
    expect(text).toMatch(/^link +http:\/\/\S+token=\S+$/m);
    expect(text).toContain('Hand this link to the invitee');
    const invitationId = /^id +(ivt_\w+)$/m.exec(text)![1]!;

    const listed = expectJson(await cli('member', 'list', '--org', org));
    expect(listed.data).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ object: 'member', userId: member.id, email: member.email, role: 'viewer', status: 'active' }),
        expect.objectContaining({ object: 'invitation', id: invitationId, email: invitee, role: 'developer', status: 'invited' }),
      ]),
    );

    const [cancelled, removed, badRole] = await Promise.all([
      cli('member', 'remove', '--org', org, invitee),
      cli('member', 'remove', '--org', org, member.id),
      cli('member', 'invite', '--org', org, '--email', invitee, '--role', 'boss'),
    ]);
    expect(expectJson(cancelled)).toEqual({ id: invitationId, object: 'invitation', organizationId: org, removed: true });
    expect(expectJson(removed)).toEqual({ id: member.id, object: 'member', organizationId: org, removed: true });
    expect(expectFailure(badRole, 2)).toMatch(/--role <role>.*boss.*owner, admin, developer, viewer/);
    expect(expectJson(await cli('member', 'list', '--org', org)).data).toEqual([]);
  });

  it('audit list filters by action, as JSON or a table', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org, keyId } = await createOrgWithKey(server, ['client:read']);
    const extra = await createOrgKey(server, org, ['client:read']);
    const [json, table, bad] = await Promise.all([
      cli('audit', 'list', '--org', org, '--action', 'api_key.created', '--from', '1h'),
      cli('audit', 'list', '--org', org, '--action', 'api_key.created', '--actor-type', 'system', '--table'),
      cli('audit', 'list', '--org', org, '--action', 'api_key.exploded'),
    ]);
    const events = expectJson(json).data as Array<{ action: string; target: { id: string } }>;
    expect(events.map((e) => e.action)).toEqual(['api_key.created', 'api_key.created']);
    expect(events.map((e) => e.target.id)).toEqual([extra.id, keyId]); // newest first
    const text = expectText(table);
    expect(text.split('\n')[0]).toMatch(/^AT +ACTION +ACTOR +TARGET +OUTCOME +IP$/);
    expect(text).toMatch(new RegExp(`^\\S+Z +api_key\\.created +system +api_key:${extra.id} +success`, 'm'));
    expect(expectFailure(bad, 1)).toMatch(/^paygate: validation_error: .*unknown action "api_key\.exploded"/);
  });

  it('audit list --follow prints new events as they are written (not its own reads), until interrupted, then exits 0', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { organizationId: org } = await createOrgWithKey(server, ['client:read']);
    const owner = await createUser(server, { organizationId: org, role: 'owner' });
    const session = await login(server, owner.email, owner.password);
    const follower = startCli(['audit', 'list', '--org', org, '--follow', '--interval', '0.2', '--json'], env);
    let out = '';
    let err = '';
    const seen = new Set<() => void>();
    follower.stdout.on('data', (chunk) => {
      out += chunk;
      for (const check of seen) check();
    });
    follower.stderr.on('data', (chunk) => (err += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => follower.on('exit', (code, signal) => resolve({ code, signal })));
    const events = () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { action: string; target: { id: string } | null; requestId: string });
    const waitFor = (what: string, probe: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!probe()) return;
          seen.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => reject(new Error(`no ${what} within 45 s\nstdout: ${out}\nstderr: ${err}`)), 45_000);
        seen.add(check);
        void exited.then(({ code }) => seen.has(check) && reject(new Error(`the follower exited (${code}) before ${what}\nstdout: ${out}\nstderr: ${err}`)));
        check();
      });
    try {
      // The organization's creation is already in the log: printed first, as `tail -f` shows the end.
      await waitFor('initial event', () => events().some((e) => e.action === 'organization.created'));
      const created = await server.request('POST', `/v1/organizations/${org}/api-keys`, { token: session.token, body: { name: 'followed', scopes: ['client:read'] } });
      expectStatus(created, 201);
      await waitFor('api_key.created event', () => events().some((e) => e.action === 'api_key.created' && e.target?.id === created.body.id));
      // The polls between the two were audited (audit.read) and are not printed.
      expect(events().filter((e) => e.action === 'audit.read')).toEqual([]);
      follower.kill('SIGINT');
      expect(await exited, err).toEqual({ code: 0, signal: null });
      expect(err).toBe('');
    } finally {
      follower.kill('SIGKILL');
    }
  });

  it('errors: a refused request is one line with the code and exit 1; an unreachable server exits 3; usage and configuration errors exit 2', { timeout: TEST_TIMEOUT_MS }, async () => {
    const closedPort = await freePort();
    const [refused, unreachable, badUrl, badToken, unknown, both, badLimit, version, help] = await Promise.all([
      cli('org', 'get', 'org_doesnotexist'),
      cliWith({ PAYGATE_TOKEN: 'sk_anything' }, 'whoami', '--url', `http://127.0.0.1:${closedPort}`),
      cli('whoami', '--url', 'not a url'),
      cliWith({ PAYGATE_TOKEN: 'sk_notakey' }, 'whoami'),
      cli('frobnicate'),
      cli('org', 'list', '--json', '--table'),
      cli('key', 'list', '--org', 'org_x', '--limit', '500'),
      cli('--version'),
      cli('key', 'create', '--help'),
    ]);
    expect(expectFailure(refused, 1)).toMatch(/^paygate: not_found: No such organization \(request req_[0-9A-Za-z_-]+\)$/);
    expect(expectFailure(unreachable, 3)).toMatch(new RegExp(`^paygate: cannot reach http://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`));
    expect(expectFailure(badUrl, 2)).toMatch(/--url: "not a url" is not a URL/);
    // PAYGATE_TOKEN wins over the saved session.
    expect(expectFailure(badToken, 1)).toMatch(/^paygate: invalid_api_key: /);
    expect(expectFailure(unknown, 2)).toContain("unknown command 'frobnicate'");
    expect(expectFailure(both, 2)).toContain('--json and --table cannot be used together');
    expect(expectFailure(badLimit, 2)).toMatch(/--limit.*1 to 100/);
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8'));
    expect(version.stdout).toBe(`${pkg.version}\n`);
    expect(version.code).toBe(0);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: paygate key create \[options\]/);
    expect(help.stdout).toContain('--url <url>');
  });
});

describe('paygate CLI beside a server in embedded mode', () => {
  const dataDir = path.join(ROOT, '.test-data', `cli-${randomBytes(4).toString('hex')}`);
  const ADMIN = { email: 'embedded-cli@example.com', password: 'embedded-cli-password-0123' };
  let serverProcess: ChildProcessWithoutNullStreams | null = null;
  let exited: Promise<unknown> = Promise.resolve();
  let url: string;

  beforeAll(async () => {
    // Inside the repository, not os.tmpdir(): as root PostgreSQL runs as `postgres`, which cannot
    // enter a 0700 temporary directory.
    await fs.mkdir(dataDir, { recursive: true, mode: 0o755 });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: cleanEnv({ PAYGATE_DATA_DIR: dataDir, PORT: String(port), PAYGATE_ADMIN_EMAIL: ADMIN.email, PAYGATE_ADMIN_PASSWORD: ADMIN.password, LOG_LEVEL: 'info' }),
    });
    serverProcess = child;
    exited = new Promise((resolve) => child.on('exit', resolve));
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not start\n${out}`)), 90_000);
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (/"msg":"Paygate is listening"/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr.on('data', (chunk) => (out += chunk));
      child.on('exit', (code) => reject(new Error(`the server exited (${code})\n${out}`)));
    });
  }, 100_000);

  afterAll(async () => {
    if (serverProcess && serverProcess.exitCode === null) {
      serverProcess.kill('SIGTERM'); // stops its embedded PostgreSQL too
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      serverProcess.kill('SIGKILL');
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 30_000);

  it('the HTTP commands work while the server holds the embedded database; only the bootstrap commands are refused (exit 3)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-cli-embedded-'));
    try {
      // The same environment as the server's: its data directory is in use, and the CLI does not care.
      const env = cleanEnv({ PAYGATE_URL: url, XDG_CONFIG_HOME: home, PAYGATE_DATA_DIR: dataDir });
      const signedIn = await runCli(['login', '--email', ADMIN.email, '--password-stdin'], { env, input: `${ADMIN.password}\n` });
      expect(expectJson(signedIn).user.email).toBe(ADMIN.email);
      const [org, migrate] = await Promise.all([runCli(['org', 'create', '--name', 'Beside embedded'], { env }), runCli(['migrate'], { env })]);
      expect(expectJson(org)).toMatchObject({ object: 'organization', name: 'Beside embedded' });
      expect(expectFailure(migrate, 3)).toMatch(/already in use/);
    } finally {
      await fs.rm(home, { recursive: true, force: true });
    }
  });
});

describe('paygate bootstrap commands (on the database)', () => {
  let database: TestDatabase;
  let server: TestApp;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => runCli(args, { env });

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startPaygate({ database });
    env = bootstrapEnv(database.url);
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
      const first = await runCli(['migrate'], { env: bootstrapEnv(url.toString()) });
      expect(expectJson(first)).toEqual({ ok: true, database: 'server', schemaVersion: Math.max(...MIGRATIONS.map((m) => m.id)) });
      expectJson(await runCli(['migrate'], { env: bootstrapEnv(url.toString()) }));

      const check = new pg.Client(url.toString());
      await check.connect();
      const { rows } = await check.query<{ id: number }>('SELECT id FROM schema_migrations ORDER BY id');
      await check.end();
      expect(rows.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id).sort((a, b) => a - b));
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    }
  });

  it('admin create without a password generates one, prints it once, and it signs in over HTTP', { timeout: TEST_TIMEOUT_MS }, async () => {
    const email = uniqueEmail('ops');
    const result = expectJson(await cli('admin', 'create', '--email', email));
    expect(result).toMatchObject({ object: 'user', email, isGlobalAdmin: true, created: true, passwordReset: false });
    expect(result.password).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const signedIn = await server.request('POST', '/v1/auth/login', { body: { email, password: result.password } });
    expectStatus(signedIn, 200);
    expect(signedIn.body.user.id).toBe(result.id);
  });

  it("admin create refuses an existing email and changes nothing; --reset-password alone never makes an ordinary member a global admin; --global-admin does, audited", { timeout: TEST_TIMEOUT_MS }, async () => {
    const user = await createUser(server, { globalAdmin: false });
    const before = await login(server, user.email, user.password);
    const next = `reset-${randomBytes(8).toString('hex')}`;
    const isGlobalAdmin = async () => (await server.db.query<{ is_global_admin: boolean }>('SELECT is_global_admin FROM users WHERE id = $1', [user.id]))[0]!.is_global_admin;
    const auditOf = async (action: string) =>
      server.db.query<{ actor_type: string; details: Record<string, unknown> }>("SELECT actor_type, details FROM audit_events WHERE action = $1 AND target->>'id' = $2 ORDER BY seq", [action, user.id]);

    const [refused, short] = await Promise.all([
      runCli(['admin', 'create', '--email', user.email.toUpperCase(), '--password-stdin'], { env, input: `${next}\n` }),
      cli('admin', 'create', '--email', uniqueEmail('short'), '--password', 'short'),
    ]);
    expect(expectFailure(refused, 1)).toMatch(new RegExp(`^paygate: conflict: ${user.email} already has an account \\(${user.id}\\), which is not a global admin; nothing was changed\\..*--global-admin`));
    expect(expectFailure(short, 1)).toMatch(/validation_error.*password.*at least 10/);

    // --reset-password alone on an ordinary member: refused, nothing changed (it used to promote too).
    const resetOnly = await runCli(['admin', 'create', '--email', user.email, '--password-stdin', '--reset-password'], { env, input: `${next}\n` });
    expect(expectFailure(resetOnly, 1)).toMatch(/conflict: .*not a global admin; nothing was changed.*--global-admin/);
    expect(await isGlobalAdmin()).toBe(false);
    expectStatus(await server.request('GET', '/v1/auth/whoami', { token: before.token }), 200);
    expectStatus(await server.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 200);
    expect(await auditOf('user.global_admin_granted')).toHaveLength(0);

    // --global-admin promotes it, and --reset-password with it sets the new password and ends its sessions.
    const reset = await runCli(['admin', 'create', '--email', user.email, '--password-stdin', '--reset-password', '--global-admin'], { env, input: `${next}\n` });
    expect(expectJson(reset)).toMatchObject({ id: user.id, isGlobalAdmin: true, created: false, promoted: true, passwordReset: true });
    expect(reset.json.password).toBeUndefined();
    expect(reset.stdout).not.toContain(next);
    expectProblem(await server.request('GET', '/v1/auth/whoami', { token: before.token }), 401, 'invalid_session');
    expectProblem(await server.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 401, 'invalid_session');
    expectStatus(await server.request('POST', '/v1/auth/login', { body: { email: user.email, password: next } }), 200);
    expect(await auditOf('user.global_admin_granted')).toEqual([expect.objectContaining({ actor_type: 'system', details: { email: user.email, created: false } })]);
    expect(await auditOf('password_reset.completed')).toEqual([
      expect.objectContaining({ actor_type: 'system', details: expect.objectContaining({ sessionsEnded: expect.any(Number), by: 'admin create --reset-password' }) }),
    ]);

    // Now a global admin: --reset-password alone sets a new password (generated, shown once), audited again.
    const again = await cli('admin', 'create', '--email', user.email, '--reset-password');
    expect(expectJson(again)).toMatchObject({ id: user.id, promoted: false, passwordReset: true });
    expectStatus(await server.request('POST', '/v1/auth/login', { body: { email: user.email, password: again.json.password } }), 200);
    expect(await auditOf('password_reset.completed')).toHaveLength(2);
    expect(await auditOf('user.global_admin_granted')).toHaveLength(1);
  });

  it('admin create --global-admin makes an ordinary member a global admin and keeps its password; a new global admin is audited', { timeout: TEST_TIMEOUT_MS }, async () => {
    const user = await createUser(server, { globalAdmin: false });
    const promoted = await cli('admin', 'create', '--email', user.email, '--global-admin');
    expect(expectJson(promoted)).toMatchObject({ id: user.id, isGlobalAdmin: true, promoted: true, passwordReset: false });
    expect(promoted.json.password).toBeUndefined();
    const session = await login(server, user.email, user.password);
    expectStatus(await server.request('GET', '/v1/system/settings', { token: session.token }), 200);

    const email = uniqueEmail('granted');
    const created = await cli('admin', 'create', '--email', email);
    const rows = await server.db.query<{ target: { id: string }; details: Record<string, unknown> }>(
      "SELECT target, details FROM audit_events WHERE action = 'user.global_admin_granted' AND target->>'id' = ANY($1) ORDER BY seq",
      [[user.id, expectJson(created).id]],
    );
    expect(rows.map((r) => r.details)).toEqual([{ email: user.email, created: false }, { email, created: true }]);
  });

  it('a configuration error of a bootstrap command exits 2 with one line naming the variable', { timeout: TEST_TIMEOUT_MS }, async () => {
    const result = await runCli(['migrate'], { env: bootstrapEnv(database.url, { PAYGATE_SECRET_PEPPER: undefined }) });
    expect(expectFailure(result, 2)).toMatch(/^paygate: configuration error: .*PAYGATE_SECRET_PEPPER/);
  });
});
