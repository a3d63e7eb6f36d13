/**
 * The scope table of SPEC §3 against the running route table: every route the table names exists
 * (organization routes at both mounts, SPEC §2) and declares exactly the table's requirement in its
 * route config; the auth hook enforces that very scope; and a /v1 route without a requirement stops
 * the server from starting.
 *
 * The table is embedded below so the test is hermetic; when the contract is reachable
 * (../shared/SPEC.md beside the clone) the embedded copy must equal it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerAuth } from '../src/auth/plugin.js';
import type { AuthRequirement } from '../src/auth/requirements.js';
import type { Services } from '../src/services.js';
import { createOrgWithKey, createSystemKey, expectProblem, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

// Every Fastify instance made in this file reports its routes here, config included (printRoutes
// cannot show route config). buildServer is untouched: it simply gets an instance that records.
interface CollectedRoute {
  method: string;
  url: string;
  auth: AuthRequirement | undefined;
}
const routeLog = vi.hoisted(() => new Map<object, CollectedRoute[]>());
vi.mock('fastify', async (importOriginal) => {
  const original = await importOriginal<typeof import('fastify')>();
  const recording = ((options?: Parameters<typeof original.default>[0]) => {
    const app = original.default(options);
    const routes: CollectedRoute[] = [];
    routeLog.set(app, routes);
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url, auth: route.config?.auth });
    });
    return app;
  }) as typeof original.default;
  return { ...original, default: recording, fastify: recording };
});

/** SPEC §3 "Required scope of each route", cell for cell: [method and path, scope]. */
const SCOPE_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['`GET /v1/clients`, `GET /v1/clients/{id}`', '`client:read`'],
  ['`POST /v1/clients`', '`client:create`'],
  ['`PATCH /v1/clients/{id}`', '`client:update`'],
  ['`DELETE /v1/clients/{id}`', '`client:delete`'],
  ['`GET /v1/invoices[/{id}]`, `GET /v1/recurring-schedules[/{id}]`', '`invoice:read`'],
  ['`POST /v1/invoices`, `POST /v1/recurring-schedules`', '`invoice:create`'],
  ['`PATCH /v1/invoices/{id}`, `PATCH /v1/recurring-schedules/{id}`', '`invoice:update`'],
  ['`DELETE /v1/invoices/{id}`, `DELETE /v1/recurring-schedules/{id}`', '`invoice:delete`'],
  ['`POST /v1/invoices/{id}/finalize`, `POST /v1/recurring-schedules/{id}/run`', '`invoice:execute`'],
  ['`POST /v1/checkouts`', '`checkout:create`'],
  ['`GET /v1/checkouts[/{id}]`', '`checkout:read`'],
  ['`GET /v1/transactions[/{id}]`', '`transaction:read`'],
  ['`PATCH /v1/transactions/{id}` (metadata only)', '`transaction:update`'],
  ['`POST /v1/transactions/{id}/refunds`', '`transaction:execute`'],
  ['`POST /v1/data-io/exports`, `POST /v1/data-io/imports`', '`data_io:execute`'],
  ['`GET /v1/data-io/jobs[/{id}]`, `GET /v1/data-io/jobs/{id}/download`', '`data_io:read`'],
  ['`POST /v1/portal/magic-links`', '`portal:create`'],
  ['`GET /v1/organization`', '`organization:read`'],
  ['`PATCH /v1/organization`', '`organization:update`'],
  ['`GET /v1/api-keys[/{id}]`', '`api_key:read`'],
  ['`POST /v1/api-keys`', '`api_key:create`'],
  ['`PATCH /v1/api-keys/{id}`, `POST /v1/api-keys/{id}/rotate`', '`api_key:update`'],
  ['`POST /v1/api-keys/{id}/revoke`, `DELETE /v1/api-keys/{id}`', '`api_key:delete`'],
  ['`GET /v1/audit-events`', '`audit:read`'],
  ['`POST /v1/system/organizations`', '`organization:create` (system)'],
  ['`GET /v1/system/organizations[/{id}]`', '`organization:read` (system)'],
  ['`PATCH /v1/system/organizations/{id}`', '`organization:update` (system)'],
  ['`DELETE /v1/system/organizations/{id}`', '`organization:delete` (system)'],
  ['`GET /v1/system/settings` / `PATCH /v1/system/settings`', '`system_settings:read` / `system_settings:update`'],
  ['`GET /v1/system/health`', '`health:read`'],
  ['`GET /v1/system/audit-events`', '`audit:read` (system)'],
  ['`/v1/system/api-keys...` (same shape as `/v1/api-keys...`)', 'global-admin session only'],
];

/** Rows whose routes are not built yet (listed as todo until they are): none any more. */
const PENDING_PREFIXES: string[] = [];

