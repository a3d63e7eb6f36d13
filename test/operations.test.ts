/**
 * Operations (SPEC §8, §11): every error as problem+json with its headers, strict request bodies,
 * logs without secrets, health probes, Prometheus metrics and the OpenAPI document.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrgKey,
  createOrgWithKey,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type HttpResult,
  type OrgWithKey,
  type TestApp,
} from './harness.js';
import { buildServer } from '../src/http/server.js';

/** A problem+json error (RFC 9457) with every member SPEC §8 names, and the request id it was sent with. */
function expectFullProblem(result: HttpResult, status: number, code: string): void {
  expectProblem(result, status, code);
  const body = result.body as Record<string, unknown>;
  expect(body.type, result.text).toBe(`https://paygate.dev/errors/${code}`);
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail, result.text).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(0);
  expect(body.requestId).toBe(result.headers.get('x-request-id'));
  if (code === 'validation_error') expect(Array.isArray(body.errors), result.text).toBe(true);
}

const INVALID_TOKEN = 'Bearer error="invalid_token"';

describe('operations', () => {
  let t: TestApp;
  let org: OrgWithKey;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*', 'organization:read']);
  });
  afterAll(async () => t?.close());

  const keyCount = async () => (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE organization_id = $1', [org.organizationId]))[0]!.n;

  it('no route pays an onSend hook stage: cookies are written by the few routes that set one', async () => {
    // A hook stage costs every request it applies to (bench/ANALYSIS.md); @fastify/cookie added one to all.
    const routes = t.app.printRoutes({ includeHooks: true, commonPrefix: false });
    expect(routes).toContain('/healthz (GET)');
    expect(routes).toContain('(onRequest)');
    // Only Fastify's own, on the HEAD twin of each GET (it drops the body).
    const onSend = routes.split('\n').filter((line) => line.includes('(onSend)'));
    expect(onSend.length).toBeGreaterThan(0);
    for (const line of onSend) expect(line).toMatch(/\(onSend\) \["headRouteOnSendHandler\(\)"\]$/);
  });

  describe('errors are problem+json', () => {
    it('an unknown route is 404 not_found', async () => {
      for (const [method, path] of [['GET', '/v1/no-such-thing'], ['GET', '/nowhere'], ['POST', '/v1/api-keys/abc/explode'], ['PUT', '/v1/api-keys']] as const) {
        expectFullProblem(await t.request(method, path, { token: org.token }), 404, 'not_found');
      }
      // Without a credential too: an unknown route reveals nothing about authentication.
      expectFullProblem(await t.request('GET', '/v1/no-such-thing'), 404, 'not_found');
    });

    it('malformed JSON is 400 validation_error', async () => {
      const r = await t.request('POST', '/v1/api-keys', { token: org.token, body: '{"name": "x", "scopes": [', headers: { 'content-type': 'application/json' } });
      expectFullProblem(r, 400, 'validation_error');
      const proto = await t.request('POST', '/v1/api-keys', { token: org.token, body: '{"name":"x","scopes":[],"__proto__":{"admin":true}}' });
      expectFullProblem(proto, 400, 'validation_error');
    });

    it('a body over 1 MiB is 413 payload_too_large', async () => {
      const body = JSON.stringify({ name: 'big', scopes: ['api_key:read'], description: 'x'.repeat(1024 * 1024) });
      const before = await keyCount();
      expectFullProblem(await t.request('POST', '/v1/api-keys', { token: org.token, body }), 413, 'payload_too_large');
      expect(await keyCount()).toBe(before);
    });

    it('a text/plain body on a JSON route is 415 unsupported_media_type', async () => {
      const r = await t.request('POST', '/v1/api-keys', { token: org.token, body: 'name=x', headers: { 'content-type': 'text/plain' } });
      expectFullProblem(r, 415, 'unsupported_media_type');
    });

    it('a query string out of bounds is 400 validation_error naming the parameter', async () => {
      const r = await t.request('GET', '/v1/api-keys?limit=abc', { token: org.token });
      expectFullProblem(r, 400, 'validation_error');
      expect(JSON.stringify(r.body.errors)).toContain('limit');
    });
  });

  describe('strict bodies', () => {
    it('an unknown field on create is a validation_error naming it, and nothing is created', async () => {
      const before = await keyCount();
      const r = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'x', scopes: ['api_key:read'], colour: 'blue' } });
      expectFullProblem(r, 400, 'validation_error');
      expect(r.body.errors).toContainEqual(expect.objectContaining({ path: '/colour' }));
      expect(await keyCount()).toBe(before);
    });

    it('an unknown field on update is a validation_error naming it, and nothing changes', async () => {
      const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
      const r = await t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { name: 'changed', colour: 'blue' } });
      expectFullProblem(r, 400, 'validation_error');
      expect(r.body.errors).toContainEqual(expect.objectContaining({ path: '/colour' }));
      const after = await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token });
      expect(after.body.name).toBe(key.name);
    });

    it('a caller cannot set organizationId, tier, id or status', async () => {
      const other = await createOrgWithKey(t, ['api_key:read']);
      const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
      const forged: Record<string, unknown> = { organizationId: other.organizationId, tier: 'system', id: 'AAAAAAAAAAAAAAAAAAAA', status: 'revoked' };
      for (const [field, value] of Object.entries(forged)) {
        const before = await keyCount();
        const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'x', scopes: ['api_key:read'], [field]: value } });
        expectFullProblem(created, 400, 'validation_error');
        expect(created.body.errors).toContainEqual(expect.objectContaining({ path: `/${field}` }));
        expect(await keyCount()).toBe(before);

        const updated = await t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { [field]: value } });
        expectFullProblem(updated, 400, 'validation_error');
        expect(updated.body.errors).toContainEqual(expect.objectContaining({ path: `/${field}` }));
      }
      const after = await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token });
      expect(after.body).toMatchObject({ id: key.id, tier: 'organization', organizationId: org.organizationId, status: 'active' });
      expect(await t.db.query('SELECT 1 FROM api_keys WHERE organization_id = $1', [other.organizationId])).toHaveLength(1);
    });
  });

  describe('authentication headers', () => {
    it('every 401 carries WWW-Authenticate: Bearer error="invalid_token"', async () => {
      const revoked = await createOrgKey(t, org.organizationId, ['api_key:read']);
      await t.services.keys.revoke({ actor: { type: 'system', id: null }, ip: null, requestId: null, grantable: null }, { tier: 'organization', organizationId: org.organizationId }, revoked.id);
      const expired = await createOrgKey(t, org.organizationId, ['api_key:read']);
      // Never used yet, so no node has it cached: end its life in the database.
      await t.db.query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1", [expired.id]);

      const cases: Array<[Record<string, string>, string]> = [
        [{}, 'missing_credentials'],
        [{ authorization: 'Bearer not-a-key' }, 'invalid_api_key'],
        [{ authorization: 'Basic dXNlcjpwYXNz' }, 'invalid_api_key'],
        [{ authorization: 'Bearer' }, 'invalid_api_key'],
        [{ authorization: `Bearer sk_${'a'.repeat(20)}.${'b'.repeat(49)}` }, 'invalid_api_key'],
        [{ authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl' }, 'invalid_session'],
        [{ cookie: 'session=garbage' }, 'invalid_session'],
        [{ authorization: `Bearer ${revoked.secret!}` }, 'api_key_revoked'],
        [{ authorization: `Bearer ${expired.secret!}` }, 'api_key_expired'],
      ];
      for (const [headers, code] of cases) {
        const r = await t.request('GET', '/v1/api-keys', { headers });
        expectFullProblem(r, 401, code);
        expect(r.headers.get('www-authenticate'), `${code}: ${JSON.stringify(headers)}`).toBe(INVALID_TOKEN);
      }
    });

    it('the Bearer scheme name is case-insensitive', async () => {
      expectStatus(await t.request('GET', '/v1/api-keys', { headers: { authorization: `bEaReR ${org.token}` } }), 200);
    });

    it('insufficient_scope carries WWW-Authenticate with the scope, and requiredScope', async () => {
      const narrow = await createOrgKey(t, org.organizationId, ['organization:read']);
      const r = await t.request('GET', '/v1/api-keys', { token: narrow.secret! });
      expectFullProblem(r, 403, 'insufficient_scope');
      expect(r.body.requiredScope).toBe('api_key:read');
      expect(r.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="api_key:read"');
    });

    it('other 403s carry no WWW-Authenticate', async () => {
      const other = await createOrgWithKey(t, ['api_key:read']);
      const r = await t.request('GET', `/v1/organizations/${other.organizationId}/api-keys`, { token: org.token });
      expectFullProblem(r, 403, 'organization_mismatch');
      expect(r.headers.get('www-authenticate')).toBeNull();
      expectFullProblem(await t.request('GET', '/v1/system/settings', { token: org.token }), 403, 'wrong_key_tier');
    });

    it('a key over its rate limit gets 429 rate_limited with Retry-After', async () => {
      const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'limited', scopes: ['api_key:read'], rateLimit: { requests: 2, windowSeconds: 60 } } });
      expectStatus(created, 201);
      expect(created.body.rateLimit).toEqual({ requests: 2, windowSeconds: 60 });
      const token: string = created.body.secret;
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token }), 200);
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token }), 200);
      const limited = await t.request('GET', '/v1/auth/whoami', { token });
      expectFullProblem(limited, 429, 'rate_limited');
      const retryAfter = limited.headers.get('retry-after');
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    });

    it('a key with a rate limit says where it stands in RateLimit-Limit, -Remaining and -Reset on every answer, the 429 included', async () => {
      const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'counted', scopes: ['organization:read'], rateLimit: { requests: 3, windowSeconds: 60 } } });
      expectStatus(created, 201);
      const token: string = created.body.secret;
      const standing = (r: HttpResult) => ({
        limit: r.headers.get('ratelimit-limit'),
        remaining: r.headers.get('ratelimit-remaining'),
        reset: Number(r.headers.get('ratelimit-reset')),
      });

      const first = await t.request('GET', '/v1/auth/whoami', { token });
      expectStatus(first, 200);
      expect(standing(first)).toMatchObject({ limit: '3', remaining: '2' });
      expect(standing(first).reset).toBeGreaterThanOrEqual(1);
      expect(standing(first).reset).toBeLessThanOrEqual(60);
      // A refusal after the key was counted (here: a scope it lacks) still says what is left.
      const refused = await t.request('GET', '/v1/api-keys', { token });
      expectFullProblem(refused, 403, 'insufficient_scope');
      expect(standing(refused)).toMatchObject({ limit: '3', remaining: '1' });
      expect(standing(await t.request('GET', '/v1/auth/whoami', { token }))).toMatchObject({ limit: '3', remaining: '0' });

      const limited = await t.request('GET', '/v1/auth/whoami', { token });
      expectFullProblem(limited, 429, 'rate_limited');
      expect(standing(limited)).toMatchObject({ limit: '3', remaining: '0' });
      expect(String(standing(limited).reset)).toBe(limited.headers.get('retry-after'));
    });

    it('a key without a rate limit sends no RateLimit-* headers', async () => {
      const r = await t.request('GET', '/v1/auth/whoami', { token: org.token });
      expectStatus(r, 200);
      expect([...r.headers.keys()].filter((name) => name.startsWith('ratelimit'))).toEqual([]);
    });
  });

  describe('logs', () => {
    it('hold no API key, session token, CSRF token, password or URL secret', async () => {
      const user = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
      const session = await login(t, user.email, user.password);
      const secrets = [org.token, org.token.split('.')[1]!, session.token, session.csrf, user.password, 'secretvalue'];
      const marker = `req-logs-${randomBytes(4).toString('hex')}`;

      expectStatus(await t.request('GET', '/v1/api-keys', { token: org.token, headers: { 'x-request-id': marker } }), 200);
      expectStatus(await t.request('GET', '/v1/api-keys', { cookies: { session: session.token, selectedOrganization: org.organizationId } }), 200);
      expectStatus(
        await t.request('PATCH', `/v1/organizations/${org.organizationId}/organization`, {
          cookies: session.cookies,
          headers: { 'x-csrf-token': session.csrf },
          body: { name: 'Renamed in logs test' },
        }),
        200,
      );
      expectStatus(await t.request('GET', '/v1/auth/whoami?token=secretvalue', { token: org.token }), 200);
      expectStatus(await t.request('GET', '/healthz?token=secretvalue&secret=secretvalue'), 200);
      await t.request('GET', '/v1/nowhere?token=secretvalue', { token: org.token });
      await t.request('GET', '/portal/login?token=secretvalue');
      // Credentials a careless client puts in the URL.
      await t.request('GET', `/v1/api-keys?access_token=${org.token}`);
      await t.request('GET', `/v1/api-keys?limit=5&api_key=${org.token}`);
      await t.request('GET', `/v1/${org.token}`);
      // Refused credentials are not logged either.
      await t.request('GET', '/v1/api-keys', { token: `${org.token.slice(0, -1)}x` });
      await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `${user.password}-wrong` } });
      secrets.push(`${org.token.slice(0, -1)}x`, `${user.password}-wrong`);

      const text = t.logs.text();
      // The capture works: the requests above are in it.
      expect(text).toContain(marker);
      expect(text).toContain('[REDACTED]');
      // Each request's lines carry its id (the per-request logger is made lazily, on its first line).
      const markerLines = t.logs.lines.filter((line) => line.includes(marker));
      expect(markerLines.length).toBeGreaterThan(0);
      for (const line of markerLines) expect(JSON.parse(line).reqId).toMatch(/^req_/);
      for (const secret of secrets) expect(text.includes(secret), `logs contain ${secret.slice(0, 12)}...`).toBe(false);
    });
  });

  describe('probes and metrics', () => {
    it('/healthz answers 200 without credentials', async () => {
      const r = await t.request('GET', '/healthz');
      expectStatus(r, 200);
      expect(r.body).toEqual({ status: 'ok' });
    });

    it('/readyz answers 200 with its checks', async () => {
      const r = await t.request('GET', '/readyz');
      expectStatus(r, 200);
      expect(r.body).toEqual({ status: 'ready', checks: { database: true, invalidationChannel: true } });
    });

    it('/readyz answers 503 "starting" while the process has not finished starting (its first admin not yet created)', async () => {
      let started = false;
      const app = await buildServer(t.services, { logStream: new Writable({ write: (_chunk, _encoding, done) => done() }), readiness: () => started });
      try {
        const starting = await app.inject({ method: 'GET', url: '/readyz' });
        expect(starting.statusCode, starting.body).toBe(503);
        expect(starting.json()).toMatchObject({ status: 'not_ready', checks: { database: true }, starting: true });
        started = true;
        const after = (await app.inject({ method: 'GET', url: '/readyz' })).json();
        expect(after).not.toHaveProperty('starting');
        expect(after).toHaveProperty('checks.database', true);
      } finally {
        await app.close();
      }
    });

    it('/metrics exposes request counts, verification outcomes and the key cache hit ratio', async () => {
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token: org.token }), 200);
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token: org.token }), 200);
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: 'sk_nope' }), 401, 'invalid_api_key');
      const r = await t.request('GET', '/metrics');
      expectStatus(r, 200);
      expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(r.text).toMatch(/^paygate_http_requests_total\{method="GET",route="\/v1\/auth\/whoami",status="200"\} \d+$/m);
      expect(r.text).toMatch(/^paygate_api_key_verifications_total\{outcome="ok"\} \d+$/m);
      expect(r.text).toMatch(/^paygate_api_key_verifications_total\{outcome="invalid_api_key"\} \d+$/m);
      expect(r.text).toMatch(/^paygate_key_cache_hit_ratio [\d.e+-]+$/m);
      const ratio = Number(/^paygate_key_cache_hit_ratio (\S+)$/m.exec(r.text)![1]);
      expect(ratio).toBeGreaterThan(0);
      expect(ratio).toBeLessThanOrEqual(1);
      // Secret-free: no token appears.
      expect(r.text).not.toContain(org.token);
    });

    it('/metrics counts every request once, under its route pattern (HEAD apart, unmatched URLs as "unmatched")', async () => {
      const count = async (labels: string): Promise<number> => {
        const text = (await t.request('GET', '/metrics')).text;
        const line = text.split('\n').find((l) => l.startsWith(`paygate_http_requests_total{${labels}} `));
        return line ? Number(line.split(' ')[1]) : 0;
      };
      const labels = {
        healthz: 'method="GET",route="/healthz",status="200"',
        head: 'method="HEAD",route="/healthz",status="200"',
        key: 'method="GET",route="/v1/api-keys/:id",status="200"',
        refused: 'method="GET",route="/v1/auth/whoami",status="401"',
        unmatched: 'method="GET",route="unmatched",status="404"',
      };
      const before = Object.fromEntries(await Promise.all(Object.entries(labels).map(async ([name, l]) => [name, await count(l)] as const)));
      for (let i = 0; i < 3; i++) expectStatus(await t.request('GET', '/healthz'), 200);
      for (let i = 0; i < 2; i++) expect((await fetch(`${t.url}/healthz`, { method: 'HEAD' })).status).toBe(200);
      for (let i = 0; i < 4; i++) expectStatus(await t.request('GET', `/v1/api-keys/${org.keyId}`, { token: org.token }), 200);
      for (let i = 0; i < 2; i++) expectProblem(await t.request('GET', '/v1/auth/whoami', { token: 'sk_nope' }), 401, 'invalid_api_key');
      for (let i = 0; i < 5; i++) expect((await fetch(`${t.url}/no/such/path/${i}`)).status).toBe(404);
      const after = Object.fromEntries(await Promise.all(Object.entries(labels).map(async ([name, l]) => [name, await count(l)] as const)));
      expect(Object.fromEntries(Object.keys(labels).map((name) => [name, after[name]! - before[name]!]))).toEqual({ healthz: 3, head: 2, key: 4, refused: 2, unmatched: 5 });
    });
  });

  describe('API documentation', () => {
    it('/openapi.json is an OpenAPI 3.1 document with both mounts of organization routes', async () => {
      const r = await t.request('GET', '/openapi.json');
      expectStatus(r, 200);
      expect(r.body.openapi).toBe('3.1.0');
      expect(Object.keys(r.body.paths)).toEqual(expect.arrayContaining(['/v1/api-keys', '/v1/organizations/{orgId}/api-keys', '/v1/audit-events', '/v1/system/audit-events']));
      expect(Object.keys(r.body.paths['/v1/api-keys'])).toEqual(expect.arrayContaining(['get', 'post']));
      expect(Object.keys(r.body.paths['/v1/organizations/{orgId}/api-keys'])).toEqual(expect.arrayContaining(['get', 'post']));
      expect(r.body.info.description).toContain('sk_[0-9A-Za-z]{20}\\.[0-9A-Za-z]{49}');
    });

    it('/docs serves a page', async () => {
      const response = await fetch(`${t.url}/docs`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await response.text()).toMatch(/<html/i);
    });
  });
});
