/** Invoices (SPEC §10, scopes §3, idempotency and money §11) over HTTP on a real database. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { MAX_AMOUNT } from '../src/payments/money.js';

const line = (quantity: number, unitAmount: number, description = 'Consulting') => ({ description, quantity, unitAmount });

describe('invoices', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let clientId: string;
  let otherClientId: string;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    clientId = (await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada', email: 'ada@example.com' } })).body.id;
    otherClientId = (await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Grace' } })).body.id;
  });
  afterAll(async () => t?.close());

  const create = (body: Record<string, unknown>, options: { token?: string; headers?: Record<string, string> } = {}) =>
    t.request('POST', '/v1/invoices', { token: options.token ?? org.token, body, headers: options.headers });
  const draft = async (lines = [line(2, 1500)]) => {
    const created = await create({ clientId, currency: 'EUR', lines });
    expectStatus(created, 201);
    return created.body as { id: string; total: number; status: string };
  };
  const count = async (organizationId = org.organizationId) =>
    (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM invoices WHERE organization_id = $1', [organizationId]))[0]!.n;
  /** The distinct field paths a validation error names (one field may fail several rules, e.g. type and enum). */
  const paths = (result: { body: { errors?: Array<{ path: string }> } }) => [...new Set((result.body.errors ?? []).map((e) => e.path))];

  it('a new invoice is a draft whose total the server computes from its lines in minor units', async () => {
    const created = await create({
      clientId,
      currency: 'EUR',
      lines: [line(3, 1999, 'Seats'), line(1, 0, 'Onboarding (free)'), line(1_000, 7, 'API calls')],
      dueAt: '2030-01-31T00:00:00.000Z',
    });
    expectStatus(created, 201);
    expect(created.body).toMatchObject({
      object: 'invoice',
      clientId,
      status: 'draft',
      currency: 'EUR',
      lines: [line(3, 1999, 'Seats'), line(1, 0, 'Onboarding (free)'), line(1_000, 7, 'API calls')],
      total: 3 * 1999 + 7_000,
      dueAt: '2030-01-31T00:00:00.000Z',
      recurringScheduleId: null,
      finalizedAt: null,
    });
    expect(created.body.id).toMatch(/^inv_[0-9A-Za-z]{22}$/);
    const fetched = await t.request('GET', `/v1/invoices/${created.body.id}`, { token: org.token });
    expectStatus(fetched, 200);
    expect(fetched.body).toEqual(created.body);
  });

  it('a total sent by the client is refused as an unknown field, and nothing is created', async () => {
    const before = await count();
    const refused = await create({ clientId, currency: 'EUR', lines: [line(1, 100)], total: 1 });
    expectProblem(refused, 400, 'validation_error');
    expect(paths(refused)).toEqual(['/total']);
    const inLine = await create({ clientId, currency: 'EUR', lines: [{ ...line(1, 100), amount: 100 }] });
    expectProblem(inLine, 400, 'validation_error');
    expect(paths(inLine)).toEqual(['/lines/0/amount']);
    expect(await count()).toBe(before);
  });

  it('a currency that is not an upper-case ISO 4217 code is refused naming the currency, and nothing is created', async () => {
    const before = await count();
    for (const currency of ['XYZ', 'usd', 'EURO', '', 978]) {
      const refused = await create({ clientId, currency, lines: [line(1, 100)] });
      expectProblem(refused, 400, 'validation_error');
      expect(paths(refused), JSON.stringify(currency)).toEqual(['/currency']);
    }
    expect(await count()).toBe(before);
    // Currencies with other minor units are accepted as they are: amounts are always minor units.
    expectStatus(await create({ clientId, currency: 'JPY', lines: [line(1, 500)] }), 201);
    expectStatus(await create({ clientId, currency: 'BHD', lines: [line(1, 1500)] }), 201);
  });

  it('zero, negative, fractional and huge amounts are refused naming the field, and nothing is created', async () => {
    const before = await count();
    const cases: Array<[unknown[], string]> = [
      [[line(0, 100)], '/lines/0/quantity'],
      [[line(-1, 100)], '/lines/0/quantity'],
      [[line(1.5, 100)], '/lines/0/quantity'],
      [[line(1_000_001, 1)], '/lines/0/quantity'],
      [[line(1, 100), line(1, -1)], '/lines/1/unitAmount'],
      [[line(1, 12.5)], '/lines/0/unitAmount'],
      [[line(1, MAX_AMOUNT + 1)], '/lines/0/unitAmount'],
      [[line(1, 1e30)], '/lines/0/unitAmount'],
      [[{ ...line(1, 100), unitAmount: '100' }], '/lines/0/unitAmount'],
      // Every line fine, the total not: nothing to pay, or more than any single amount may be.
      [[line(1, 0), line(5, 0)], '/lines'],
      [[line(1_000_000, MAX_AMOUNT)], '/lines'],
      [[line(1, MAX_AMOUNT), line(1, 1)], '/lines'],
    ];
    for (const [lines, path] of cases) {
      const refused = await create({ clientId, currency: 'EUR', lines });
      expectProblem(refused, 400, 'validation_error');
      expect(paths(refused), JSON.stringify(lines)).toEqual([path]);
    }
    expect(await count()).toBe(before);
    // The bound itself is fine.
    const atMax = await create({ clientId, currency: 'EUR', lines: [line(1, MAX_AMOUNT)] });
    expectStatus(atMax, 201);
    expect(atMax.body.total).toBe(MAX_AMOUNT);
  });

  it('no lines, too many lines and missing fields are refused naming the field, and nothing is created', async () => {
    const before = await count();
    const none = await create({ clientId, currency: 'EUR', lines: [] });
    expectProblem(none, 400, 'validation_error');
    expect(paths(none)).toEqual(['/lines']);
    const tooMany = await create({ clientId, currency: 'EUR', lines: Array.from({ length: 101 }, () => line(1, 1)) });
    expectProblem(tooMany, 400, 'validation_error');
    expect(paths(tooMany)).toEqual(['/lines']);
    const missing = await create({ lines: [{ quantity: 1, unitAmount: 1 }] });
    expectProblem(missing, 400, 'validation_error');
    expect(paths(missing).sort()).toEqual(['/clientId', '/currency', '/lines/0/description']);
    const badDue = await create({ clientId, currency: 'EUR', lines: [line(1, 1)], dueAt: 'tomorrow' });
    expect(paths(badDue)).toEqual(['/dueAt']);
    expect(await count()).toBe(before);
    expectStatus(await create({ clientId, currency: 'EUR', lines: Array.from({ length: 100 }, () => line(1, 1)) }), 201);
  });

  it('an invoice moves draft -> open on finalize and open -> void on void', async () => {
    const invoice = await draft();
    const finalized = await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token });
    expectStatus(finalized, 200);
    expect(finalized.body).toMatchObject({ id: invoice.id, status: 'open', total: 3000 });
    expect(Date.parse(finalized.body.finalizedAt)).not.toBeNaN();
    const voided = await t.request('POST', `/v1/invoices/${invoice.id}/void`, { token: org.token });
    expectStatus(voided, 200);
    expect(voided.body).toMatchObject({ id: invoice.id, status: 'void', finalizedAt: finalized.body.finalizedAt });
    expect(Date.parse(voided.body.voidedAt)).not.toBeNaN();
    expect((await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token })).body.status).toBe('void');
  });

  it('finalizing twice is a conflict, and only an open invoice can be voided', async () => {
    const invoice = await draft();
    expectProblem(await t.request('POST', `/v1/invoices/${invoice.id}/void`, { token: org.token }), 409, 'conflict');
    expectStatus(await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token }), 200);
    expectProblem(await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token }), 409, 'conflict');
    expectStatus(await t.request('POST', `/v1/invoices/${invoice.id}/void`, { token: org.token }), 200);
    expectProblem(await t.request('POST', `/v1/invoices/${invoice.id}/void`, { token: org.token }), 409, 'conflict');
    expectProblem(await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token }), 409, 'conflict');
  });

  it('concurrent finalizes of one draft: exactly one succeeds, the rest are conflicts', async () => {
    const invoice = await draft();
    const results = await Promise.all(Array.from({ length: 6 }, () => t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409, 409, 409, 409, 409]);
  });

  it('a draft can be changed, and its total follows its new lines', async () => {
    const invoice = await draft();
    const changed = await t.request('PATCH', `/v1/invoices/${invoice.id}`, {
      token: org.token,
      body: { lines: [line(4, 250), line(2, 1)], currency: 'USD', dueAt: '2031-05-01T12:00:00Z', clientId: otherClientId },
    });
    expectStatus(changed, 200);
    expect(changed.body).toMatchObject({ status: 'draft', currency: 'USD', total: 1002, clientId: otherClientId, dueAt: '2031-05-01T12:00:00.000Z' });
    const cleared = await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: { dueAt: null } });
    expectStatus(cleared, 200);
    expect(cleared.body).toMatchObject({ dueAt: null, total: 1002, currency: 'USD' });
    const withTotal = await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: { total: 5 } });
    expectProblem(withTotal, 400, 'validation_error');
    expect(paths(withTotal)).toEqual(['/total']);
    const huge = await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: { lines: [line(2, MAX_AMOUNT)] } });
    expectProblem(huge, 400, 'validation_error');
    expectProblem(await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: {} }), 400, 'validation_error');
    expect((await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token })).body.total).toBe(1002);
  });

  it('an invoice that is not a draft can be neither changed nor deleted', async () => {
    const invoice = await draft();
    await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token });
    expectProblem(await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: { lines: [line(1, 1)] } }), 409, 'conflict');
    expectProblem(await t.request('DELETE', `/v1/invoices/${invoice.id}`, { token: org.token }), 409, 'conflict');
    await t.request('POST', `/v1/invoices/${invoice.id}/void`, { token: org.token });
    expectProblem(await t.request('PATCH', `/v1/invoices/${invoice.id}`, { token: org.token, body: { dueAt: null } }), 409, 'conflict');
    expectProblem(await t.request('DELETE', `/v1/invoices/${invoice.id}`, { token: org.token }), 409, 'conflict');
    const kept = await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token });
    expect(kept.body).toMatchObject({ status: 'void', total: 3000 });
  });

  it('a deleted draft is gone', async () => {
    const invoice = await draft();
    expectStatus(await t.request('DELETE', `/v1/invoices/${invoice.id}`, { token: org.token }), 204);
    expectProblem(await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token }), 404, 'not_found');
    expectProblem(await t.request('DELETE', `/v1/invoices/${invoice.id}`, { token: org.token }), 404, 'not_found');
    expectProblem(await t.request('POST', `/v1/invoices/${invoice.id}/finalize`, { token: org.token }), 404, 'not_found');
    const listed = await t.request('GET', '/v1/invoices?limit=100', { token: org.token });
    expect(listed.body.data.map((i: { id: string }) => i.id)).not.toContain(invoice.id);
  });

  it("another organization's invoice and client do not exist for a key (404), and nothing changes", async () => {
    const mine = await draft();
    const other = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    const as = (method: string, path: string, body?: unknown) => t.request(method, path, { token: other.token, body });
    expectProblem(await as('GET', `/v1/invoices/${mine.id}`), 404, 'not_found');
    expectProblem(await as('PATCH', `/v1/invoices/${mine.id}`, { dueAt: null }), 404, 'not_found');
    expectProblem(await as('DELETE', `/v1/invoices/${mine.id}`), 404, 'not_found');
    expectProblem(await as('POST', `/v1/invoices/${mine.id}/finalize`), 404, 'not_found');
    expectProblem(await as('POST', `/v1/invoices/${mine.id}/void`), 404, 'not_found');
    expect((await as('GET', '/v1/invoices')).body.data).toEqual([]);
    expect((await as('GET', `/v1/invoices?clientId=${clientId}`)).body.data).toEqual([]);
    expectProblem(await as('GET', `/v1/invoices?startingAfter=${mine.id}`), 404, 'not_found');
    // Billing someone else's client, directly or by moving a draft to them.
    expectProblem(await create({ clientId, currency: 'EUR', lines: [line(1, 1)] }, { token: other.token }), 404, 'not_found');
    expect(await count(other.organizationId)).toBe(0);
    const theirs = await create({ clientId: (await as('POST', '/v1/clients', { name: 'Theirs' })).body.id, currency: 'EUR', lines: [line(1, 1)] }, { token: other.token });
    expectStatus(theirs, 201);
    expectProblem(await as('PATCH', `/v1/invoices/${theirs.body.id}`, { clientId }), 404, 'not_found');
    expect((await as('GET', `/v1/invoices/${theirs.body.id}`)).body.clientId).not.toBe(clientId);
    expect((await t.request('GET', `/v1/invoices/${mine.id}`, { token: org.token })).body.status).toBe('draft');
    // Garbage and unknown ids are simply not found.
    expectProblem(await t.request('GET', '/v1/invoices/inv_nope', { token: org.token }), 404, 'not_found');
    expectProblem(await create({ clientId: 'cli_0000000000000000000000', currency: 'EUR', lines: [line(1, 1)] }), 404, 'not_found');
  });

  it('the organization can be named in the path', async () => {
    const created = await t.request('POST', `/v1/organizations/${org.organizationId}/invoices`, {
      token: org.token,
      body: { clientId, currency: 'EUR', lines: [line(1, 42)] },
    });
    expectStatus(created, 201);
    const fetched = await t.request('GET', `/v1/organizations/${org.organizationId}/invoices/${created.body.id}`, { token: org.token });
    expectStatus(fetched, 200);
    expectStatus(await t.request('POST', `/v1/organizations/${org.organizationId}/invoices/${created.body.id}/finalize`, { token: org.token }), 200);
  });

  it('each invoice route requires its scope of SPEC §3 (void: invoice:update)', async () => {
    const invoice = await draft();
    const reader = await createOrgKey(t, org.organizationId, ['invoice:read']);
    const token = reader.secret!;
    const refused = await create({ clientId, currency: 'EUR', lines: [line(1, 1)] }, { token });
    expectProblem(refused, 403, 'insufficient_scope');
    expect(refused.body.requiredScope).toBe('invoice:create');
    expect(refused.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="invoice:create"');
    const expectations: Array<[string, string, string, unknown?]> = [
      ['PATCH', `/v1/invoices/${invoice.id}`, 'invoice:update', { dueAt: null }],
      ['DELETE', `/v1/invoices/${invoice.id}`, 'invoice:delete'],
      ['POST', `/v1/invoices/${invoice.id}/finalize`, 'invoice:execute'],
      ['POST', `/v1/invoices/${invoice.id}/void`, 'invoice:update'],
    ];
    for (const [method, path, scope, body] of expectations) {
      const result = await t.request(method, path, { token, body });
      expectProblem(result, 403, 'insufficient_scope');
      expect(result.body.requiredScope).toBe(scope);
    }
    expectStatus(await t.request('GET', `/v1/invoices/${invoice.id}`, { token }), 200);
    expectStatus(await t.request('GET', '/v1/invoices', { token }), 200);
    const clientsOnly = await createOrgKey(t, org.organizationId, ['client:*']);
    const noRead = await t.request('GET', '/v1/invoices', { token: clientsOnly.secret! });
    expectProblem(noRead, 403, 'insufficient_scope');
    expect(noRead.body.requiredScope).toBe('invoice:read');
    expect((await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token })).body.status).toBe('draft');
    expectProblem(await t.request('GET', '/v1/invoices'), 401, 'missing_credentials');
  });

  it('the list is newest first, cursor-paginated, and filters by status and client', async () => {
    const lister = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    const c1 = (await t.request('POST', '/v1/clients', { token: lister.token, body: { name: 'One' } })).body.id;
    const c2 = (await t.request('POST', '/v1/clients', { token: lister.token, body: { name: 'Two' } })).body.id;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await create({ clientId: i % 2 ? c2 : c1, currency: 'EUR', lines: [line(1, 100 + i)] }, { token: lister.token });
      ids.push(created.body.id);
    }
    await t.request('POST', `/v1/invoices/${ids[1]}/finalize`, { token: lister.token });
    await t.request('POST', `/v1/invoices/${ids[4]}/finalize`, { token: lister.token });
    const get = (query: string) => t.request('GET', `/v1/invoices${query}`, { token: lister.token });
    const first = await get('?limit=2');
    expectStatus(first, 200);
    expect(first.body).toMatchObject({ object: 'list', hasMore: true });
    expect(first.body.data.map((i: { id: string }) => i.id)).toEqual([ids[4], ids[3]]);
    const second = await get(`?limit=2&startingAfter=${ids[3]}`);
    expect(second.body.data.map((i: { id: string }) => i.id)).toEqual([ids[2], ids[1]]);
    const last = await get(`?limit=2&startingAfter=${ids[1]}`);
    expect(last.body).toMatchObject({ hasMore: false });
    expect(last.body.data.map((i: { id: string }) => i.id)).toEqual([ids[0]]);
    expect((await get('?status=open')).body.data.map((i: { id: string }) => i.id)).toEqual([ids[4], ids[1]]);
    expect((await get(`?clientId=${c1}`)).body.data.map((i: { id: string }) => i.id)).toEqual([ids[4], ids[2], ids[0]]);
    expect((await get(`?clientId=${c2}&status=draft`)).body.data.map((i: { id: string }) => i.id)).toEqual([ids[3]]);
    expectProblem(await get('?status=pending'), 400, 'validation_error');
    expectProblem(await get('?limit=101'), 400, 'validation_error');
    expectProblem(await get('?total=1'), 400, 'validation_error');
  });

  describe('Idempotency-Key', () => {
    const body = () => ({ clientId, currency: 'EUR', lines: [line(1, 777)] });

    it('the same key and body replays the first response: same invoice, Idempotent-Replayed: true', async () => {
      const before = await count();
      const headers = { 'idempotency-key': `replay-${Date.now()}` };
      const first = await create(body(), { headers });
      expectStatus(first, 201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const again = await create(body(), { headers });
      expectStatus(again, 201);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body).toEqual(first.body);
      // Both mounts of the route are one endpoint.
      const viaPath = await t.request('POST', `/v1/organizations/${org.organizationId}/invoices`, { token: org.token, body: body(), headers });
      expect(viaPath.body.id).toBe(first.body.id);
      expect(await count()).toBe(before + 1);
    });

    it('the same key with a different body is an idempotency conflict, and nothing is created', async () => {
      const headers = { 'idempotency-key': `conflict-${Date.now()}` };
      expectStatus(await create(body(), { headers }), 201);
      const before = await count();
      const other = await create({ ...body(), lines: [line(2, 777)] }, { headers });
      expectProblem(other, 409, 'idempotency_conflict');
      expect(await count()).toBe(before);
    });

    it('a request refused with an error leaves its key free for the corrected retry', async () => {
      const headers = { 'idempotency-key': `retry-${Date.now()}` };
      expectProblem(await create({ ...body(), clientId: 'cli_0000000000000000000000' }, { headers }), 404, 'not_found');
      expectStatus(await create(body(), { headers }), 201);
    });

    it('10 concurrent requests with one key create exactly one invoice', async () => {
      const before = await count();
      const headers = { 'idempotency-key': `burst-${Date.now()}` };
      const results = await Promise.all(Array.from({ length: 10 }, () => create(body(), { headers })));
      for (const r of results) expectStatus(r, 201);
      expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
      expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
      expect(await count()).toBe(before + 1);
    });
  });
});
