/**
 * Key hygiene (SPEC §12 flags, §14 settings and expiry warnings) on real servers: every flag, raised
 * by rows back-dated in the database and by the settings' thresholds; the settings' bounds; the
 * thresholds read from the settings cache; expiry warnings sent once per key and expiry (mail to the
 * owners over real SMTP, the `api_key.expiring` webhook to a real receiver), again when the expiry
 * changes, and exactly once across a cluster of two nodes that both run the scheduler.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  changeKeyRow,
  createOrgKey,
  createOrgWithKey,
  createSystemKey,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type OrgWithKey,
  type TestApp,
} from './harness.js';
import { systemContext } from '../src/auth/context.js';
import { startCluster, type Cluster } from './cluster-harness.js';
import { startMailReceiver, type MailReceiver } from './mail-receiver.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

const DAY = 86_400_000;
const inDays = (days: number) => new Date(Date.now() + days * DAY).toISOString();

describe('key hygiene settings', () => {
  let t: TestApp;
  let system: { token: string };
  beforeAll(async () => {
    t = await startPaygate();
    system = await createSystemKey(t, ['system_settings:*']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are off (null) by default, take their bounds, and can be turned off again', async () => {
    const initial = await t.request('GET', '/v1/system/settings', { token: system.token });
    expect(initial.body).toMatchObject({ apiKeyRotationMaxAgeDays: null, apiKeyInactiveDays: null, apiKeyExpiryWarningDays: null });
    for (const body of [
      { apiKeyRotationMaxAgeDays: 0 },
      { apiKeyRotationMaxAgeDays: 3651 },
      { apiKeyInactiveDays: 0 },
      { apiKeyInactiveDays: 3651 },
      { apiKeyExpiryWarningDays: 0 },
      { apiKeyExpiryWarningDays: 366 },
      { apiKeyExpiryWarningDays: 1.5 },
      { apiKeyInactiveDays: '30' },
    ]) {
      const refused = await t.request('PATCH', '/v1/system/settings', { token: system.token, body });
      expectProblem(refused, 400, 'validation_error');
    }
    // Nothing changed by the refusals.
    expect((await t.request('GET', '/v1/system/settings', { token: system.token })).body).toMatchObject({ apiKeyRotationMaxAgeDays: null, apiKeyInactiveDays: null, apiKeyExpiryWarningDays: null });
    const set = await t.request('PATCH', '/v1/system/settings', { token: system.token, body: { apiKeyRotationMaxAgeDays: 3650, apiKeyInactiveDays: 1, apiKeyExpiryWarningDays: 365 } });
    expectStatus(set, 200);
    expect(set.body).toMatchObject({ apiKeyRotationMaxAgeDays: 3650, apiKeyInactiveDays: 1, apiKeyExpiryWarningDays: 365 });
    const off = await t.request('PATCH', '/v1/system/settings', { token: system.token, body: { apiKeyRotationMaxAgeDays: null, apiKeyInactiveDays: null, apiKeyExpiryWarningDays: null } });
    expectStatus(off, 200);
    expect(off.body).toMatchObject({ apiKeyRotationMaxAgeDays: null, apiKeyInactiveDays: null, apiKeyExpiryWarningDays: null });
  });
});

describe('key flags', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let system: { token: string };
  const flagsOf = async (id: string) => {
    const result = await t.request('GET', `/v1/api-keys/${id}`, { token: org.token });
    expectStatus(result, 200);
    return result.body.flags as string[];
  };
  const settings = async (body: Record<string, number | null>) => expectStatus(await t.request('PATCH', '/v1/system/settings', { token: system.token, body }), 200);

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*', 'client:*', 'invoice:read']);
    system = await createSystemKey(t, ['system_settings:*']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('no_expiry and broad_scopes need no setting; a key with neither has no flag', async () => {
    const narrow = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    expect(narrow.flags).toEqual([]);
    expect(await flagsOf(org.keyId)).toEqual(['no_expiry', 'broad_scopes']);
    const noExpiry = await createOrgKey(t, org.organizationId, ['client:read']);
    expect(noExpiry.flags).toEqual(['no_expiry']);
    const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'broad', scopes: ['client:*', 'invoice:read'] } });
    expectStatus(created, 201);
    expect(created.body.flags).toEqual(['no_expiry', 'broad_scopes']);
  });

  it('rotation_due: the secret (since the last rotation, else the creation) is apiKeyRotationMaxAgeDays old', async () => {
    const old = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    const rotatedLately = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '31 days' WHERE id = $1", old.id);
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '90 days', rotated_at = now() - interval '29 days' WHERE id = $1", rotatedLately.id);
    expect(await flagsOf(old.id)).toEqual([]);
    await settings({ apiKeyRotationMaxAgeDays: 30 });
    expect(await flagsOf(old.id)).toEqual(['rotation_due']);
    expect(await flagsOf(rotatedLately.id)).toEqual([]);
    // Rotating gives it a new secret: no longer due.
    const rotated = await t.request('POST', `/v1/api-keys/${old.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 0 } });
    expectStatus(rotated, 200);
    expect(rotated.body.flags).toEqual([]);
    await settings({ apiKeyRotationMaxAgeDays: null });
  });

  it('inactive: unused for apiKeyInactiveDays since the last use, else since the creation', async () => {
    const neverUsed = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    const usedLately = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    const usedLongAgo = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '20 days' WHERE id = $1", neverUsed.id);
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '20 days', last_used_at = now() - interval '2 days' WHERE id = $1", usedLately.id);
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '20 days', last_used_at = now() - interval '11 days' WHERE id = $1", usedLongAgo.id);
    await settings({ apiKeyInactiveDays: 10 });
    expect(await flagsOf(neverUsed.id)).toEqual(['inactive']);
    expect(await flagsOf(usedLately.id)).toEqual([]);
    expect(await flagsOf(usedLongAgo.id)).toEqual(['inactive']);
    await settings({ apiKeyInactiveDays: null });
    expect(await flagsOf(neverUsed.id)).toEqual([]);
  });

  it('expiring_soon: expiresAt within apiKeyExpiryWarningDays', async () => {
    const soon = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(3) });
    const later = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(8) });
    await settings({ apiKeyExpiryWarningDays: 7 });
    expect(await flagsOf(soon.id)).toEqual(['expiring_soon']);
    expect(await flagsOf(later.id)).toEqual([]);
    await settings({ apiKeyExpiryWarningDays: null });
  });

  it('creator_removed: the creating user left the organization (a global admin creator is not removed)', async () => {
    const owner = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const ownerSession = await login(t, owner.email, owner.password);
    const byOwner = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: ownerSession.token, body: { name: 'by owner', scopes: ['client:read'], expiresAt: inDays(100) } });
    expectStatus(byOwner, 201);
    expect(byOwner.body.flags).toEqual([]);
    const admin = await createUser(t, { globalAdmin: true });
    const adminSession = await login(t, admin.email, admin.password);
    const byAdmin = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: adminSession.token, body: { name: 'by admin', scopes: ['client:read'], expiresAt: inDays(100) } });
    expectStatus(byAdmin, 201);

    await t.db.query('DELETE FROM memberships WHERE user_id = $1', [owner.id]);
    expect(await flagsOf(byOwner.body.id)).toEqual(['creator_removed']);
    expect(await flagsOf(byAdmin.body.id)).toEqual([]);
    // In the list too, and in what a change answers.
    const list = await t.request('GET', '/v1/api-keys?limit=100', { token: org.token });
    expect((list.body.data as Array<{ id: string; flags: string[] }>).find((k) => k.id === byOwner.body.id)!.flags).toEqual(['creator_removed']);
    const renamed = await t.request('PATCH', `/v1/api-keys/${byOwner.body.id}`, { token: org.token, body: { name: 'orphan' } });
    expectStatus(renamed, 200);
    expect(renamed.body.flags).toEqual(['creator_removed']);
    // A user that no longer exists at all.
    const gone = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const goneSession = await login(t, gone.email, gone.password);
    const byGone = await t.request('POST', '/v1/api-keys', { token: goneSession.token, cookies: { selectedOrganization: org.organizationId }, body: { name: 'by gone', scopes: ['client:read'], expiresAt: inDays(100) } });
    expectStatus(byGone, 201);
    await t.db.query('DELETE FROM users WHERE id = $1', [gone.id]);
    expect(await flagsOf(byGone.body.id)).toEqual(['creator_removed']);
  });

  it('leaked: a token of the key was reported leaked', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(100) });
    await changeKeyRow(t, 'UPDATE api_keys SET leaked_at = now() WHERE id = $1', key.id);
    expect(await flagsOf(key.id)).toEqual(['leaked']);
  });

  it('a revoked or expired key carries no flag but leaked', async () => {
    await settings({ apiKeyInactiveDays: 1, apiKeyRotationMaxAgeDays: 1 });
    const revoked = await createOrgKey(t, org.organizationId, ['client:*']);
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '5 days', revoked_at = now(), leaked_at = now() WHERE id = $1", revoked.id);
    expect(await flagsOf(revoked.id)).toEqual(['leaked']);
    const expired = await createOrgKey(t, org.organizationId, ['client:*']);
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '5 days', expires_at = now() - interval '1 day' WHERE id = $1", expired.id);
    expect(await flagsOf(expired.id)).toEqual([]);
    await settings({ apiKeyInactiveDays: null, apiKeyRotationMaxAgeDays: null });
  });

  it('reads the thresholds from the settings cache: a read costs its own query and no settings query', async () => {
    await settings({ apiKeyExpiryWarningDays: 7 });
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(3) });
    expect(await flagsOf(key.id)).toEqual(['expiring_soon']); // warms every cache
    const costs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const before = t.db.stats.queries;
      expect(await flagsOf(key.id)).toEqual(['expiring_soon']);
      costs.push(t.db.stats.queries - before);
    }
    expect(Math.min(...costs)).toBe(1);
    await settings({ apiKeyExpiryWarningDays: null });
  });
});

describe('expiry warnings on one node', () => {
  let t: TestApp;
  let mail: MailReceiver;
  let hooks: WebhookReceiver;
  let org: OrgWithKey;
  let ownerEmail: string;
  let system: { token: string };

  beforeAll(async () => {
    mail = await startMailReceiver();
    hooks = await startWebhookReceiver();
    // The scheduler's own timer stays out of the way (an hour); the test runs its ticks itself.
    t = await startPaygate({ env: { ...mail.env, PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    org = await createOrgWithKey(t, ['api_key:*', 'webhook:*', 'client:read']);
    ownerEmail = (await createUser(t, { organizationId: org.organizationId, role: 'owner' })).email;
    await createUser(t, { organizationId: org.organizationId, role: 'admin' });
    system = await createSystemKey(t, ['system_settings:*']);
    expectStatus(await t.request('POST', '/v1/webhook-endpoints', { token: org.token, body: { url: hooks.urlFor('one'), events: ['api_key.expiring'] } }), 201);
  });
  afterAll(async () => {
    await t?.close();
    await mail?.close();
    await hooks?.close();
  });

  it('warns once per key and expiry: mail to the owners and api_key.expiring; again when expiresAt changes', async () => {
    const soon = await createOrgKey(t, org.organizationId, ['client:read'], { name: 'payments worker', expiresAt: inDays(3) });
    const later = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(20) });
    const revoked = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(2) });
    expectStatus(await t.request('POST', `/v1/api-keys/${revoked.id}/revoke`, { token: org.token }), 200);

    // Off by default: nothing is warned.
    expect(await t.services.expiryWarnings.runOnce()).toBe(0);
    expectStatus(await t.request('PATCH', '/v1/system/settings', { token: system.token, body: { apiKeyExpiryWarningDays: 7 } }), 200);
    expect(await t.services.expiryWarnings.runOnce()).toBe(1);
    expect(await t.services.expiryWarnings.runOnce()).toBe(0);

    const message = await mail.next(ownerEmail);
    expect(message.subject).toMatch(/expires in 3 days/);
    expect(message.text).toContain(soon.id);
    expect(message.text).toContain('payments worker');
    expect(message.text).not.toMatch(/sk_[0-9A-Za-z]{20}\./);
    const hook = await hooks.next('api_key.expiring');
    expect(hook.json).toMatchObject({ type: 'api_key.expiring', organizationId: org.organizationId, data: { object: { id: soon.id, object: 'api_key', flags: ['expiring_soon'] } } });
    expect(hook.json.data.object.secret).toBeUndefined();

    // A new expiry is a new warning once it is within the window; one outside the window is not.
    expectStatus(await t.request('PATCH', `/v1/api-keys/${soon.id}`, { token: org.token, body: { expiresAt: inDays(30) } }), 200);
    expect(await t.services.expiryWarnings.runOnce()).toBe(0);
    expectStatus(await t.request('PATCH', `/v1/api-keys/${soon.id}`, { token: org.token, body: { expiresAt: inDays(5) } }), 200);
    expect(await t.services.expiryWarnings.runOnce()).toBe(1);
    expect(await t.services.expiryWarnings.runOnce()).toBe(0);
    expect((await mail.next(ownerEmail)).subject).toMatch(/expires in 5 days/);
    // Only the owners are mailed (not the admin), once per warning.
    await t.services.mailer!.idle();
    expect(mail.received.filter((m) => m.text.includes(soon.id))).toHaveLength(2);
    expect(mail.received.filter((m) => m.text.includes(later.id) || m.text.includes(revoked.id))).toHaveLength(0);
    const events = await hooks.waitFor((r) => r.filter((h) => h.json.type === 'api_key.expiring').length >= 2, 'two expiring events');
    expect(events.filter((h) => h.json.type === 'api_key.expiring').map((h) => h.json.data.object.id)).toEqual([soon.id, soon.id]);
  });

  it('concurrent runs claim each key once (FOR UPDATE SKIP LOCKED and the claim in one unit of work)', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: inDays(2 + i / 100) })).id);
    const counts = await Promise.all([t.services.expiryWarnings.runOnce(), t.services.expiryWarnings.runOnce(), t.services.expiryWarnings.runOnce()]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(ids.length);
    await hooks.waitFor((r) => ids.every((id) => r.some((h) => h.json.type === 'api_key.expiring' && h.json.data.object.id === id)), 'an event per key');
    for (const id of ids) expect(hooks.received.filter((h) => h.json.type === 'api_key.expiring' && h.json.data.object.id === id)).toHaveLength(1);
  });

  it('warns the global admins about a system key (no organization: no webhook event)', async () => {
    const admin = await createUser(t, { globalAdmin: true });
    const key = await t.services.keys.create(systemContext(), { tier: 'system', organizationId: null }, { name: 'provisioning robot', scopes: ['organization:read'], expiresAt: inDays(1.5) });
    expect(await t.services.expiryWarnings.runOnce()).toBe(1);
    const message = await mail.next(admin.email);
    expect(message.subject).toMatch(/system API key expires in 2 days/);
    expect(message.text).toContain(key.id);
    expect(await t.services.expiryWarnings.runOnce()).toBe(0);
  });
});

describe('expiry warnings across a cluster', () => {
  let cluster: Cluster;
  let mail: MailReceiver;
  let hooks: WebhookReceiver;

  beforeAll(async () => {
    mail = await startMailReceiver();
    hooks = await startWebhookReceiver();
    cluster = await startCluster({
      ids: ['node-a', 'node-b'],
      env: { ...mail.env, PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true', PAYGATE_EXPIRY_WARNING_INTERVAL_SECONDS: '1' },
    });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    await mail?.close();
    await hooks?.close();
  });

  it('both nodes run the scheduler; each key is warned exactly once', async () => {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const admin = await cluster.login(a);
    const org = await cluster.provisionOrg(a, admin, ['api_key:*', 'webhook:*', 'client:read']);
    const ownerEmail = `owner-${randomBytes(3).toString('hex')}@example.com`;
    await cluster.pg.query("INSERT INTO users (id, email) VALUES ('usr_' || md5($1), $1)", [ownerEmail]);
    await cluster.pg.query("INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, 'usr_' || md5($2), 'owner')", [org.organizationId, ownerEmail]);
    expectStatus(await cluster.request(a, 'POST', '/v1/webhook-endpoints', { token: org.token, body: { url: hooks.urlFor('cluster'), events: ['api_key.expiring'] } }), 201);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const node = i % 2 === 0 ? a : b;
      const created = await cluster.request(node, 'POST', '/v1/api-keys', { token: org.token, body: { name: `expiring ${i}`, scopes: ['client:read'], expiresAt: inDays(2 + i / 10) } });
      expectStatus(created, 201);
      ids.push(created.body.id);
    }
    expectStatus(await cluster.request(b, 'PATCH', '/v1/system/settings', { token: admin, body: { apiKeyExpiryWarningDays: 7 } }), 200);

    await hooks.waitFor((r) => new Set(r.filter((h) => h.json.type === 'api_key.expiring').map((h) => h.json.data.object.id)).size === ids.length, 'an event per key', 20_000);
    for (let i = 0; i < ids.length; i++) await mail.next(ownerEmail, 20_000);
    // Several more ticks of both nodes: nothing more comes.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const events = hooks.received.filter((h) => h.json.type === 'api_key.expiring');
    expect(events.map((h) => h.json.data.object.id).sort()).toEqual([...ids].sort());
    expect(new Set(events.map((h) => h.json.id)).size).toBe(ids.length);
    const mails = mail.to(ownerEmail);
    expect(mails).toHaveLength(ids.length);
    for (const id of ids) expect(mails.filter((m) => m.text.includes(id))).toHaveLength(1);
    const [{ n }] = (await cluster.pg.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE expiry_warned_for = expires_at')).rows as [{ n: number }];
    expect(n).toBe(ids.length);
  }, 90_000);
});
