/** Transactions and refunds (SPEC §10), as behaviour sentences, over HTTP on a real database. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { newId } from '../src/ids.js';

const SCOPES = ['checkout:*', 'transaction:*', 'client:*', 'audit:read'];
const GOOD = '4242424242424242';
const DECLINED = '4000000000000002';

describe('transactions and refunds', () => {
  let t: TestApp;
  let org: OrgWithKey;
  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, SCOPES);
  });
  afterAll(async () => t?.close());

  const api = (method: string, path: string, body?: unknown, token = org.token, headers?: Record<string, string>) =>
    t.request(method, path, { token, body, headers });
  const pay = (id: string, cardNumber: string) =>
    t.request('POST', `/pay/${id}`, { body: `cardNumber=${cardNumber}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });

  /** Pays a new checkout through the hosted page; returns the transaction the attempt made. */
  async function payment(amount: number, options: { card?: string; clientId?: string; token?: string; currency?: string } = {}) {
    const body: Record<string, unknown> = { amount, currency: options.currency ?? 'EUR' };
    if (options.clientId) body.clientId = options.clientId;
    const checkout = await api('POST', '/v1/checkouts', body, options.token ?? org.token);
    expectStatus(checkout, 201);
    await pay(checkout.body.id, options.card ?? GOOD);
    const [row] = await t.db.query<{ id: string }>('SELECT id FROM transactions WHERE checkout_id = $1 ORDER BY created_at DESC LIMIT 1', [checkout.body.id]);
    const fetched = await api('GET', `/v1/transactions/${row!.id}`, undefined, options.token ?? org.token);
    expectStatus(fetched, 200);
    return fetched.body;
  }
  const refund = (id: string, body?: unknown, token = org.token, headers?: Record<string, string>) =>
    api('POST', `/v1/transactions/${id}/refunds`, body, token, headers);
  const refundsOf = async (id: string) =>
    (await t.db.query<{ amount: number }>('SELECT amount FROM refunds WHERE transaction_id = $1', [id])).map((r) => r.amount);
  const refunded = async (id: string) => (await api('GET', `/v1/transactions/${id}`)).body.amountRefunded as number;

  it('the story: pay, refund part, refund the rest by default, and an over-refund is refused', async () => {
    const txn = await payment(10_000);
    expect(txn).toMatchObject({
      object: 'transaction',
      status: 'succeeded',
      amount: 10_000,
      amountRefunded: 0,
      currency: 'EUR',
      clientId: null,
      invoiceId: null,
      failureCode: null,
      card: { brand: 'visa', last4: '4242' },
      metadata: {},
    });
    expect(txn.id).toMatch(/^txn_[0-9A-Za-z]{22}$/);

    const part = await refund(txn.id, { amount: 2_500 });
    expectStatus(part, 201);
    expect(part.body).toMatchObject({ object: 'refund', transactionId: txn.id, amount: 2_500 });
    expect(part.body.id).toMatch(/^ref_[0-9A-Za-z]{22}$/);
    expect(Date.parse(part.body.createdAt)).not.toBeNaN();
    expect(await refunded(txn.id)).toBe(2_500);

    const tooMuch = await refund(txn.id, { amount: 7_501 });
    expectProblem(tooMuch, 400, 'validation_error');
    expect(tooMuch.body.errors).toEqual([{ path: '/amount', message: 'must be at most 7500, what remains to refund' }]);

    const rest = await refund(txn.id);
    expectStatus(rest, 201);
    expect(rest.body.amount).toBe(7_500);
    expect(await refunded(txn.id)).toBe(10_000);

    const more = await refund(txn.id, { amount: 1 });
    expectProblem(more, 400, 'validation_error');
    expectProblem(await refund(txn.id, {}), 400, 'validation_error');
    expect(await refundsOf(txn.id)).toEqual([2_500, 7_500]);

    // Each refund is audited, in its own transaction, naming who did it.
    const events = await api('GET', '/v1/audit-events?action=refund.created');
    expectStatus(events, 200);
    const mine = events.body.data.filter((e: { details: { transactionId: string } }) => e.details.transactionId === txn.id);
    expect(mine).toHaveLength(2);
    expect(mine[0]).toMatchObject({ actor: { type: 'api_key', id: org.keyId }, organizationId: org.organizationId, target: { type: 'refund', id: rest.body.id } });
    expect(mine.map((e: { details: { amount: number } }) => e.details.amount).sort()).toEqual([2_500, 7_500]);
  });

  it('a failed transaction cannot be refunded, and nothing changes', async () => {
    const failed = await payment(500, { card: DECLINED });
    expect(failed).toMatchObject({ status: 'failed', failureCode: 'card_declined', card: { brand: 'visa', last4: '0002' } });
    expectProblem(await refund(failed.id), 400, 'validation_error');
    expectProblem(await refund(failed.id, { amount: 100 }), 400, 'validation_error');
    expect(await refundsOf(failed.id)).toEqual([]);
  });

  it('bad refund amounts and unknown fields are 400, and nothing is refunded', async () => {
    const txn = await payment(1_000);
    for (const body of [{ amount: 0 }, { amount: -1 }, { amount: 1.5 }, { amount: '100' }, { amount: 100, reason: 'x' }, [100]]) {
      expectProblem(await refund(txn.id, body), 400, 'validation_error');
    }
    expect(await refundsOf(txn.id)).toEqual([]);
    expect(await refunded(txn.id)).toBe(0);
  });

  it('20 parallel refunds can never refund more than the amount', async () => {
    const txn = await payment(1_000);
    const results = await Promise.all(Array.from({ length: 20 }, () => refund(txn.id, { amount: 100 })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(10);
    for (const r of results.filter((x) => x.status !== 201)) expectProblem(r, 400, 'validation_error');
    expect(await refunded(txn.id)).toBe(1_000);
    const amounts = await refundsOf(txn.id);
    expect(amounts.reduce((a, b) => a + b, 0)).toBe(1_000);
  });

  it('parallel refunds of "what remains" refund it exactly once', async () => {
    const txn = await payment(999);
    const results = await Promise.all(Array.from({ length: 10 }, () => refund(txn.id)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(await refundsOf(txn.id)).toEqual([999]);
  });

  it('the database itself refuses to refund more than the amount', async () => {
    const txn = await payment(100);
    await expect(t.db.query('UPDATE transactions SET amount_refunded = 101 WHERE id = $1', [txn.id])).rejects.toThrow(/check constraint/);
  });

  it('the same Idempotency-Key replays the refund, even sent in parallel; another body is 409', async () => {
    const txn = await payment(1_000);
    const headers = { 'idempotency-key': `ref-${Date.now()}` };
    const results = await Promise.all(Array.from({ length: 6 }, () => refund(txn.id, { amount: 300 }, org.token, headers)));
    for (const r of results) expectStatus(r, 201);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    expect(results.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(5);
    expect(await refundsOf(txn.id)).toEqual([300]);
    expectProblem(await refund(txn.id, { amount: 301 }, org.token, headers), 409, 'idempotency_conflict');
    // The key names one request: the same body on another transaction is not a replay.
    const other = await payment(1_000);
    expectProblem(await refund(other.id, { amount: 300 }, org.token, headers), 409, 'idempotency_conflict');
    expect(await refundsOf(other.id)).toEqual([]);
    // A refused request leaves no key behind: the same key can be retried with a valid body.
    const retry = { 'idempotency-key': `ref-retry-${Date.now()}` };
    expectProblem(await refund(txn.id, { amount: 5_000 }, org.token, retry), 400, 'validation_error');
    expectStatus(await refund(txn.id, { amount: 700 }, org.token, retry), 201);
  });

  it('the list is newest first, cursor-paginated and filterable by status, client and checkout', async () => {
    const lister = await createOrgWithKey(t, SCOPES);
    const clientId = (await api('POST', '/v1/clients', { name: 'Filter me' }, lister.token)).body.id as string;
    const a = await payment(100, { token: lister.token, clientId });
    const b = await payment(200, { token: lister.token, card: DECLINED });
    const c = await payment(300, { token: lister.token, clientId, card: DECLINED });
    const d = await payment(400, { token: lister.token });
    const ids = async (query: string) =>
      (await api('GET', `/v1/transactions${query}`, undefined, lister.token)).body.data.map((x: { id: string }) => x.id);
    expect(await ids('')).toEqual([d.id, c.id, b.id, a.id]);
    const page = await api('GET', '/v1/transactions?limit=2', undefined, lister.token);
    expect(page.body).toMatchObject({ object: 'list', hasMore: true });
    expect(await ids(`?startingAfter=${c.id}`)).toEqual([b.id, a.id]);
    expect(await ids('?status=failed')).toEqual([c.id, b.id]);
    expect(await ids('?status=succeeded')).toEqual([d.id, a.id]);
    expect(await ids(`?clientId=${clientId}`)).toEqual([c.id, a.id]);
    expect(await ids(`?clientId=${clientId}&status=succeeded`)).toEqual([a.id]);
    expect(await ids(`?checkoutId=${b.checkoutId}`)).toEqual([b.id]);
    expectProblem(await api('GET', '/v1/transactions?status=refunded', undefined, lister.token), 400, 'validation_error');
    expectProblem(await api('GET', '/v1/transactions?limit=0', undefined, lister.token), 400, 'validation_error');
  });

  it('PATCH changes metadata only: string values, at most 50 keys; anything else is 400 and nothing changes', async () => {
    const txn = await payment(100);
    const patched = await api('PATCH', `/v1/transactions/${txn.id}`, { metadata: { orderId: '42', note: 'gift' } });
    expectStatus(patched, 200);
    expect(patched.body).toMatchObject({ id: txn.id, metadata: { orderId: '42', note: 'gift' }, amount: 100, status: 'succeeded' });
    const replaced = await api('PATCH', `/v1/transactions/${txn.id}`, { metadata: { orderId: '43' } });
    expect(replaced.body.metadata).toEqual({ orderId: '43' });
    const tooMany = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    const refusals: Array<[unknown, string]> = [
      [{ metadata: { n: 1 } }, '/metadata/n'],
      [{ metadata: { n: null } }, '/metadata/n'],
      [{ metadata: tooMany }, '/metadata'],
      [{ metadata: { orderId: '1' }, amount: 1 }, '/amount'],
      [{ status: 'failed' }, '/status'],
      [{ amountRefunded: 0 }, '/amountRefunded'],
      [{}, '/metadata'],
    ];
    for (const [body, path] of refusals) {
      const refused = await api('PATCH', `/v1/transactions/${txn.id}`, body);
      expectProblem(refused, 400, 'validation_error');
      expect(refused.body.errors.map((e: { path: string }) => e.path), JSON.stringify(body)).toContain(path);
    }
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v']));
    expectStatus(await api('PATCH', `/v1/transactions/${txn.id}`, { metadata: fifty }), 200);
    const after = await api('GET', `/v1/transactions/${txn.id}`);
    expect(Object.keys(after.body.metadata)).toHaveLength(50);
    expect(after.body).toMatchObject({ amount: 100, status: 'succeeded', amountRefunded: 0 });
  });

  it("another organization's transaction is 404 for reading, changing and refunding", async () => {
    const other = await createOrgWithKey(t, SCOPES);
    const theirs = await payment(1_000, { token: other.token });
    expectProblem(await api('GET', `/v1/transactions/${theirs.id}`), 404, 'not_found');
    expectProblem(await api('GET', `/v1/organizations/${org.organizationId}/transactions/${theirs.id}`), 404, 'not_found');
    expectProblem(await api('PATCH', `/v1/transactions/${theirs.id}`, { metadata: { a: 'b' } }), 404, 'not_found');
    expectProblem(await refund(theirs.id, { amount: 100 }), 404, 'not_found');
    expectProblem(await refund(newId('transaction')), 404, 'not_found');
    expectProblem(await refund('not-an-id'), 404, 'not_found');
    expectProblem(await api('GET', `/v1/transactions?startingAfter=${theirs.id}`), 404, 'not_found');
    const mine = await api('GET', '/v1/transactions?limit=100');
    expect(mine.body.data.map((x: { id: string }) => x.id)).not.toContain(theirs.id);
    const after = await api('GET', `/v1/transactions/${theirs.id}`, undefined, other.token);
    expect(after.body).toMatchObject({ amountRefunded: 0, metadata: {} });
  });

  it('each route demands its scope', async () => {
    const txn = await payment(1_000);
    const reader = (await createOrgKey(t, org.organizationId, ['transaction:read'])).secret!;
    const updater = (await createOrgKey(t, org.organizationId, ['transaction:update'])).secret!;
    const executor = (await createOrgKey(t, org.organizationId, ['transaction:execute'])).secret!;
    const expectScope = (result: Awaited<ReturnType<typeof api>>, scope: string) => {
      expectProblem(result, 403, 'insufficient_scope');
      expect(result.body.requiredScope).toBe(scope);
    };
    expectStatus(await api('GET', `/v1/transactions/${txn.id}`, undefined, reader), 200);
    expectStatus(await api('GET', '/v1/transactions', undefined, reader), 200);
    expectScope(await api('PATCH', `/v1/transactions/${txn.id}`, { metadata: {} }, reader), 'transaction:update');
    expectScope(await refund(txn.id, { amount: 1 }, reader), 'transaction:execute');
    expectScope(await refund(txn.id, { amount: 1 }, updater), 'transaction:execute');
    expectScope(await api('GET', `/v1/transactions/${txn.id}`, undefined, executor), 'transaction:read');
    expectStatus(await api('PATCH', `/v1/transactions/${txn.id}`, { metadata: {} }, updater), 200);
    expectStatus(await refund(txn.id, { amount: 1 }, executor), 201);
    expect(await refundsOf(txn.id)).toEqual([1]);
  });
});
