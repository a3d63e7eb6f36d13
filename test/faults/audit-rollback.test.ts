/**
 * "Audit in the same transaction", proven for every kind of change: a real trigger in the test's
 * database refuses the audit write of one action, and the change that would have recorded it must
 * not have happened. If any change wrote its audit event outside its own transaction (or not at
 * all), its row here would go red: the change would stick while its audit write failed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createOrgKey, createOrgWithKey, createSystemKey, createUser, expectStatus, login, startPaygate, type TestApp } from '../harness.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe('a change whose audit write fails does not happen', () => {
  let t: TestApp;
  let owner: pg.Client;

  beforeAll(async () => {
    t = await startPaygate();
    // The trigger is the test's own fault injection, installed with the database owner's rights.
    owner = new pg.Client({ connectionString: t.config.databaseUrl! });
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
  afterAll(async () => {
    await owner?.end();
    await t?.close();
  });

  /** Runs `change` while the audit write of `action` fails; it must be refused with a 5xx. */
  async function withAuditFailing(action: string, change: () => Promise<{ status: number; text: string }>): Promise<void> {
    const recorded = async () => Number((await owner.query('SELECT count(*)::int AS n FROM audit_events WHERE action = $1', [action])).rows[0].n);
    const before = await recorded();
    await owner.query('INSERT INTO test_refused_audit_actions (action) VALUES ($1)', [action]);
    try {
      const result = await change();
      expect(result.status, `${action}: the change must fail when its audit write fails: ${result.text}`).toBeGreaterThanOrEqual(500);
    } finally {
      await owner.query('DELETE FROM test_refused_audit_actions WHERE action = $1', [action]);
    }
    expect(await recorded(), `${action} was recorded although its write was refused`).toBe(before);
  }

  const count = async (sql: string, params: unknown[] = []) => Number((await owner.query(sql, params)).rows[0].n);

  it('api_key.created, .updated, .rotated, .revoked, .deleted', async () => {
    const org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
    const before = await count('SELECT count(*) AS n FROM api_keys WHERE organization_id = $1', [org.organizationId]);
    await withAuditFailing('api_key.created', () => t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'x', scopes: ['client:read'] } }));
    expect(await count('SELECT count(*) AS n FROM api_keys WHERE organization_id = $1', [org.organizationId])).toBe(before);

    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    await withAuditFailing('api_key.updated', () => t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { name: 'renamed' } }));
    expect((await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body.name).toBe('extra key');

    await withAuditFailing('api_key.rotated', () => t.request('POST', `/v1/api-keys/${key.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 0 } }));
    expectStatus(await t.request('GET', '/v1/auth/whoami', { token: key.secret }), 200);

    await withAuditFailing('api_key.revoked', () => t.request('POST', `/v1/api-keys/${key.id}/revoke`, { token: org.token }));
    expectStatus(await t.request('GET', '/v1/auth/whoami', { token: key.secret }), 200);

    await withAuditFailing('api_key.deleted', () => t.request('DELETE', `/v1/api-keys/${key.id}`, { token: org.token }));
    expectStatus(await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token }), 200);
  });

  it('system_key.created and .revoked', async () => {
    const admin = await createUser(t, { globalAdmin: true });
    const session = await login(t, admin.email, admin.password);
    const before = await count("SELECT count(*) AS n FROM api_keys WHERE tier = 'system'");
    await withAuditFailing('system_key.created', () =>
      t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 's', scopes: ['health:read'] } }),
    );
    expect(await count("SELECT count(*) AS n FROM api_keys WHERE tier = 'system'")).toBe(before);
    const key = await createSystemKey(t, ['health:read']);
    await withAuditFailing('system_key.revoked', () => t.request('POST', `/v1/system/api-keys/${key.keyId}/revoke`, { token: session.token }));
    expectStatus(await t.request('GET', '/v1/system/health', { token: key.token }), 200);
  });

  it('organization.created, .updated, .deleted', async () => {
    const system = await createSystemKey(t, ['organization:*']);
    const before = await count('SELECT count(*) AS n FROM organizations');
    await withAuditFailing('organization.created', () =>
      t.request('POST', '/v1/system/organizations', { token: system.token, body: { name: 'Never', initialApiKey: { name: 'k', scopes: ['client:read'] } } }),
    );
    expect(await count('SELECT count(*) AS n FROM organizations')).toBe(before);

    const org = await createOrgWithKey(t, ['client:read'], 'Original');
    await withAuditFailing('organization.updated', () => t.request('PATCH', `/v1/system/organizations/${org.organizationId}`, { token: system.token, body: { name: 'Renamed' } }));
    expect((await t.request('GET', `/v1/system/organizations/${org.organizationId}`, { token: system.token })).body.name).toBe('Original');

    await withAuditFailing('organization.deleted', () => t.request('DELETE', `/v1/system/organizations/${org.organizationId}`, { token: system.token }));
    expect((await t.request('GET', `/v1/system/organizations/${org.organizationId}`, { token: system.token })).body.status).toBe('active');
    // Its keys were not revoked either: the whole deletion rolled back.
    expectStatus(await t.request('GET', '/v1/clients', { token: org.token }), 200);
  });

  it('member.updated and .removed', async () => {
    const org = await createOrgWithKey(t, ['client:read']);
    const ownerUser = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const member = await createUser(t, { organizationId: org.organizationId, role: 'viewer' });
    const session = await login(t, ownerUser.email, ownerUser.password);
    const path = `/v1/organizations/${org.organizationId}/members/${member.id}`;
    await withAuditFailing('member.updated', () => t.request('PATCH', path, { token: session.token, body: { role: 'admin' } }));
    expect(await count('SELECT count(*) AS n FROM memberships WHERE user_id = $1 AND role = $2', [member.id, 'viewer'])).toBe(1);
    await withAuditFailing('member.removed', () => t.request('DELETE', path, { token: session.token }));
    expect(await count('SELECT count(*) AS n FROM memberships WHERE user_id = $1', [member.id])).toBe(1);
  });

  it('system_settings.updated', async () => {
    const system = await createSystemKey(t, ['system_settings:*']);
    const before = (await t.request('GET', '/v1/system/settings', { token: system.token })).body.portalMagicLinkTtlMinutes;
    await withAuditFailing('system_settings.updated', () =>
      t.request('PATCH', '/v1/system/settings', { token: system.token, body: { portalMagicLinkTtlMinutes: before === 20 ? 21 : 20 } }),
    );
    expect((await t.request('GET', '/v1/system/settings', { token: system.token })).body.portalMagicLinkTtlMinutes).toBe(before);
  });

  it('session.created and session.ended', async () => {
    const user = await createUser(t);
    const before = await count('SELECT count(*) AS n FROM sessions WHERE user_id = $1', [user.id]);
    await withAuditFailing('session.created', () => t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }));
    expect(await count('SELECT count(*) AS n FROM sessions WHERE user_id = $1', [user.id])).toBe(before);

    const session = await login(t, user.email, user.password);
    await withAuditFailing('session.ended', () => t.request('POST', '/v1/auth/logout', { token: session.token }));
    expectStatus(await t.request('GET', '/v1/auth/me', { token: session.token }), 200);
  });

  it('portal_link.created and portal_link.redeemed', async () => {
    const org = await createOrgWithKey(t, ['client:create', 'portal:create']);
    const client = await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada', email: 'ada@example.com' } });
    const links = () => count('SELECT count(*) AS n FROM portal_links WHERE client_id = $1', [client.body.id]);
    await withAuditFailing('portal_link.created', () => t.request('POST', '/v1/portal/magic-links', { token: org.token, body: { clientId: client.body.id } }));
    expect(await links()).toBe(0);

    const link = await t.request('POST', '/v1/portal/magic-links', { token: org.token, body: { clientId: client.body.id } });
    const token = new URL(link.body.url).searchParams.get('token')!;
    await withAuditFailing('portal_link.redeemed', () =>
      t.request('POST', '/portal/login', { body: new URLSearchParams({ token }).toString(), headers: { ...FORM, origin: t.config.publicUrl } }),
    );
    expect(await count('SELECT count(*) AS n FROM portal_links WHERE client_id = $1 AND used_at IS NULL', [client.body.id])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM portal_sessions WHERE client_id = $1', [client.body.id])).toBe(0);
  });

  it('refund.created', async () => {
    const org = await createOrgWithKey(t, ['checkout:create', 'checkout:read', 'transaction:read', 'transaction:execute']);
    const checkout = await t.request('POST', '/v1/checkouts', { token: org.token, body: { amount: 1000, currency: 'EUR' } });
    expectStatus(checkout, 201);
    const paid = await t.request('POST', `/pay/${checkout.body.id}`, { body: 'cardNumber=4242424242424242', headers: FORM });
    expect([200, 303], paid.text).toContain(paid.status);
    const transactionId = (await t.request('GET', `/v1/checkouts/${checkout.body.id}`, { token: org.token })).body.transactionId;
    await withAuditFailing('refund.created', () => t.request('POST', `/v1/transactions/${transactionId}/refunds`, { token: org.token, body: { amount: 100 } }));
    expect((await t.request('GET', `/v1/transactions/${transactionId}`, { token: org.token })).body.amountRefunded).toBe(0);
    expect(await count('SELECT count(*) AS n FROM refunds WHERE transaction_id = $1', [transactionId])).toBe(0);
  });

  it('data_io.export_started and data_io.import_started', async () => {
    const org = await createOrgWithKey(t, ['data_io:execute', 'data_io:read']);
    const jobs = () => count("SELECT count(*) AS n FROM data_io_jobs WHERE organization_id = $1 AND status <> 'uploading'", [org.organizationId]);
    await withAuditFailing('data_io.export_started', () => t.request('POST', '/v1/data-io/exports', { token: org.token, body: { resource: 'clients', format: 'csv' } }));
    expect(await jobs()).toBe(0);
    await withAuditFailing('data_io.import_started', () =>
      t.request('POST', '/v1/data-io/imports', { token: org.token, body: 'name,email\nAda,ada@example.com\n', headers: { 'content-type': 'text/csv' } }),
    );
    expect(await jobs()).toBe(0);
    // The staged upload was removed with its chunks, not left behind.
    expect(await count('SELECT count(*) AS n FROM data_io_jobs WHERE organization_id = $1', [org.organizationId])).toBe(0);
  });
});
