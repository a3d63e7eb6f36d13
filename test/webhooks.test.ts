/**
 * Webhooks (SPEC §16) end to end: a real Paygate delivering to a real HTTP receiver on 127.0.0.1
 * (PAYGATE_WEBHOOK_ALLOW_PRIVATE=true lets it), whose signatures the test verifies with its own
 * implementation of the contract's rule (test/webhook-receiver.ts). Time is moved by setting row
 * timestamps in the past, never by waiting: the worker reads every deadline from the database clock.
 */
import { randomBytes, randomInt } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrgWithKey,
  createTestDatabase,
  createUser,
  expectProblem,
  expectStatus,
  startPaygate,
  type OrgWithKey,
  type TestApp,
  type TestDatabase,
} from './harness.js';
import { signaturesOf, startWebhookReceiver, verifySignature, type ReceivedHook, type WebhookReceiver } from './webhook-receiver.js';
import { startMailReceiver, type MailReceiver } from './mail-receiver.js';

const GOOD_CARD = '4242424242424242';
const DECLINED_CARD = '4000000000000002';
const SCOPES = ['webhook:*', 'checkout:*', 'transaction:*', 'client:*', 'invoice:*', 'api_key:*', 'portal:create', 'data_io:*', 'audit:read'];
const ALLOW_PRIVATE = { PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true' };

/** Polls `probe` until it returns a value that is not undefined/false (10 s at most, then fails naming `what`). */
async function eventually<T>(probe: () => Promise<T | undefined | false | null>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false && value !== null) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last !== undefined ? `: ${JSON.stringify(last)}` : ''}`);
    last = value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const unique = () => randomBytes(4).toString('hex');

/** What a test needs to drive one server's webhooks. */
function client(t: TestApp, receiver: WebhookReceiver) {
  const api = (method: string, path: string, token: string, body?: unknown) => t.request(method, path, { token, body });
  return {
    api,
    /** An endpoint at a path of its own (`/hooks/<name>`) of this receiver. */
    async endpoint(org: OrgWithKey, options: { events?: string[]; name?: string; url?: string } = {}) {
      const name = options.name ?? unique();
      const created = await api('POST', '/v1/webhook-endpoints', org.token, { url: options.url ?? receiver.urlFor(name), events: options.events ?? ['*'] });
      expectStatus(created, 201);
      return { ...(created.body as { id: string; secret: string; url: string; events: string[]; status: string }), name };
    },
    async deliveries(org: OrgWithKey, endpointId: string, query = '') {
      const list = await api('GET', `/v1/webhook-endpoints/${endpointId}/deliveries${query}`, org.token);
      expectStatus(list, 200);
      return list.body.data as any[];
    },
    /** The delivery once `predicate` holds for it (polled through the API). */
    async delivery(org: OrgWithKey, endpointId: string, predicate: (d: any) => boolean, what: string) {
      return eventually(async () => (await this.deliveries(org, endpointId)).find(predicate), what);
    },
    async sendTest(org: OrgWithKey, endpointId: string) {
      const sent = await api('POST', `/v1/webhook-endpoints/${endpointId}/test`, org.token);
      expectStatus(sent, 202);
      return sent.body as { id: string; eventId: string; status: string };
    },
    async paidCheckout(org: OrgWithKey, body: Record<string, unknown> = { amount: 1999, currency: 'EUR' }, card = GOOD_CARD) {
      const checkout = await api('POST', '/v1/checkouts', org.token, body);
      expectStatus(checkout, 201);
      const paid = await t.request('POST', `/pay/${checkout.body.id}`, {
        body: `cardNumber=${card}`,
        // An address of its own per attempt: the card-testing brake's per-address count stays out of it.
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': `198.18.${randomInt(256)}.${randomInt(256)}` },
      });
      expect(paid.status, paid.text).toBeLessThan(500);
      return checkout.body.id as string;
    },
  };
}

describe('webhooks on one node', () => {
  let t: TestApp;
  let mail: MailReceiver;
  let receiver: WebhookReceiver;
  let w: ReturnType<typeof client>;

  beforeAll(async () => {
    mail = await startMailReceiver();
    t = await startPaygate({ env: { ...ALLOW_PRIVATE, PAYGATE_TRUSTED_PROXIES: '127.0.0.1', ...mail.env } });
    receiver = await startWebhookReceiver();
    w = client(t, receiver);
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await mail?.close();
  });

  const org = () => createOrgWithKey(t, SCOPES);

  describe('endpoints', () => {
    it('the secret appears in the create answer only, and is stored sealed, never in clear', async () => {
      const o = await org();
      const created = await w.endpoint(o, { events: ['checkout.completed', 'invoice.paid', 'checkout.completed'] });
      expect(created.secret).toMatch(/^whsec_[0-9A-Za-z]{43}$/);
      expect(created).toMatchObject({ object: 'webhook_endpoint', status: 'enabled', events: ['checkout.completed', 'invoice.paid'], description: null, previousSecretExpiresAt: null });
      expect(created.id).toMatch(/^whe_[0-9A-Za-z]{22}$/);
      const got = await w.api('GET', `/v1/webhook-endpoints/${created.id}`, o.token);
      expectStatus(got, 200);
      expect(got.body).not.toHaveProperty('secret');
      const { secret: _secret, name: _name, ...rest } = created;
      expect(got.body).toEqual(rest);
      const list = await w.api('GET', '/v1/webhook-endpoints', o.token);
      expect(list.body.data.map((e: any) => e.id)).toEqual([created.id]);
      expect(list.text).not.toContain('whsec_');
      // The row holds the secret sealed; neither it nor the audit log holds it in clear.
      const [row] = await t.db.query<{ secret_sealed: Buffer }>('SELECT secret_sealed FROM webhook_endpoints WHERE id = $1', [created.id]);
      expect(row!.secret_sealed.includes(Buffer.from(created.secret))).toBe(false);
      expect(row!.secret_sealed.includes(Buffer.from(created.secret.slice(6)))).toBe(false);
      const audit = await w.api('GET', '/v1/audit-events?action=webhook_endpoint.created', o.token);
      expect(audit.body.data).toHaveLength(1);
      expect(audit.body.data[0]).toMatchObject({ target: { type: 'webhook_endpoint', id: created.id }, details: { events: ['checkout.completed', 'invoice.paid'] } });
      expect(JSON.stringify(audit.body)).not.toContain(created.secret.slice(6));
    });

    it('events are known types or ["*"] alone; bad input is 400 naming the field', async () => {
      const o = await org();
      const bad = async (body: unknown, path: string) => {
        const result = await w.api('POST', '/v1/webhook-endpoints', o.token, body);
        expectProblem(result, 400, 'validation_error');
        expect(result.body.errors.map((e: any) => e.path), result.text).toContain(path);
      };
      await bad({ url: receiver.url, events: ['checkout.paid'] }, '/events/0');
      await bad({ url: receiver.url, events: [] }, '/events');
      await bad({ url: receiver.url, events: ['webhook_endpoint.test'] }, '/events/0');
      await bad({ url: receiver.url }, '/events');
      await bad({ url: 'not a url', events: ['*'] }, '/url');
      await bad({ url: 'ftp://127.0.0.1/x', events: ['*'] }, '/url');
      await bad({ url: 'http://user:pass@127.0.0.1/x', events: ['*'] }, '/url');
      await bad({ url: receiver.url, events: ['*'], secret: 'whsec_mine' }, '/secret');
      const star = await w.endpoint(o, { events: ['invoice.paid', '*'] });
      expect(star.events).toEqual(['*']);
    });

    it('PATCH changes url, events, description and status, audited with what changed; DELETE removes it', async () => {
      const o = await org();
      const created = await w.endpoint(o, { events: ['invoice.paid'] });
      const patched = await w.api('PATCH', `/v1/webhook-endpoints/${created.id}`, o.token, { events: ['refund.created'], description: 'books', status: 'disabled' });
      expectStatus(patched, 200);
      expect(patched.body).toMatchObject({ events: ['refund.created'], description: 'books', status: 'disabled' });
      expect(patched.body).not.toHaveProperty('secret');
      expectProblem(await w.api('PATCH', `/v1/webhook-endpoints/${created.id}`, o.token, {}), 400, 'validation_error');
      const audit = await w.api('GET', '/v1/audit-events?action=webhook_endpoint.updated', o.token);
      expect(audit.body.data[0].details).toMatchObject({ fields: ['events', 'description', 'status'], status: { from: 'enabled', to: 'disabled' }, events: { from: ['invoice.paid'], to: ['refund.created'] } });
      expectStatus(await w.api('DELETE', `/v1/webhook-endpoints/${created.id}`, o.token), 204);
      expectProblem(await w.api('GET', `/v1/webhook-endpoints/${created.id}`, o.token), 404, 'not_found');
      const deleted = await w.api('GET', '/v1/audit-events?action=webhook_endpoint.deleted', o.token);
      expect(deleted.body.data[0].target).toEqual({ type: 'webhook_endpoint', id: created.id });
    });

    it("another organization's endpoint and its deliveries are not found", async () => {
      const mine = await org();
      const theirs = await org();
      const own = await w.endpoint(mine);
      const other = await w.endpoint(theirs);
      const theirDelivery = await w.sendTest(theirs, other.id);
      for (const [method, path, body] of [
        ['GET', `/v1/webhook-endpoints/${other.id}`],
        ['PATCH', `/v1/webhook-endpoints/${other.id}`, { description: 'mine now' }],
        ['DELETE', `/v1/webhook-endpoints/${other.id}`],
        ['POST', `/v1/webhook-endpoints/${other.id}/rotate-secret`, {}],
        ['GET', `/v1/webhook-endpoints/${other.id}/deliveries`],
        ['POST', `/v1/webhook-endpoints/${other.id}/test`, {}],
        ['POST', `/v1/webhook-endpoints/${other.id}/deliveries/${theirDelivery.id}/retry`, {}],
        // Their delivery under my endpoint is not mine either.
        ['POST', `/v1/webhook-endpoints/${own.id}/deliveries/${theirDelivery.id}/retry`, {}],
      ] as const) {
        expectProblem(await w.api(method, path, mine.token, body), 404, 'not_found');
      }
      const list = await w.api('GET', '/v1/webhook-endpoints', mine.token);
      expect(list.body.data.map((e: any) => e.id)).toEqual([own.id]);
      expectProblem(await w.api('GET', `/v1/webhook-endpoints?startingAfter=${other.id}`, mine.token), 404, 'not_found');
      // Their endpoint is untouched and still gets its test event.
      await receiver.next('webhook_endpoint.test', (h) => h.path === `/hooks/${other.name}`);
    });
  });

  describe('events', () => {
    it('a paid checkout sends checkout.completed and transaction.succeeded, signed with the endpoint secret', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      const checkoutId = await w.paidCheckout(o);
      const completed = await receiver.next('checkout.completed', (h) => h.json.data.object.id === checkoutId);
      const succeeded = await receiver.next('transaction.succeeded', (h) => h.json.data.object.checkoutId === checkoutId);
      for (const hook of [completed, succeeded]) {
        expect(hook.path).toBe(`/hooks/${created.name}`);
        expect(hook.method).toBe('POST');
        expect(hook.headers['content-type']).toBe('application/json');
        expect(hook.headers['paygate-event-id']).toBe(hook.json.id);
        expect(hook.headers['paygate-attempt-id']).toMatch(/^wha_[0-9A-Za-z]{22}$/);
        expect(signaturesOf(hook.headers['paygate-signature'])).toHaveLength(1);
        expect(verifySignature(hook.headers['paygate-signature'], hook.body, created.secret), String(hook.headers['paygate-signature'])).toBe(true);
        // A signature is over this body and this timestamp: another body does not verify.
        expect(verifySignature(hook.headers['paygate-signature'], `${hook.body} `, created.secret)).toBe(false);
        expect(Object.keys(hook.json)).toEqual(['id', 'object', 'type', 'createdAt', 'organizationId', 'data']);
        expect(hook.json).toMatchObject({ object: 'event', organizationId: o.organizationId });
        expect(hook.json.id).toMatch(/^wev_[0-9A-Za-z]{22}$/);
      }
      // data.object is what the API returns for the object.
      expect(completed.json.data.object).toEqual((await w.api('GET', `/v1/checkouts/${checkoutId}`, o.token)).body);
      expect(succeeded.json.data.object).toEqual((await w.api('GET', `/v1/transactions/${completed.json.data.object.transactionId}`, o.token)).body);
      const deliveries = await w.delivery(o, created.id, (d) => d.eventId === completed.json.id && d.status === 'succeeded', 'the delivery recorded as succeeded');
      expect(deliveries).toMatchObject({ object: 'webhook_delivery', eventType: 'checkout.completed', attempts: 1, responseStatus: 200, nextAttemptAt: null });
      expect(deliveries.recentAttempts[0]).toMatchObject({ id: completed.headers['paygate-attempt-id'], outcome: 'succeeded', responseStatus: 200, responseBody: 'answered 200' });
      expect(await t.services.metrics.registry.getSingleMetricAsString('paygate_webhook_deliveries_total')).toMatch(/outcome="succeeded"} [1-9]/);
    });

    it('an endpoint gets only the types it subscribes to', async () => {
      const o = await org();
      const narrow = await w.endpoint(o, { events: ['checkout.completed'] });
      const wide = await w.endpoint(o, { events: ['*'] });
      const checkoutId = await w.paidCheckout(o);
      await receiver.waitFor(() => receiver.to(wide.name).length >= 2, 'both events at the wide endpoint');
      // Both events were fanned out (the wide endpoint has them), so the narrow one's deliveries are final.
      const narrowDeliveries = await w.deliveries(o, narrow.id);
      expect(narrowDeliveries.map((d) => d.eventType)).toEqual(['checkout.completed']);
      await receiver.next('checkout.completed', (h) => h.path === `/hooks/${narrow.name}` && h.json.data.object.id === checkoutId);
      expect(receiver.to(narrow.name).map((h) => h.json.type)).toEqual(['checkout.completed']);
    });

    it("a key's events carry the key as the API shows it, never its secret", async () => {
      const o = await org();
      const created = await w.endpoint(o, { events: ['api_key.created', 'api_key.updated', 'api_key.rotated', 'api_key.revoked', 'api_key.deleted'] });
      const key = await w.api('POST', '/v1/api-keys', o.token, { name: 'bridge', scopes: ['client:read'] });
      expectStatus(key, 201);
      const made = await receiver.next('api_key.created', (h) => h.json.data.object.id === key.body.id);
      expect(made.json.data.object).not.toHaveProperty('secret');
      expect(made.body).not.toContain(key.body.secret);
      expect(made.json.data.object).toEqual((await w.api('GET', `/v1/api-keys/${key.body.id}`, o.token)).body);
      const rotated = await w.api('POST', `/v1/api-keys/${key.body.id}/rotate`, o.token, { gracePeriodMinutes: 0 });
      expectStatus(await w.api('PATCH', `/v1/api-keys/${key.body.id}`, o.token, { name: 'renamed' }), 200);
      expectStatus(await w.api('POST', `/v1/api-keys/${key.body.id}/revoke`, o.token), 200);
      expectStatus(await w.api('DELETE', `/v1/api-keys/${key.body.id}`, o.token), 204);
      for (const type of ['api_key.rotated', 'api_key.updated', 'api_key.revoked', 'api_key.deleted']) {
        const hook = await receiver.next(type, (h) => h.json.data.object.id === key.body.id);
        expect(hook.body).not.toContain(rotated.body.secret.split('.')[1]);
        expect(hook.json.data.object).not.toHaveProperty('secret');
      }
      expect(receiver.to(created.name).filter((h) => h.json.data.object.id === key.body.id).map((h) => h.json.type)).toEqual([
        'api_key.created', 'api_key.rotated', 'api_key.updated', 'api_key.revoked', 'api_key.deleted',
      ]);
    });

    it('invoices, refunds, declines, portal links, data jobs and expired checkouts each send their event', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      const mine = (type: string, id?: string) => receiver.next(type, (h) => h.path === `/hooks/${created.name}` && (id === undefined || h.json.data.object.id === id));
      const client = (await w.api('POST', '/v1/clients', o.token, { name: 'Payer', email: 'payer@example.com' })).body.id;
      const lines = [{ description: 'Book', quantity: 1, unitAmount: 2500 }];

      const invoice = (await w.api('POST', '/v1/invoices', o.token, { clientId: client, currency: 'EUR', lines })).body.id;
      const finalized = await w.api('POST', `/v1/invoices/${invoice}/finalize`, o.token);
      expect((await mine('invoice.finalized', invoice)).json.data.object).toEqual(finalized.body);
      await w.paidCheckout(o, { invoiceId: invoice });
      expect((await mine('invoice.paid', invoice)).json.data.object).toEqual((await w.api('GET', `/v1/invoices/${invoice}`, o.token)).body);

      // A recurring schedule's invoice is issued open: finalized, for a receiver.
      const schedule = (await w.api('POST', '/v1/recurring-schedules', o.token, { clientId: client, interval: 'month', template: { currency: 'EUR', lines } })).body.id;
      const run = await w.api('POST', `/v1/recurring-schedules/${schedule}/run`, o.token);
      expectStatus(run, 201);
      expect((await mine('invoice.finalized', run.body.id)).json.data.object).toEqual(run.body);

      const toVoid = (await w.api('POST', '/v1/invoices', o.token, { clientId: client, currency: 'EUR', lines })).body.id;
      await w.api('POST', `/v1/invoices/${toVoid}/finalize`, o.token);
      const voided = await w.api('POST', `/v1/invoices/${toVoid}/void`, o.token);
      expect((await mine('invoice.voided', toVoid)).json.data.object).toEqual(voided.body);

      const declined = await w.paidCheckout(o, { amount: 500, currency: 'EUR' }, DECLINED_CARD);
      const failed = await receiver.next('transaction.failed', (h) => h.json.data.object.checkoutId === declined);
      expect(failed.json.data.object).toMatchObject({ status: 'failed', failureCode: 'card_declined' });

      const paid = await w.paidCheckout(o);
      const transactionId = (await w.api('GET', `/v1/checkouts/${paid}`, o.token)).body.transactionId;
      const refund = await w.api('POST', `/v1/transactions/${transactionId}/refunds`, o.token, { amount: 100 });
      expectStatus(refund, 201);
      expect((await mine('refund.created', refund.body.id)).json.data.object).toEqual(refund.body);

      const link = await w.api('POST', '/v1/portal/magic-links', o.token, { clientId: client });
      const token = new URL(link.body.url).searchParams.get('token')!;
      const login = await t.request('POST', '/portal/login', { body: new URLSearchParams({ token }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expectStatus(login, 303);
      const redeemed = await mine('portal_link.redeemed', link.body.id);
      expect(redeemed.json.data.object).toMatchObject({ id: link.body.id, object: 'portal_link', clientId: client });
      expect(redeemed.body).not.toContain(token);

      const exported = await w.api('POST', '/v1/data-io/exports', o.token, { resource: 'clients', format: 'json' });
      const done = await mine('data_io.job_completed', exported.body.id);
      expect(done.json.data.object).toMatchObject({ id: exported.body.id, status: 'completed', rowCount: 1 });
      const imported = await t.request('POST', '/v1/data-io/imports', { token: o.token, body: 'name,email\n,not-an-email\n', headers: { 'content-type': 'text/csv' } });
      expectStatus(imported, 202);
      expect((await mine('data_io.job_failed', imported.body.id)).json.data.object).toMatchObject({ id: imported.body.id, status: 'failed' });

      const expiring = (await w.api('POST', '/v1/checkouts', o.token, { amount: 700, currency: 'EUR' })).body.id;
      await t.db.query("UPDATE checkouts SET expires_at = now() - interval '1 second' WHERE id = $1", [expiring]);
      expect(await t.services.payments.checkouts.expireDue()).toBeGreaterThanOrEqual(1);
      expect((await mine('checkout.expired', expiring)).json.data.object).toEqual((await w.api('GET', `/v1/checkouts/${expiring}`, o.token)).body);
      // Once: the sweep stored it, so a later sweep or a late payment attempt sends nothing more.
      await t.services.payments.checkouts.expireDue();
      const late = await t.request('POST', `/pay/${expiring}`, { body: `cardNumber=${GOOD_CARD}`, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '198.18.0.1' } });
      expect(late.status, late.text).toBe(410);
      const [{ n }] = (await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_events WHERE type = 'checkout.expired' AND body LIKE $1", [`%${expiring}%`])) as [{ n: number }];
      expect(n).toBe(1);
      // A payment attempt that finds a checkout expired before the sweep did stores it, and sends the event.
      const unswept = (await w.api('POST', '/v1/checkouts', o.token, { amount: 800, currency: 'EUR' })).body.id;
      await t.db.query("UPDATE checkouts SET expires_at = now() - interval '1 second' WHERE id = $1", [unswept]);
      expect((await t.request('POST', `/pay/${unswept}`, { body: `cardNumber=${GOOD_CARD}`, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': '198.18.0.2' } })).status).toBe(410);
      expect((await mine('checkout.expired', unswept)).json.data.object).toMatchObject({ id: unswept, status: 'expired' });
    });

    it('the test event goes to that endpoint alone, whatever it subscribes to, and carries the endpoint without its secret', async () => {
      const o = await org();
      const target = await w.endpoint(o, { events: ['invoice.paid'] });
      const bystander = await w.endpoint(o);
      const queued = await w.sendTest(o, target.id);
      expect(queued).toMatchObject({ object: 'webhook_delivery', endpointId: target.id, eventType: 'webhook_endpoint.test', status: 'pending', attempts: 0 });
      const hook = await receiver.next('webhook_endpoint.test', (h) => h.json.id === queued.eventId);
      expect(hook.path).toBe(`/hooks/${target.name}`);
      expect(verifySignature(hook.headers['paygate-signature'], hook.body, target.secret)).toBe(true);
      expect(hook.json.data.object).toEqual((await w.api('GET', `/v1/webhook-endpoints/${target.id}`, o.token)).body);
      expect(hook.body).not.toContain(target.secret);
      expect(await w.deliveries(o, bystander.id)).toEqual([]);
    });
  });

  describe('rollback', () => {
    let owner: pg.Client;
    beforeAll(async () => {
      // Fault injection with the owner's rights, as test/faults/audit-rollback.test.ts does: the
      // audit write of a listed action fails, and with it the change's transaction.
      owner = new pg.Client({ connectionString: t.ownerUrl });
      await owner.connect();
      await owner.query(`
        CREATE TABLE test_refused_audit_actions (action text PRIMARY KEY);
        CREATE FUNCTION test_refuse_audit() RETURNS trigger AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM test_refused_audit_actions WHERE action = NEW.action) THEN
            RAISE EXCEPTION 'test: the audit write of % is refused', NEW.action;
          END IF;
          RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();
        GRANT SELECT ON test_refused_audit_actions TO PUBLIC;
      `);
    });
    afterAll(async () => owner?.end());

    const eventsOf = async (organizationId: string, type: string) =>
      Number((await owner.query('SELECT count(*)::int AS n FROM webhook_events WHERE organization_id = $1 AND type = $2', [organizationId, type])).rows[0].n);

    it('a change that rolls back emits nothing; the same change committed emits its event', async () => {
      const o = await org();
      const created = await w.endpoint(o, { events: ['api_key.created', 'refund.created'] });
      const paid = await w.paidCheckout(o);
      const transactionId = (await w.api('GET', `/v1/checkouts/${paid}`, o.token)).body.transactionId;
      // The organization's first key (provisioning) emitted one already.
      const keysBefore = await eventsOf(o.organizationId, 'api_key.created');
      await owner.query("INSERT INTO test_refused_audit_actions VALUES ('api_key.created'), ('refund.created')");
      try {
        const refused = await w.api('POST', '/v1/api-keys', o.token, { name: 'never', scopes: ['client:read'] });
        expect(refused.status, refused.text).toBeGreaterThanOrEqual(500);
        const refund = await w.api('POST', `/v1/transactions/${transactionId}/refunds`, o.token, {});
        expect(refund.status, refund.text).toBeGreaterThanOrEqual(500);
      } finally {
        await owner.query('DELETE FROM test_refused_audit_actions');
      }
      // The outbox row is written in the change's transaction: nothing to fan out, nothing delivered.
      expect(await eventsOf(o.organizationId, 'api_key.created')).toBe(keysBefore);
      expect(await eventsOf(o.organizationId, 'refund.created')).toBe(0);
      expect(await w.deliveries(o, created.id)).toEqual([]);
      // The control: committed, the same changes emit.
      expectStatus(await w.api('POST', '/v1/api-keys', o.token, { name: 'kept', scopes: ['client:read'] }), 201);
      expectStatus(await w.api('POST', `/v1/transactions/${transactionId}/refunds`, o.token, {}), 201);
      expect(await eventsOf(o.organizationId, 'api_key.created')).toBe(keysBefore + 1);
      expect(await eventsOf(o.organizationId, 'refund.created')).toBe(1);
      await receiver.waitFor(() => receiver.to(created.name).length === 2, 'the two committed events');
    });

    it('an endpoint change whose audit write fails does not happen', async () => {
      const o = await org();
      const existing = await w.endpoint(o, { events: ['invoice.paid'] });
      const row = async () => (await owner.query('SELECT url, events, status, secret_sealed FROM webhook_endpoints WHERE id = $1', [existing.id])).rows[0];
      const before = await row();
      const refusing = async (action: string, change: () => Promise<{ status: number; text: string }>) => {
        await owner.query('INSERT INTO test_refused_audit_actions VALUES ($1)', [action]);
        try {
          const result = await change();
          expect(result.status, `${action}: ${result.text}`).toBeGreaterThanOrEqual(500);
        } finally {
          await owner.query('DELETE FROM test_refused_audit_actions');
        }
      };
      await refusing('webhook_endpoint.created', () => w.api('POST', '/v1/webhook-endpoints', o.token, { url: receiver.url, events: ['*'] }));
      await refusing('webhook_endpoint.updated', () => w.api('PATCH', `/v1/webhook-endpoints/${existing.id}`, o.token, { events: ['*'], status: 'disabled' }));
      await refusing('webhook_endpoint.secret_rotated', () => w.api('POST', `/v1/webhook-endpoints/${existing.id}/rotate-secret`, o.token, {}));
      await refusing('webhook_endpoint.deleted', () => w.api('DELETE', `/v1/webhook-endpoints/${existing.id}`, o.token));
      expect((await w.api('GET', '/v1/webhook-endpoints', o.token)).body.data.map((e: any) => e.id)).toEqual([existing.id]);
      expect(await row()).toEqual(before);
    });
  });

  describe('delivery', () => {
    it('a receiver that answers 500 gets the event again within a minute, under a new attempt id, until it answers 2xx', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      receiver.answers.set(`/hooks/${created.name}`, (_hook, index) => (index === 0 ? 500 : 200));
      const queued = await w.sendTest(o, created.id);
      const first = await w.delivery(o, created.id, (d) => d.attempts === 1 && d.recentAttempts[0]?.outcome === 'failed', 'the failed first attempt');
      expect(first).toMatchObject({ status: 'pending', responseStatus: 500, lastError: 'HTTP 500' });
      expect(first.recentAttempts[0]).toMatchObject({ responseStatus: 500, responseBody: 'answered 500', error: null });
      // The first retry is due within 60 s (30-60 s: backoff with jitter).
      const wait = Date.parse(first.nextAttemptAt) - Date.parse(first.lastAttemptAt);
      expect(wait).toBeGreaterThanOrEqual(29_000);
      expect(wait).toBeLessThanOrEqual(61_000);
      // Time passes: the retry is due now.
      await t.db.query('UPDATE webhook_deliveries SET next_attempt_at = now() WHERE id = $1', [queued.id]);
      t.services.webhookWorker.kick();
      const done = await w.delivery(o, created.id, (d) => d.status === 'succeeded', 'the retry recorded as succeeded');
      expect(done).toMatchObject({ attempts: 2, responseStatus: 200, lastError: null, nextAttemptAt: null });
      expect(done.recentAttempts.map((a: any) => [a.outcome, a.responseStatus])).toEqual([['succeeded', 200], ['failed', 500]]);
      const hooks = receiver.to(created.name);
      expect(hooks).toHaveLength(2);
      expect(hooks.map((h) => h.headers['paygate-event-id'])).toEqual([queued.eventId, queued.eventId]);
      expect(new Set(hooks.map((h) => h.headers['paygate-attempt-id'])).size).toBe(2);
      expect(hooks.map((h) => h.headers['paygate-attempt-id'])).toEqual(done.recentAttempts.map((a: any) => a.id).reverse());
      expect(hooks[0]!.body).toBe(hooks[1]!.body);
    });

    it('a receiver that does not answer in time is a failed attempt, retried later', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      receiver.answers.set(`/hooks/${created.name}`, 'hang');
      const limits = t.services.webhookWorker.limits;
      const timeout = limits.timeoutMs;
      limits.timeoutMs = 300;
      try {
        await w.sendTest(o, created.id);
        const failed = await w.delivery(o, created.id, (d) => d.attempts === 1 && d.recentAttempts[0]?.outcome === 'failed', 'the timed-out attempt');
        expect(failed).toMatchObject({ status: 'pending', responseStatus: null });
        expect(failed.lastError).toMatch(/no answer within 0.3 s/);
        expect(failed.recentAttempts[0].durationMs).toBeGreaterThanOrEqual(250);
        expect(await t.services.metrics.registry.getSingleMetricAsString('paygate_webhook_deliveries_total')).toMatch(/outcome="timeout"} [1-9]/);
      } finally {
        limits.timeoutMs = timeout;
        receiver.release();
      }
    });

    it('a manual retry sends a delivery again now, even one that succeeded', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      const queued = await w.sendTest(o, created.id);
      await w.delivery(o, created.id, (d) => d.status === 'succeeded', 'the first delivery');
      const retried = await w.api('POST', `/v1/webhook-endpoints/${created.id}/deliveries/${queued.id}/retry`, o.token);
      expectStatus(retried, 202);
      expect(retried.body).toMatchObject({ id: queued.id, status: 'pending' });
      await receiver.waitFor(() => receiver.to(created.name).length === 2, 'the retried delivery');
      expect(receiver.to(created.name).map((h) => h.json.id)).toEqual([queued.eventId, queued.eventId]);
      expect((await w.delivery(o, created.id, (d) => d.status === 'succeeded' && d.attempts === 2, 'two attempts')).attempts).toBe(2);
      expectProblem(await w.api('POST', `/v1/webhook-endpoints/${created.id}/deliveries/whd_${'x'.repeat(22)}/retry`, o.token), 404, 'not_found');
    });

    it('during a rotation grace period deliveries carry one signature per live secret; after it, one', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      const rotated = await w.api('POST', `/v1/webhook-endpoints/${created.id}/rotate-secret`, o.token, { gracePeriodMinutes: 60 });
      expectStatus(rotated, 200);
      expect(rotated.body.secret).toMatch(/^whsec_[0-9A-Za-z]{43}$/);
      expect(rotated.body.secret).not.toBe(created.secret);
      expect(Date.parse(rotated.body.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(59 * 60_000);
      const queuedDuring = await w.sendTest(o, created.id);
      const hookDuring = await receiver.next('webhook_endpoint.test', (h) => h.json.id === queuedDuring.eventId);
      expect(signaturesOf(hookDuring.headers['paygate-signature'])).toHaveLength(2);
      expect(verifySignature(hookDuring.headers['paygate-signature'], hookDuring.body, rotated.body.secret)).toBe(true);
      expect(verifySignature(hookDuring.headers['paygate-signature'], hookDuring.body, created.secret)).toBe(true);

      // The grace period is over: the old secret signs no more.
      await t.db.query("UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1", [created.id]);
      expect((await w.api('GET', `/v1/webhook-endpoints/${created.id}`, o.token)).body.previousSecretExpiresAt).toBeNull();
      const queuedAfter = await w.sendTest(o, created.id);
      const hookAfter = await receiver.next('webhook_endpoint.test', (h) => h.json.id === queuedAfter.eventId);
      expect(signaturesOf(hookAfter.headers['paygate-signature'])).toHaveLength(1);
      expect(verifySignature(hookAfter.headers['paygate-signature'], hookAfter.body, rotated.body.secret)).toBe(true);
      expect(verifySignature(hookAfter.headers['paygate-signature'], hookAfter.body, created.secret)).toBe(false);

      // A rotation with no grace ends the previous secret at once.
      const again = await w.api('POST', `/v1/webhook-endpoints/${created.id}/rotate-secret`, o.token, { gracePeriodMinutes: 0 });
      expect(again.body.previousSecretExpiresAt).toBeNull();
      const queuedNow = await w.sendTest(o, created.id);
      const hookNow = await receiver.next('webhook_endpoint.test', (h) => h.json.id === queuedNow.eventId);
      expect(signaturesOf(hookNow.headers['paygate-signature'])).toHaveLength(1);
      expect(verifySignature(hookNow.headers['paygate-signature'], hookNow.body, again.body.secret)).toBe(true);
      expect(verifySignature(hookNow.headers['paygate-signature'], hookNow.body, rotated.body.secret)).toBe(false);

      expectProblem(await w.api('POST', `/v1/webhook-endpoints/${created.id}/rotate-secret`, o.token, { gracePeriodMinutes: 10081 }), 400, 'validation_error');
      const audit = await w.api('GET', '/v1/audit-events?action=webhook_endpoint.secret_rotated', o.token);
      expect(audit.body.data.map((e: any) => e.details.gracePeriodMinutes)).toEqual([0, 60]);
      expect(JSON.stringify(audit.body)).not.toMatch(/whsec_/);
    });

    it('an endpoint whose deliveries fail for 3 days is disabled, audited, and its owners are mailed', async () => {
      const o = await org();
      const ownerUser = await createUser(t, { organizationId: o.organizationId, role: 'owner' });
      const created = await w.endpoint(o);
      receiver.answers.set(`/hooks/${created.name}`, 503);
      const queued = await w.sendTest(o, created.id);
      await w.delivery(o, created.id, (d) => d.attempts === 1 && d.recentAttempts[0]?.outcome === 'failed', 'the first failed attempt');
      expect((await w.api('GET', `/v1/webhook-endpoints/${created.id}`, o.token)).body.status).toBe('enabled');
      // Three days of failures later: the delivery's window is over, the endpoint has failed since.
      await t.db.query("UPDATE webhook_deliveries SET created_at = now() - interval '3 days 1 minute', next_attempt_at = now() WHERE id = $1", [queued.id]);
      await t.db.query("UPDATE webhook_endpoints SET failing_since = now() - interval '3 days 1 minute' WHERE id = $1", [created.id]);
      t.services.webhookWorker.kick();
      const gaveUp = await w.delivery(o, created.id, (d) => d.status === 'failed', 'the delivery given up');
      expect(gaveUp).toMatchObject({ attempts: 2, nextAttemptAt: null, responseStatus: 503 });
      expect((await w.api('GET', `/v1/webhook-endpoints/${created.id}`, o.token)).body.status).toBe('disabled');
      const audit = await w.api('GET', '/v1/audit-events?action=webhook_endpoint.updated', o.token);
      expect(audit.body.data[0]).toMatchObject({ actor: { type: 'system', id: null }, target: { type: 'webhook_endpoint', id: created.id }, details: { status: { from: 'enabled', to: 'disabled' } } });
      const notice = await mail.next(ownerUser.email);
      expect(notice.subject).toBe('Paygate disabled a webhook endpoint');
      expect(notice.text).toContain(created.id);
      expect(notice.text).not.toContain('whsec_');

      // Disabled: no new deliveries, no test, no retry, until it is enabled again.
      expectProblem(await w.api('POST', `/v1/webhook-endpoints/${created.id}/test`, o.token), 409, 'conflict');
      expectProblem(await w.api('POST', `/v1/webhook-endpoints/${created.id}/deliveries/${queued.id}/retry`, o.token), 409, 'conflict');
      receiver.answers.set(`/hooks/${created.name}`, 200);
      expectStatus(await w.api('PATCH', `/v1/webhook-endpoints/${created.id}`, o.token, { status: 'enabled' }), 200);
      expectStatus(await w.api('POST', `/v1/webhook-endpoints/${created.id}/deliveries/${queued.id}/retry`, o.token), 202);
      await w.delivery(o, created.id, (d) => d.id === queued.id && d.status === 'succeeded', 'the missed delivery, retried by hand');
      const [row] = await t.db.query<{ failing_since: Date | null }>('SELECT failing_since FROM webhook_endpoints WHERE id = $1', [created.id]);
      expect(row!.failing_since).toBeNull();
    });

    it('a disabled endpoint gets no deliveries for events that happen meanwhile', async () => {
      const o = await org();
      const created = await w.endpoint(o);
      expectStatus(await w.api('PATCH', `/v1/webhook-endpoints/${created.id}`, o.token, { status: 'disabled' }), 200);
      const listener = await w.endpoint(o);
      await w.paidCheckout(o);
      await receiver.waitFor(() => receiver.to(listener.name).length >= 2, 'the events at the enabled endpoint');
      expect(await w.deliveries(o, created.id)).toEqual([]);
    });
  });
});

describe('the SSRF guard', () => {
  let guarded: TestApp;
  let open: TestApp;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    guarded = await startPaygate();
    open = await startPaygate({ env: ALLOW_PRIVATE });
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    await guarded?.close();
    await open?.close();
    await receiver?.close();
  });

  const create = (t: TestApp, org: OrgWithKey, url: string) => t.request('POST', '/v1/webhook-endpoints', { token: org.token, body: { url, events: ['*'] } });
  const refused = async (t: TestApp, org: OrgWithKey, url: string) => {
    const result = await create(t, org, url);
    expectProblem(result, 400, 'validation_error');
    expect(result.body.errors, `${url}: ${result.text}`).toEqual([{ path: '/url', message: expect.stringMatching(/^is refused: /) }]);
  };

  it('refuses loopback, private, link-local, unique-local, CGNAT, multicast, unspecified and metadata targets, in every spelling', async () => {
    const org = await createOrgWithKey(guarded, ['webhook:*']);
    for (const url of [
      'http://127.0.0.1/hook',
      'http://127.8.9.10:8080/hook',
      'http://2130706433/hook', // 127.0.0.1 in decimal
      'http://0x7f.1/hook', // and in hex
      `http://localhost:${receiver.port}/hook`, // a name that resolves to loopback
      'http://[::1]/hook',
      'http://10.1.2.3/hook',
      'http://172.16.0.1/hook',
      'http://172.31.255.255/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://169.254.10.20/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://[fe80::1]/hook',
      'http://[fc00::1]/hook',
      'http://[fd12:3456::1]/hook',
      'http://0.0.0.0/hook',
      'http://[::]/hook',
      'http://224.0.0.1/hook',
      'http://[ff02::1]/hook',
      'http://[::ffff:127.0.0.1]/hook', // IPv4-mapped
      'http://[::ffff:10.0.0.1]/hook',
      'http://[::ffff:169.254.169.254]/hook',
      'http://[64:ff9b::a00:1]/hook', // NAT64 of 10.0.0.1
      'http://[2002:7f00:1::]/hook', // 6to4 of 127.0.0.1
    ]) {
      await refused(guarded, org, url);
    }
    expectStatus(await create(guarded, org, 'https://203.0.113.7/hooks'), 201);
    // An update is checked the same way.
    const ok = await create(guarded, org, 'https://203.0.113.8/hooks');
    const patched = await guarded.request('PATCH', `/v1/webhook-endpoints/${ok.body.id}`, { token: org.token, body: { url: 'http://192.168.0.1/' } });
    expectProblem(patched, 400, 'validation_error');
  });

  it('with PAYGATE_WEBHOOK_ALLOW_PRIVATE=true private targets are allowed, cloud metadata never', async () => {
    const org = await createOrgWithKey(open, ['webhook:*']);
    expectStatus(await create(open, org, receiver.urlFor('open')), 201);
    expectStatus(await create(open, org, 'http://10.1.2.3/hook'), 201);
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/', 'http://0.0.0.0/']) {
      await refused(open, org, url);
    }
  });

  it('a target that has come to resolve to loopback is refused at delivery time, and nothing is sent', async () => {
    const org = await createOrgWithKey(guarded, ['webhook:*']);
    const created = await create(guarded, org, 'https://203.0.113.9/hooks');
    expectStatus(created, 201);
    // The name now resolves to 127.0.0.1 (as a DNS rebinding would make it): the row says so directly.
    await guarded.db.query('UPDATE webhook_endpoints SET url = $2 WHERE id = $1', [created.body.id, `http://localhost:${receiver.port}/hooks/rebound`]);
    const sent = await guarded.request('POST', `/v1/webhook-endpoints/${created.body.id}/test`, { token: org.token });
    expectStatus(sent, 202);
    const delivery = await eventually(async () => {
      const list = await guarded.request('GET', `/v1/webhook-endpoints/${created.body.id}/deliveries`, { token: org.token });
      return list.body.data.find((d: any) => d.attempts === 1 && d.recentAttempts[0]?.outcome === 'failed');
    }, 'the refused attempt');
    expect(delivery.lastError).toBe('refused: localhost resolves to a loopback address');
    expect(delivery.status).toBe('pending');
    // The refusal came before any connection: the receiver never saw it.
    expect(receiver.to('rebound')).toEqual([]);
    expect(await guarded.services.metrics.registry.getSingleMetricAsString('paygate_webhook_deliveries_total')).toMatch(/outcome="refused"} 1/);
  });
});

