/**
 * Integration-test harness: a real Paygate server listening on a real port, on a PostgreSQL database
 * of its own (cloned from the run's migrated template), spoken to over HTTP with fetch. The server
 * runs as the run's restricted runtime role (test/global-setup.ts); `ownerUrl` is the superuser's
 * way into the same database, for tests that tamper with what the runtime role cannot touch.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { inject, expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../src/config.js';
import { createDatabase, type Database } from '../src/db/database.js';
import { createServices, type Logger, type ServiceOptions, type Services } from '../src/services.js';
import { buildServer } from '../src/http/server.js';
import { systemContext } from '../src/auth/context.js';
import type { Role } from '../src/scopes/catalog.js';
import { newId } from '../src/ids.js';
import { hashPassword } from '../src/users/passwords.js';

export interface TestDatabase {
  /** The owner's (superuser's) URL: migrations, and tests that tamper. */
  url: string;
  /** The runtime role's URL, which servers run on; absent: they run on `url` (a PostgreSQL a test owns). */
  runtimeUrl?: string;
  name: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A fresh database cloned from the migrated template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const name = `paygate_t_${inject('runId')}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(adminUrl, name),
    runtimeUrl: withDatabase(inject('pgRuntimeUrl'), name),
    async drop() {
      const c = new pg.Client(adminUrl);
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await c.end();
    },
  };
}

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  cookies?: Record<string, string>;
}

export interface LogCapture {
  lines: string[];
  text(): string;
}

export interface TestApp {
  url: string;
  app: FastifyInstance;
  services: Services;
  /** The server's own database (the runtime role's pool). */
  db: Database;
  /** The database's owner URL (a superuser): for tests that tamper with the audit log. */
  ownerUrl: string;
  config: Config;
  logs: LogCapture;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<HttpResult<T>>;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse an existing database (several nodes on one database). */
  database?: TestDatabase;
  /** The services' logger (background work, audit checkpoints); default silent. */
  logger?: Logger;
  /** Options of createServices (e.g. a small limiter table). */
  services?: ServiceOptions;
}

export const TEST_SECRETS = {
  pepper: 'test-pepper-0123456789abcdefghijklmnopqrstuvwxyz',
  sessionSecret: 'test-session-0123456789abcdefghijklmnopqrstuvwxyz',
  /** Ed25519, PKCS#8 PEM: signs audit checkpoints (PAYGATE_AUDIT_SIGNING_KEY). */
  auditSigningKey: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKN0ATzHpzh2ILF//QZ6H1SB7gq9uy7b2C+7nx6GaUkK\n-----END PRIVATE KEY-----\n',
};

export async function startPaygate(options: StartOptions = {}): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase());
  const ownsDatabase = !options.database;
  const databaseUrl = database.runtimeUrl ?? database.url;
  const config = loadConfig({
    // The owner's URL, as it always was here (tests open owner connections with it); the server's
    // own pool below is the runtime role's. Nothing in the services connects through config.
    DATABASE_URL: database.url,
    PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
    PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
    PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
    // No scheduled checkpoints unless a test asks (a test that rewrites the chain must not race one).
    PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
    PORT: '0',
    LOG_LEVEL: 'info',
    // With REDIS_URL set (CI), servers use the shared Redis limiter, under a prefix of their own so
    // test files never share counters (e.g. the per-address login throttle of 127.0.0.1).
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL, PAYGATE_REDIS_PREFIX: `paygate-test:${randomBytes(6).toString('hex')}:` } : {}),
    ...options.env,
  });
  const lines: string[] = [];
  const logStream = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  // The nested-pool guard is on in tests: a pool query from inside a transaction throws.
  const db = createDatabase(databaseUrl, { guardNestedPoolUse: true, applicationName: `paygate-test:${config.nodeId ?? "node"}` });
  const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const services = createServices(config, db, TEST_SECRETS, options.logger ?? silent, options.services);
  await services.start();
  const app = await buildServer(services, { logStream, logLevel: 'info' });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  return {
    url,
    app,
    services,
    db,
    ownerUrl: database.url,
    config,
    logs: { lines, text: () => lines.join('') },
    async request(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (opts.cookies) headers.cookie = Object.entries(opts.cookies).map(([k, v]) => `${k}=${v}`).join('; ');
      let body: string | undefined;
      if (opts.body !== undefined) {
        body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
        headers['content-type'] ??= 'application/json';
      }
      const response = await fetch(`${url}${path}`, { method, headers, body, redirect: 'manual' });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        /* not JSON */
      }
      return { status: response.status, headers: response.headers, body: parsed as any, text };
    },
    async close() {
      await app.close();
      await services.stop();
      await db.close();
      if (ownsDatabase) await database.drop();
    },
  };
}

/** Asserts the status, printing the body when it differs. */
export function expectStatus(result: HttpResult, status: number): void {
  expect(result.status, `expected ${status}, got ${result.status}: ${result.text}`).toBe(status);
}

/** Asserts a problem+json error with the given status and code. */
export function expectProblem(result: HttpResult, status: number, code: string): void {
  expectStatus(result, status);
  expect(result.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(result.body.code, result.text).toBe(code);
  expect(result.body.status).toBe(status);
  expect(typeof result.body.requestId).toBe('string');
  expect(typeof result.body.title).toBe('string');
}

export interface OrgWithKey {
  organizationId: string;
  token: string;
  keyId: string;
}

/** A fresh organization and an organization key with these scopes, made through the services. */
export async function createOrgWithKey(t: TestApp, scopes: string[], name = `Org ${randomBytes(3).toString('hex')}`): Promise<OrgWithKey> {
  const result = await t.services.organizations.provision(systemContext(), { name, initialApiKey: { name: 'test key', scopes } });
  return { organizationId: result.organization.id, token: result.initialApiKey!.secret!, keyId: result.initialApiKey!.id };
}

export async function createOrgKey(t: TestApp, organizationId: string, scopes: string[], extra: Record<string, unknown> = {}) {
  return t.services.keys.create(systemContext(), { tier: 'organization', organizationId }, { name: 'extra key', scopes, ...extra });
}

export async function createSystemKey(t: TestApp, scopes: string[]) {
  const key = await t.services.keys.create(systemContext(), { tier: 'system', organizationId: null }, { name: 'system key', scopes });
  return { token: key.secret!, keyId: key.id };
}

/** A user with a password, optionally global admin, optionally a member with a role. */
export async function createUser(t: TestApp, options: { globalAdmin?: boolean; organizationId?: string; role?: Role } = {}) {
  const email = `user-${randomBytes(4).toString('hex')}@example.com`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const id = newId('user');
  await t.db.query('INSERT INTO users (id, email, password_hash, is_global_admin) VALUES ($1, $2, $3, $4)', [
    id,
    email,
    await hashPassword(password),
    options.globalAdmin ?? false,
  ]);
  if (options.organizationId) {
    await t.db.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [options.organizationId, id, options.role ?? 'viewer']);
  }
  return { id, email, password };
}

export interface LoggedIn {
  token: string;
  csrf: string;
  cookies: Record<string, string>;
  userId: string;
}

/** Signs in over HTTP; returns the JWT, the csrf token and the cookies as a browser would hold them. */
export async function login(t: TestApp, email: string, password: string): Promise<LoggedIn> {
  const result = await t.request('POST', '/v1/auth/login', { body: { email, password } });
  expectStatus(result, 200);
  const cookies: Record<string, string> = {};
  for (const header of result.headers.getSetCookie()) {
    const [pair] = header.split(';');
    const eq = pair!.indexOf('=');
    const value = pair!.slice(eq + 1);
    if (value) cookies[pair!.slice(0, eq)] = value;
  }
  return { token: result.body.token, csrf: cookies.csrf!, cookies, userId: result.body.user.id };
}

/** Changes a key row directly (states the API cannot produce, such as a past expiry), as a published change. */
export async function changeKeyRow(t: TestApp, sql: string, keyId: string): Promise<void> {
  await t.services.work.run(async (tx) => {
    await tx.query(sql, [keyId]);
    tx.publish({ kind: 'api_key', subject: keyId });
  });
}