/** Routes with a scope that the table does not list, and why. */
const EXTRA_ROUTES: Array<{ method: string; url: string; auth: AuthRequirement; why: string }> = [
  { method: 'GET', url: '/v1/system/audit-integrity', auth: { kind: 'system', scope: 'audit:read' }, why: "recomputes the audit log's hash chain (SPEC §9: tampering is detectable)" },
  { method: 'POST', url: '/v1/system/audit-checkpoints', auth: { kind: 'system', scope: 'audit:create' }, why: "signs the audit chain's head now (SPEC §15)" },
  { method: 'GET', url: '/v1/system/audit-checkpoints', auth: { kind: 'system', scope: 'audit:read' }, why: 'lists the signed checkpoints (SPEC §15)' },
  { method: 'GET', url: '/v1/system/audit-checkpoints/public-key', auth: { kind: 'system', scope: 'audit:read' }, why: "the audit signing key's public key (SPEC §15)" },
  ...['/v1/invoices/:id/void', '/v1/organizations/:orgId/invoices/:id/void'].map((url) => ({
    method: 'POST',
    url,
    auth: { kind: 'organization', scope: 'invoice:update' } as AuthRequirement,
    why: 'withdraws an open invoice (only drafts can be deleted)',
  })),
  // SPEC §16's webhook routes: §3 names the `webhook` resource, its table has no rows for them;
  // the scopes go by verb (docs/scopes.md).
  ...([
    ['GET', '/webhook-endpoints', 'webhook:read', 'lists webhook endpoints (SPEC §16)'],
    ['POST', '/webhook-endpoints', 'webhook:create', 'creates a webhook endpoint (SPEC §16)'],
    ['GET', '/webhook-endpoints/:id', 'webhook:read', 'gets a webhook endpoint (SPEC §16)'],
    ['PATCH', '/webhook-endpoints/:id', 'webhook:update', 'changes a webhook endpoint (SPEC §16)'],
    ['DELETE', '/webhook-endpoints/:id', 'webhook:delete', 'deletes a webhook endpoint (SPEC §16)'],
    ['POST', '/webhook-endpoints/:id/rotate-secret', 'webhook:update', "rotates an endpoint's signing secret (SPEC §16)"],
    ['GET', '/webhook-endpoints/:id/deliveries', 'webhook:read', "lists an endpoint's deliveries (SPEC §16)"],
    ['POST', '/webhook-endpoints/:id/deliveries/:deliveryId/retry', 'webhook:execute', 'attempts a delivery again (SPEC §16)'],
    ['POST', '/webhook-endpoints/:id/test', 'webhook:execute', 'sends a test event (SPEC §16)'],
  ] as const).flatMap(([method, path, scope, why]) =>
    [`/v1${path}`, `/v1/organizations/:orgId${path}`].map((url) => ({ method, url, auth: { kind: 'organization', scope } as AuthRequirement, why })),
  ),
  // SPEC §12 and §14: usage, grace ending and the credential report, organization routes.
  ...([
    ['GET', '/api-keys/:id/usage', 'api_key:read', "a key's usage by outcome and secret (SPEC §12)"],
    ['GET', '/usage', 'api_key:read', "the organization's keys by requests (SPEC §12)"],
    ['POST', '/api-keys/:id/end-grace', 'api_key:update', "ends a rotation's grace period now (SPEC §12)"],
    ['GET', '/api-keys/report', 'api_key:read', 'the credential report of the organization (SPEC §14)'],
  ] as const).flatMap(([method, path, scope, why]) =>
    [`/v1${path}`, `/v1/organizations/:orgId${path}`].map((url) => ({ method, url, auth: { kind: 'organization', scope } as AuthRequirement, why })),
  ),
  // System keys are managed by global-admin sessions alone (SPEC §4), their usage too.
  ...([['GET', '/v1/system/api-keys/:id/usage'], ['GET', '/v1/system/usage'], ['POST', '/v1/system/api-keys/:id/end-grace']] as const).map(([method, url]) => ({
    method,
    url,
    auth: { kind: 'global_admin' } as AuthRequirement,
    why: 'the system-key twins of the SPEC §12 usage routes',
  })),
  // SPEC §14: system `audit:read` (a global admin passes every system requirement).
  { method: 'GET', url: '/v1/system/credential-report', auth: { kind: 'system', scope: 'audit:read' }, why: 'the credential report of every key (SPEC §14)' },
  { method: 'GET', url: '/v1/system/compliance-evidence', auth: { kind: 'system', scope: 'audit:read' }, why: 'the signed compliance-evidence bundle (SPEC §14)' },
];

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SPEC_PATH = [path.resolve(REPO, '../shared/SPEC.md'), '/work/shared/SPEC.md'].find((p) => existsSync(p));

