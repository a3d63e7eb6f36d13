/**
 * @paygate/client's own rules, each against a small local HTTP server that answers as a test says
 * (a 503 with Retry-After, then 200; a problem+json body; pages of a list), so every rule is seen
 * on the wire: what was sent, how often, with which headers. test/client.test.ts runs the same
 * client against a real Paygate.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPaygateClient, isPaygateError, PaygateError, verifyWebhook, WebhookVerificationError, type PaygateClientOptions } from '../packages/client/src/index.js';

interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}
type Answer = (request: Seen, res: ServerResponse) => void;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers }).end(JSON.stringify(body));
}

function problem(status: number, code: string, extra: Record<string, unknown> = {}) {
  return { type: `https://paygate.dev/errors/${code}`, title: code, status, detail: `detail of ${code}`, code, requestId: 'req_stub1', ...extra };
}

describe('@paygate/client against a scripted server', () => {
  let baseUrl = '';
  let seen: Seen[] = [];
  /** Answers in turn; the last one repeats. */
  let answers: Answer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      seen.push(request);
      const answer = answers[Math.min(seen.length - 1, answers.length - 1)];
      if (answer) answer(request, res);
      else json(res, 200, { ok: true });
    });
  });

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    seen = [];
    answers = [];
  });

  const client = (options: Partial<PaygateClientOptions> = {}) => createPaygateClient({ baseUrl, token: 'sk_test', ...options });
  const unavailable =
    (retryAfter: string): Answer =>
    (_request, res) =>
      json(res, 503, problem(503, 'service_unavailable'), { 'retry-after': retryAfter });
  const ok =
    (body: unknown = { id: 'cli_1', object: 'client' }, status = 200): Answer =>
    (_request, res) =>
      json(res, status, body);

  describe('retries', () => {
    it('retries a GET answered 503 after the Retry-After it names, then returns the 200', async () => {
      answers = [unavailable('1'), ok({ type: 'api_key', scopes: [] })];
      const whoami = await client().auth.whoami();
      expect(whoami).toMatchObject({ type: 'api_key' });
      expect(seen.map((r) => r.method)).toEqual(['GET', 'GET']);
      // It waited the second Retry-After said (a lower bound: waiting longer is allowed, sooner is not).
      expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(950);
    });

    it('retries a 429 of a GET too', async () => {
      answers = [(_r, res) => json(res, 429, problem(429, 'rate_limited'), { 'retry-after': '0' }), ok({ object: 'list', data: [], hasMore: false })];
      await expect(client().clients.list()).resolves.toMatchObject({ object: 'list' });
      expect(seen).toHaveLength(2);
    });

    it('retries a create that honours Idempotency-Key with the same key on every attempt', async () => {
      answers = [unavailable('0'), unavailable('0'), ok({ id: 'cli_1', object: 'client' }, 201)];
      const created = await client().clients.create({ name: 'Ada', email: 'ada@example.com' });
      expect(created).toMatchObject({ id: 'cli_1' });
      expect(seen).toHaveLength(3);
      const keys = seen.map((r) => r.headers['idempotency-key']);
      expect(keys[0]).toMatch(UUID);
      expect(new Set(keys)).toEqual(new Set([keys[0]]));
      // The body went out whole every time.
      expect(seen.map((r) => JSON.parse(r.body))).toEqual(Array(3).fill({ name: 'Ada', email: 'ada@example.com' }));
    });

    it('never retries a POST that takes no Idempotency-Key, even when the caller sends one', async () => {
      answers = [unavailable('0'), ok()];
      const error = await client()
        .apiKeys.create({ name: 'k', scopes: ['client:read'] }, { idempotencyKey: 'mine' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PaygateError);
      expect((error as PaygateError).status).toBe(503);
      expect((error as PaygateError).retryAfter).toBe(0);
      expect(seen).toHaveLength(1);
    });

    it('never retries PATCH or DELETE', async () => {
      answers = [unavailable('0')];
      await expect(client().clients.update('cli_1', { name: 'x' })).rejects.toMatchObject({ status: 503 });
      await expect(client().clients.delete('cli_1')).rejects.toMatchObject({ status: 503 });
      expect(seen.map((r) => r.method)).toEqual(['PATCH', 'DELETE']);
    });

    it('stops after maxAttempts and throws the last answer as a PaygateError', async () => {
      answers = [unavailable('0')];
      const error = await client({ retry: { maxAttempts: 4 } })
        .clients.get('cli_1')
        .catch((e: unknown) => e);
      expect(isPaygateError(error, 'service_unavailable')).toBe(true);
      expect(seen).toHaveLength(4);
    });

    it('does not wait when the Retry-After would end past the time budget, and hands retryAfter over', async () => {
      answers = [unavailable('3600'), ok()];
      const error = await client().clients.get('cli_1').catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'service_unavailable', retryAfter: 3600 });
      expect(seen).toHaveLength(1);
    });

    it('sends once with retry: false', async () => {
      answers = [unavailable('0'), ok()];
      await expect(client({ retry: false }).clients.get('cli_1')).rejects.toMatchObject({ status: 503 });
      expect(seen).toHaveLength(1);
    });

    it('stops waiting when the call is aborted', async () => {
      answers = [unavailable('20'), ok()];
      const controller = new AbortController();
      const pending = client().clients.get('cli_1', { signal: controller.signal });
      await expect.poll(() => seen.length).toBe(1);
      controller.abort(new Error('gave up'));
      await expect(pending).rejects.toThrow('gave up');
      expect(seen).toHaveLength(1);
    });
  });

  describe('Idempotency-Key', () => {
    it('generates a different random UUID for every create that honours it', async () => {
      const paygate = client();
      await paygate.clients.create({ name: 'a' });
      await paygate.checkouts.create({ amount: 100, currency: 'EUR' });
      await paygate.refunds.create('txn_1', { amount: 5 });
      await paygate.invoices.create({ clientId: 'cli_1', currency: 'EUR', lines: [] });
      const keys = seen.map((r) => r.headers['idempotency-key']);
      for (const key of keys) expect(key).toMatch(UUID);
      expect(new Set(keys).size).toBe(4);
      expect(seen.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /v1/clients', 'POST /v1/checkouts', 'POST /v1/transactions/txn_1/refunds', 'POST /v1/invoices']);
    });

    it('sends the key the caller gives instead', async () => {
      await client().clients.create({ name: 'a' }, { idempotencyKey: 'order-42' });
      expect(seen[0]!.headers['idempotency-key']).toBe('order-42');
    });

    it('adds none to operations that do not honour it, nor to reads', async () => {
      const paygate = client();
      await paygate.apiKeys.create({ name: 'k', scopes: [] });
      await paygate.invoices.finalize('inv_1');
      await paygate.clients.get('cli_1');
      expect(seen.map((r) => r.headers['idempotency-key'])).toEqual([undefined, undefined, undefined]);
    });

    it('adds one to generated-path calls too, on either mount', async () => {
      const paygate = client();
      await paygate.api.POST('/v1/clients', { body: { name: 'a' } });
      await paygate.api.POST('/v1/organizations/{orgId}/clients', { params: { path: { orgId: 'org_1' } }, body: { name: 'a' } });
      expect(seen.map((r) => r.path)).toEqual(['/v1/clients', '/v1/organizations/org_1/clients']);
      for (const r of seen) expect(r.headers['idempotency-key']).toMatch(UUID);
    });
  });

  describe('errors', () => {
    it('throws problem+json as a PaygateError with code, status, requestId, requiredScope and detail', async () => {
      answers = [(_r, res) => json(res, 403, problem(403, 'insufficient_scope', { requiredScope: 'client:create' }), { 'x-request-id': 'req_header' })];
      const error = (await client()
        .clients.create({ name: 'a' })
        .catch((e: unknown) => e)) as PaygateError;
      expect(error).toBeInstanceOf(PaygateError);
      expect(error).toBeInstanceOf(Error);
      expect(error).toMatchObject({ name: 'PaygateError', code: 'insufficient_scope', status: 403, requestId: 'req_stub1', requiredScope: 'client:create', detail: 'detail of insufficient_scope', retryAfter: null });
      expect(error.message).toBe('insufficient_scope: detail of insufficient_scope (request req_stub1)');
      expect(error.problem).toMatchObject({ code: 'insufficient_scope' });
    });

    it('carries the fields a validation_error names', async () => {
      answers = [(_r, res) => json(res, 400, problem(400, 'validation_error', { errors: [{ path: '/email', message: 'must match format "email"' }] }))];
      const error = (await client()
        .clients.create({ name: 'a' })
        .catch((e: unknown) => e)) as PaygateError;
      expect(error.code).toBe('validation_error');
      expect(error.errors).toEqual([{ path: '/email', message: 'must match format "email"' }]);
      expect(error.requiredScope).toBeNull();
    });

    it('turns an answer that is not problem+json into unexpected_response, keeping the status and the request id header', async () => {
      answers = [(_r, res) => res.writeHead(502, { 'content-type': 'text/html', 'x-request-id': 'req_proxy' }).end('<h1>Bad gateway</h1>')];
      const error = (await client()
        .clients.get('cli_1')
        .catch((e: unknown) => e)) as PaygateError;
      expect(error).toMatchObject({ code: 'unexpected_response', status: 502, requestId: 'req_proxy', problem: null });
      expect(error.detail).toContain('<h1>Bad gateway</h1>');
    });

    it('reads an HTTP-date Retry-After as seconds from now', async () => {
      const inAMinute = new Date(Date.now() + 60_000).toUTCString();
      answers = [(_r, res) => json(res, 429, problem(429, 'rate_limited'), { 'retry-after': inAMinute })];
      const error = (await client({ retry: false })
        .clients.get('cli_1')
        .catch((e: unknown) => e)) as PaygateError;
      expect(error.retryAfter).toBeGreaterThanOrEqual(58);
      expect(error.retryAfter).toBeLessThanOrEqual(61);
    });

    it('leaves generated-path calls as openapi-fetch answers them: { data, error, response }', async () => {
      answers = [(_r, res) => json(res, 404, problem(404, 'not_found'))];
      const result = await client().api.GET('/v1/clients/{id}', { params: { path: { id: 'cli_x' } } });
      expect(result.response.status).toBe(404);
      expect(result.error).toMatchObject({ code: 'not_found' });
    });
  });

  describe('pagination', () => {
    /** Five objects, served two per page as Paygate does (after the startingAfter id). */
    const pagedList: Answer = (request, res) => {
      const url = new URL(request.path, baseUrl);
      const ids = ['c5', 'c4', 'c3', 'c2', 'c1'];
      const after = url.searchParams.get('startingAfter');
      const limit = Number(url.searchParams.get('limit') ?? 20);
      const start = after ? ids.indexOf(after) + 1 : 0;
      const data = ids.slice(start, start + limit).map((id) => ({ id, object: 'client' }));
      json(res, 200, { object: 'list', data, hasMore: start + limit < ids.length });
    };

    it('iterates every element of every page, following hasMore and the last id', async () => {
      answers = [pagedList];
      const ids: string[] = [];
      for await (const item of client().clients.list({ limit: 2 })) ids.push((item as { id: string }).id);
      expect(ids).toEqual(['c5', 'c4', 'c3', 'c2', 'c1']);
      expect(seen.map((r) => r.path)).toEqual(['/v1/clients?limit=2', '/v1/clients?limit=2&startingAfter=c4', '/v1/clients?limit=2&startingAfter=c2']);
    });

    it('answers one page when awaited, and fetches no further page than a loop uses', async () => {
      answers = [pagedList];
      const page = await client().clients.list({ limit: 2, startingAfter: 'c4' });
      expect(page).toMatchObject({ object: 'list', hasMore: true, data: [{ id: 'c3' }, { id: 'c2' }] });
      seen = [];
      const firstThree = await client().clients.list({ limit: 2 }).toArray(3);
      expect(firstThree.map((item) => (item as { id: string }).id)).toEqual(['c5', 'c4', 'c3']);
      expect(seen).toHaveLength(2);
    });
  });

  describe('organizationId', () => {
    it('sends organization routes to /v1/organizations/{orgId}/... and leaves the others alone', async () => {
      const paygate = client({ organizationId: 'org_A/1' });
      await paygate.apiKeys.get('key1');
      await paygate.clients.list({ limit: 1 });
      await paygate.api.GET('/v1/invoices/{id}', { params: { path: { id: 'inv_1' } } });
      await paygate.auth.whoami();
      await paygate.system.organizations.list();
      await paygate.withOrganization('org_B').clients.get('cli_1');
      expect(seen.map((r) => r.path)).toEqual([
        '/v1/organizations/org_A%2F1/api-keys/key1',
        '/v1/organizations/org_A%2F1/clients?limit=1',
        '/v1/organizations/org_A%2F1/invoices/inv_1',
        '/v1/auth/whoami',
        '/v1/system/organizations',
        '/v1/organizations/org_B/clients/cli_1',
      ]);
    });

    it('sends the token as a Bearer credential', async () => {
      await client({ token: 'sk_abc.def' }).auth.whoami();
      expect(seen[0]!.headers.authorization).toBe('Bearer sk_abc.def');
    });
  });
});

