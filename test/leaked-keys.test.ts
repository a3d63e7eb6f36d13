/**
 * Leaked-key reports and quarantine (SPEC §13), on a real server, SMTP receiver and webhook
 * receiver: the plain format answers the same for real, previous-secret, forged and garbage tokens
 * and contains the real ones at once (revoke or quarantine, per `leakedKeyAction`); the quarantine
 * rule over read and write routes and whoami; rotating a quarantined key; the per-source limit;
 * GitHub's signed partner format with a P-256 key of the test's own; audit, mail and webhook.
 * Every report comes from an address of its own (X-Forwarded-For through a trusted proxy), so each
 * test's reports count against its own source.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '../src/config.js';
import { checksum, formatToken } from '../src/keys/token.js';
import { RESPONSE_FLOOR_MS, REPORTS_PER_HOUR } from '../src/leaks/service.js';
import { createOrgKey, createOrgWithKey, createSystemKey, createUser, expectProblem, expectStatus, startPaygate, type TestApp } from './harness.js';
import { startMailReceiver, type MailReceiver } from './mail-receiver.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

const partner = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const PARTNER_KEY_ID = 'bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c';
const PARTNER_PEM = partner.publicKey.export({ type: 'spki', format: 'pem' }) as string;

let sourceCounter = 0;
/** A report source of its own: 10.77.x.y through the trusted proxy 127.0.0.1. */
function newSource(): string {
  sourceCounter++;
  return `10.77.${Math.floor(sourceCounter / 250)}.${(sourceCounter % 250) + 1}`;
}

function signBody(body: string, key = partner.privateKey): string {
  return sign('sha256', Buffer.from(body), { key, dsaEncoding: 'der' }).toString('base64');
}

/** A token with the id of a real key, a valid checksum and a wrong secret. */
function forgedFor(keyId: string): string {
  return formatToken(keyId);
}

/** A token in the right shape with a valid checksum, of an id Paygate never minted. */
function garbageWithChecksum(): string {
  const body = `sk_${'A'.repeat(20)}.${'b'.repeat(43)}`;
  return body + checksum(body);
}

