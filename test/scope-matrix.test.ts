/**
 * The scope matrix of SPEC §3 for the organization routes, generated from the table itself: for every
 * route, a key holding exactly its scope is let through (whatever the route then answers, it is not a
 * scope refusal), a key holding every other scope of the tier but that one is refused naming it, and
 * another organization's object is 404 to a key that holds the scope.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectProblem, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { allScopes } from '../src/scopes/catalog.js';

/** SPEC §3's organization rows, one route per line: method, path (below /v1), scope. */
const ROUTES: ReadonlyArray<readonly [string, string, string]> = [
  ['GET', '/clients', 'client:read'],
  ['GET', '/clients/{client}', 'client:read'],
  ['POST', '/clients', 'client:create'],
  ['PATCH', '/clients/{client}', 'client:update'],
  ['DELETE', '/clients/{client}', 'client:delete'],
  ['GET', '/invoices', 'invoice:read'],
  ['GET', '/invoices/{invoice}', 'invoice:read'],
  ['GET', '/recurring-schedules', 'invoice:read'],
  ['GET', '/recurring-schedules/{schedule}', 'invoice:read'],
  ['POST', '/invoices', 'invoice:create'],
  ['POST', '/recurring-schedules', 'invoice:create'],
  ['PATCH', '/invoices/{invoice}', 'invoice:update'],
  ['PATCH', '/recurring-schedules/{schedule}', 'invoice:update'],
  ['DELETE', '/invoices/{invoice}', 'invoice:delete'],
  ['DELETE', '/recurring-schedules/{schedule}', 'invoice:delete'],
  ['POST', '/invoices/{invoice}/finalize', 'invoice:execute'],
  ['POST', '/recurring-schedules/{schedule}/run', 'invoice:execute'],
  ['POST', '/checkouts', 'checkout:create'],
  ['GET', '/checkouts', 'checkout:read'],
  ['GET', '/checkouts/{checkout}', 'checkout:read'],
  ['GET', '/transactions', 'transaction:read'],
  ['GET', '/transactions/{transaction}', 'transaction:read'],
  ['PATCH', '/transactions/{transaction}', 'transaction:update'],
  ['POST', '/transactions/{transaction}/refunds', 'transaction:execute'],
  ['POST', '/data-io/exports', 'data_io:execute'],
  ['POST', '/data-io/imports', 'data_io:execute'],
  ['GET', '/data-io/jobs', 'data_io:read'],
  ['GET', '/data-io/jobs/{job}', 'data_io:read'],
  ['GET', '/data-io/jobs/{job}/download', 'data_io:read'],
  ['POST', '/portal/magic-links', 'portal:create'],
  ['GET', '/organization', 'organization:read'],
  ['PATCH', '/organization', 'organization:update'],
  ['GET', '/api-keys', 'api_key:read'],
  ['GET', '/api-keys/{key}', 'api_key:read'],
  ['POST', '/api-keys', 'api_key:create'],
  ['PATCH', '/api-keys/{key}', 'api_key:update'],
  ['POST', '/api-keys/{key}/rotate', 'api_key:update'],
  ['POST', '/api-keys/{key}/revoke', 'api_key:delete'],
  ['DELETE', '/api-keys/{key}', 'api_key:delete'],
  ['GET', '/audit-events', 'audit:read'],
  // SPEC §16 (scopes by verb: docs/scopes.md; SPEC §3's table has no rows for them).
  ['GET', '/webhook-endpoints', 'webhook:read'],
  ['GET', '/webhook-endpoints/{webhook}', 'webhook:read'],
  ['POST', '/webhook-endpoints', 'webhook:create'],
  ['PATCH', '/webhook-endpoints/{webhook}', 'webhook:update'],
  ['POST', '/webhook-endpoints/{webhook}/rotate-secret', 'webhook:update'],
  ['GET', '/webhook-endpoints/{webhook}/deliveries', 'webhook:read'],
  ['POST', '/webhook-endpoints/{webhook}/deliveries/{delivery}/retry', 'webhook:execute'],
  ['POST', '/webhook-endpoints/{webhook}/test', 'webhook:execute'],
  // Last: the routes above still find the endpoint.
  ['DELETE', '/webhook-endpoints/{webhook}', 'webhook:delete'],
];

/** A harmless valid body where a route needs one, so "let through" is not confused with a 400. */
function bodyFor(method: string, path: string, objects: Record<string, string>): unknown {
  if (method === 'GET' || method === 'DELETE') return undefined;
  const bodies: Record<string, unknown> = {
    'POST /clients': { name: 'Matrix client' },
    'PATCH /clients/{client}': { name: 'Renamed' },
    'POST /invoices': { clientId: objects.client, currency: 'EUR', lines: [{ description: 'x', quantity: 1, unitAmount: 100 }] },
    'POST /recurring-schedules': { clientId: objects.client, interval: 'month', template: { currency: 'EUR', lines: [{ description: 'x', quantity: 1, unitAmount: 100 }] } },
    'PATCH /invoices/{invoice}': { dueAt: new Date(Date.now() + 86_400_000).toISOString() },
    'PATCH /recurring-schedules/{schedule}': { status: 'paused' },
    'POST /checkouts': { amount: 500, currency: 'EUR' },
    'PATCH /transactions/{transaction}': { metadata: { order: '1' } },
    'POST /transactions/{transaction}/refunds': { amount: 1 },
    'POST /data-io/exports': { resource: 'clients', format: 'csv' },
    'POST /portal/magic-links': { clientId: objects.client },
    'PATCH /organization': { name: 'Matrix org' },
    'POST /api-keys': { name: 'matrix', scopes: [] },
    'PATCH /api-keys/{key}': { name: 'renamed' },
    // A public address (documentation range): the SSRF guard lets it through, and nothing listens there.
    'POST /webhook-endpoints': { url: 'https://203.0.113.10/hooks', events: ['*'] },
    'PATCH /webhook-endpoints/{webhook}': { description: 'renamed' },
  };
  return bodies[`${method} ${path}`] ?? {};
}

