/**
 * @paygate/client (packages/client) against a real Paygate on a real port: the key lifecycle, a
 * session acting in an organization, a payment from invoice to refund, and the webhooks that
 * payment sends to a real receiver, each delivery verified with the client's `verifyWebhook`.
 * Everything goes through the client; only the hosted pay page, which a payer's browser submits,
 * is posted directly. The client's rules on their own (retries, keys, errors, pages) are in
 * test/client-units.test.ts.
 */
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPaygateClient, isPaygateError, PaygateError, verifyWebhook, WebhookVerificationError, type PaygateClient, type WebhookEvent } from '../packages/client/src/index.js';
import { generateFiles } from '../packages/client/scripts/generate-files.js';
import { createOrgWithKey, createUser, startPaygate, type TestApp } from './harness.js';
import { startWebhookReceiver, type ReceivedHook, type WebhookReceiver } from './webhook-receiver.js';

const GOOD_CARD = '4242424242424242';
const TOKEN = /^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/;

/** The error a promise rejects with (fails the test when it resolves). */
async function rejection(promise: PromiseLike<unknown>): Promise<PaygateError> {
  const outcome = await Promise.resolve(promise).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a PaygateError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(PaygateError);
  return outcome.error as PaygateError;
}

describe('@paygate/client against a real Paygate', () => {
  let t: TestApp;
  let receiver: WebhookReceiver;
  const as = (token: string, options: { organizationId?: string; fetch?: (request: Request) => Promise<Response> } = {}): PaygateClient =>
    createPaygateClient({ baseUrl: t.url, token, ...options });

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    // PAYGATE_WEBHOOK_ALLOW_PRIVATE: the receiver is on 127.0.0.1. Trusted proxy: the pay page is
    // posted from an address of its own per payment (the card-testing brake counts per address).
    t = await startPaygate({ env: { PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true', PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('its committed generated types are those of the running server\'s OpenAPI document', async () => {
    const document = (await (await fetch(`${t.url}/openapi.json`)).json()) as Record<string, unknown>;
    const files = await generateFiles(document);
    for (const [name, text] of Object.entries(files)) {
      const committed = await readFile(new URL(`../packages/client/src/generated/${name}`, import.meta.url), 'utf8');
      expect(committed === text, `packages/client/src/generated/${name} is not generated from the current document: run npm run generate:client`).toBe(true);
    }
  });

  describe('API keys', () => {
    it('creates, lists, edits, rotates with a grace period, revokes and deletes a key', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'client:read', 'client:create']);
      const manager = as(org.token);

      const created = await manager.apiKeys.create({ name: 'billing bridge', scopes: ['client:read'] });
      expect(created.secret).toMatch(TOKEN);
      const bridge = as(created.secret!);
      expect(await bridge.auth.whoami()).toMatchObject({ type: 'api_key', keyId: created.id, tier: 'organization', organizationId: org.organizationId, scopes: ['client:read'] });

      const listed: string[] = [];
      for await (const key of manager.apiKeys.list({ limit: 1 })) listed.push(key.id);
      expect(listed.sort()).toEqual([created.id, org.keyId].sort());

      const edited = await manager.apiKeys.update(created.id, { name: 'billing bridge v2', description: 'nightly sync' });
      expect(edited).toMatchObject({ id: created.id, name: 'billing bridge v2', description: 'nightly sync' });
      expect(edited).not.toHaveProperty('secret');
      expect(await manager.apiKeys.get(created.id)).toMatchObject({ name: 'billing bridge v2' });

      const rotated = await manager.apiKeys.rotate(created.id, { gracePeriodMinutes: 60 });
      expect(rotated.id).toBe(created.id);
      expect(rotated.secret).toMatch(TOKEN);
      expect(rotated.secret).not.toBe(created.secret);
      // Both secrets work during the grace period.
      expect(await as(rotated.secret!).auth.whoami()).toMatchObject({ keyId: created.id });
      expect(await bridge.auth.whoami()).toMatchObject({ keyId: created.id });

      expect(await manager.apiKeys.revoke(created.id)).toMatchObject({ id: created.id, status: 'revoked' });
      const revoked = await rejection(as(rotated.secret!).auth.whoami());
      expect(revoked).toMatchObject({ status: 401, code: 'api_key_revoked' });
      expect(revoked.requestId).toMatch(/^req_/);

      await manager.apiKeys.delete(created.id);
      expect(await rejection(manager.apiKeys.get(created.id))).toMatchObject({ status: 404, code: 'not_found' });
    });

    it('throws the API\'s refusals as PaygateErrors: the scope a call needs, the fields a validation names', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
      const manager = as(org.token);

      const missingScope = await rejection(manager.clients.create({ name: 'Ada', email: 'ada@example.com' }));
      expect(missingScope).toMatchObject({ status: 403, code: 'insufficient_scope', requiredScope: 'client:create' });
      expect(missingScope.message).toContain('insufficient_scope');

      const escalation = await rejection(manager.apiKeys.create({ name: 'too broad', scopes: ['invoice:read'] }));
      expect(escalation).toMatchObject({ status: 403, code: 'insufficient_scope' });
      expect(escalation.detail).toContain('invoice:read');

      // Not scopes at all (the types refuse them too): the server must answer 400.
      const invalid = await rejection(manager.apiKeys.create({ name: 'bad', scopes: ['nothing:read', 'client:fly'] as never }));
      expect(invalid).toMatchObject({ status: 400, code: 'validation_error' });
      expect(invalid.errors.length).toBeGreaterThan(0);
      for (const issue of invalid.errors) expect(issue).toEqual({ path: expect.any(String), message: expect.any(String) });
    });

    it('a session names its organization with organizationId; without one, organization routes refuse', async () => {
      const org = await createOrgWithKey(t, ['api_key:*']);
      const admin = await createUser(t, { globalAdmin: true });
      const signIn = await createPaygateClient({ baseUrl: t.url }).auth.login({ email: admin.email, password: admin.password });
      const session = as(signIn.token);

      expect(await rejection(session.apiKeys.list())).toMatchObject({ status: 400, code: 'organization_required' });
      const inOrg = session.withOrganization(org.organizationId);
      expect((await inOrg.apiKeys.list().toArray()).map((key) => key.id)).toEqual([org.keyId]);
      const made = await inOrg.apiKeys.create({ name: 'made by a session', scopes: ['api_key:read'] });
      expect(made.secret).toMatch(TOKEN);
      expect(await as(made.secret!).auth.whoami()).toMatchObject({ organizationId: org.organizationId });
    });

    it('waits out a key\'s rate limit (429 with Retry-After) and retries a read', async () => {
      const org = await createOrgWithKey(t, ['api_key:*']);
      const limited = await as(org.token).apiKeys.create({ name: 'throttled', scopes: ['api_key:read'], rateLimit: { requests: 1, windowSeconds: 1 } });
      const statuses: number[] = [];
      const paygate = as(limited.secret!, {
        fetch: async (request) => {
          const response = await fetch(request);
          statuses.push(response.status);
          return response;
        },
      });
      for (let i = 0; i < 3; i++) expect(await paygate.auth.whoami()).toMatchObject({ keyId: limited.id });
      // One request per 1-second window: a call made inside an open window got 429 and was retried.
      expect(statuses).toContain(429);
      expect(statuses.filter((status) => status === 200)).toHaveLength(3);
    });
  });

  describe('payments', () => {
    it('client, invoice, finalize, checkout, payment on the hosted page, refund', async () => {
      const org = await createOrgWithKey(t, ['client:*', 'invoice:*', 'checkout:*', 'transaction:*']);
      const paygate = as(org.token);

      const client = await paygate.clients.create({ name: 'Ada Lovelace', email: 'ada@example.com' });
      expect(client).toMatchObject({ object: 'client', name: 'Ada Lovelace' });
      const draft = await paygate.invoices.create({ clientId: client.id, currency: 'EUR', lines: [{ description: 'Analytical engine', quantity: 2, unitAmount: 1250 }] });
      expect(draft).toMatchObject({ status: 'draft', total: 2500 });
      const invoice = await paygate.invoices.finalize(draft.id);
      expect(invoice).toMatchObject({ id: draft.id, status: 'open' });

      const checkout = await paygate.checkouts.create({ invoiceId: invoice.id });
      expect(checkout).toMatchObject({ status: 'open', amount: 2500, currency: 'EUR', clientId: client.id, invoiceId: invoice.id });
      await payOnHostedPage(checkout.url);

      const paid = await paygate.checkouts.get(checkout.id);
      expect(paid).toMatchObject({ status: 'completed' });
      expect(await paygate.invoices.get(invoice.id)).toMatchObject({ status: 'paid' });
      const transaction = await paygate.transactions.get(paid.transactionId!);
      expect(transaction).toMatchObject({ status: 'succeeded', amount: 2500, amountRefunded: 0, checkoutId: checkout.id });

      const refund = await paygate.refunds.create(transaction.id, { amount: 1000 });
      expect(refund).toMatchObject({ object: 'refund', transactionId: transaction.id, amount: 1000 });
      const rest = await paygate.refunds.create(transaction.id);
      expect(rest).toMatchObject({ amount: 1500 });
      expect(await paygate.transactions.get(transaction.id)).toMatchObject({ amountRefunded: 2500 });
      expect(await rejection(paygate.refunds.create(transaction.id, { amount: 1 }))).toMatchObject({ status: 400, code: 'validation_error' });
    });

    it('a create sent twice with one Idempotency-Key makes one object; each call otherwise gets a key of its own', async () => {
      const org = await createOrgWithKey(t, ['client:*']);
      const sent: Array<string | null> = [];
      const paygate = as(org.token, {
        fetch: (request) => {
          sent.push(request.headers.get('idempotency-key'));
          return fetch(request);
        },
      });
      const body = { name: 'Grace Hopper', email: 'grace@example.com' };
      const first = await paygate.clients.create(body, { idempotencyKey: 'order-1' });
      const again = await paygate.clients.create(body, { idempotencyKey: 'order-1' });
      expect(again.id).toBe(first.id);
      expect(await rejection(paygate.clients.create({ ...body, name: 'Someone else' }, { idempotencyKey: 'order-1' }))).toMatchObject({ status: 409, code: 'idempotency_conflict' });

      sent.length = 0;
      const one = await paygate.clients.create(body);
      const two = await paygate.clients.create(body);
      expect(one.id).not.toBe(two.id);
      expect(sent).toHaveLength(2);
      expect(sent[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(sent[1]).not.toBe(sent[0]);
    });

    it('pages through a list with for await, following hasMore', async () => {
      const org = await createOrgWithKey(t, ['client:*']);
      const paygate = as(org.token);
      const made: string[] = [];
      for (let i = 0; i < 5; i++) made.push((await paygate.clients.create({ name: `Client ${i}`, email: `c${i}@example.com` })).id);
      const pages: number[] = [];
      for await (const page of paygate.clients.list({ limit: 2 }).pages()) pages.push(page.data.length);
      expect(pages).toEqual([2, 2, 1]);
      const seen: string[] = [];
      for await (const client of paygate.clients.list({ limit: 2 })) seen.push(client.id);
      expect(seen).toEqual([...made].reverse());
    });
  });

  describe('webhooks', () => {
    it('every delivery of a payment verifies with verifyWebhook and returns the event delivered', async () => {
      const org = await createOrgWithKey(t, ['webhook:*', 'client:*', 'invoice:*', 'checkout:*', 'transaction:*']);
      const paygate = as(org.token);
      const endpoint = await paygate.webhookEndpoints.create({ url: receiver.urlFor('payments'), events: ['*'], description: 'fulfilment' });
      expect(endpoint.secret).toMatch(/^whsec_[0-9A-Za-z]{43}$/);

      const client = await paygate.clients.create({ name: 'Ada', email: 'ada@example.com' });
      const invoice = await paygate.invoices.finalize((await paygate.invoices.create({ clientId: client.id, currency: 'EUR', lines: [{ description: 'x', quantity: 1, unitAmount: 900 }] })).id);
      const checkout = await paygate.checkouts.create({ invoiceId: invoice.id });
      await payOnHostedPage(checkout.url);
      const transactionId = (await paygate.checkouts.get(checkout.id)).transactionId!;
      const refund = await paygate.refunds.create(transactionId);

      const expected = ['invoice.finalized', 'checkout.completed', 'transaction.succeeded', 'invoice.paid', 'refund.created'];
      const hooks = await receiver.waitFor(() => expected.every((type) => receiver.to('payments').some((hook) => hook.json?.type === type)), expected.join(', '));
      const events: WebhookEvent[] = [];
      for (const hook of hooks.filter((h) => h.path === '/hooks/payments')) {
        const event = await verifyWebhook(hook.body, hook.headers['paygate-signature'], endpoint.secret!);
        expect(event).toEqual(hook.json);
        expect(hook.headers['paygate-event-id']).toBe(event.id);
        events.push(event);
      }
      const byType = new Map(events.map((event) => [event.type, event]));
      expect(byType.get('checkout.completed')?.data.object).toMatchObject({ id: checkout.id, status: 'completed' });
      expect(byType.get('refund.created')?.data.object).toMatchObject({ id: refund.id, amount: 900 });
      for (const event of events) expect(event.organizationId).toBe(org.organizationId);

      // What a receiver must refuse: another secret, a changed body, a replay outside the tolerance.
      const hook = hooks.find((h) => h.json?.type === 'refund.created')!;
      const reason = (promise: Promise<unknown>) => promise.then(() => 'verified', (error: unknown) => (error instanceof WebhookVerificationError ? error.reason : String(error)));
      expect(await reason(verifyWebhook(hook.body, hook.headers['paygate-signature'], 'whsec_not_the_secret'))).toBe('signature_mismatch');
      expect(await reason(verifyWebhook(hook.body.replace('"amount":900', '"amount":9'), hook.headers['paygate-signature'], endpoint.secret!))).toBe('signature_mismatch');
      expect(await reason(verifyWebhook(hook.body, hook.headers['paygate-signature'], endpoint.secret!, { now: Date.now() + 301_000 }))).toBe('timestamp_outside_tolerance');
    });

    it('during a secret rotation a delivery verifies with the new secret and with the previous one', async () => {
      const org = await createOrgWithKey(t, ['webhook:*']);
      const paygate = as(org.token);
      const endpoint = await paygate.webhookEndpoints.create({ url: receiver.urlFor('rotation'), events: ['checkout.completed'] });
      const rotated = await paygate.webhookEndpoints.rotateSecret(endpoint.id, { gracePeriodMinutes: 60 });
      expect(rotated.secret).toMatch(/^whsec_/);
      expect(rotated.secret).not.toBe(endpoint.secret);

      const delivery = await paygate.webhookEndpoints.sendTest(endpoint.id);
      const hook: ReceivedHook = await receiver.next('webhook_endpoint.test', (h) => h.path === '/hooks/rotation');
      const header = hook.headers['paygate-signature'];
      expect(String(header).match(/v1=/g)).toHaveLength(2);
      for (const secrets of [rotated.secret!, endpoint.secret!, [endpoint.secret!, rotated.secret!]]) {
        expect(await verifyWebhook(hook.body, header, secrets)).toMatchObject({ type: 'webhook_endpoint.test', data: { object: { id: endpoint.id } } });
      }

      // The delivery is listed, and its status read through the paginated deliveries.
      await expect
        .poll(async () => (await paygate.webhookEndpoints.deliveries(endpoint.id).toArray()).find((d) => d.id === delivery.id)?.status)
        .toBe('succeeded');
    });
  });

  /** Pays a checkout as a payer's browser does: the hosted page's form, with the test card that succeeds. */
  async function payOnHostedPage(url: string): Promise<void> {
    const response = await fetch(url.replace(t.config.publicUrl, t.url), {
      method: 'POST',
      body: new URLSearchParams({ cardNumber: GOOD_CARD }),
      headers: { 'x-forwarded-for': `198.18.${randomInt(256)}.${randomInt(256)}` },
      redirect: 'manual',
    });
    expect(response.status, await response.text()).toBeLessThan(400);
  }

  it('isPaygateError tells a refusal by its code', async () => {
    const error = await rejection(as('sk_not_a_key').auth.whoami());
    expect(isPaygateError(error, 'invalid_api_key')).toBe(true);
    expect(isPaygateError(error, 'not_found')).toBe(false);
  });
});