describe('verifyWebhook', () => {
  // The worked example of docs/webhooks.md.
  const SECRET = 'whsec_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg';
  const T = 1700000000;
  const AT_T = T * 1000;
  const EVENT = '{"id":"wev_1","object":"event"}';
  const EXAMPLE = 't=1700000000,v1=54d9c5e1ab411b09138559c73cc851ee87596b8da0be121e544f841d741e3ffa';
  /** Signed independently of the client, with node:crypto. */
  const sign = (secret: string, t: number, body: string) => createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  const reasonOf = (promise: Promise<unknown>) =>
    promise.then(
      () => 'verified',
      (error: unknown) => (error instanceof WebhookVerificationError ? error.reason : `other: ${String(error)}`),
    );

  it('verifies the documented example and returns the parsed event', async () => {
    await expect(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T })).resolves.toEqual({ id: 'wev_1', object: 'event' });
  });

  it('takes the body as a string, a Buffer or other bytes, compared byte for byte', async () => {
    await expect(verifyWebhook(Buffer.from(EVENT), EXAMPLE, SECRET, { now: AT_T })).resolves.toMatchObject({ id: 'wev_1' });
    await expect(verifyWebhook(new TextEncoder().encode(EVENT).buffer, EXAMPLE, SECRET, { now: AT_T })).resolves.toMatchObject({ id: 'wev_1' });
    const unicode = '{"id":"wev_2","object":"event","name":"Zoë ✓"}';
    await expect(verifyWebhook(Buffer.from(unicode), `t=${T},v1=${sign(SECRET, T, unicode)}`, SECRET, { now: AT_T })).resolves.toMatchObject({ name: 'Zoë ✓' });
  });

  it('accepts a delivery signed by any live secret while a rotation is in its grace period', async () => {
    const next = 'whsec_zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONML';
    const header = `t=${T},v1=${sign(next, T, EVENT)},v1=${sign(SECRET, T, EVENT)}`;
    await expect(verifyWebhook(EVENT, header, next, { now: AT_T })).resolves.toBeTruthy();
    await expect(verifyWebhook(EVENT, header, SECRET, { now: AT_T })).resolves.toBeTruthy();
    await expect(verifyWebhook(EVENT, `t=${T},v1=${sign(next, T, EVENT)}`, ['whsec_other', next], { now: AT_T })).resolves.toBeTruthy();
    expect(await reasonOf(verifyWebhook(EVENT, header, 'whsec_neither', { now: AT_T }))).toBe('signature_mismatch');
  });

  it('refuses a changed body, a changed t and a signature under another secret', async () => {
    expect(await reasonOf(verifyWebhook(EVENT.replace('wev_1', 'wev_2'), EXAMPLE, SECRET, { now: AT_T }))).toBe('signature_mismatch');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE.replace('t=1700000000', 't=1700000001'), SECRET, { now: AT_T }))).toBe('signature_mismatch');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET.replace('g', 'h'), { now: AT_T }))).toBe('signature_mismatch');
    // A re-serialised body (other spacing) is not the signed bytes.
    expect(await reasonOf(verifyWebhook(JSON.stringify(JSON.parse(EVENT), null, 1), EXAMPLE, SECRET, { now: AT_T }))).toBe('signature_mismatch');
  });

  it('refuses a t further from now than the tolerance, 300 s by default', async () => {
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T + 300_000 }))).toBe('verified');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T + 301_000 }))).toBe('timestamp_outside_tolerance');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T - 301_000 }))).toBe('timestamp_outside_tolerance');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T + 3_000_000, toleranceSeconds: 3600 }))).toBe('verified');
    expect(await reasonOf(verifyWebhook(EVENT, EXAMPLE, SECRET, { now: AT_T + 61_000, toleranceSeconds: 60 }))).toBe('timestamp_outside_tolerance');
  });

  it('refuses a missing or malformed header, and a signed body that is not an event', async () => {
    expect(await reasonOf(verifyWebhook(EVENT, undefined, SECRET, { now: AT_T }))).toBe('missing_signature');
    expect(await reasonOf(verifyWebhook(EVENT, '', SECRET, { now: AT_T }))).toBe('missing_signature');
    expect(await reasonOf(verifyWebhook(EVENT, 'v1=54d9', SECRET, { now: AT_T }))).toBe('malformed_signature');
    expect(await reasonOf(verifyWebhook(EVENT, 't=soon,v1=54d9', SECRET, { now: AT_T }))).toBe('malformed_signature');
    expect(await reasonOf(verifyWebhook(EVENT, `t=${T}`, SECRET, { now: AT_T }))).toBe('malformed_signature');
    expect(await reasonOf(verifyWebhook(EVENT, `t=${T},t=${T + 1},v1=${sign(SECRET, T, EVENT)}`, SECRET, { now: AT_T }))).toBe('malformed_signature');
    expect(await reasonOf(verifyWebhook(EVENT, `t=${T},v1=not-hex`, SECRET, { now: AT_T }))).toBe('malformed_signature');
    expect(await reasonOf(verifyWebhook('[]', `t=${T},v1=${sign(SECRET, T, '[]')}`, SECRET, { now: AT_T }))).toBe('invalid_payload');
    await expect(verifyWebhook(EVENT, EXAMPLE, [], { now: AT_T })).rejects.toThrow(TypeError);
  });

  it('ignores elements of other schemes beside v1', async () => {
    await expect(verifyWebhook(EVENT, `${EXAMPLE},v0=abcdef,scheme=x`, SECRET, { now: AT_T })).resolves.toBeTruthy();
  });
});
