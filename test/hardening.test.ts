/**
 * The request path's hardening: how credentials are parsed (SPEC §1), input PostgreSQL cannot store
 * (SPEC §8: `400 validation_error`, never `500`, on every route, by one rule), errors of plugins and
 * of the router as problem+json, and the headers of the API documentation.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UNSTORABLE_TEXT_MESSAGE } from '../src/storable.js';
import { DOCS_CSP } from '../src/http/docs-routes.js';
import type { AuthRequirement } from '../src/auth/requirements.js';
import { createOrgWithKey, createUser, expectProblem, expectStatus, login, startPaygate, type HttpResult, type LoggedIn, type OrgWithKey, type TestApp } from './harness.js';

// Every Fastify instance made in this file reports its routes, with their schemas and requirements.
interface CollectedRoute {
  method: string;
  url: string;
  auth: AuthRequirement | undefined;
  schema: Record<string, unknown> | undefined;
}
const routeLog = vi.hoisted(() => new Map<object, CollectedRoute[]>());
vi.mock('fastify', async (importOriginal) => {
  const original = await importOriginal<typeof import('fastify')>();
  const recording = ((options?: Parameters<typeof original.default>[0]) => {
    const app = original.default(options);
    const routes: CollectedRoute[] = [];
    routeLog.set(app, routes);
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) {
        routes.push({ method, url: route.url, auth: route.config?.auth, schema: route.schema as Record<string, unknown> | undefined });
      }
    });
    return app;
  }) as typeof original.default;
  return { ...original, default: recording, fastify: recording };
});

/** Sends a request with headers exactly as given (repeated names included), which fetch cannot. */
function rawRequest(url: string, path: string, headers: string[]): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    // With headers given as a list, Node adds no Host header of its own.
    const request = http.request(`${url}${path}`, { method: 'GET', headers: ['host', new URL(url).host, ...headers] }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : null }));
    });
    request.on('error', reject);
    request.end();
  });
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('request hardening', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let admin: LoggedIn;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['client:*', 'invoice:*', 'api_key:*', 'audit:read', 'checkout:*', 'transaction:*']);
    const user = await createUser(t, { globalAdmin: true });
    admin = await login(t, user.email, user.password);
  });
  afterAll(async () => t?.close());

  describe('credentials (SPEC §1)', () => {
    it('two Authorization headers are refused with 400 validation_error, whichever comes first', async () => {
      for (const order of [[`Bearer ${org.token}`, 'Bearer sk_garbage'], ['Bearer sk_garbage', `Bearer ${org.token}`], [`Bearer ${org.token}`, `Bearer ${org.token}`]]) {
        const result = await rawRequest(t.url, '/v1/auth/whoami', ['authorization', order[0]!, 'Authorization', order[1]!]);
        expect(result.status, JSON.stringify(result.body)).toBe(400);
        expect(result.body.code).toBe('validation_error');
        expect(result.body.errors).toEqual([{ path: '/headers/authorization', message: 'must be sent once' }]);
      }
      // One header still works.
      expect((await rawRequest(t.url, '/v1/auth/whoami', ['authorization', `Bearer ${org.token}`])).status).toBe(200);
    });

    it('a JWT-shaped Bearer value with an empty signature (an alg "none" token) is invalid_session', async () => {
      const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sid: 'ses_x', sub: admin.userId, iss: 'paygate' })}.`;
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: unsigned }), 401, 'invalid_session');
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: 'aaa.bbb.' }), 401, 'invalid_session');
      // Not JWT-shaped: an empty header or payload segment, or two segments, stays invalid_api_key.
      for (const value of ['.bbb.ccc', 'aaa..ccc', 'aaa.bbb']) expectProblem(await t.request('GET', '/v1/auth/whoami', { token: value }), 401, 'invalid_api_key');
    });
  });

  describe('input PostgreSQL cannot store (SPEC §8)', () => {
    const expectRefused = (result: HttpResult, path: string, message: RegExp | string) => {
      expectProblem(result, 400, 'validation_error');
      const messages = (result.body.errors as Array<{ path: string; message: string }>).filter((e) => e.path === path).map((e) => e.message);
      expect(messages.length, `${path} in ${result.text}`).toBeGreaterThan(0);
      expect(messages.some((m) => (typeof message === 'string' ? m === message : message.test(m))), result.text).toBe(true);
    };

    it('a NUL in a list filter, a cursor, a path parameter or a body field is 400 naming the field', async () => {
      expectRefused(await t.request('GET', '/v1/invoices?clientId=%00', { token: org.token }), '/querystring/clientId', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('GET', '/v1/clients?startingAfter=cli_%00', { token: org.token }), '/querystring/startingAfter', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('GET', '/v1/clients?email=a%00b', { token: org.token }), '/querystring/email', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('GET', '/v1/clients/cli_%00', { token: org.token }), '/params/id', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada\u0000' } }), '/name', UNSTORABLE_TEXT_MESSAGE);
      // Object keys too (metadata is stored as jsonb, which holds no U+0000), and lone surrogates.
      expectRefused(await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada', metadata: { 'k\u0000': 'v' } } }), '/metadata/k\uFFFD', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('POST', '/v1/clients', { token: org.token, body: '{"name":"Ada \\ud800"}' }), '/name', UNSTORABLE_TEXT_MESSAGE);
      // ...and as a global admin, whose organization comes from the route.
      expectRefused(await t.request('GET', `/v1/organizations/${org.organizationId}/invoices?clientId=%00`, { token: admin.token }), '/querystring/clientId', UNSTORABLE_TEXT_MESSAGE);
      const clients = await t.request('GET', '/v1/clients?limit=100', { token: org.token });
      expect(clients.body.data.filter((c: { name: string }) => c.name.startsWith('Ada'))).toEqual([]);
    });

    it('a NUL in a header (an Idempotency-Key) never reaches a route: the HTTP parser answers 400 problem+json', async () => {
      const net = await import('node:net');
      const port = new URL(t.url).port;
      const response = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1', () =>
          socket.write(`POST /v1/clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${org.token}\r\nIdempotency-Key: a\u0000b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`),
        );
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('close', () => resolve(text));
        socket.on('error', reject);
      });
      expect(response).toMatch(/^HTTP\/1\.1 400 /);
      expect(response).toContain('application/problem+json');
      expect(response).toContain('"code":"validation_error"');
    });

    it('a NUL in the sign-in form is 400 before any lookup, though the route is unauthenticated', async () => {
      expectRefused(await t.request('POST', '/v1/auth/login', { body: { email: 'a\u0000@example.com', password: 'whatever' } }), '/email', UNSTORABLE_TEXT_MESSAGE);
      expectRefused(await t.request('POST', '/v1/auth/login', { body: { email: 'a@example.com', password: 'pass\u0000word' } }), '/password', UNSTORABLE_TEXT_MESSAGE);
    });

    it('dates outside the years 1..9999, not real calendar dates, or without a time zone are 400 wherever a date is taken', async () => {
      const bad = ['0000-12-31T23:59:59Z', '9999-12-31T23:59:59-01:00', '+275760-09-13T00:00:00Z', '2031-02-30T00:00:00Z', '2031-06-30T23:59:60Z', '2031-01-01T24:00:00Z', '2031-01-01T00:00:00', 'yesterday'];
      for (const value of bad) {
        const q = encodeURIComponent(value);
        expectRefused(await t.request('GET', `/v1/audit-events?from=${q}`, { token: org.token }), '/querystring/from', /date-time/);
        expectRefused(await t.request('GET', `/v1/audit-events?to=${q}`, { token: org.token }), '/querystring/to', /date-time/);
        expectRefused(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'k', scopes: [], expiresAt: value } }), '/expiresAt', /date-time/);
      }
      // The edges of the range are fine.
      expectStatus(await t.request('GET', `/v1/audit-events?from=0001-01-01T00:00:00Z&to=${encodeURIComponent('9999-12-31T23:59:59.999Z')}`, { token: org.token }), 200);
      expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'far', scopes: [], expiresAt: '9999-12-31T23:59:59Z' } }), 201);
    });

    it('a key created by a service call rather than a request gets the same date rule', async () => {
      const { systemContext } = await import('../src/auth/context.js');
      await expect(
        t.services.keys.create(systemContext(), { tier: 'organization', organizationId: org.organizationId }, { name: 'cli', scopes: [], expiresAt: '9999-12-31T23:59:59-10:00' }),
      ).rejects.toMatchObject({ code: 'validation_error' });
    });

    it('every route refuses a NUL in each string it takes and an out-of-range date in each date it takes', async () => {
      const routes = routeLog.get(t.app)!.filter((r) => r.method !== 'HEAD' && r.schema);
      const slots = routes.flatMap((r) => slotsOf(r));
      expect(slots.length, 'the walk found the routes and their fields').toBeGreaterThan(100);
      const dateSlots = slots.filter((s) => s.kind === 'date');
      expect(dateSlots.map((s) => `${s.route.method} ${s.route.url} ${s.pointer}`).join('\n')).toMatch(/expiresAt/);
      const failures: string[] = [];
      for (const slot of slots) {
        const values = slot.kind === 'date' ? ['0000-12-31T23:59:59Z', '9999-12-31T23:59:59-01:00'] : ['a\u0000b'];
        for (const value of values) {
          const result = await send(slot, value);
          const label = `${slot.route.method} ${slot.route.url} ${slot.part}${slot.pointer} = ${JSON.stringify(value)}`;
          // The organization in the path is judged by authentication, before any input rule: to a
          // global admin an id that cannot exist is "no such organization" (to a key it is a
          // cross-tenant attempt, 403 and audited: test/audit.test.ts). Never a 500 either way.
          if (slot.part === 'params' && slot.pointer === '/orgId') {
            if (result.status !== 404) failures.push(`${label}: ${result.status} ${result.text.slice(0, 200)}`);
            continue;
          }
          if (result.status !== 400) {
            failures.push(`${label}: ${result.status} ${result.text.slice(0, 200)}`);
            continue;
          }
          // Pages for people answer in HTML; the API names the refused field.
          if (!result.headers.get('content-type')?.startsWith('application/problem+json')) continue;
          const errors = (result.body.errors ?? []) as Array<{ path: string; message: string }>;
          const expected = slot.kind === 'date' ? /date-time/ : new RegExp(UNSTORABLE_TEXT_MESSAGE);
          if (!errors.some((e) => e.path === slot.errorPath && expected.test(e.message))) failures.push(`${label}: ${result.text.slice(0, 300)}`);
        }
      }
      expect(failures).toEqual([]);
    }, 120_000);

    it('every field named like a date or time filter is declared a date-time, so the date rule reaches it', () => {
      const routes = routeLog.get(t.app)!.filter((r) => r.schema);
      const undeclared = routes.flatMap((r) =>
        slotsOf(r)
          .filter((s) => s.kind === 'string' && /(?:At|^from|^to|^before|^after|^since|^until)$/.test(s.pointer.split('/').pop()!) && !s.isDate)
          .map((s) => `${r.method} ${r.url} ${s.part}${s.pointer}`),
      );
      expect([...new Set(undeclared)]).toEqual([]);
    });

    type Part = 'params' | 'querystring' | 'body';
    interface Slot {
      route: CollectedRoute;
      part: Part;
      /** JSON Pointer within the part, e.g. /lines/0/description. */
      pointer: string;
      kind: 'string' | 'key' | 'date';
      isDate: boolean;
      errorPath: string;
    }

    function slotsOf(route: CollectedRoute): Slot[] {
      const out: Slot[] = [];
      for (const part of ['params', 'querystring', 'body'] as const) {
        const schema = route.schema?.[part] as Record<string, unknown> | undefined;
        if (!schema) continue;
        walk(schema, '', (pointer, kind, isDate) => {
          const errorPath = part === 'body' ? pointer || '/' : `/${part}${pointer}`;
          out.push({ route, part, pointer, kind, isDate, errorPath });
        });
      }
      return out;
    }

    function walk(schema: Record<string, unknown>, pointer: string, visit: (pointer: string, kind: Slot['kind'], isDate: boolean) => void, depth = 0): void {
      if (depth > 6) return;
      const types = [schema.type].flat();
      if (types.includes('string')) {
        const isDate = schema.format === 'date-time';
        if (pointer !== '') visit(pointer, 'string', isDate);
        if (isDate) visit(pointer, 'date', true);
      }
      if (types.includes('object')) {
        for (const [name, sub] of Object.entries((schema.properties ?? {}) as Record<string, Record<string, unknown>>)) walk(sub, `${pointer}/${name}`, visit, depth + 1);
        const extra = schema.additionalProperties;
        if (extra && typeof extra === 'object') {
          visit(`${pointer}/k\uFFFD`, 'key', false);
          walk(extra as Record<string, unknown>, `${pointer}/k`, visit, depth + 1);
        }
      }
      if (types.includes('array') && schema.items && typeof schema.items === 'object') walk(schema.items as Record<string, unknown>, `${pointer}/0`, visit, depth + 1);
    }

    /** Builds a request with `value` at the slot (the key itself for a `key` slot), authenticated as a global admin. */
    async function send(slot: Slot, value: string): Promise<HttpResult> {
      const segments = slot.pointer.split('/').slice(1);
      let url = slot.route.url;
      const paramNames = [...url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
      for (const name of paramNames) {
        const given = slot.part === 'params' && segments[0] === name ? encodeURIComponent(value) : name === 'orgId' ? org.organizationId : 'x';
        url = url.replace(`:${name}`, given);
      }
      if (url.includes('*')) url = url.replace('*', slot.part === 'params' && segments[0] === '*' ? encodeURIComponent(value) : 'x');
      if (slot.part === 'querystring') url += `?${encodeURIComponent(segments[0]!)}=${encodeURIComponent(value)}`;
      let body: unknown;
      if (slot.part === 'body') {
        body = build(segments, value, slot.kind === 'key');
      } else if (['POST', 'PUT', 'PATCH'].includes(slot.route.method)) {
        body = {};
      }
      const needsAuth = slot.route.auth && slot.route.auth.kind !== 'public';
      return t.request(slot.route.method, url, {
        ...(needsAuth ? { token: admin.token, cookies: { selectedOrganization: org.organizationId } } : {}),
        ...(body !== undefined ? { body } : {}),
      });
    }

    function build(segments: string[], value: string, asKey: boolean): unknown {
      if (segments.length === 0) return value;
      const [head, ...rest] = segments;
      if (asKey && rest.length === 0) return { [head!.replace('\uFFFD', '\u0000')]: 'v' };
      const inner = build(rest, value, asKey);
      return /^\d+$/.test(head!) ? [inner] : { [head!]: inner };
    }
  });

  describe('errors of plugins and of the router are problem+json, never 500', () => {
    it('a malformed or forbidden path under /docs/static, and a malformed percent-encoding anywhere, are 400', async () => {
      for (const path of ['/docs/static/%00', '/docs/static/a%00b.js']) {
        expectProblem(await t.request('GET', path), 400, 'validation_error');
      }
      for (const path of ['/docs/static/%ff', '/docs/static/%E0%A4%A', '/v1/clients/%ff', '/portal/%ff']) {
        const result = await t.request('GET', path, { token: org.token });
        expectProblem(result, 400, 'validation_error');
        expect(result.body.errors).toEqual([{ path: '/url', message: 'is not a valid URL (malformed percent-encoding)' }]);
        expect(result.headers.get('x-request-id')).toBe(result.body.requestId);
      }
      expect(t.logs.text()).not.toContain('unhandled error');
    });

    it("a static file plugin's own refusals keep their meaning as problem+json: a traversal is 403, an unsatisfiable range 400", async () => {
      expectProblem(await t.request('GET', '/docs/static/a%5c..%5c..%5cpackage.json'), 403, 'forbidden');
      expectProblem(await t.request('GET', '/docs/static/swagger-ui.css', { headers: { range: 'bytes=999999999-' } }), 400, 'validation_error');
      expect(t.logs.text()).not.toContain('unhandled error');
    });
  });

  describe('the API documentation', () => {
    const paths = ['/docs', '/docs/', '/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css', '/docs/static/swagger-initializer.js', '/docs/json', '/openapi.json'];

    it('every docs response carries a strict CSP, no framing, nosniff and no Referer', async () => {
      for (const path of paths) {
        const result = await t.request('GET', path);
        expectStatus(result, 200);
        expect(result.headers.get('content-security-policy'), path).toBe(DOCS_CSP);
        expect(result.headers.get('x-frame-options'), path).toBe('DENY');
        expect(result.headers.get('x-content-type-options'), path).toBe('nosniff');
        expect(result.headers.get('referrer-policy'), path).toBe('no-referrer');
      }
      expect(DOCS_CSP).toContain("frame-ancestors 'none'");
      expect(DOCS_CSP).toContain("script-src 'self'");
      expect(DOCS_CSP).not.toContain('unsafe-inline');
      expect(DOCS_CSP).not.toContain('unsafe-eval');
      // An unknown docs file and a refused one carry them too.
      expect((await t.request('GET', '/docs/static/nope.js')).headers.get('content-security-policy')).toBe(DOCS_CSP);
    });

    it('every response of the origin carries nosniff, so none can be run as a script the docs or the panel allow', async () => {
      for (const path of ['/healthz', '/metrics', '/nope', '/docs/nope', '/v1/clients/%ff', '/portal/login?token=x', '/admin', '/v1/auth/whoami']) {
        const result = await t.request('GET', path);
        expect(result.headers.get('x-content-type-options'), `${path} (${result.status})`).toBe('nosniff');
      }
    });

    it('every /v1 response is no-store and names its request id, answers and refusals alike', async () => {
      const answers: Array<[string, HttpResult]> = [
        ['whoami', await t.request('GET', '/v1/auth/whoami', { token: org.token })],
        ['client list', await t.request('GET', '/v1/clients?limit=1', { token: org.token })],
        ['no credentials', await t.request('GET', '/v1/clients')],
        ['malformed key', await t.request('GET', '/v1/auth/whoami', { token: 'sk_short' })],
        ['unknown route', await t.request('GET', '/v1/nope', { token: org.token })],
        ['bad query', await t.request('GET', '/v1/clients?limit=nope', { token: org.token })],
      ];
      for (const [what, result] of answers) {
        expect(result.headers.get('cache-control'), what).toBe('no-store');
        expect(result.headers.get('x-request-id'), what).toMatch(/^req_[0-9A-Za-z_-]+$/);
        if (result.status >= 400) expect(result.body.requestId, what).toBe(result.headers.get('x-request-id'));
      }
      expect(answers.map(([, result]) => result.status)).toEqual([200, 200, 401, 401, 404, 400]);
      // Outside /v1 (probes, pages) caching is left to each route.
      expect((await t.request('GET', '/healthz')).headers.get('cache-control')).toBeNull();
    });

    it("the docs page loads only this origin's scripts and styles, and none inline", async () => {
      const page = await t.request('GET', '/docs');
      expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
      expect(page.text).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
      for (const src of [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)) expect(src, src).toMatch(/^\/docs\/static\//);
    });
  });
});