describe('leaked-key reports (SPEC §13)', () => {
  let t: TestApp;
  let mail: MailReceiver;
  let hooks: WebhookReceiver;
  let settingsKey: string;

  beforeAll(async () => {
    mail = await startMailReceiver();
    hooks = await startWebhookReceiver();
    t = await startPaygate({
      env: {
        PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true',
        PAYGATE_TRUSTED_PROXIES: '127.0.0.1',
        PAYGATE_SECRET_SCANNING_KEYS: JSON.stringify({ [PARTNER_KEY_ID]: PARTNER_PEM }),
        ...mail.env,
      },
    });
    settingsKey = (await createSystemKey(t, ['system_settings:*'])).token;
  });
  afterAll(async () => {
    await t?.close();
    await mail?.close();
    await hooks?.close();
  });

  const report = (body: unknown, source = newSource(), headers: Record<string, string> = {}) =>
    t.request('POST', '/v1/leaked-keys', { body, headers: { 'x-forwarded-for': source, ...headers } });

  async function setAction(action: 'revoke' | 'quarantine') {
    expectStatus(await t.request('PATCH', '/v1/system/settings', { token: settingsKey, body: { leakedKeyAction: action } }), 200);
  }

  /** The key's state as stored: revoked, quarantined, leaked (only), or active. */
  async function keyStatus(keyId: string): Promise<string> {
    const row = await t.db.query<{ revoked_at: Date | null; quarantined_at: Date | null; leaked_at: Date | null }>('SELECT revoked_at, quarantined_at, leaked_at FROM api_keys WHERE id = $1', [keyId]);
    const r = row[0]!;
    return r.revoked_at ? 'revoked' : r.quarantined_at ? 'quarantined' : r.leaked_at ? 'leaked' : 'active';
  }

  async function auditOf(keyId: string) {
    return t.db.query<{ action: string; actor_type: string; details: Record<string, unknown>; row: string }>(
      "SELECT action, actor_type, details, row_to_json(a)::text AS row FROM audit_events a WHERE target->>'id' = $1 ORDER BY seq",
      [keyId],
    );
  }

  describe('the plain format', () => {
    it('answers 202 { received } the same for real, previous-secret, forged and garbage tokens, and contains only the real ones', async () => {
      await setAction('revoke');
      const real = await createOrgWithKey(t, ['client:*']);
      const rotated = await createOrgWithKey(t, ['client:*', 'api_key:*']);
      // The previous secret of a rotation, still within its grace period.
      const rotate = await t.request('POST', `/v1/api-keys/${rotated.keyId}/rotate`, { token: rotated.token, body: { gracePeriodMinutes: 60 } });
      expectStatus(rotate, 200);
      const bystander = await createOrgWithKey(t, ['client:*']);

      const cases = {
        real: [real.token],
        previous: [rotated.token],
        forged: [forgedFor(bystander.keyId)],
        garbage: ['not a token', '', garbageWithChecksum(), `sk_${'x'.repeat(70)}`],
      };
      const answers: Record<string, { status: number; body: unknown; ms: number }> = {};
      for (const [name, tokens] of Object.entries(cases)) {
        const started = performance.now();
        const answer = await report({ tokens, source: 'unit test', url: 'https://example.com/paste/1' });
        answers[name] = { status: answer.status, body: answer.body, ms: performance.now() - started };
        expectStatus(answer, 202);
        expect(answer.body).toEqual({ received: tokens.length });
      }
      // The answer is held until the floor, match or not: its timing shows nothing of a match.
      for (const [name, a] of Object.entries(answers)) expect(a.ms, name).toBeGreaterThanOrEqual(RESPONSE_FLOOR_MS - 5);

      // Contained at once: revoked (the default action), both secrets of the rotated key included.
      expect(await keyStatus(real.keyId)).toBe('revoked');
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: real.token }), 401, 'api_key_revoked');
      expect(await keyStatus(rotated.keyId)).toBe('revoked');
      expectProblem(await t.request('GET', '/v1/clients', { token: rotate.body.secret }), 401, 'api_key_revoked');
      // A wrong secret for a real id changes nothing.
      expect(await keyStatus(bystander.keyId)).toBe('active');
      expectStatus(await t.request('GET', '/v1/clients', { token: bystander.token }), 200);
      const view = await t.request('GET', `/v1/api-keys/${bystander.keyId}`, { token: (await createOrgKey(t, bystander.organizationId, ['api_key:read'])).secret! });
      expect(view.body.status).toBe('active');
    });

    it('a leaked system key is contained too (system_key.revoked), without a webhook (its mail to the global admins: test/leaked-system-key-mail.test.ts)', async () => {
      await setAction('revoke');
      const system = await createSystemKey(t, ['health:read']);
      expectStatus(await t.request('GET', '/v1/system/health', { token: system.token }), 200);
      expectStatus(await report({ tokens: [system.token] }), 202);
      expectProblem(await t.request('GET', '/v1/system/health', { token: system.token }), 401, 'api_key_revoked');
      const actions = (await auditOf(system.keyId)).map((e) => e.action);
      expect(actions).toEqual(expect.arrayContaining(['api_key.leaked', 'system_key.revoked']));
    });

    it('refuses bodies that are not a report with 400 validation_error, before looking at any token', async () => {
      const real = await createOrgWithKey(t, ['client:*']);
      expectProblem(await report({ tokens: [] }), 400, 'validation_error');
      expectProblem(await report({ tokens: Array.from({ length: 1001 }, () => 'x') }), 400, 'validation_error');
      expectProblem(await report({ tokens: ['x'.repeat(201)] }), 400, 'validation_error');
      expectProblem(await report({ tokens: [real.token], extra: true }), 400, 'validation_error');
      expect(await keyStatus(real.keyId)).toBe('active');
    });

    it('records api_key.leaked (actor system, source and url, never the token) and api_key.revoked', async () => {
      await setAction('revoke');
      const real = await createOrgWithKey(t, ['client:*']);
      expectStatus(await report({ tokens: [real.token], source: 'a researcher', url: 'https://example.com/gist/42' }), 202);
      const events = await auditOf(real.keyId);
      const leaked = events.find((e) => e.action === 'api_key.leaked');
      expect(leaked, JSON.stringify(events)).toBeDefined();
      expect(leaked!.actor_type).toBe('system');
      expect(leaked!.details).toMatchObject({ source: 'a researcher', url: 'https://example.com/gist/42', secret: 'current', action: 'revoke', format: 'plain' });
      expect(events.some((e) => e.action === 'api_key.revoked' && e.actor_type === 'system')).toBe(true);
      const secret = real.token.split('.')[1]!;
      for (const e of events) expect(e.row).not.toContain(secret);
      // The audit filter knows the action.
      const reader = await createOrgKey(t, real.organizationId, ['audit:read']);
      const listed = await t.request('GET', '/v1/audit-events?action=api_key.leaked', { token: reader.secret! });
      expectStatus(listed, 200);
      expect(listed.body.data.map((e: { target: { id: string } }) => e.target.id)).toContain(real.keyId);
      expect(listed.text).not.toContain(secret);
    });

    it("mails the organization's owners, naming the key but never its secret", async () => {
      await setAction('revoke');
      const real = await createOrgWithKey(t, ['client:*']);
      const owner = await createUser(t, { organizationId: real.organizationId, role: 'owner' });
      const viewer = await createUser(t, { organizationId: real.organizationId, role: 'viewer' });
      expectStatus(await report({ tokens: [real.token], url: 'https://example.com/leak' }), 202);
      const message = await mail.next(owner.email);
      expect(message.subject).toMatch(/reported leaked/);
      expect(message.text).toContain(real.keyId);
      expect(message.text).toContain('https://example.com/leak');
      expect(message.text).toContain('revoked');
      expect(message.text).not.toContain(real.token.split('.')[1]!);
      expect(mail.to(viewer.email)).toHaveLength(0);
    });

    it('emits the webhook event api_key.leaked with the key, never its secret', async () => {
      await setAction('revoke');
      const real = await createOrgWithKey(t, ['client:*', 'webhook:*']);
      const endpoint = await t.request('POST', '/v1/webhook-endpoints', { token: real.token, body: { url: hooks.urlFor(`leak-${real.keyId}`), events: ['api_key.leaked', 'api_key.revoked'] } });
      expectStatus(endpoint, 201);
      expectStatus(await report({ tokens: [real.token] }), 202);
      const hook = await hooks.next('api_key.leaked', (h) => h.path === `/hooks/leak-${real.keyId}`);
      expect(hook.json.organizationId).toBe(real.organizationId);
      expect(hook.json.data.object).toMatchObject({ id: real.keyId, object: 'api_key', status: 'revoked' });
      expect(hook.body).not.toContain(real.token.split('.')[1]!);
      await hooks.next('api_key.revoked', (h) => h.path === `/hooks/leak-${real.keyId}`);
    });
  });

  describe('quarantine', () => {
    it('a quarantined key may read and call whoami (status quarantined); every other route is 403 api_key_quarantined, after insufficient_scope', async () => {
      await setAction('quarantine');
      const org = await createOrgWithKey(t, ['client:*', 'api_key:read']);
      expectStatus(await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'before', email: 'before@example.com' } }), 201);
      expectStatus(await report({ tokens: [org.token] }), 202);
      expect(await keyStatus(org.keyId)).toBe('quarantined');

      const who = await t.request('GET', '/v1/auth/whoami', { token: org.token });
      expectStatus(who, 200);
      expect(who.body.status).toBe('quarantined');
      expectStatus(await t.request('GET', '/v1/clients', { token: org.token }), 200);
      const self = await t.request('GET', `/v1/api-keys/${org.keyId}`, { token: org.token });
      expectStatus(self, 200);
      expect(self.body.status).toBe('quarantined');
      expectProblem(await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'after', email: 'after@example.com' } }), 403, 'api_key_quarantined');
      // SPEC §4's order: a scope the key lacks is insufficient_scope first.
      expectProblem(await t.request('POST', '/v1/invoices', { token: org.token, body: {} }), 403, 'insufficient_scope');
      expectProblem(await t.request('POST', '/v1/checkouts', { token: org.token, body: { amount: 100, currency: 'EUR' } }), 403, 'insufficient_scope');

      const events = await auditOf(org.keyId);
      expect(events.map((e) => e.action)).toEqual(expect.arrayContaining(['api_key.leaked', 'api_key.quarantined']));
      expect(events.some((e) => e.action === 'api_key.revoked')).toBe(false);
      // The refused write is on record, as refusals of a key whose secret matched are.
      const refusal = events.find((e) => e.action === 'auth.api_key_refused');
      expect(refusal?.details, JSON.stringify(events.map((e) => e.action))).toMatchObject({ code: 'api_key_quarantined', requiredScope: 'client:create' });
    });

    it('money-moving routes refuse a quarantined key (refunds, checkouts)', async () => {
      await setAction('quarantine');
      const org = await createOrgWithKey(t, ['transaction:*', 'checkout:*']);
      expectStatus(await report({ tokens: [org.token] }), 202);
      expectProblem(await t.request('POST', '/v1/checkouts', { token: org.token, body: { amount: 100, currency: 'EUR' } }), 403, 'api_key_quarantined');
      expectProblem(await t.request('POST', '/v1/transactions/txn_x/refunds', { token: org.token, body: { amount: 1 } }), 403, 'api_key_quarantined');
      expectStatus(await t.request('GET', '/v1/transactions', { token: org.token }), 200);
    });

    it('rotating a quarantined key ends the leaked secret at once (no grace) and returns it to active', async () => {
      await setAction('quarantine');
      const org = await createOrgWithKey(t, ['client:*']);
      const manager = await createOrgKey(t, org.organizationId, ['api_key:*', 'client:*']);
      expectStatus(await report({ tokens: [org.token] }), 202);
      const rotated = await t.request('POST', `/v1/api-keys/${org.keyId}/rotate`, { token: manager.secret!, body: { gracePeriodMinutes: 60 } });
      expectStatus(rotated, 200);
      expect(rotated.body.status).toBe('active');
      expect(rotated.body.previousSecretExpiresAt).toBeNull();
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: org.token }), 401, 'invalid_api_key');
      const who = await t.request('GET', '/v1/auth/whoami', { token: rotated.body.secret });
      expect(who.body.status).toBe('active');
      expectStatus(await t.request('POST', '/v1/clients', { token: rotated.body.secret, body: { name: 'again', email: 'again@example.com' } }), 201);
      const [row] = await t.db.query<{ leaked_at: Date | null }>('SELECT leaked_at FROM api_keys WHERE id = $1', [org.keyId]);
      expect(row!.leaked_at).toBeNull();
      // An ordinary rotation keeps its grace.
      const again = await t.request('POST', `/v1/api-keys/${org.keyId}/rotate`, { token: manager.secret!, body: { gracePeriodMinutes: 60 } });
      expect(again.body.previousSecretExpiresAt).not.toBeNull();
    });

    it('revoking a quarantined key works as usual; a repeat report of a quarantined key changes nothing and mails nobody', async () => {
      await setAction('quarantine');
      const org = await createOrgWithKey(t, ['client:*']);
      const owner = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
      const manager = await createOrgKey(t, org.organizationId, ['api_key:*']);
      expectStatus(await report({ tokens: [org.token] }), 202);
      await mail.next(owner.email);
      expectStatus(await report({ tokens: [org.token] }), 202);
      const events = await auditOf(org.keyId);
      expect(events.filter((e) => e.action === 'api_key.leaked')).toHaveLength(2);
      expect(events.filter((e) => e.action === 'api_key.quarantined')).toHaveLength(1);
      const revoked = await t.request('POST', `/v1/api-keys/${org.keyId}/revoke`, { token: manager.secret! });
      expectStatus(revoked, 200);
      expect(revoked.body.status).toBe('revoked');
      expectProblem(await t.request('GET', '/v1/clients', { token: org.token }), 401, 'api_key_revoked');
      // Every mail handed over so far has been delivered to the receiver: the repeat sent none.
      await t.services.mailer!.idle();
      expect(mail.to(owner.email)).toHaveLength(1);
    });
  });

  describe('the per-source limit', () => {
    it(`allows ${REPORTS_PER_HOUR} reports an hour per source address, then 429 with Retry-After; other sources are unaffected`, async () => {
      const source = newSource();
      const answers = [];
      // Ten at a time: each report takes the response floor.
      for (let i = 0; i < REPORTS_PER_HOUR; i += 10) answers.push(...(await Promise.all(Array.from({ length: 10 }, () => report({ tokens: ['x'] }, source)))));
      for (const a of answers) expectStatus(a, 202);
      const refused = await report({ tokens: ['x'] }, source);
      expectProblem(refused, 429, 'rate_limited');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3000);
      // Unsigned partner reports count against the source too.
      expectProblem(await report([{ token: 'x', type: 't' }], source), 429, 'rate_limited');
      expectStatus(await report({ tokens: ['x'] }), 202);
    });
  });

  describe("GitHub's secret-scanning partner format", () => {
    const github = (body: string, headers: Record<string, string>, source = newSource()) =>
      t.request('POST', '/v1/leaked-keys', { body, headers: { 'x-forwarded-for': source, 'content-type': 'application/json', ...headers } });

    it('a signed report is answered 200 with a label per token, and the real ones are contained', async () => {
      await setAction('revoke');
      const real = await createOrgWithKey(t, ['client:*']);
      const garbage = garbageWithChecksum();
      const body = JSON.stringify([
        { token: real.token, type: 'paygate_api_key', url: 'https://github.com/o/r/blob/abc/config.js', source: 'content' },
        { token: garbage, type: 'paygate_api_key', url: 'https://github.com/o/r/blob/abc/other.js', source: 'content' },
      ]);
      const answer = await github(body, { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': signBody(body) });
      expectStatus(answer, 200);
      const sha = (s: string) => createHash('sha256').update(s).digest('hex');
      expect(answer.body).toEqual([
        { token_hash: sha(real.token), token_type: 'paygate_api_key', label: 'true_positive' },
        { token_hash: sha(garbage), token_type: 'paygate_api_key', label: 'false_positive' },
      ]);
      expect(await keyStatus(real.keyId)).toBe('revoked');
      const leaked = (await auditOf(real.keyId)).find((e) => e.action === 'api_key.leaked');
      expect(leaked!.details).toMatchObject({ format: 'github', signedBy: PARTNER_KEY_ID, url: 'https://github.com/o/r/blob/abc/config.js', source: 'content' });
    });

    it('verified partner reports are not limited per source', async () => {
      const source = newSource();
      const body = JSON.stringify([{ token: 'x', type: 'paygate_api_key', url: 'u', source: 'content' }]);
      const headers = { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': signBody(body) };
      for (let i = 0; i < REPORTS_PER_HOUR + 1; i += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => github(body, headers, source)));
        for (const a of batch) expectStatus(a, 200);
      }
    });

    it('unsigned, badly signed and unknown-key reports are 401 invalid_signature and contain nothing', async () => {
      const real = await createOrgWithKey(t, ['client:*']);
      const body = JSON.stringify([{ token: real.token, type: 'paygate_api_key', url: 'u', source: 'content' }]);
      expectProblem(await github(body, {}), 401, 'invalid_signature');
      // Signed by someone else's key, or a signature of another body.
      expectProblem(await github(body, { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': signBody(body, other.privateKey) }), 401, 'invalid_signature');
      expectProblem(await github(body, { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': signBody(`${body} `) }), 401, 'invalid_signature');
      expectProblem(await github(body, { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': 'not base64 DER!' }), 401, 'invalid_signature');
      expectProblem(await github(body, { 'Github-Public-Key-Identifier': 'unknown-key-id', 'Github-Public-Key-Signature': signBody(body) }), 401, 'invalid_signature');
      // The signature covers the raw bytes: the same JSON re-serialised differently does not verify.
      const spaced = JSON.stringify(JSON.parse(body), null, 2);
      expectProblem(await github(spaced, { 'Github-Public-Key-Identifier': PARTNER_KEY_ID, 'Github-Public-Key-Signature': signBody(body) }), 401, 'invalid_signature');
      expect(await keyStatus(real.keyId)).toBe('active');
      expectStatus(await t.request('GET', '/v1/clients', { token: real.token }), 200);
    });
  });

  it('the operation is described in /openapi.json as reportLeakedKeys, with both formats and both answers', async () => {
    const doc = await t.request('GET', '/openapi.json');
    expectStatus(doc, 200);
    const op = doc.body.paths['/v1/leaked-keys'].post;
    expect(op.operationId).toBe('reportLeakedKeys');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '202', '400', '401', '429']));
    expect(op.security).toEqual([]);
  });

  it('PAYGATE_SECRET_SCANNING_KEYS is checked at start-up, with one line naming the problem', () => {
    const base = { PORT: '0' };
    const attempt = (value: string) => {
      try {
        loadConfig({ ...base, PAYGATE_SECRET_SCANNING_KEYS: value });
        return null;
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
    };
    expect(attempt('not json')).toMatch(/^PAYGATE_SECRET_SCANNING_KEYS must be a JSON object/);
    expect(attempt('["a"]')).toMatch(/^PAYGATE_SECRET_SCANNING_KEYS must be a JSON object/);
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const message = attempt(JSON.stringify({ k1: ed, k2: 'junk' }));
    expect(message).toMatch(/"k1", "k2" must be ECDSA P-256 public keys in PEM/);
    expect(message).not.toContain('\n');
    expect(loadConfig({ ...base, PAYGATE_SECRET_SCANNING_KEYS: JSON.stringify({ k: PARTNER_PEM }) }).secretScanningKeys).toEqual({ k: PARTNER_PEM });
  });
});