describe('SPEC §3 scope matrix (organization routes)', () => {
  let t: TestApp;
  let home: OrgWithKey;
  let other: OrgWithKey;
  /** Objects of each kind in each organization, made over HTTP by that organization's admin key. */
  const objects: Record<'home' | 'other', Record<string, string>> = { home: {}, other: {} };

  async function seed(org: OrgWithKey, into: Record<string, string>) {
    const api = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
      const result = await t.request(method, `/v1${path}`, { token: org.token, body, headers });
      expect(result.status, `${method} ${path}: ${result.text}`).toBeLessThan(300);
      return result.body;
    };
    into.client = (await api('POST', '/clients', { name: 'Seed client', email: 'seed@example.com' })).id;
    into.invoice = (await api('POST', '/invoices', { clientId: into.client, currency: 'EUR', lines: [{ description: 'Seed', quantity: 2, unitAmount: 1250 }] })).id;
    into.schedule = (await api('POST', '/recurring-schedules', { clientId: into.client, interval: 'month', template: { currency: 'EUR', lines: [{ description: 'Seed', quantity: 1, unitAmount: 900 }] } })).id;
    into.checkout = (await api('POST', '/checkouts', { amount: 4000, currency: 'EUR', clientId: into.client })).id;
    const paid = await t.request('POST', `/pay/${into.checkout}`, { body: 'cardNumber=4242424242424242', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(paid.status, paid.text).toBeLessThan(400);
    into.transaction = (await api('GET', `/checkouts/${into.checkout}`)).transactionId;
    into.job = (await api('POST', '/data-io/exports', { resource: 'clients', format: 'json' })).id;
    // A key with no scopes: changing it is no escalation for any caller (that rule has its own tests).
    into.key = (await createOrgKey(t, org.organizationId, [])).id;
    into.webhook = (await api('POST', '/webhook-endpoints', { url: 'https://203.0.113.10/hooks', events: ['*'] })).id;
    into.delivery = (await api('POST', `/webhook-endpoints/${into.webhook}/test`)).id;
  }

  beforeAll(async () => {
    t = await startPaygate();
    const everything = allScopes('organization').filter((s) => !s.endsWith(':*'));
    home = await createOrgWithKey(t, everything);
    other = await createOrgWithKey(t, everything);
    await seed(home, objects.home);
    await seed(other, objects.other);
  }, 60_000);
  afterAll(async () => t?.close());

  const concrete = (path: string, ids: Record<string, string>) => path.replace(/\{(\w+)\}/g, (_m, kind: string) => ids[kind]!);

  for (const [method, path, scope] of ROUTES) {
    describe(`${method} /v1${path} (${scope})`, () => {
      it('a key with every other scope but this one is refused naming it', async () => {
        const without = allScopes('organization').filter((s) => s !== scope && !s.endsWith(':*') && s.split(':')[0] !== 'api_key');
        const key = await createOrgKey(t, home.organizationId, without);
        const result = await t.request(method, `/v1${concrete(path, objects.home)}`, { token: key.secret!, body: bodyFor(method, path, objects.home) });
        expectProblem(result, 403, 'insufficient_scope');
        expect(result.body.requiredScope).toBe(scope);
      });

      it('a key holding exactly this scope is let through', async () => {
        const key = await createOrgKey(t, home.organizationId, [scope]);
        const result = await t.request(method, `/v1${concrete(path, objects.home)}`, { token: key.secret!, body: bodyFor(method, path, objects.home) });
        expect(result.status, `${result.status}: ${result.text}`).not.toBe(401);
        expect(result.body?.code, result.text).not.toBe('insufficient_scope');
      });

      if (path.includes('{')) {
        it("another organization's object is 404", async () => {
          const key = await createOrgKey(t, home.organizationId, [scope]);
          const result = await t.request(method, `/v1${concrete(path, objects.other)}`, { token: key.secret!, body: bodyFor(method, path, objects.home) });
          expectProblem(result, 404, 'not_found');
        });
      }
    });
  }

  it('every object kind was seeded in both organizations', () => {
    for (const ids of Object.values(objects)) {
      expect(Object.keys(ids).sort()).toEqual(['checkout', 'client', 'delivery', 'invoice', 'job', 'key', 'schedule', 'transaction', 'webhook']);
      for (const id of Object.values(ids)) expect(typeof id).toBe('string');
    }
  });
});
