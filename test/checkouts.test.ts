/** Checkouts and the hosted pay page (SPEC §10), as behaviour sentences, over HTTP on a real database. */
import { createHash, randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { newId } from '../src/ids.js';
import { MAX_AMOUNT } from '../src/payments/money.js';
import { MAX_FAILED_ATTEMPTS } from '../src/payments/checkouts/service.js';
import { systemContext } from '../src/auth/context.js';

const SCOPES = ['checkout:*', 'transaction:read', 'client:*', 'invoice:*'];
const GOOD = '4242424242424242';
const DECLINED = '4000000000000002';
const NO_FUNDS = '4000000000009995';

describe('checkouts and the hosted pay page', () => {
  let t: TestApp;
  let org: OrgWithKey;
  beforeAll(async () => {
    // Payers' addresses come from X-Forwarded-For: each attempt here is from an address of its own,
    // so the card-testing brake's per-address count (test/card-brake.test.ts) stays out of these tests.
    t = await startPaygate({ env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
    org = await createOrgWithKey(t, SCOPES, 'Acme Books');
  });
  afterAll(async () => t?.close());

  const api = (method: string, path: string, body?: unknown, token = org.token, headers?: Record<string, string>) =>
    t.request(method, path, { token, body, headers });
  const create = async (body: Record<string, unknown>, token = org.token) => {
    const created = await api('POST', '/v1/checkouts', body, token);
    expectStatus(created, 201);
    return created.body;
  };
  const page = (id: string) => t.request('GET', `/pay/${id}`);
  const pay = (id: string, cardNumber: string | null) =>
    t.request('POST', `/pay/${id}`, {
      body: cardNumber === null ? '' : `cardNumber=${encodeURIComponent(cardNumber)}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': `198.18.${randomInt(256)}.${randomInt(256)}` },
    });
  const client = async (name: string, token = org.token) => {
    const created = await api('POST', '/v1/clients', { name, email: 'payer@example.com' }, token);
    expectStatus(created, 201);
    return created.body.id as string;
  };
  /** An open invoice, inserted directly (the invoices routes belong to another domain). */
  const invoice = async (clientId: string, total: number, options: { currency?: string; status?: string; organizationId?: string } = {}) => {
    const id = newId('invoice');
    await t.db.query(
      `INSERT INTO invoices (id, organization_id, client_id, status, currency, lines, total, finalized_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())`,
      [id, options.organizationId ?? org.organizationId, clientId, options.status ?? 'open', options.currency ?? 'EUR',
        JSON.stringify([{ description: 'Book', quantity: 1, unitAmount: total }]), total],
    );
    return id;
  };
  const invoiceRow = async (id: string) =>
    (await t.db.query<{ status: string; paid_at: Date | null }>('SELECT status, paid_at FROM invoices WHERE id = $1', [id]))[0]!;
  const transactionsOf = (checkoutId: string) =>
    t.db.query<{ id: string; status: string; failure_code: string | null; card_last4: string | null; card_brand: string | null }>(
      'SELECT * FROM transactions WHERE checkout_id = $1 ORDER BY created_at',
      [checkoutId],
    );
  const count = async (table: string) => (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]!.n;

  describe('creating', () => {
    it('a checkout by amount and currency is open for an hour, with its hosted page as url', async () => {
      const before = Date.now();
      const checkout = await create({ amount: 1999, currency: 'EUR', successUrl: 'https://shop.example/thanks', cancelUrl: 'https://shop.example/cart' });
      expect(checkout).toMatchObject({
        object: 'checkout',
        status: 'open',
        amount: 1999,
        currency: 'EUR',
        clientId: null,
        invoiceId: null,
        url: `${t.config.publicUrl}/pay/${checkout.id}`,
        successUrl: 'https://shop.example/thanks',
        cancelUrl: 'https://shop.example/cart',
        transactionId: null,
        completedAt: null,
      });
      expect(checkout.id).toMatch(/^chk_[0-9A-Za-z]{22}$/);
      const minutes = (Date.parse(checkout.expiresAt) - before) / 60_000;
      expect(minutes).toBeGreaterThan(59);
      expect(minutes).toBeLessThan(61);
      const fetched = await api('GET', `/v1/checkouts/${checkout.id}`);
      expectStatus(fetched, 200);
      expect(fetched.body).toEqual(checkout);
    });

    it('a checkout can name a client of the organization and choose its lifetime', async () => {
      const clientId = await client('Ada');
      const checkout = await create({ amount: 500, currency: 'JPY', clientId, expiresInMinutes: 1440 });
      expect(checkout.clientId).toBe(clientId);
      expect(Date.parse(checkout.expiresAt) - Date.now()).toBeGreaterThan(1439 * 60_000);
    });

    it('bad amounts, currencies, URLs and lifetimes are 400 naming the field, and nothing is created', async () => {
      const before = await count('checkouts');
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ amount: 0, currency: 'EUR' }, '/amount'],
        [{ amount: -5, currency: 'EUR' }, '/amount'],
        [{ amount: 10.5, currency: 'EUR' }, '/amount'],
        [{ amount: '100', currency: 'EUR' }, '/amount'],
        [{ amount: MAX_AMOUNT + 1, currency: 'EUR' }, '/amount'],
        [{ currency: 'EUR' }, '/amount'],
        [{ amount: 100, currency: 'eur' }, '/currency'],
        [{ amount: 100, currency: 'ABC' }, '/currency'],
        [{ amount: 100 }, '/currency'],
        [{ amount: 100, currency: 'EUR', successUrl: 'javascript:alert(1)' }, '/successUrl'],
        [{ amount: 100, currency: 'EUR', successUrl: '/relative/path' }, '/successUrl'],
        [{ amount: 100, currency: 'EUR', cancelUrl: 'ftp://files.example/' }, '/cancelUrl'],
        [{ amount: 100, currency: 'EUR', cancelUrl: 'data:text/html,<b>x</b>' }, '/cancelUrl'],
        [{ amount: 100, currency: 'EUR', successUrl: 'https://user:secret@shop.example/' }, '/successUrl'],
        [{ amount: 100, currency: 'EUR', successUrl: `https://shop.example/${'a'.repeat(2100)}` }, '/successUrl'],
        [{ amount: 100, currency: 'EUR', expiresInMinutes: 0 }, '/expiresInMinutes'],
        [{ amount: 100, currency: 'EUR', expiresInMinutes: 1441 }, '/expiresInMinutes'],
        [{ amount: 100, currency: 'EUR', status: 'completed' }, '/status'],
        [{ amount: 100, currency: 'EUR', invoiceId: newId('invoice') }, '/amount'],
      ];
      for (const [body, path] of cases) {
        const refused = await api('POST', '/v1/checkouts', body);
        expectProblem(refused, 400, 'validation_error');
        expect(refused.body.errors.map((e: { path: string }) => e.path), JSON.stringify(body)).toContain(path);
      }
      expect(await count('checkouts')).toBe(before);
    });

    it("another organization's client cannot be named (404), and nothing is created", async () => {
      const other = await createOrgWithKey(t, SCOPES);
      const theirs = await client('Theirs', other.token);
      const before = await count('checkouts');
      expectProblem(await api('POST', '/v1/checkouts', { amount: 100, currency: 'EUR', clientId: theirs }), 404, 'not_found');
      expect(await count('checkouts')).toBe(before);
    });

    it('the same Idempotency-Key replays the same checkout; with another body it is 409 idempotency_conflict', async () => {
      const headers = { 'idempotency-key': `chk-${Date.now()}` };
      const first = await api('POST', '/v1/checkouts', { amount: 700, currency: 'USD' }, org.token, headers);
      expectStatus(first, 201);
      const again = await api('POST', '/v1/checkouts', { amount: 700, currency: 'USD' }, org.token, headers);
      expectStatus(again, 201);
      expect(again.body.id).toBe(first.body.id);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      // The other mount of the same route is the same endpoint.
      const viaPath = await api('POST', `/v1/organizations/${org.organizationId}/checkouts`, { amount: 700, currency: 'USD' }, org.token, headers);
      expect(viaPath.body.id).toBe(first.body.id);
      expectProblem(await api('POST', '/v1/checkouts', { amount: 701, currency: 'USD' }, org.token, headers), 409, 'idempotency_conflict');
      const concurrent = { 'idempotency-key': `chk-par-${Date.now()}` };
      const results = await Promise.all(Array.from({ length: 8 }, () => api('POST', '/v1/checkouts', { amount: 702, currency: 'USD' }, org.token, concurrent)));
      expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
      expect((await t.db.query('SELECT id FROM checkouts WHERE amount = 702')).length).toBe(1);
    });

    it('a form-encoded body on the JSON API is 415: the pay page form parser does not leak onto /v1', async () => {
      const refused = await t.request('POST', '/v1/checkouts', {
        token: org.token,
        body: 'amount=100&currency=EUR',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expectProblem(refused, 415, 'unsupported_media_type');
    });
  });

  describe('invoices', () => {
    it('a checkout for an open invoice takes its total, currency and client; paying it marks the invoice paid', async () => {
      const clientId = await client('Grace');
      const invoiceId = await invoice(clientId, 4200, { currency: 'GBP' });
      const checkout = await create({ invoiceId, successUrl: 'https://shop.example/paid' });
      expect(checkout).toMatchObject({ amount: 4200, currency: 'GBP', clientId, invoiceId, status: 'open' });
      const paid = await pay(checkout.id, GOOD);
      expectStatus(paid, 303);
      expect(paid.headers.get('location')).toBe('https://shop.example/paid');
      const row = await invoiceRow(invoiceId);
      expect(row.status).toBe('paid');
      expect(row.paid_at).not.toBeNull();
      const [txn] = await transactionsOf(checkout.id);
      expect(txn).toMatchObject({ status: 'succeeded' });
      const fetched = await api('GET', `/v1/transactions/${txn!.id}`);
      expect(fetched.body).toMatchObject({ invoiceId, clientId, amount: 4200, currency: 'GBP', checkoutId: checkout.id });
    });

    it('an invoice made and finalized through the invoices API is paid by its checkout, and that API shows it paid', async () => {
      const clientId = await client('Through the API');
      const draft = await api('POST', '/v1/invoices', { clientId, currency: 'EUR', lines: [{ description: 'Tea', quantity: 3, unitAmount: 250 }] });
      expectStatus(draft, 201);
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: draft.body.id }), 409, 'conflict');
      expectStatus(await api('POST', `/v1/invoices/${draft.body.id}/finalize`), 200);
      const checkout = await create({ invoiceId: draft.body.id });
      expect(checkout).toMatchObject({ amount: 750, currency: 'EUR', clientId });
      expectStatus(await pay(checkout.id, GOOD), 200);
      expect((await api('GET', `/v1/invoices/${draft.body.id}`)).body).toMatchObject({ status: 'paid' });
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: draft.body.id }), 409, 'conflict');
    });

    it('an invoice that is not open cannot get a checkout (409); unknown or foreign invoices are 404; nothing is created', async () => {
      const clientId = await client('Linus');
      const draft = await invoice(clientId, 100, { status: 'draft' });
      const paid = await invoice(clientId, 100, { status: 'paid' });
      const zero = await invoice(clientId, 0);
      const other = await createOrgWithKey(t, SCOPES);
      const foreign = await invoice(await client('Foreign', other.token), 100, { organizationId: other.organizationId });
      const before = await count('checkouts');
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: draft }), 409, 'conflict');
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: paid }), 409, 'conflict');
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: zero }), 409, 'conflict');
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: newId('invoice') }), 404, 'not_found');
      expectProblem(await api('POST', '/v1/checkouts', { invoiceId: foreign }), 404, 'not_found');
      const both = await api('POST', '/v1/checkouts', { invoiceId: draft, amount: 100, currency: 'EUR' });
      expectProblem(both, 400, 'validation_error');
      expect(both.body.errors.map((e: { path: string }) => e.path)).toEqual(['/amount', '/currency']);
      expect(await count('checkouts')).toBe(before);
    });

    it("createForInvoice (the portal's pay button) makes a checkout for an open invoice in the caller's transaction", async () => {
      const clientId = await client('Portal payer');
      const invoiceId = await invoice(clientId, 990, { currency: 'USD' });
      const { checkouts } = t.services.payments;
      const checkout = await t.services.work.run((tx) =>
        checkouts.createForInvoice(tx, org.organizationId, invoiceId, { successUrl: 'https://portal.example/done', cancelUrl: null }),
      );
      expect(checkout).toMatchObject({ status: 'open', amount: 990, currency: 'USD', clientId, invoiceId, successUrl: 'https://portal.example/done', cancelUrl: null });
      expect(checkout.url).toBe(`${t.config.publicUrl}/pay/${checkout.id}`);
      await expect(t.services.work.run((tx) => checkouts.createForInvoice(tx, org.organizationId, invoiceId, { successUrl: 'javascript:x' }))).rejects.toMatchObject({ code: 'validation_error' });
      const other = await createOrgWithKey(t, SCOPES);
      await expect(t.services.work.run((tx) => checkouts.createForInvoice(tx, other.organizationId, invoiceId, {}))).rejects.toMatchObject({ code: 'not_found' });
      await t.db.query("UPDATE invoices SET status = 'void' WHERE id = $1", [invoiceId]);
      await expect(t.services.work.run((tx) => checkouts.createForInvoice(tx, org.organizationId, invoiceId, {}))).rejects.toMatchObject({ code: 'conflict' });
    });

    it('a checkout whose invoice was paid or voided meanwhile cannot be paid, and no card is charged', async () => {
      const clientId = await client('Late');
      const invoiceId = await invoice(clientId, 300);
      const first = await create({ invoiceId });
      const second = await create({ invoiceId });
      expectStatus(await pay(first.id, GOOD), 200);
      const shown = await page(second.id);
      expectStatus(shown, 409);
      expect(shown.text).toContain('already been paid');
      expectStatus(await pay(second.id, GOOD), 409);
      expect(await transactionsOf(second.id)).toHaveLength(0);
    });
  });

  describe('the hosted page', () => {
    it('shows the amount, a labelled card field posting cardNumber, a cancel link, and strict security headers', async () => {
      const checkout = await create({ amount: 123456, currency: 'EUR', successUrl: 'https://shop.example/ok', cancelUrl: 'https://shop.example/cart' });
      const shown = await page(checkout.id);
      expectStatus(shown, 200);
      expect(shown.headers.get('content-type')).toMatch(/^text\/html; charset=utf-8/);
      expect(shown.text).toContain('€1,234.56');
      expect(shown.text).toContain('Pay Acme Books');
      expect(shown.text).toMatch(/<form method="post">/);
      expect(shown.text).toContain('<label for="cardNumber">Card number</label>');
      expect(shown.text).toMatch(/<input id="cardNumber" name="cardNumber" type="text" inputmode="numeric" autocomplete="cc-number"/);
      expect(shown.text).toContain('<a class="cancel" href="https://shop.example/cart">');
      expect(shown.text).not.toMatch(/<script/i);
      const csp = shown.headers.get('content-security-policy')!;
      expect(csp).toContain("default-src 'none'");
      // The one inline stylesheet is allowed by its hash, so it applies; nothing else inline would.
      const style = /<style>([\s\S]*?)<\/style>/.exec(shown.text)![1]!;
      expect(csp).toContain(`style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`);
      // The success redirect follows the form post: its origin is allowed, nothing else is.
      expect(csp).toContain("form-action 'self' https://shop.example;");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(shown.headers.get('x-frame-options')).toBe('DENY');
      expect(shown.headers.get('cache-control')).toBe('no-store');
      expect(shown.headers.get('x-content-type-options')).toBe('nosniff');
    });

    it('the page works with HEAD and needs no credential; an unknown id is a 404 page, not JSON', async () => {
      const checkout = await create({ amount: 100, currency: 'EUR' });
      expectStatus(await t.request('HEAD', `/pay/${checkout.id}`), 200);
      for (const id of [newId('checkout'), 'nonsense', `${checkout.id}x`]) {
        const missing = await page(id);
        expectStatus(missing, 404);
        expect(missing.headers.get('content-type')).toMatch(/^text\/html/);
        expect(missing.text).toContain('Payment link not found');
        expectStatus(await pay(id, GOOD), 404);
      }
      // Errors on the page are pages too, never problem+json.
      const wrongType = await t.request('POST', `/pay/${checkout.id}`, { body: `cardNumber=${GOOD}`, headers: { 'content-type': 'text/plain' } });
      expectStatus(wrongType, 415);
      expect(wrongType.headers.get('content-type')).toMatch(/^text\/html/);
      const tooLarge = await pay(checkout.id, 'x'.repeat(5000));
      expectStatus(tooLarge, 413);
      expect(tooLarge.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(await transactionsOf(checkout.id)).toHaveLength(0);
    });

    it("a deleted organization's checkout page is not found and cannot be paid", async () => {
      const gone = await createOrgWithKey(t, SCOPES);
      const checkout = await create({ amount: 100, currency: 'EUR' }, gone.token);
      await t.services.organizations.delete(systemContext(), gone.organizationId);
      expectStatus(await page(checkout.id), 404);
      expectStatus(await pay(checkout.id, GOOD), 404);
      expect(await transactionsOf(checkout.id)).toHaveLength(0);
    });

    it('escapes every interpolated value (client name, URLs)', async () => {
      const clientId = await client('<script>alert("x")</script> & "Sons"');
      const checkout = await create({ amount: 100, currency: 'EUR', clientId, cancelUrl: "https://shop.example/it's/\"q\"?a=<b>" });
      const shown = await page(checkout.id);
      expectStatus(shown, 200);
      expect(shown.text).not.toContain('<script>');
      expect(shown.text).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Sons&quot;');
      expect(shown.text).toContain('href="https://shop.example/it&#39;s/%22q%22?a=%3Cb%3E"');
      // And after a decline, in the re-rendered form.
      const declined = await pay(checkout.id, DECLINED);
      expect(declined.text).not.toContain('<script>');
    });

    it('an unsafe successUrl origin is not put into the CSP: the payer gets a page with a link instead of a redirect', async () => {
      const checkout = await create({ amount: 100, currency: 'EUR', successUrl: 'https://a;b/x' });
      expect(checkout.successUrl).toBe('https://a;b/x');
      const shown = await page(checkout.id);
      expect(shown.headers.get('content-security-policy')).toContain("form-action 'self';");
      const paid = await pay(checkout.id, GOOD);
      expectStatus(paid, 200);
      expect(paid.text).toContain('Payment received');
      expect(paid.text).toContain('href="https://a;b/x"');
    });
  });

  describe('paying', () => {
    it('4242 4242 4242 4242 completes the checkout, records one succeeded transaction and redirects 303 to successUrl', async () => {
      const checkout = await create({ amount: 2500, currency: 'EUR', successUrl: 'https://shop.example/thanks?order=7' });
      const paid = await pay(checkout.id, '4242 4242 4242 4242');
      expectStatus(paid, 303);
      expect(paid.headers.get('location')).toBe('https://shop.example/thanks?order=7');
      const txns = await transactionsOf(checkout.id);
      expect(txns).toHaveLength(1);
      expect(txns[0]).toMatchObject({ status: 'succeeded', card_brand: 'visa', card_last4: '4242', failure_code: null });
      const fetched = await api('GET', `/v1/checkouts/${checkout.id}`);
      expect(fetched.body).toMatchObject({ status: 'completed', transactionId: txns[0]!.id });
      expect(fetched.body.completedAt).not.toBeNull();
    });

    it('without a successUrl, success is a page saying the payment was received', async () => {
      const checkout = await create({ amount: 2500, currency: 'USD' });
      const paid = await pay(checkout.id, GOOD);
      expectStatus(paid, 200);
      expect(paid.text).toContain('Payment received');
      expect(paid.text).toContain('$25.00');
    });

    it('a declined card re-renders the form with an alert and 402; then a good card pays: two transactions, one failed, one succeeded', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR', successUrl: 'https://shop.example/ok' });
      const declined = await pay(checkout.id, DECLINED);
      expectStatus(declined, 402);
      expect(declined.text).toMatch(/<p class="error" role="alert" id="card-error">Your card was declined\./);
      expect(declined.text).toContain('aria-invalid="true"');
      expect(declined.text).toContain('aria-describedby="card-error card-hint"');
      // The typed number is never echoed back.
      expect(declined.text).not.toContain(DECLINED);
      expect((await api('GET', `/v1/checkouts/${checkout.id}`)).body.status).toBe('open');
      expectStatus(await pay(checkout.id, GOOD), 303);
      const txns = await transactionsOf(checkout.id);
      expect(txns.map((x) => [x.status, x.failure_code])).toEqual([['failed', 'card_declined'], ['succeeded', null]]);
      const listed = await api('GET', `/v1/transactions?checkoutId=${checkout.id}`);
      expect(listed.body.data.map((x: { status: string }) => x.status)).toEqual(['succeeded', 'failed']);
    });

    it('insufficient funds is a failed transaction with failureCode insufficient_funds', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      const refused = await pay(checkout.id, NO_FUNDS);
      expectStatus(refused, 402);
      expect(refused.text).toContain('insufficient funds');
      const [txn] = await transactionsOf(checkout.id);
      expect(txn).toMatchObject({ status: 'failed', failure_code: 'insufficient_funds', card_last4: '9995', card_brand: 'visa' });
    });

    it('a number failing the Luhn check is invalid_number and keeps no digits; an unknown valid number is declined', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      expectStatus(await pay(checkout.id, '4242424242424241'), 402);
      expectStatus(await pay(checkout.id, '4242-abcd'), 402);
      expectStatus(await pay(checkout.id, '4111111111111111'), 402);
      const txns = await transactionsOf(checkout.id);
      expect(txns.map((x) => [x.failure_code, x.card_last4])).toEqual([
        ['invalid_number', null],
        ['invalid_number', null],
        ['card_declined', '1111'],
      ]);
    });

    it('the full card number is never stored or logged', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      await pay(checkout.id, DECLINED);
      await pay(checkout.id, GOOD);
      const dump = JSON.stringify(await t.db.query('SELECT * FROM transactions WHERE checkout_id = $1', [checkout.id]));
      expect(dump).not.toContain(DECLINED);
      expect(dump).not.toContain(GOOD);
      expect(dump).not.toContain('424242424242');
      expect(t.logs.text()).not.toContain('424242424242');
      expect(t.logs.text()).not.toContain('400000000000');
    });

    it('an empty card number re-renders the form with 400 and records no attempt', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      for (const body of [null, '   ']) {
        const refused = await pay(checkout.id, body);
        expectStatus(refused, 400);
        expect(refused.text).toContain('role="alert"');
        expect(refused.text).toContain('Enter your card number.');
      }
      expect(await transactionsOf(checkout.id)).toHaveLength(0);
    });

    it('a completed checkout cannot be paid again: its page says it is paid and nothing is charged', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR', successUrl: 'https://shop.example/ok' });
      expectStatus(await pay(checkout.id, GOOD), 303);
      const shown = await page(checkout.id);
      expectStatus(shown, 200);
      expect(shown.text).toContain('Already paid');
      expect(shown.text).not.toContain('<form');
      const again = await pay(checkout.id, GOOD);
      expectStatus(again, 200);
      expect(again.text).toContain('Already paid');
      expect(await transactionsOf(checkout.id)).toHaveLength(1);
    });

    it('an expired checkout reports expired, its page is 410, and it cannot be paid', async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      await t.db.query("UPDATE checkouts SET expires_at = now() - interval '1 second' WHERE id = $1", [checkout.id]);
      expect((await api('GET', `/v1/checkouts/${checkout.id}`)).body.status).toBe('expired');
      const shown = await page(checkout.id);
      expectStatus(shown, 410);
      expect(shown.text).toContain('expired');
      expect(shown.text).not.toContain('<form');
      expectStatus(await pay(checkout.id, GOOD), 410);
      expect(await transactionsOf(checkout.id)).toHaveLength(0);
      // Stored lazily by the attempt.
      expect((await t.db.query<{ status: string }>('SELECT status FROM checkouts WHERE id = $1', [checkout.id]))[0]!.status).toBe('expired');
    });

    it(`after ${MAX_FAILED_ATTEMPTS} failed attempts a checkout accepts no more cards (429)`, async () => {
      const checkout = await create({ amount: 1000, currency: 'EUR' });
      for (let i = 0; i < MAX_FAILED_ATTEMPTS; i++) expectStatus(await pay(checkout.id, DECLINED), 402);
      const locked = await pay(checkout.id, GOOD);
      expectStatus(locked, 429);
      // The link is done for (the other limits are tested in test/card-brake.test.ts).
      expect(locked.text).toContain('Ask the merchant for a new one.');
      expect(locked.headers.get('retry-after')).toBeNull();
      expectStatus(await page(checkout.id), 429);
      expect(await transactionsOf(checkout.id)).toHaveLength(MAX_FAILED_ATTEMPTS);
    });

    it('10 concurrent submissions of one checkout: exactly one succeeded transaction, and the invoice paid once', async () => {
      const clientId = await client('Race');
      const invoiceId = await invoice(clientId, 5000);
      const checkout = await create({ invoiceId, successUrl: 'https://shop.example/ok' });
      const results = await Promise.all(Array.from({ length: 10 }, () => pay(checkout.id, GOOD)));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 303)).toHaveLength(1);
      expect(statuses.filter((s) => s === 200)).toHaveLength(9); // "already paid"
      const txns = await transactionsOf(checkout.id);
      expect(txns).toHaveLength(1);
      expect(txns[0]!.status).toBe('succeeded');
      const row = await invoiceRow(invoiceId);
      expect(row.status).toBe('paid');
      expect((await api('GET', `/v1/checkouts/${checkout.id}`)).body).toMatchObject({ status: 'completed', transactionId: txns[0]!.id });
    });

    it('concurrent declines and successes on one checkout still give exactly one success', async () => {
      const checkout = await create({ amount: 800, currency: 'EUR' });
      const cards = [DECLINED, GOOD, NO_FUNDS, GOOD, DECLINED, GOOD];
      await Promise.all(cards.map((card) => pay(checkout.id, card)));
      const txns = await transactionsOf(checkout.id);
      const succeeded = txns.filter((x) => x.status === 'succeeded');
      expect(succeeded).toHaveLength(1);
      expect((await api('GET', `/v1/checkouts/${checkout.id}`)).body).toMatchObject({ status: 'completed', transactionId: succeeded[0]!.id });
    });
  });

  describe('reading', () => {
    it('the list is newest first, cursor-paginated, filterable by status (expiry included) and client', async () => {
      const reader = await createOrgWithKey(t, SCOPES);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await create({ amount: 100 + i, currency: 'EUR' }, reader.token)).id);
      await t.db.query("UPDATE checkouts SET expires_at = now() - interval '1 minute' WHERE id = $1", [ids[1]]);
      expectStatus(await pay(ids[2]!, GOOD), 200);
      const first = await api('GET', '/v1/checkouts?limit=2', undefined, reader.token);
      expectStatus(first, 200);
      expect(first.body).toMatchObject({ object: 'list', hasMore: true });
      expect(first.body.data.map((c: { id: string }) => c.id)).toEqual([ids[4], ids[3]]);
      const rest = await api('GET', `/v1/checkouts?limit=10&startingAfter=${ids[3]}`, undefined, reader.token);
      expect(rest.body.data.map((c: { id: string }) => c.id)).toEqual([ids[2], ids[1], ids[0]]);
      expect(rest.body.hasMore).toBe(false);
      const status = async (s: string) =>
        (await api('GET', `/v1/checkouts?status=${s}`, undefined, reader.token)).body.data.map((c: { id: string }) => c.id);
      expect(await status('open')).toEqual([ids[4], ids[3], ids[0]]);
      expect(await status('expired')).toEqual([ids[1]]);
      expect(await status('completed')).toEqual([ids[2]]);
      expectProblem(await api('GET', '/v1/checkouts?status=paid', undefined, reader.token), 400, 'validation_error');
      expectProblem(await api('GET', '/v1/checkouts?limit=101', undefined, reader.token), 400, 'validation_error');
      // A cursor from another organization is not found.
      expectProblem(await api('GET', `/v1/checkouts?startingAfter=${ids[0]}`), 404, 'not_found');
    });

    it("another organization's checkout is 404 at both mounts", async () => {
      const other = await createOrgWithKey(t, SCOPES);
      const theirs = await create({ amount: 100, currency: 'EUR' }, other.token);
      expectProblem(await api('GET', `/v1/checkouts/${theirs.id}`), 404, 'not_found');
      expectProblem(await api('GET', `/v1/organizations/${org.organizationId}/checkouts/${theirs.id}`), 404, 'not_found');
      expectProblem(await api('GET', `/v1/organizations/${other.organizationId}/checkouts/${theirs.id}`), 403, 'organization_mismatch');
      const mine = await api('GET', '/v1/checkouts?limit=100');
      expect(mine.body.data.map((c: { id: string }) => c.id)).not.toContain(theirs.id);
    });

    it('each route demands its scope', async () => {
      const reader = await createOrgKey(t, org.organizationId, ['checkout:read']);
      const creator = await createOrgKey(t, org.organizationId, ['checkout:create']);
      const checkout = await create({ amount: 100, currency: 'EUR' });
      const refused = await api('POST', '/v1/checkouts', { amount: 100, currency: 'EUR' }, reader.secret!);
      expectProblem(refused, 403, 'insufficient_scope');
      expect(refused.body.requiredScope).toBe('checkout:create');
      expectStatus(await api('GET', `/v1/checkouts/${checkout.id}`, undefined, reader.secret!), 200);
      expectProblem(await api('GET', `/v1/checkouts/${checkout.id}`, undefined, creator.secret!), 403, 'insufficient_scope');
      expectProblem(await api('GET', '/v1/checkouts', undefined, creator.secret!), 403, 'insufficient_scope');
      expectStatus(await api('POST', '/v1/checkouts', { amount: 100, currency: 'EUR' }, creator.secret!), 201);
      expectProblem(await t.request('GET', '/v1/checkouts'), 401, 'missing_credentials');
    });
  });
});