describe('webhooks across nodes', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    database = await createTestDatabase();
    a = await startPaygate({ database, env: ALLOW_PRIVATE });
    b = await startPaygate({ database, env: ALLOW_PRIVATE });
    receiver = await startWebhookReceiver();
  });
  afterAll(async () => {
    await a?.close().catch(() => undefined);
    await b?.close();
    await receiver?.close();
    await database?.drop();
  });

  it('two nodes delivering at once deliver each event once', async () => {
    const org = await createOrgWithKey(a, ['webhook:*', 'api_key:*']);
    const name = 'cluster';
    const created = await a.request('POST', '/v1/webhook-endpoints', { token: org.token, body: { url: receiver.urlFor(name), events: ['api_key.created'] } });
    expectStatus(created, 201);
    // Held open until both nodes have attempts in flight, so both claim from the same due rows.
    receiver.answers.set(`/hooks/${name}`, 'hang');
    const count = 24;
    await Promise.all(
      Array.from({ length: count }, (_, i) => (i % 2 === 0 ? a : b).request('POST', '/v1/api-keys', { token: org.token, body: { name: `k${i}`, scopes: [] } })),
    );
    await eventually(async () => a.services.webhookWorker.attemptsInFlight > 0 && b.services.webhookWorker.attemptsInFlight > 0, 'attempts in flight on both nodes');
    receiver.answers.set(`/hooks/${name}`, 200);
    receiver.release(200);
    await receiver.waitFor(() => receiver.to(name).length >= count, `${count} deliveries`);
    await eventually(async () => {
      const [{ n }] = (await a.db.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'", [created.body.id])) as [{ n: number }];
      return n === count;
    }, 'every delivery recorded');
    const hooks = receiver.to(name);
    expect(hooks).toHaveLength(count);
    expect(new Set(hooks.map((h) => h.headers['paygate-event-id'])).size).toBe(count);
    expect(new Set(hooks.map((h) => h.headers['paygate-attempt-id'])).size).toBe(count);
    const rows = await a.db.query<{ attempts: number }>('SELECT attempts FROM webhook_deliveries WHERE endpoint_id = $1', [created.body.id]);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
  });

  it('a node that stalls past its claim: another attempt is made under a new attempt id, and the late answer changes nothing', async () => {
    const org = await createOrgWithKey(a, ['webhook:*']);
    const name = 'stall';
    const created = await a.request('POST', '/v1/webhook-endpoints', { token: org.token, body: { url: receiver.urlFor(name), events: ['*'] } });
    receiver.answers.set(`/hooks/${name}`, (_hook, index) => (index === 0 ? 'hang' : 200));
    const sent = await a.request('POST', `/v1/webhook-endpoints/${created.body.id}/test`, { token: org.token });
    await receiver.waitFor(() => receiver.to(name).length === 1, 'the first attempt');
    // Its node is presumed dead once the claim expires.
    await a.db.query("UPDATE webhook_deliveries SET claim_expires_at = now() - interval '1 second' WHERE id = $1", [sent.body.id]);
    a.services.webhookWorker.kick();
    b.services.webhookWorker.kick();
    await receiver.waitFor(() => receiver.to(name).length === 2, 'the second attempt');
    const [first, second] = receiver.to(name) as [ReceivedHook, ReceivedHook];
    expect(second.headers['paygate-event-id']).toBe(first.headers['paygate-event-id']);
    expect(second.headers['paygate-attempt-id']).not.toBe(first.headers['paygate-attempt-id']);
    const delivered = async () => (await a.db.query<{ status: string; attempts: number }>('SELECT status, attempts FROM webhook_deliveries WHERE id = $1', [sent.body.id]))[0]!;
    await eventually(async () => (await delivered()).status === 'succeeded', 'the second attempt recorded');
    // The stalled attempt now gets its answer (a failure): recorded as an attempt, but the delivery stays delivered.
    receiver.release(500);
    await eventually(async () => {
      const [row] = await a.db.query<{ outcome: string | null }>('SELECT outcome FROM webhook_attempts WHERE id = $1', [first.headers['paygate-attempt-id']]);
      return row!.outcome === 'failed';
    }, 'the late answer recorded on its attempt');
    expect(await delivered()).toEqual({ status: 'succeeded', attempts: 2 });
  });

  it('an event committed on a node that stops before delivering it is delivered by another node, once', async () => {
    const org = await createOrgWithKey(a, ['webhook:*', 'api_key:*']);
    const name = 'orphan';
    expectStatus(await a.request('POST', '/v1/webhook-endpoints', { token: org.token, body: { url: receiver.urlFor(name), events: ['api_key.created'] } }), 201);
    // Node a commits the change and stops before its worker gets to it (as if it died right after COMMIT).
    await a.services.webhookWorker.stop();
    const key = await a.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'orphan', scopes: [] } });
    expectStatus(key, 201);
    await a.close();
    const hook = await receiver.next('api_key.created', (h) => h.json.data.object.id === key.body.id);
    expect(hook.path).toBe(`/hooks/${name}`);
    expect(receiver.to(name)).toHaveLength(1);
    expect(b.services.webhookWorker.stats.attempts).toBeGreaterThan(0);
  });
});