/** The cells of the scope table in SPEC §3. */
function parseScopeTable(markdown: string): Array<[string, string]> {
  const start = markdown.indexOf('## 3. Scopes');
  expect(start, 'SPEC.md has a "## 3. Scopes" section').toBeGreaterThanOrEqual(0);
  const end = markdown.indexOf('\n## ', start + 1);
  const lines = markdown.slice(start, end === -1 ? undefined : end).split('\n').filter((line) => line.trim().startsWith('|'));
  const header = lines.findIndex((line) => line.includes('method and path'));
  expect(header, 'the scope table has its header').toBeGreaterThanOrEqual(0);
  expect(lines[header]).toContain('also under `/v1/organizations/{orgId}`');
  return lines.slice(header + 2).map((line) => {
    const cells = line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim());
    expect(cells, line).toHaveLength(2);
    return [cells[0]!, cells[1]!];
  });
}

interface ExpectedRoute {
  method: string;
  /** Fastify form, below /v1: "/api-keys/:id". */
  path: string;
  auth: Extract<AuthRequirement, { kind: 'organization' | 'system' | 'global_admin' }>;
  /** The table row, for messages. */
  row: string;
}

const ticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const toFastify = (specPath: string) => specPath.replace(/^\/v1/, '').replace(/\{(\w+)\}/g, ':$1');

/** Expands the table into concrete routes: `[/{id}]` is two routes; "a / b" scope cells pair up. */
function expandTable(rows: ReadonlyArray<readonly [string, string]>): ExpectedRoute[] {
  const out: ExpectedRoute[] = [];
  const sameShape: Array<{ target: string; source: string; row: string }> = [];
  for (const [routesCell, scopeCell] of rows) {
    const routes = ticked(routesCell);
    if (!/^[A-Z]+ /.test(routes[0]!)) {
      // "`/v1/system/api-keys...` (same shape as `/v1/api-keys...`)": every verb, no scope, global admins.
      expect(scopeCell).toBe('global-admin session only');
      sameShape.push({ target: toFastify(routes[0]!.replace('...', '')), source: toFastify(routes[1]!.replace('...', '')), row: routesCell });
      continue;
    }
    const scopes = ticked(scopeCell);
    expect(scopes.length === 1 || scopes.length === routes.length, `${routesCell} | ${scopeCell}`).toBe(true);
    routes.forEach((route, i) => {
      const [method, specPath] = route.split(' ') as [string, string];
      const scope = scopes.length === 1 ? scopes[0]! : scopes[i]!;
      const optional = /^(.*)\[(.*)\]$/.exec(specPath);
      const paths = optional ? [optional[1]!, optional[1]! + optional[2]!] : [specPath];
      for (const p of paths) {
        const fastifyPath = toFastify(p);
        const kind = fastifyPath.startsWith('/system/') ? ('system' as const) : ('organization' as const);
        // "(system)" in the scope cell marks a system scope; such a route must be a system route.
        if (scopeCell.includes('(system)')) expect(kind, routesCell).toBe('system');
        out.push({ method, path: fastifyPath, auth: { kind, scope }, row: routesCell });
      }
    });
  }
  for (const { target, source, row } of sameShape) {
    const family = out.filter((r) => r.path === source || r.path.startsWith(`${source}/`));
    expect(family.length, row).toBeGreaterThan(0);
    for (const r of family) out.push({ method: r.method, path: target + r.path.slice(source.length), auth: { kind: 'global_admin' }, row });
  }
  return out;
}

const EXPECTED = expandTable(SCOPE_TABLE);
const isPending = (route: ExpectedRoute) => PENDING_PREFIXES.some((p) => route.path === p || route.path.startsWith(`${p}/`));
const mounts = (route: ExpectedRoute) => (route.auth.kind === 'organization' ? [`/v1${route.path}`, `/v1/organizations/:orgId${route.path}`] : [`/v1${route.path}`]);
const label = (route: ExpectedRoute) => `${route.method} /v1${route.path} -> ${'scope' in route.auth ? route.auth.scope : route.auth.kind}`;

describe('the SPEC §3 scope table', () => {
  it.skipIf(!SPEC_PATH)('the embedded copy equals the table in SPEC.md', () => {
    expect(parseScopeTable(readFileSync(SPEC_PATH!, 'utf8'))).toEqual(SCOPE_TABLE);
  });

  it('expands into concrete routes, every one either implemented now or explicitly pending', () => {
    expect(EXPECTED.length).toBeGreaterThan(40);
    expect(EXPECTED.filter(isPending).map((r) => r.row)).toEqual([]);
  });
});

