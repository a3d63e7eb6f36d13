/** Customer portal (SPEC §5): magic links, portal sessions and pages, as behaviour sentences over HTTP. */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectProblem, expectStatus, startPaygate, type HttpResult, type OrgWithKey, type TestApp } from './harness.js';
import { systemContext } from '../src/auth/context.js';
import { newId } from '../src/ids.js';
import { newToken } from '../src/portal/tokens.js';

const SCOPES = ['portal:create', 'client:*', 'invoice:read'];
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('customer portal', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let other: OrgWithKey;
  let clientId: string;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, SCOPES);
    other = await createOrgWithKey(t, SCOPES);
    clientId = await createClient(org, 'Ada <b>&</b> "Lovelace"');
  });
  afterAll(async () => t?.close());

  async function createClient(owner: OrgWithKey, name: string): Promise<string> {
    const created = await t.request('POST', '/v1/clients', { token: owner.token, body: { name, email: 'ada@example.com' } });
    expectStatus(created, 201);
    return created.body.id;
  }

  async function insertInvoice(owner: OrgWithKey, client: string, status: string, total = 1999, currency = 'EUR', dueAt: string | null = '2030-01-15T00:00:00.000Z') {
    const id = newId('invoice');
    await t.db.query(
      `INSERT INTO invoices (id, organization_id, client_id, status, currency, lines, total, due_at, finalized_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $4 = 'draft' THEN NULL ELSE now() END)`,
      [id, owner.organizationId, client, status, currency, JSON.stringify([{ description: 'Consulting', quantity: 1, unitAmount: total }]), total, dueAt],
    );
    return id;
  }

  const issue = (body: Record<string, unknown>, token = org.token, headers: Record<string, string> = {}) =>
    t.request('POST', '/v1/portal/magic-links', { token, body, headers });
  const tokenOf = (url: string) => new URL(url).searchParams.get('token')!;
  const redeem = (token: string, extra: Record<string, string> = {}) =>
    t.request('POST', '/portal/login', { body: new URLSearchParams({ token }).toString(), headers: { ...FORM, ...extra } });
  const portalCookie = (result: HttpResult) => result.headers.getSetCookie().find((c) => c.startsWith('portal_session='));
  const cookieValue = (header: string) => header.split(';')[0]!.slice('portal_session='.length);

  async function newLinkToken(client = clientId, owner = org): Promise<string> {
    const created = await issue({ clientId: client }, owner.token);
    expectStatus(created, 201);
    return tokenOf(created.body.url);
  }

  /** Signs a client into the portal; returns the session cookie value and the page's CSRF token. */
  async function signIn(client = clientId, owner = org): Promise<{ session: string; csrf: string; page: HttpResult }> {
    const redeemed = await redeem(await newLinkToken(client, owner));
    expectStatus(redeemed, 303);
    const session = cookieValue(portalCookie(redeemed)!);
    const page = await t.request('GET', '/portal', { cookies: { portal_session: session } });
    expectStatus(page, 200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1];
    expect(csrf, page.text).toBeTruthy();
    return { session, csrf: csrf!, page };
  }

  const post = (path: string, session: string, fields: Record<string, string>) =>
    t.request('POST', path, { cookies: { portal_session: session }, body: new URLSearchParams(fields).toString(), headers: FORM });

  describe('issuing magic links', () => {
    it('a link is issued with the system TTL when none is requested, and only its hash is stored', async () => {
      const before = Date.now();
      const created = await issue({ clientId });
      expectStatus(created, 201);
      expect(created.body).toMatchObject({ object: 'portal_link', clientId, ttlMinutes: 15 });
      expect(created.body.id).toMatch(/^pln_/);
      expect(created.body.url).toMatch(new RegExp(`^${t.config.publicUrl}/portal/login\\?token=[A-Za-z0-9_-]{43}$`));
      const expiresAt = Date.parse(created.body.expiresAt);
      expect(expiresAt).toBeGreaterThan(before + 14 * 60_000);
      expect(expiresAt).toBeLessThan(Date.now() + 16 * 60_000);

      const token = tokenOf(created.body.url);
      const [row] = await t.db.query<{ token_hash: Buffer; client_id: string; organization_id: string }>(
        'SELECT token_hash, client_id, organization_id FROM portal_links WHERE id = $1',
        [created.body.id],
      );
      expect(row!.token_hash.equals(createHash('sha256').update(token).digest())).toBe(true);
      expect(row).toMatchObject({ client_id: clientId, organization_id: org.organizationId });
      const dump = await t.db.query<{ row: string }>('SELECT row_to_json(p)::text AS row FROM portal_links p');
      expect(dump.map((r) => r.row).join('\n')).not.toContain(token);
    });

    it('a requested TTL above the system value is capped to it, and one below it is kept', async () => {
      const capped = await issue({ clientId, ttlMinutes: 600 });
      expectStatus(capped, 201);
      expect(capped.body.ttlMinutes).toBe(15);
      const shorter = await issue({ clientId, ttlMinutes: 5 });
      expectStatus(shorter, 201);
      expect(shorter.body.ttlMinutes).toBe(5);
      expect(Date.parse(shorter.body.expiresAt)).toBeLessThan(Date.now() + 6 * 60_000);
      const equal = await issue({ clientId, ttlMinutes: 15 });
      expect(equal.body.ttlMinutes).toBe(15);
    });

    it('ttlMinutes must be an integer >= 1: 0, -1, 1.5 and "5" are refused and nothing is created', async () => {
      const count = async () => (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM portal_links'))[0]!.n;
      const before = await count();
      for (const ttlMinutes of [0, -1, 1.5, '5', null]) {
        const refused = await issue({ clientId, ttlMinutes });
        expectProblem(refused, 400, 'validation_error');
        expect(refused.body.errors.map((e: { path: string }) => e.path), refused.text).toContain('/ttlMinutes');
      }
      expectProblem(await issue({}), 400, 'validation_error');
      expectProblem(await issue({ clientId, extra: 1 }), 400, 'validation_error');
      expect(await count()).toBe(before);
    });

    it('changing the system setting changes the cap and the default at once', async () => {
      await t.services.settings.update(systemContext(), { portalMagicLinkTtlMinutes: 7 });
      try {
        expect((await issue({ clientId, ttlMinutes: 60 })).body.ttlMinutes).toBe(7);
        expect((await issue({ clientId })).body.ttlMinutes).toBe(7);
        expect((await issue({ clientId, ttlMinutes: 3 })).body.ttlMinutes).toBe(3);
        await t.services.settings.update(systemContext(), { portalMagicLinkTtlMinutes: 120 });
        expect((await issue({ clientId, ttlMinutes: 60 })).body.ttlMinutes).toBe(60);
      } finally {
        await t.services.settings.update(systemContext(), { portalMagicLinkTtlMinutes: 15 });
      }
    });

    it('portal:create is required, and organization:* does not grant it', async () => {
      const broad = await createOrgKey(t, org.organizationId, ['organization:*', 'client:*', 'invoice:*']);
      const refused = await issue({ clientId }, broad.secret!);
      expectProblem(refused, 403, 'insufficient_scope');
      expect(refused.body.requiredScope).toBe('portal:create');
      expect(refused.headers.get('www-authenticate')).toContain('scope="portal:create"');
      expectProblem(await t.request('POST', '/v1/portal/magic-links', { body: { clientId } }), 401, 'missing_credentials');
    });

    it("another organization's client is 404, as is an unknown one; the organization-in-path mount works", async () => {
      const foreign = await createClient(other, 'Someone else');
      expectProblem(await issue({ clientId: foreign }), 404, 'not_found');
      expectProblem(await issue({ clientId: newId('client') }), 404, 'not_found');
      expectProblem(await issue({ clientId: 'not-an-id' }), 404, 'not_found');
      const viaPath = await t.request('POST', `/v1/organizations/${org.organizationId}/portal/magic-links`, { token: org.token, body: { clientId } });
      expectStatus(viaPath, 201);
      expectProblem(
        await t.request('POST', `/v1/organizations/${other.organizationId}/portal/magic-links`, { token: org.token, body: { clientId } }),
        403,
        'organization_mismatch',
      );
    });

    it('an Idempotency-Key replays the same link instead of issuing a second one', async () => {
      const headers = { 'idempotency-key': `link-${newId('event')}` };
      const first = await issue({ clientId, ttlMinutes: 10 }, org.token, headers);
      const second = await issue({ clientId, ttlMinutes: 10 }, org.token, headers);
      expectStatus(first, 201);
      expectStatus(second, 201);
      expect(second.body).toEqual(first.body);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
      const rows = await t.db.query('SELECT 1 FROM portal_links WHERE id = $1', [first.body.id]);
      expect(rows).toHaveLength(1);
      expectProblem(await issue({ clientId, ttlMinutes: 11 }, org.token, headers), 409, 'idempotency_conflict');
    });
  });

  describe('magic links at rest', () => {
    /** Every value of every text, JSON and bytea column of every table, as text (bytea also as hex and base64). */
    async function everyStoredValue(): Promise<Array<{ where: string; text: string }>> {
      const columns = await t.db.query<{ table_name: string; column_name: string }>(
        `SELECT c.table_name, c.column_name FROM information_schema.columns c
           JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name AND tb.table_type = 'BASE TABLE'
          WHERE c.table_schema = 'public'
            AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'USER-DEFINED')
                 OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_bpchar', '_json', '_jsonb', '_bytea')))`,
      );
      const values: Array<{ where: string; text: string }> = [];
      for (const { table_name, column_name } of columns) {
        for (const { v } of await t.db.query<{ v: unknown }>(`SELECT ${JSON.stringify(column_name)} AS v FROM ${JSON.stringify(table_name)}`)) {
          if (v === null) continue;
          const text = Buffer.isBuffer(v) ? `${v.toString('latin1')}\n${v.toString('hex')}\n${v.toString('base64')}\n${v.toString('base64url')}` : typeof v === 'string' ? v : JSON.stringify(v);
          values.push({ where: `${table_name}.${column_name}`, text });
        }
      }
      return values;
    }

    it('an Idempotency-Key keeps the link sealed: no table holds its token, and a replay still signs the client in once', async () => {
      const headers = { 'idempotency-key': `sealed-${newId('event')}` };
      const first = await issue({ clientId, ttlMinutes: 10 }, org.token, headers);
      expectStatus(first, 201);
      const token = tokenOf(first.body.url);
      const needles = [token, first.body.url, Buffer.from(token).toString('hex'), Buffer.from(token).toString('base64')];
      const stored = await everyStoredValue();
      expect(stored.length).toBeGreaterThan(20);
      for (const { where, text } of stored) {
        for (const needle of needles) expect(text.includes(needle), `${where} holds the magic-link token`).toBe(false);
      }
      const [row] = await t.db.query<{ response_body: unknown; response_sealed: Buffer | null }>(
        'SELECT response_body, response_sealed FROM idempotency_keys WHERE organization_id = $1 AND key = $2',
        [org.organizationId, headers['idempotency-key']],
      );
      expect(row!.response_body).toBeNull();
      expect(row!.response_sealed!.length).toBeGreaterThan(31);

      const replay = await issue({ clientId, ttlMinutes: 10 }, org.token, headers);
      expectStatus(replay, 201);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body).toEqual(first.body);
      expectStatus(await redeem(tokenOf(replay.body.url)), 303);
      expectStatus(await redeem(token), 410);
    });

    it('a sealed response opens only in its own row: moved to another key it is refused, never replayed', async () => {
      const headers = { 'idempotency-key': `moved-${newId('event')}` };
      expectStatus(await issue({ clientId }, org.token, headers), 201);
      const moved = `elsewhere-${newId('event')}`;
      await t.db.query('UPDATE idempotency_keys SET key = $3 WHERE organization_id = $1 AND key = $2', [org.organizationId, headers['idempotency-key'], moved]);
      const replay = await issue({ clientId }, org.token, { 'idempotency-key': moved });
      expectProblem(replay, 409, 'idempotency_conflict');
      expect(replay.text).not.toMatch(/token=/);
    });

    it('responses without a secret are stored as they are (a client create replays from response_body)', async () => {
      const key = `plain-${newId('event')}`;
      const created = await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Plain' }, headers: { 'idempotency-key': key } });
      expectStatus(created, 201);
      const [row] = await t.db.query<{ response_body: { id: string } | null; response_sealed: Buffer | null }>(
        'SELECT response_body, response_sealed FROM idempotency_keys WHERE organization_id = $1 AND key = $2',
        [org.organizationId, key],
      );
      expect(row).toMatchObject({ response_body: { id: created.body.id }, response_sealed: null });
    });
  });

  describe('redeeming magic links', () => {
    it('GET and HEAD render a self-submitting page and do not consume the link; the POST then works once', async () => {
      const token = await newLinkToken();
      for (let i = 0; i < 2; i++) {
        const page = await t.request('GET', `/portal/login?token=${token}`);
        expectStatus(page, 200);
        expect(page.headers.get('content-type')).toMatch(/^text\/html/);
        // strict-origin, not no-referrer: the self-submitting form must carry its Origin (login CSRF
        // check below), and the origin alone never carries this URL's token.
        expect(page.headers.get('referrer-policy')).toBe('strict-origin');
        expect(page.headers.get('cache-control')).toBe('no-store');
        expect(page.headers.get('x-frame-options')).toBe('DENY');
        const csp = page.headers.get('content-security-policy')!;
        expect(csp).toContain("default-src 'none'");
        expect(csp).toContain("frame-ancestors 'none'");
        expect(csp).toMatch(/form-action 'self'/);
        const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
        expect(nonce).toBeTruthy();
        expect(page.text).toContain(`<script nonce="${nonce}">`);
        expect(page.text).toContain('<html lang="en">');
        expect(page.text).toMatch(/<form id="portal-login" method="post" action="\/portal\/login">/);
        expect(page.text).toContain(`<input type="hidden" name="token" value="${token}">`);
        expect(page.text).toContain('<button type="submit">Continue to your portal</button>');
      }
      const head = await t.request('HEAD', `/portal/login?token=${token}`);
      expectStatus(head, 200);
      expect(head.headers.get('referrer-policy')).toBe('strict-origin');
      expect(portalCookie(head)).toBeUndefined();

      const redeemed = await redeem(token);
      expectStatus(redeemed, 303);
      expect(redeemed.headers.get('location')).toBe('/portal');
      const cookie = portalCookie(redeemed)!;
      expect(cookie).toMatch(/; HttpOnly/i);
      expect(cookie).toMatch(/; SameSite=Lax/i);
      expect(cookie).toMatch(/; Path=\/portal(;|$)/);
      expect(cookie).not.toMatch(/; Secure/i); // the test server's public URL is http
      expect(cookieValue(cookie)).toMatch(/^[A-Za-z0-9_-]{43}$/);

      const again = await redeem(token);
      expectStatus(again, 410);
      expect(again.text).toContain('This link is no longer valid');
      expect(portalCookie(again)).toBeUndefined();
    });

    describe('login CSRF: only a form from Paygate\'s own page signs in', () => {
      const crossSite: Array<[string, Record<string, string>]> = [
        ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
        ['Sec-Fetch-Site: same-site (a sibling subdomain)', { 'sec-fetch-site': 'same-site' }],
        ['an Origin elsewhere', { origin: 'https://attacker.example' }],
        ['Origin: null (a sandboxed frame)', { origin: 'null' }],
        ['a Referer elsewhere', { referer: 'https://attacker.example/page' }],
        ['a same-origin Origin contradicted by Sec-Fetch-Site', { origin: 'PUBLIC', 'sec-fetch-site': 'cross-site' }],
      ];
      it.each(crossSite)('a sign-in posted with %s is refused with 403 and consumes nothing', async (_label, headers) => {
        const token = await newLinkToken();
        const resolved = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v === 'PUBLIC' ? new URL(t.config.publicUrl).origin : v]));
        const refused = await redeem(token, resolved);
        expectStatus(refused, 403);
        expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
        expect(refused.text).toContain('Open your sign-in link directly');
        expect(portalCookie(refused)).toBeUndefined();
        // The link is still unused: the client's own page redeems it.
        expectStatus(await redeem(token, { 'sec-fetch-site': 'same-origin' }), 303);
      });

      it("a sign-in from Paygate's own page passes: Sec-Fetch-Site same-origin, or PAYGATE_PUBLIC_URL's Origin or Referer", async () => {
        const origin = new URL(t.config.publicUrl).origin;
        const sameOrigin: Array<Record<string, string>> = [{ 'sec-fetch-site': 'same-origin' }, { origin }, { referer: `${origin}/portal/login` }, { origin, 'sec-fetch-site': 'same-origin' }];
        for (const headers of sameOrigin) {
          expectStatus(await redeem(await newLinkToken(), headers), 303);
        }
      });

      it('a client that sends none of these headers (not a browser posting from elsewhere) still signs in', async () => {
        expectStatus(await redeem(await newLinkToken()), 303);
      });
    });

    it('behind an https public URL the link uses it, the cookie is Secure, and forms may post to that origin', async () => {
      const secure = await startPaygate({ env: { PAYGATE_PUBLIC_URL: 'https://pay.example.com/' } });
      try {
        const owner = await createOrgWithKey(secure, SCOPES);
        const client = await secure.request('POST', '/v1/clients', { token: owner.token, body: { name: 'Secure Sam' } });
        const created = await secure.request('POST', '/v1/portal/magic-links', { token: owner.token, body: { clientId: client.body.id } });
        expectStatus(created, 201);
        expect(created.body.url).toMatch(/^https:\/\/pay\.example\.com\/portal\/login\?token=[A-Za-z0-9_-]{43}$/);
        const page = await secure.request('GET', `/portal/login?token=${tokenOf(created.body.url)}`);
        expect(page.headers.get('content-security-policy')).toContain("form-action 'self' https://pay.example.com;");
        const redeemed = await secure.request('POST', '/portal/login', {
          body: new URLSearchParams({ token: tokenOf(created.body.url) }).toString(),
          headers: FORM,
        });
        expectStatus(redeemed, 303);
        expect(portalCookie(redeemed)).toMatch(/; Secure/i);
      } finally {
        await secure.close();
      }
    });

    it('50 parallel redemptions of one magic link -> exactly one session', async () => {
      const created = await issue({ clientId });
      const token = tokenOf(created.body.url);
      const results = await Promise.all(Array.from({ length: 50 }, () => redeem(token)));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 303)).toHaveLength(1);
      expect(statuses.filter((s) => s === 410)).toHaveLength(49);
      expect(results.filter((r) => portalCookie(r) !== undefined)).toHaveLength(1);
      const sessions = await t.db.query('SELECT id FROM portal_sessions WHERE link_id = $1', [created.body.id]);
      expect(sessions).toHaveLength(1);
      const audits = await t.db.query("SELECT id FROM audit_events WHERE action = 'portal_link.redeemed' AND target->>'id' = $1", [created.body.id]);
      expect(audits).toHaveLength(1);
    });

    it('a used, expired or unknown token gets 410 and a page saying so', async () => {
      const expired = await issue({ clientId, ttlMinutes: 1 });
      await t.db.query("UPDATE portal_links SET expires_at = now() - interval '1 second' WHERE id = $1", [expired.body.id]);
      const used = await newLinkToken();
      expectStatus(await redeem(used), 303);
      for (const token of [tokenOf(expired.body.url), used, newToken(), 'short', '']) {
        const refused = await redeem(token);
        expectStatus(refused, 410);
        expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
        expect(refused.text).toContain('This link is no longer valid');
        expect(refused.text).toContain('ask the company that sent it to you for a new link');
        expect(portalCookie(refused)).toBeUndefined();
      }
      const noField = await t.request('POST', '/portal/login', { body: 'other=1', headers: FORM });
      expectStatus(noField, 410);
      expectStatus(await t.request('GET', '/portal/login'), 410);
      expectStatus(await t.request('GET', '/portal/login?token=%3Cscript%3E'), 410);
      // The expired link stays unused: expiry, not redemption, ended it.
      const [row] = await t.db.query<{ used_at: Date | null }>('SELECT used_at FROM portal_links WHERE id = $1', [expired.body.id]);
      expect(row!.used_at).toBeNull();
    });

    it("a link of a deleted client is no longer valid", async () => {
      const gone = await createClient(org, 'Gone soon');
      const token = await newLinkToken(gone);
      expectStatus(await t.request('DELETE', `/v1/clients/${gone}`, { token: org.token }), 204);
      expectStatus(await redeem(token), 410);
    });

    it('issuing and redeeming are audited, and the token appears in no audit row and no log line', async () => {
      const created = await issue({ clientId, ttlMinutes: 9 });
      const token = tokenOf(created.body.url);
      await t.request('GET', `/portal/login?token=${token}`);
      await t.request('HEAD', `/portal/login?token=${token}`);
      const redeemed = await redeem(token);
      expectStatus(redeemed, 303);
      const session = cookieValue(portalCookie(redeemed)!);
      await t.request('GET', '/portal', { cookies: { portal_session: session } });

      const [issued] = await t.db.query<{ actor_type: string; actor_id: string; organization_id: string; target: unknown; details: Record<string, unknown> }>(
        "SELECT actor_type, actor_id, organization_id, target, details FROM audit_events WHERE action = 'portal_link.created' AND details->>'portalLinkId' = $1",
        [created.body.id],
      );
      expect(issued).toMatchObject({
        actor_type: 'api_key',
        actor_id: org.keyId,
        organization_id: org.organizationId,
        target: { type: 'client', id: clientId },
        details: { ttlMinutes: 9 },
      });
      const [used] = await t.db.query<{ organization_id: string; target: unknown; details: Record<string, unknown> }>(
        "SELECT organization_id, target, details FROM audit_events WHERE action = 'portal_link.redeemed' AND target->>'id' = $1",
        [created.body.id],
      );
      expect(used).toMatchObject({ organization_id: org.organizationId, target: { type: 'portal_link', id: created.body.id }, details: { clientId } });

      const audit = await t.db.query<{ row: string }>('SELECT row_to_json(a)::text AS row FROM audit_events a');
      const auditText = audit.map((r) => r.row).join('\n');
      expect(auditText).not.toContain(token);
      expect(auditText).not.toContain(session);
      const logs = t.logs.text();
      expect(logs).toContain('/portal/login?token=[REDACTED]');
      expect(logs).not.toContain(token);
      expect(logs).not.toContain(session);
    });
  });

  describe('the portal', () => {
    it("shows only this client's invoices that are not drafts, every value escaped, and Pay only for open ones", async () => {
      const client = await createClient(org, 'Grace <script>alert(1)</script>');
      const open = await insertInvoice(org, client, 'open', 1999, 'EUR');
      const paid = await insertInvoice(org, client, 'paid', 500, 'JPY', null);
      const voided = await insertInvoice(org, client, 'void', 1234, 'USD');
      const draft = await insertInvoice(org, client, 'draft', 777, 'EUR');
      const sibling = await insertInvoice(org, await createClient(org, 'Sibling'), 'open');
      const foreign = await insertInvoice(other, await createClient(other, 'Foreign'), 'open');

      const { page } = await signIn(client);
      expect(page.headers.get('x-frame-options')).toBe('DENY');
      expect(page.headers.get('cache-control')).toBe('no-store');
      expect(page.headers.get('content-security-policy')).not.toContain('script-src');
      expect(page.text).toContain('<html lang="en">');
      expect(page.text).toContain('Grace &lt;script&gt;alert(1)&lt;/script&gt;');
      expect(page.text).not.toContain('<script>alert(1)');
      for (const id of [open, paid, voided]) expect(page.text).toContain(id);
      for (const id of [draft, sibling, foreign]) expect(page.text).not.toContain(id);
      expect(page.text).toContain('€19.99');
      expect(page.text).toContain('¥500');
      expect(page.text).toContain('$12.34');
      expect(page.text).toContain('<time datetime="2030-01-15T00:00:00.000Z">Jan 15, 2030</time>');
      const payForms = [...page.text.matchAll(/action="\/portal\/invoices\/([^/"]+)\/pay"/g)].map((m) => m[1]);
      expect(payForms).toEqual([open]);
      expect(page.text).toContain(`aria-label="Pay invoice ${open}, €19.99"`);
    });

    it('names are escaped on every page: a client called like markup stays text', async () => {
      const { page } = await signIn();
      expect(page.text).toContain('Hello, Ada &lt;b&gt;&amp;&lt;/b&gt; &quot;Lovelace&quot;');
    });

    it('without a valid portal session the portal answers 401 with a page saying so', async () => {
      for (const cookies of [undefined, { portal_session: 'garbage' }, { portal_session: newToken() }]) {
        const refused = await t.request('GET', '/portal', { cookies });
        expectStatus(refused, 401);
        expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
        expect(refused.text).toContain('Your portal session has ended');
      }
      const { session } = await signIn();
      await t.db.query("UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1", [createHash('sha256').update(session).digest()]);
      expectStatus(await t.request('GET', '/portal', { cookies: { portal_session: session } }), 401);
    });

    it('signing out needs the CSRF token and ends the session server-side', async () => {
      const { session, csrf } = await signIn();
      expectStatus(await post('/portal/logout', session, {}), 403);
      expectStatus(await post('/portal/logout', session, { csrf: 'x'.repeat(43) }), 403);
      expectStatus(await t.request('GET', '/portal', { cookies: { portal_session: session } }), 200);
      const out = await post('/portal/logout', session, { csrf });
      expectStatus(out, 303);
      expect(out.headers.get('location')).toBe('/portal/signed-out');
      expect(portalCookie(out)).toMatch(/^portal_session=;/);
      expectStatus(await t.request('GET', '/portal', { cookies: { portal_session: session } }), 401);
      expectStatus(await t.request('GET', '/portal/signed-out'), 200);
    });

    it("the CSRF token of one session does not work for another", async () => {
      const first = await signIn();
      const second = await signIn();
      expect(first.csrf).not.toBe(second.csrf);
      const invoice = await insertInvoice(org, clientId, 'open');
      expectStatus(await post(`/portal/invoices/${invoice}/pay`, second.session, { csrf: first.csrf }), 403);
    });

    it('paying needs a session and its CSRF token; without them nothing is created', async () => {
      const invoice = await insertInvoice(org, clientId, 'open');
      const { session } = await signIn();
      expectStatus(await post(`/portal/invoices/${invoice}/pay`, session, {}), 403);
      expectStatus(await post(`/portal/invoices/${invoice}/pay`, 'garbage', { csrf: 'x' }), 401);
      const json = await t.request('POST', `/portal/invoices/${invoice}/pay`, { cookies: { portal_session: session }, body: { csrf: 'nope' } });
      expectStatus(json, 403);
      const checkouts = await t.db.query('SELECT 1 FROM checkouts WHERE invoice_id = $1', [invoice]);
      expect(checkouts).toHaveLength(0);
    });

    it("another client's or organization's invoice, or a draft, is 404 to the portal; a paid one is 409", async () => {
      const { session, csrf } = await signIn();
      const sibling = await insertInvoice(org, await createClient(org, 'Sibling 2'), 'open');
      const foreign = await insertInvoice(other, await createClient(other, 'Foreign 2'), 'open');
      const draft = await insertInvoice(org, clientId, 'draft');
      const paid = await insertInvoice(org, clientId, 'paid');
      for (const id of [sibling, foreign, draft, newId('invoice'), 'nonsense']) {
        const refused = await post(`/portal/invoices/${id}/pay`, session, { csrf });
        expectStatus(refused, 404);
        expect(refused.headers.get('content-type')).toMatch(/^text\/html/);
      }
      expectStatus(await post(`/portal/invoices/${paid}/pay`, session, { csrf }), 409);
      const checkouts = await t.db.query('SELECT 1 FROM checkouts WHERE invoice_id = ANY($1)', [[sibling, foreign, draft, paid]]);
      expect(checkouts).toHaveLength(0);
    });

    it('a portal session cannot call /v1', async () => {
      const { session } = await signIn();
      for (const path of ['/v1/auth/whoami', '/v1/invoices', '/v1/clients']) {
        expectProblem(await t.request('GET', path, { cookies: { portal_session: session } }), 401, 'missing_credentials');
      }
      expectProblem(
        await t.request('POST', '/v1/portal/magic-links', { cookies: { portal_session: session }, body: { clientId } }),
        401,
        'missing_credentials',
      );
    });

    // Runs against CheckoutService.createForInvoice (payments/checkouts), so it comes last.
    it('paying through the portal redirects to the hosted page of a checkout for that invoice', async () => {
      const invoice = await insertInvoice(org, clientId, 'open', 4200, 'EUR');
      const { session, csrf } = await signIn();
      const paying = await post(`/portal/invoices/${invoice}/pay`, session, { csrf });
      expectStatus(paying, 303);
      const location = paying.headers.get('location')!;
      const id = /\/pay\/(chk_[0-9A-Za-z]+)$/.exec(location)?.[1];
      expect(id, location).toBeTruthy();
      const [checkout] = await t.db.query<{ organization_id: string; invoice_id: string; client_id: string; amount: number; currency: string; status: string; success_url: string; cancel_url: string }>(
        'SELECT organization_id, invoice_id, client_id, amount, currency, status, success_url, cancel_url FROM checkouts WHERE id = $1',
        [id],
      );
      expect(checkout).toMatchObject({
        organization_id: org.organizationId,
        invoice_id: invoice,
        client_id: clientId,
        amount: 4200,
        currency: 'EUR',
        status: 'open',
        success_url: `${t.config.publicUrl}/portal`,
        cancel_url: `${t.config.publicUrl}/portal`,
      });
    });
  });
});
