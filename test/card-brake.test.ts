/**
 * The card-testing brake (src/payments/checkouts/brake.ts), as the attacks it stops: a portal Pay
 * button clicked again and again with declined cards, new links for one invoice, one customer's
 * invoices in turn, one address across merchants, a distributed run against one merchant, bursts
 * of simultaneous attempts, and several nodes. Payer addresses come from X-Forwarded-For (the test
 * client is a trusted proxy), so each test chooses who is attacking.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, expectProblem, expectStatus, startPaygate, type HttpResult, type OrgWithKey, type TestApp } from './harness.js';
import { CARD_BRAKES, sourceOf, type BrakeSubject } from '../src/payments/checkouts/brake.js';
import { newId } from '../src/ids.js';

const SCOPES = ['checkout:*', 'transaction:read', 'client:*', 'invoice:*', 'portal:create'];
const GOOD = '4242424242424242';
const DECLINED = '4000000000000002';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const limit = (subject: BrakeSubject) => CARD_BRAKES.find((r) => r.subject === subject)!.limit;

/** A fresh documentation-range address: an attacker or payer of its own. */
const freshAddress = () => `198.18.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

describe('the card-testing brake', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate({ env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
  });
  afterAll(async () => t?.close());

  const api = (org: OrgWithKey, method: string, path: string, body?: unknown) => t.request(method, path, { token: org.token, body });
  const pay = (checkoutId: string, cardNumber: string, from: string) =>
    t.request('POST', `/pay/${checkoutId}`, { body: `cardNumber=${cardNumber}`, headers: { ...FORM, 'x-forwarded-for': from } });
  const client = async (org: OrgWithKey, name = 'Payer') => {
    const created = await api(org, 'POST', '/v1/clients', { name });
    expectStatus(created, 201);
    return created.body.id as string;
  };
  const openInvoice = async (org: OrgWithKey, clientId: string, total = 2500) => {
    const created = await api(org, 'POST', '/v1/invoices', { clientId, currency: 'EUR', lines: [{ description: 'Plan', quantity: 1, unitAmount: total }] });
    expectStatus(created, 201);
    expectStatus(await api(org, 'POST', `/v1/invoices/${created.body.id}/finalize`), 200);
    return created.body.id as string;
  };
  const checkout = async (org: OrgWithKey, body: Record<string, unknown> = { amount: 1000, currency: 'EUR' }) => {
    const created = await api(org, 'POST', '/v1/checkouts', body);
    expectStatus(created, 201);
    return created.body.id as string;
  };
  const attemptsReachingProcessor = async (column: 'invoice_id' | 'client_id' | 'organization_id', value: string) =>
    (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM transactions WHERE ${column} = $1`, [value]))[0]!.n;
  const retryAfter = (result: HttpResult) => Number(result.headers.get('retry-after'));

  /** Signs the client into the portal; returns its cookie and the CSRF token of its page. */
  async function portalSession(org: OrgWithKey, clientId: string) {
    const link = await api(org, 'POST', '/v1/portal/magic-links', { clientId });
    expectStatus(link, 201);
    const token = new URL(link.body.url).searchParams.get('token')!;
    const redeemed = await t.request('POST', '/portal/login', { body: new URLSearchParams({ token }).toString(), headers: FORM });
    expectStatus(redeemed, 303);
    const session = redeemed.headers.getSetCookie().find((c) => c.startsWith('portal_session='))!.split(';')[0]!.slice('portal_session='.length);
    const page = await t.request('GET', '/portal', { cookies: { portal_session: session } });
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    return { session, csrf };
  }
  const clickPay = (portal: { session: string; csrf: string }, invoiceId: string, from: string) =>
    t.request('POST', `/portal/invoices/${invoiceId}/pay`, {
      cookies: { portal_session: portal.session },
      body: new URLSearchParams({ csrf: portal.csrf }).toString(),
      headers: { ...FORM, 'x-forwarded-for': from },
    });
  const checkoutOf = (location: string | null) => /\/pay\/(chk_[0-9A-Za-z]+)$/.exec(location ?? '')?.[1];

  it("the portal's Pay button reuses the invoice's open checkout: many clicks, one checkout", async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const clientId = await client(org);
    const invoiceId = await openInvoice(org, clientId);
    const portal = await portalSession(org, clientId);
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const clicked = await clickPay(portal, invoiceId, freshAddress());
      expectStatus(clicked, 303);
      ids.add(checkoutOf(clicked.headers.get('location'))!);
    }
    // Simultaneous clicks queue on the invoice row and find the same checkout too.
    const together = await Promise.all(Array.from({ length: 5 }, () => clickPay(portal, invoiceId, freshAddress())));
    for (const clicked of together) ids.add(checkoutOf(clicked.headers.get('location'))!);
    expect(ids.size).toBe(1);
    expect(await t.db.query('SELECT id FROM checkouts WHERE invoice_id = $1', [invoiceId])).toHaveLength(1);
  });

  it('a checkout about to expire, or one the merchant made with its own URLs, is not reused by the portal', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const clientId = await client(org);
    const invoiceId = await openInvoice(org, clientId);
    const merchants = await checkout(org, { invoiceId, successUrl: 'https://shop.example/thanks' });
    const portal = await portalSession(org, clientId);
    const first = checkoutOf((await clickPay(portal, invoiceId, freshAddress())).headers.get('location'))!;
    expect(first).not.toBe(merchants);
    await t.db.query("UPDATE checkouts SET expires_at = now() + interval '5 minutes' WHERE id = $1", [first]);
    const second = checkoutOf((await clickPay(portal, invoiceId, freshAddress())).headers.get('location'))!;
    expect([merchants, first]).not.toContain(second);
  });

  it('the attack: Pay clicks and declined cards stop at the invoice limit, and the payer is told when to come back', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const clientId = await client(org);
    const invoiceId = await openInvoice(org, clientId);
    const portal = await portalSession(org, clientId);
    const attacker = freshAddress();
    const answers: number[] = [];
    for (let i = 0; i < 3 * limit('invoice'); i++) {
      const clicked = await clickPay(portal, invoiceId, attacker);
      if (clicked.status !== 303) {
        answers.push(clicked.status);
        continue;
      }
      // Each click may be a new link: paying it is still one more attempt on the same invoice.
      answers.push((await pay(checkoutOf(clicked.headers.get('location'))!, DECLINED, attacker)).status);
    }
    expect(await attemptsReachingProcessor('invoice_id', invoiceId)).toBe(limit('invoice'));
    expect(answers.slice(0, limit('invoice'))).toEqual(Array(limit('invoice')).fill(402));
    expect(new Set(answers.slice(limit('invoice')))).toEqual(new Set([429]));

    // The portal says so, with Retry-After, in its own HTML.
    const refused = await clickPay(portal, invoiceId, attacker);
    expectStatus(refused, 429);
    expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
    expect(refused.text).toContain('too many declined card attempts for this invoice');
    expect(retryAfter(refused)).toBeGreaterThan(23 * 3600);
    expect(retryAfter(refused)).toBeLessThanOrEqual(24 * 3600);

    // Even a good card is refused now, on the existing link (before it reaches the processor) ...
    const [existing] = await t.db.query<{ id: string }>('SELECT id FROM checkouts WHERE invoice_id = $1 ORDER BY created_at DESC LIMIT 1', [invoiceId]);
    const page = await t.request('GET', `/pay/${existing!.id}`, { headers: { 'x-forwarded-for': freshAddress() } });
    expectStatus(page, 429);
    expect(page.text).toContain('This invoice has had too many declined card attempts');
    expect(page.text).not.toContain('<form');
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const good = await pay(existing!.id, GOOD, freshAddress());
    expectStatus(good, 429);
    expect(retryAfter(good)).toBeGreaterThan(0);
    // ... and on a new link the merchant's API would make: 429 rate_limited with Retry-After.
    const viaApi = await api(org, 'POST', '/v1/checkouts', { invoiceId });
    expectProblem(viaApi, 429, 'rate_limited');
    expect(retryAfter(viaApi)).toBeGreaterThan(0);
    expect(await attemptsReachingProcessor('invoice_id', invoiceId)).toBe(limit('invoice'));

    // The window slides: once the declines are a day old, the payer can pay.
    await t.db.query("UPDATE card_failures SET created_at = created_at - interval '24 hours' WHERE invoice_id = $1", [invoiceId]);
    const again = await clickPay(portal, invoiceId, attacker);
    expectStatus(again, 303);
    expectStatus(await pay(checkoutOf(again.headers.get('location'))!, GOOD, attacker), 303);
  });

  it('new links for one invoice through the API give no new attempts', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const invoiceId = await openInvoice(org, await client(org));
    let reached = 0;
    for (let i = 0; i < 3 && reached < limit('invoice') + 5; i++) {
      const id = await checkout(org, { invoiceId });
      for (let j = 0; j < limit('checkout'); j++) {
        if ((await pay(id, DECLINED, freshAddress())).status === 402) reached++;
      }
      if (reached >= limit('invoice')) break;
    }
    expect(reached).toBe(limit('invoice'));
    expectProblem(await api(org, 'POST', '/v1/checkouts', { invoiceId }), 429, 'rate_limited');
  });

  it("declines across one client's invoices stop at the client limit, from whatever address", async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const clientId = await client(org);
    const portal = await portalSession(org, clientId);
    let declined = 0;
    let refusedFor: string | null = null;
    for (let n = 0; n < 4 && refusedFor === null; n++) {
      const invoiceId = await openInvoice(org, clientId);
      for (let i = 0; i < limit('invoice'); i++) {
        const clicked = await clickPay(portal, invoiceId, freshAddress());
        if (clicked.status === 429) {
          refusedFor = clicked.text;
          break;
        }
        expectStatus(clicked, 303);
        expectStatus(await pay(checkoutOf(clicked.headers.get('location'))!, DECLINED, freshAddress()), 402);
        declined++;
      }
    }
    expect(declined).toBe(limit('client'));
    expect(refusedFor).toContain('on your account');
    expect(await attemptsReachingProcessor('client_id', clientId)).toBe(limit('client'));
    // A checkout by amount for that client is refused as well.
    expectProblem(await api(org, 'POST', '/v1/checkouts', { amount: 100, currency: 'EUR', clientId }), 429, 'rate_limited');
    // Another client of the merchant pays as usual.
    const other = await openInvoice(org, await client(org, 'Other'));
    expectStatus(await pay(await checkout(org, { invoiceId: other }), GOOD, freshAddress()), 200);
  });

  it('one address is braked across checkouts and merchants; other addresses still pay', async () => {
    const attacker = freshAddress();
    const orgs = await Promise.all([0, 1, 2].map(() => createOrgWithKey(t, SCOPES)));
    const statuses: number[] = [];
    for (const org of orgs) {
      const id = await checkout(org);
      for (let i = 0; i < 9; i++) statuses.push((await pay(id, DECLINED, attacker)).status);
    }
    expect(statuses.filter((s) => s === 402)).toHaveLength(limit('source'));
    const refused = await pay(await checkout(orgs[0]!), GOOD, attacker);
    expectStatus(refused, 429);
    expect(refused.text).toContain('from your network');
    expect(retryAfter(refused)).toBeGreaterThan(3500);
    expect(retryAfter(refused)).toBeLessThanOrEqual(3600);
    expectStatus(await pay(await checkout(orgs[0]!), GOOD, freshAddress()), 200);
  });

  it('IPv6 addresses of one /64 count as one source', async () => {
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(sourceOf('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceOf('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceOf('not an address')).toBeNull();
    const org = await createOrgWithKey(t, SCOPES);
    const prefix = `2001:db8:${randomBytes(2).toString('hex')}:1`;
    let declined = 0;
    for (let i = 0; i < limit('source') + 3; i++) {
      const id = await checkout(org);
      if ((await pay(id, DECLINED, `${prefix}:${i.toString(16)}::${(i + 1).toString(16)}`)).status === 402) declined++;
    }
    expect(declined).toBe(limit('source'));
  });

  it('a distributed run against one merchant brakes its card payments, not another merchant’s', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const bystander = await createOrgWithKey(t, SCOPES);
    let declined = 0;
    let refused: HttpResult | null = null;
    while (refused === null && declined <= limit('organization')) {
      const id = await checkout(org);
      for (let i = 0; i < limit('checkout') - 1; i++) {
        const result = await pay(id, DECLINED, freshAddress());
        if (result.status === 429) {
          refused = result;
          break;
        }
        expectStatus(result, 402);
        declined++;
      }
    }
    expect(declined).toBe(limit('organization'));
    expect(refused!.text).toContain('This merchant is not accepting card payments right now');
    expect(await attemptsReachingProcessor('organization_id', org.organizationId)).toBe(limit('organization'));
    expectStatus(await pay(await checkout(bystander), GOOD, freshAddress()), 200);
  });

  it('simultaneous declines from one address never pass its limit', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const attacker = freshAddress();
    const ids = await Promise.all(Array.from({ length: limit('source') + 10 }, () => checkout(org)));
    const results = await Promise.all(ids.map((id) => pay(id, DECLINED, attacker)));
    expect(results.filter((r) => r.status === 402)).toHaveLength(limit('source'));
    expect(results.filter((r) => r.status === 429)).toHaveLength(10);
  });

  it('simultaneous declines on one invoice never pass its limit', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const invoiceId = await openInvoice(org, await client(org));
    const ids = await Promise.all([0, 1, 2].map(() => checkout(org, { invoiceId })));
    const results = await Promise.all(ids.flatMap((id) => Array.from({ length: limit('invoice') }, () => pay(id, DECLINED, freshAddress()))));
    expect(results.filter((r) => r.status === 402)).toHaveLength(limit('invoice'));
    expect(await attemptsReachingProcessor('invoice_id', invoiceId)).toBe(limit('invoice'));
  });

  it('the count holds across nodes sharing one database', async () => {
    // A second node on this file's database (it does not own it: close() leaves it alone).
    const database = { url: t.config.databaseUrl!, name: 'shared', drop: async () => undefined };
    const second = await startPaygate({ database, env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      const org = await createOrgWithKey(t, SCOPES);
      const invoiceId = await openInvoice(org, await client(org));
      const ids = await Promise.all([0, 1, 2].map(() => checkout(org, { invoiceId })));
      let declined = 0;
      for (let i = 0; i < 2 * limit('invoice'); i++) {
        const node = i % 2 === 0 ? t : second;
        const result = await node.request('POST', `/pay/${ids[i % 3]}`, { body: `cardNumber=${DECLINED}`, headers: { ...FORM, 'x-forwarded-for': freshAddress() } });
        if (result.status === 402) declined++;
        else expectStatus(result, 429);
      }
      expect(declined).toBe(limit('invoice'));
    } finally {
      await second.close();
    }
  });

  it('refused attempts are not declines: a payer who waits is not kept out longer by retrying', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const id = await checkout(org);
    const from = freshAddress();
    for (let i = 0; i < limit('checkout'); i++) expectStatus(await pay(id, DECLINED, from), 402);
    for (let i = 0; i < 5; i++) expectStatus(await pay(id, DECLINED, from), 429);
    const [{ n }] = (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM card_failures WHERE checkout_id = $1', [id])) as [{ n: number }];
    expect(n).toBe(limit('checkout'));
  });

  it('declines older than every window are purged, with the addresses they name', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const id = await checkout(org);
    const from = freshAddress();
    expectStatus(await pay(id, DECLINED, from), 402);
    expectStatus(await pay(id, DECLINED, from), 402);
    await t.db.query("UPDATE card_failures SET created_at = now() - interval '25 hours' WHERE checkout_id = $1 AND id = (SELECT min(id) FROM card_failures WHERE checkout_id = $1)", [id]);
    await t.services.payments.brake.purge(t.db);
    const rows = await t.db.query<{ source: string }>('SELECT source FROM card_failures WHERE checkout_id = $1', [id]);
    expect(rows).toEqual([{ source: from }]);
    expect(await t.db.query("SELECT 1 FROM card_failures WHERE created_at < now() - interval '24 hours'")).toHaveLength(0);
  });

  it('an unknown invoice id in the portal is still 404, not a brake answer', async () => {
    const org = await createOrgWithKey(t, SCOPES);
    const portal = await portalSession(org, await client(org));
    expectStatus(await clickPay(portal, newId('invoice'), freshAddress()), 404);
  });
});