describe('the running route table', () => {
  let t: TestApp;
  let routes: CollectedRoute[];
  let org: OrgWithKey;
  let systemKeys: Array<{ token: string; scopes: string[] }>;

  beforeAll(async () => {
    t = await startPaygate();
    routes = routeLog.get(t.app)!;
    expect(routes, 'the route collector saw the server being built').toBeDefined();
    // Credentials that hold no scope any route below needs.
    org = await createOrgWithKey(t, []);
    systemKeys = [
      { ...(await createSystemKey(t, ['health:read'])), scopes: ['health:read'] },
      { ...(await createSystemKey(t, ['organization:read'])), scopes: ['organization:read'] },
    ];
  });
  afterAll(async () => t?.close());

  const find = (method: string, url: string) => routes.filter((r) => r.method === method && r.url === url);

  for (const route of EXPECTED) {
    if (isPending(route)) {
      it.todo(`${label(route)} (pending: payments, portal and data I/O)`);
      continue;
    }
    it(`${label(route)} exists${route.auth.kind === 'organization' ? ' at both mounts' : ''} with exactly that requirement`, () => {
      for (const url of mounts(route)) {
        const found = find(route.method, url);
        expect(found, `${route.method} ${url}`).toHaveLength(1);
        expect(found[0]!.auth, `${route.method} ${url}`).toEqual(route.auth);
      }
      if (route.auth.kind !== 'organization') expect(find(route.method, `/v1/organizations/:orgId${route.path}`)).toHaveLength(0);
    });
  }

  it('pending routes that already exist are checked like the others', () => {
    for (const route of EXPECTED.filter(isPending)) {
      const present = mounts(route).filter((url) => find(route.method, url).length > 0);
      if (present.length === 0) continue;
      for (const url of mounts(route)) expect(find(route.method, url).map((r) => r.auth), `${route.method} ${url}`).toEqual([route.auth]);
    }
  });

  it('every route with a scope or for global admins is in the table (or a listed extra)', () => {
    const known = new Set<string>();
    for (const route of EXPECTED) for (const url of mounts(route)) known.add(`${route.method} ${url}`);
    for (const extra of EXTRA_ROUTES) known.add(`${extra.method} ${extra.url}`);
    const scoped = routes.filter((r) => r.method !== 'HEAD' && r.auth && ['organization', 'system', 'global_admin'].includes(r.auth.kind));
    expect(scoped.length).toBeGreaterThan(0);
    expect(scoped.filter((r) => !known.has(`${r.method} ${r.url}`)).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    for (const extra of EXTRA_ROUTES) expect(find(extra.method, extra.url).map((r) => r.auth), extra.why).toEqual([extra.auth]);
  });

  it('every /v1 route declares a requirement', () => {
    const bare = routes.filter((r) => r.url.startsWith('/v1') && !r.auth);
    expect(bare.map((r) => `${r.method} ${r.url}`)).toEqual([]);
  });

  it('the auth hook enforces exactly the scope of the table', async () => {
    const concrete = (url: string) => url.replace(':orgId', org.organizationId).replace(/:\w+/g, 'x');
    for (const route of EXPECTED) {
      if (find(route.method, mounts(route)[0]!).length === 0) continue; // pending and absent
      for (const url of mounts(route)) {
        const target = concrete(url);
        if (route.auth.kind === 'global_admin') {
          expectProblem(await t.request(route.method, target, { token: systemKeys[0]!.token }), 403, 'forbidden');
          expectProblem(await t.request(route.method, target, { token: org.token }), 403, 'wrong_key_tier');
          continue;
        }
        const scope = route.auth.scope;
        const token = route.auth.kind === 'organization' ? org.token : systemKeys.find((k) => !k.scopes.includes(scope))!.token;
        const refused = await t.request(route.method, target, { token, ...(route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {} }) });
        expectProblem(refused, 403, 'insufficient_scope');
        expect(refused.body.requiredScope, `${route.method} ${target}`).toBe(scope);
        // And the other tier is refused outright.
        const otherTier = route.auth.kind === 'organization' ? systemKeys[0]!.token : org.token;
        expectProblem(await t.request(route.method, target, { token: otherTier }), 403, 'wrong_key_tier');
      }
    }
  });
});

describe('startup guard', () => {
  const services = {} as Services; // the guard runs while routes are added; no request is served

  it('refuses to start when a /v1 route declares no auth requirement', async () => {
    const app = Fastify({ logger: false });
    registerAuth(app, services);
    await expect(
      (async () => {
        app.get('/v1/bare', async () => 'unprotected');
        await app.ready();
      })(),
    ).rejects.toThrow(/GET \/v1\/bare declares no auth requirement/);
    await app.close().catch(() => undefined);
  });

  it('starts when every /v1 route declares one, and routes outside /v1 need none', async () => {
    const app = Fastify({ logger: false });
    registerAuth(app, services);
    app.get('/v1/declared', { config: { auth: { kind: 'public' } } }, async () => 'ok');
    app.get('/healthz', async () => 'ok');
    await expect(app.ready()).resolves.toBeDefined();
    await app.close();
  });
});
