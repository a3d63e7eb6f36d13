/**
 * The system tier over real HTTP (SPEC §2, §3, §4, §6): provisioning organizations, system settings,
 * system keys managed by global admins, health, and the wall between key tiers.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrgKey,
  createOrgWithKey,
  createSystemKey,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type TestApp,
} from './harness.js';
import { newId } from '../src/ids.js';

let t: TestApp;
let admin: { token: string; userId: string; cookies: Record<string, string>; csrf: string };
/** A system key with every system scope. */
let root: { token: string; keyId: string };

beforeAll(async () => {
  t = await startPaygate();
  const user = await createUser(t, { globalAdmin: true });
  admin = await login(t, user.email, user.password);
  root = await createSystemKey(t, ['organization:*', 'system_settings:*', 'health:read', 'audit:read']);
});
afterAll(async () => t?.close());

const email = (label = 'owner') => `${label}-${randomBytes(4).toString('hex')}@example.com`;

async function auditRows(where: string, params: unknown[]) {
  return t.db.query<{ action: string; actor_type: string; actor_id: string | null; organization_id: string | null; target: { type: string; id: string } | null; details: Record<string, any> }>(
    `SELECT action, actor_type, actor_id, organization_id, target, details FROM audit_events WHERE ${where} ORDER BY seq`,
    params,
  );
}

describe('provisioning organizations', () => {
  it('a system key with organization:create provisions an organization whose initial key works', async () => {
    const key = await createSystemKey(t, ['organization:create']);
    const result = await t.request('POST', '/v1/system/organizations', {
      token: key.token,
      body: { name: 'Acme Payments', initialApiKey: { name: 'bootstrap', scopes: ['api_key:read', 'client:read', 'client:read'] } },
    });
    expectStatus(result, 201);
    expect(result.body).toMatchObject({ object: 'organization', name: 'Acme Payments', status: 'active', deletedAt: null });
    expect(result.body.id).toMatch(/^org_/);
    const initial = result.body.initialApiKey;
    expect(initial).toMatchObject({ object: 'api_key', tier: 'organization', organizationId: result.body.id, name: 'bootstrap', scopes: ['api_key:read', 'client:read'], status: 'active' });
    expect(initial.secret).toMatch(/^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/);
    expect(initial.secret.startsWith(`sk_${initial.id}.`)).toBe(true);

    const who = await t.request('GET', '/v1/auth/whoami', { token: initial.secret });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ type: 'api_key', keyId: initial.id, tier: 'organization', organizationId: result.body.id });
    const keys = await t.request('GET', '/v1/api-keys', { token: initial.secret });
    expectStatus(keys, 200);
    expect(keys.body.data.map((k: { id: string }) => k.id)).toEqual([initial.id]);
    // Shown once: never again in a read.
    expect(keys.text).not.toContain(initial.secret);

    const rows = await auditRows("action = 'organization.created' AND organization_id = $1", [result.body.id]);
    expect(rows).toEqual([expect.objectContaining({ actor_type: 'api_key', actor_id: key.keyId })]);
  });

  it('an organization provisioned without initialApiKey answers no key', async () => {
    const result = await t.request('POST', '/v1/system/organizations', { token: root.token, body: { name: 'No Key Org' } });
    expectStatus(result, 201);
    expect(result.body).not.toHaveProperty('initialApiKey');
    expect(result.body).not.toHaveProperty('owner');
    const [{ n }] = (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE organization_id = $1', [result.body.id])) as [{ n: number }];
    expect(n).toBe(0);
  });

  it('an owner email gets an invitation (SPEC §7): a new person sets a password through its link and is the owner', async () => {
    const ownerEmail = email();
    const result = await t.request('POST', '/v1/system/organizations', { token: root.token, body: { name: 'Owned Org', owner: { email: ownerEmail } } });
    expectStatus(result, 201);
    expect(result.body.owner).toMatchObject({ object: 'invitation', organizationId: result.body.id, email: ownerEmail, role: 'owner', status: 'pending' });
    // No account and no membership until the invitation is accepted.
    expect(await t.db.query('SELECT 1 FROM memberships WHERE organization_id = $1', [result.body.id])).toHaveLength(0);
    const token = new URL(result.body.owner.url).searchParams.get('token')!;
    expectStatus(await t.request('POST', '/v1/auth/invitations/accept', { body: { token, password: 'owner-password-1' } }), 200);

    const session = await login(t, ownerEmail, 'owner-password-1');
    const me = await t.request('GET', '/v1/auth/me', { token: session.token });
    expect(me.body.memberships).toEqual([{ organizationId: result.body.id, organizationName: 'Owned Org', role: 'owner' }]);
    expectStatus(await t.request('GET', `/v1/organizations/${result.body.id}/members`, { token: session.token }), 200);
  });

  it('an owner email that has an account gets the same invitation; the account signs in to accept it', async () => {
    const existing = await createUser(t);
    const result = await t.request('POST', '/v1/system/organizations', { token: root.token, body: { name: 'Existing Owner Org', owner: { email: existing.email } } });
    expectStatus(result, 201);
    expect(result.body.owner).toMatchObject({ object: 'invitation', email: existing.email, role: 'owner', status: 'pending' });
    const token = new URL(result.body.owner.url).searchParams.get('token')!;
    const session = await login(t, existing.email, existing.password);
    expectStatus(await t.request('POST', '/v1/auth/invitations/join', { token: session.token, body: { token } }), 200);
    const me = await t.request('GET', '/v1/auth/me', { token: session.token });
    expect(me.body.memberships).toEqual([expect.objectContaining({ organizationId: result.body.id, role: 'owner' })]);
  });

  it('bad initialApiKey scopes get 400 validation_error naming each bad scope, and nothing is created', async () => {
    const name = `Bad Scopes ${randomBytes(3).toString('hex')}`;
    const result = await t.request('POST', '/v1/system/organizations', {
      token: root.token,
      body: { name, initialApiKey: { name: 'k', scopes: ['client:read', 'bogus:read', 'client:fly', 'health:read', 'nocolon', '*:*'] } },
    });
    expectProblem(result, 400, 'validation_error');
    const paths = result.body.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(['/initialApiKey/scopes/1', '/initialApiKey/scopes/2', '/initialApiKey/scopes/3', '/initialApiKey/scopes/4', '/initialApiKey/scopes/5']);
    for (const scope of ['bogus:read', 'client:fly', 'health:read', 'nocolon', '*:*']) expect(result.body.detail).toContain(scope);
    expect(await t.db.query('SELECT 1 FROM organizations WHERE name = $1', [name])).toHaveLength(0);
  });

  it('provisioning input is validated', async () => {
    for (const body of [{}, { name: '' }, { name: 'x', extra: true }, { name: 'x', owner: { email: 'not-an-email' } }, { name: 'x', initialApiKey: { scopes: [] } }]) {
      expectProblem(await t.request('POST', '/v1/system/organizations', { token: root.token, body }), 400, 'validation_error');
    }
  });

  it('provisioning needs organization:create', async () => {
    const reader = await createSystemKey(t, ['organization:read']);
    const result = await t.request('POST', '/v1/system/organizations', { token: reader.token, body: { name: 'Nope' } });
    expectProblem(result, 403, 'insufficient_scope');
    expect(result.body.requiredScope).toBe('organization:create');
  });

  it('system organizations can be listed page by page, read and renamed', async () => {
    const created = [];
    for (const name of ['Page One', 'Page Two', 'Page Three']) {
      const r = await t.request('POST', '/v1/system/organizations', { token: root.token, body: { name } });
      expectStatus(r, 201);
      created.push(r.body.id as string);
    }
    const first = await t.request('GET', '/v1/system/organizations?limit=2', { token: root.token });
    expectStatus(first, 200);
    expect(first.body).toMatchObject({ object: 'list', hasMore: true });
    expect(first.body.data.map((o: { id: string }) => o.id)).toEqual([created[2], created[1]]);
    const next = await t.request('GET', `/v1/system/organizations?limit=2&startingAfter=${created[1]}`, { token: root.token });
    expect(next.body.data[0].id).toBe(created[0]);
    expectProblem(await t.request('GET', '/v1/system/organizations?limit=0', { token: root.token }), 400, 'validation_error');

    const one = await t.request('GET', `/v1/system/organizations/${created[0]}`, { token: root.token });
    expectStatus(one, 200);
    expect(one.body).toMatchObject({ id: created[0], name: 'Page One' });

    const renamed = await t.request('PATCH', `/v1/system/organizations/${created[0]}`, { token: root.token, body: { name: 'Page Renamed' } });
    expectStatus(renamed, 200);
    expect(renamed.body.name).toBe('Page Renamed');
    const rows = await auditRows("action = 'organization.updated' AND organization_id = $1", [created[0]]);
    expect(rows[0]!.details).toEqual({ name: { from: 'Page One', to: 'Page Renamed' } });

    expectProblem(await t.request('PATCH', `/v1/system/organizations/${created[0]}`, { token: root.token, body: { status: 'deleted' } }), 400, 'validation_error');
    expectProblem(await t.request('GET', `/v1/system/organizations/${newId('organization')}`, { token: root.token }), 404, 'not_found');
    expectProblem(await t.request('GET', '/v1/system/organizations/garbage', { token: root.token }), 404, 'not_found');
  });

  it('deleting an organization revokes all its keys at once and makes it 404 after', async () => {
    const org = await createOrgWithKey(t, ['organization:read', 'api_key:read']);
    const second = await createOrgKey(t, org.organizationId, ['client:read']);
    const member = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const memberSession = await login(t, member.email, member.password);
    // Used first, so every cache holds them.
    expectStatus(await t.request('GET', '/v1/organization', { token: org.token }), 200);
    expectStatus(await t.request('GET', '/v1/auth/whoami', { token: second.secret! }), 200);
    expectStatus(await t.request('GET', `/v1/organizations/${org.organizationId}/organization`, { token: memberSession.token }), 200);

    const deleted = await t.request('DELETE', `/v1/system/organizations/${org.organizationId}`, { token: root.token });
    expectStatus(deleted, 200);
    expect(deleted.body).toMatchObject({ id: org.organizationId, status: 'deleted' });

    expectProblem(await t.request('GET', '/v1/organization', { token: org.token }), 401, 'api_key_revoked');
    expectProblem(await t.request('GET', '/v1/auth/whoami', { token: second.secret! }), 401, 'api_key_revoked');
    const revoked = await t.db.query<{ revoked_at: Date | null }>('SELECT revoked_at FROM api_keys WHERE organization_id = $1', [org.organizationId]);
    expect(revoked).toHaveLength(2);
    expect(revoked.every((r) => r.revoked_at !== null)).toBe(true);
    // Its members lose it too.
    expectProblem(await t.request('GET', `/v1/organizations/${org.organizationId}/organization`, { token: memberSession.token }), 403, 'forbidden');

    expectProblem(await t.request('GET', `/v1/system/organizations/${org.organizationId}`, { token: root.token }), 404, 'not_found');
    expectProblem(await t.request('PATCH', `/v1/system/organizations/${org.organizationId}`, { token: root.token, body: { name: 'Zombie' } }), 404, 'not_found');
    expectProblem(await t.request('DELETE', `/v1/system/organizations/${org.organizationId}`, { token: root.token }), 404, 'not_found');
    // No new key can be made for it either.
    expectProblem(await t.request('GET', `/v1/organizations/${org.organizationId}/api-keys`, { token: admin.token }), 404, 'not_found');

    const rows = await auditRows("action = 'organization.deleted' AND organization_id = $1", [org.organizationId]);
    expect(rows).toEqual([expect.objectContaining({ actor_type: 'api_key', actor_id: root.keyId, details: { membersRemoved: 1 } })]);
  });

  it('a global-admin session can use the system organization routes', async () => {
    const created = await t.request('POST', '/v1/system/organizations', { token: admin.token, body: { name: 'Admin Org', initialApiKey: { name: 'k', scopes: ['client:*'] } } });
    expectStatus(created, 201);
    expectStatus(await t.request('GET', `/v1/system/organizations/${created.body.id}`, { token: admin.token }), 200);
    const rows = await auditRows("action = 'organization.created' AND organization_id = $1", [created.body.id]);
    expect(rows[0]).toMatchObject({ actor_type: 'user', actor_id: admin.userId });
  });
});

describe('system settings', () => {
  const defaults = { portalMagicLinkTtlMinutes: 15, apiKeyRotationGraceMinutes: 1440, apiKeyMaxLifetimeDays: null };
  const restore = () => t.request('PATCH', '/v1/system/settings', { token: root.token, body: defaults });

  it('settings start at the documented defaults', async () => {
    const result = await t.request('GET', '/v1/system/settings', { token: root.token });
    expectStatus(result, 200);
    expect(result.body).toMatchObject(defaults);
  });

  it('settings outside their bounds, unknown fields and empty changes get 400 validation_error', async () => {
    for (const body of [
      { portalMagicLinkTtlMinutes: 0 },
      { portalMagicLinkTtlMinutes: 1441 },
      { portalMagicLinkTtlMinutes: 1.5 },
      { portalMagicLinkTtlMinutes: '15' },
      { apiKeyRotationGraceMinutes: -1 },
      { apiKeyRotationGraceMinutes: 10081 },
      { apiKeyMaxLifetimeDays: 0 },
      { sessionTtlMinutes: 5 },
      {},
    ]) {
      const result = await t.request('PATCH', '/v1/system/settings', { token: root.token, body });
      expectProblem(result, 400, 'validation_error');
    }
    const bad = await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { portalMagicLinkTtlMinutes: 0 } });
    expect(bad.body.errors).toEqual([expect.objectContaining({ path: '/portalMagicLinkTtlMinutes' })]);
    const unknown = await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { sessionTtlMinutes: 5 } });
    expect(unknown.body.errors).toEqual([expect.objectContaining({ path: '/sessionTtlMinutes' })]);
    // Nothing changed.
    expect((await t.request('GET', '/v1/system/settings', { token: root.token })).body).toMatchObject(defaults);
  });

  it('the bounds themselves are accepted, and changes are audited as system_settings.updated', async () => {
    try {
      const result = await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { portalMagicLinkTtlMinutes: 1440, apiKeyRotationGraceMinutes: 0 } });
      expectStatus(result, 200);
      expect(result.body).toMatchObject({ portalMagicLinkTtlMinutes: 1440, apiKeyRotationGraceMinutes: 0, apiKeyMaxLifetimeDays: null });
      expect((await t.request('GET', '/v1/system/settings', { token: root.token })).body).toMatchObject({ portalMagicLinkTtlMinutes: 1440 });
      expectStatus(await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { portalMagicLinkTtlMinutes: 1, apiKeyRotationGraceMinutes: 10080, apiKeyMaxLifetimeDays: 1 } }), 200);

      const rows = await auditRows("action = 'system_settings.updated' AND actor_id = $1", [root.keyId]);
      expect(rows.length).toBeGreaterThanOrEqual(2);
      expect(rows[0]).toMatchObject({
        actor_type: 'api_key',
        organization_id: null,
        details: { changes: { portalMagicLinkTtlMinutes: { from: 15, to: 1440 }, apiKeyRotationGraceMinutes: { from: 1440, to: 0 } } },
      });
    } finally {
      expectStatus(await restore(), 200);
    }
  });

  it('reading settings needs system_settings:read and changing them system_settings:update', async () => {
    const reader = await createSystemKey(t, ['system_settings:read']);
    expectStatus(await t.request('GET', '/v1/system/settings', { token: reader.token }), 200);
    const refused = await t.request('PATCH', '/v1/system/settings', { token: reader.token, body: { portalMagicLinkTtlMinutes: 30 } });
    expectProblem(refused, 403, 'insufficient_scope');
    expect(refused.body.requiredScope).toBe('system_settings:update');
    const health = await createSystemKey(t, ['health:read']);
    expectProblem(await t.request('GET', '/v1/system/settings', { token: health.token }), 403, 'insufficient_scope');
  });

  it('apiKeyMaxLifetimeDays caps the expiresAt of new keys', async () => {
    const org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
    try {
      expectStatus(await t.request('PATCH', '/v1/system/settings', { token: admin.token, body: { apiKeyMaxLifetimeDays: 2 } }), 200);
      const before = Date.now();
      const limit = before + 2 * 86_400_000;

      const unlimited = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'forever', scopes: ['client:read'] } });
      expectStatus(unlimited, 201);
      const unlimitedAt = Date.parse(unlimited.body.expiresAt);
      expect(unlimitedAt).toBeGreaterThan(before);
      expect(unlimitedAt).toBeLessThanOrEqual(limit + 5_000);

      const far = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'far', scopes: ['client:read'], expiresAt: new Date(before + 30 * 86_400_000).toISOString() } });
      expectStatus(far, 201);
      expect(Date.parse(far.body.expiresAt)).toBeLessThanOrEqual(limit + 5_000);

      const soon = new Date(before + 3_600_000).toISOString();
      const near = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'near', scopes: ['client:read'], expiresAt: soon } });
      expectStatus(near, 201);
      expect(Date.parse(near.body.expiresAt)).toBe(Date.parse(soon));

      // System keys obey it too.
      const system = await t.request('POST', '/v1/system/api-keys', { token: admin.token, body: { name: 'capped', scopes: ['health:read'] } });
      expectStatus(system, 201);
      expect(Date.parse(system.body.expiresAt)).toBeLessThanOrEqual(limit + 5_000);
    } finally {
      expectStatus(await restore(), 200);
    }
    // Back to no limit.
    const after = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'again forever', scopes: ['client:read'] } });
    expect(after.body.expiresAt).toBeNull();
  });

  it('apiKeyRotationGraceMinutes is the default grace of a rotation', async () => {
    const org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
    const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'rotating', scopes: ['client:read'] } });
    expectStatus(created, 201);
    try {
      expectStatus(await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { apiKeyRotationGraceMinutes: 7 } }), 200);
      const before = Date.now();
      const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token });
      expectStatus(rotated, 200);
      const graceEnds = Date.parse(rotated.body.previousSecretExpiresAt);
      expect(graceEnds).toBeGreaterThanOrEqual(before + 7 * 60_000 - 2_000);
      expect(graceEnds).toBeLessThanOrEqual(Date.now() + 7 * 60_000 + 2_000);
      // The old secret still works within the grace.
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token: created.body.secret }), 200);

      expectStatus(await t.request('PATCH', '/v1/system/settings', { token: root.token, body: { apiKeyRotationGraceMinutes: 0 } }), 200);
      const again = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token });
      expectStatus(again, 200);
      expect(again.body.previousSecretExpiresAt).toBeNull();
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token: rotated.body.secret }), 401, 'invalid_api_key');
      expectStatus(await t.request('GET', '/v1/auth/whoami', { token: again.body.secret }), 200);
    } finally {
      expectStatus(await restore(), 200);
    }
  });
});

describe('system API keys', () => {
  it('a global-admin session creates, lists, reads, rotates, revokes and deletes system keys', async () => {
    const created = await t.request('POST', '/v1/system/api-keys', { token: admin.token, body: { name: 'ops health', scopes: ['health:read', 'health:read'] } });
    expectStatus(created, 201);
    expect(created.body).toMatchObject({ object: 'api_key', tier: 'system', organizationId: null, scopes: ['health:read'], status: 'active', createdBy: { type: 'user', id: admin.userId } });
    const id = created.body.id as string;
    const secret = created.body.secret as string;
    expect(created.body.hint).toBe(secret.slice(-4));
    expectStatus(await t.request('GET', '/v1/system/health', { token: secret }), 200);

    const list = await t.request('GET', '/v1/system/api-keys', { token: admin.token });
    expectStatus(list, 200);
    expect(list.body.data.map((k: { id: string }) => k.id)).toContain(id);
    expect(list.body.data.every((k: { tier: string }) => k.tier === 'system')).toBe(true);
    expect(list.text).not.toContain(secret);
    expectStatus(await t.request('GET', `/v1/system/api-keys/${id}`, { token: admin.token }), 200);

    const updated = await t.request('PATCH', `/v1/system/api-keys/${id}`, { token: admin.token, body: { scopes: ['health:read', 'audit:read'] } });
    expectStatus(updated, 200);
    expect(updated.body.scopes).toEqual(['audit:read', 'health:read']);

    const rotated = await t.request('POST', `/v1/system/api-keys/${id}/rotate`, { token: admin.token, body: { gracePeriodMinutes: 0 } });
    expectStatus(rotated, 200);
    expect(rotated.body.id).toBe(id);
    expectProblem(await t.request('GET', '/v1/system/health', { token: secret }), 401, 'invalid_api_key');
    expectStatus(await t.request('GET', '/v1/system/health', { token: rotated.body.secret }), 200);

    const revoked = await t.request('POST', `/v1/system/api-keys/${id}/revoke`, { token: admin.token });
    expectStatus(revoked, 200);
    expect(revoked.body.status).toBe('revoked');
    expectProblem(await t.request('GET', '/v1/system/health', { token: rotated.body.secret }), 401, 'api_key_revoked');

    expectStatus(await t.request('DELETE', `/v1/system/api-keys/${id}`, { token: admin.token }), 204);
    expectProblem(await t.request('GET', `/v1/system/api-keys/${id}`, { token: admin.token }), 404, 'not_found');

    const rows = await auditRows("target->>'id' = $1 AND outcome = 'success'", [id]);
    expect(rows.map((r) => r.action)).toEqual(['system_key.created', 'system_key.updated', 'system_key.rotated', 'system_key.revoked', 'system_key.deleted']);
    // The revoked secret's use is recorded as a refusal of that key.
    expect((await auditRows("target->>'id' = $1 AND outcome = 'denied'", [id])).map((r) => r.action)).toEqual(['auth.api_key_refused']);
    expect(rows.every((r) => r.actor_type === 'user' && r.actor_id === admin.userId && r.organization_id === null)).toBe(true);
  });

  it('system key management by cookie needs the CSRF token', async () => {
    const body = { name: 'cookie key', scopes: ['health:read'] };
    expectProblem(await t.request('POST', '/v1/system/api-keys', { cookies: admin.cookies, body }), 403, 'csrf_failed');
    expectStatus(await t.request('POST', '/v1/system/api-keys', { cookies: admin.cookies, headers: { 'x-csrf-token': admin.csrf }, body }), 201);
  });

  it('system keys hold system scopes only', async () => {
    const result = await t.request('POST', '/v1/system/api-keys', { token: admin.token, body: { name: 'wrong', scopes: ['health:read', 'client:read', 'api_key:*'] } });
    expectProblem(result, 400, 'validation_error');
    expect(result.body.errors.map((e: { path: string }) => e.path)).toEqual(['/scopes/1', '/scopes/2']);
    const existing = await createSystemKey(t, ['health:read']);
    expectProblem(await t.request('PATCH', `/v1/system/api-keys/${existing.keyId}`, { token: admin.token, body: { scopes: ['client:read'] } }), 400, 'validation_error');
  });

  it('the two key families do not see each other', async () => {
    const org = await createOrgWithKey(t, ['api_key:*']);
    // An organization key is not found among system keys, nor a system key among organization keys.
    expectProblem(await t.request('GET', `/v1/system/api-keys/${org.keyId}`, { token: admin.token }), 404, 'not_found');
    expectProblem(await t.request('POST', `/v1/system/api-keys/${org.keyId}/revoke`, { token: admin.token }), 404, 'not_found');
    expectProblem(await t.request('GET', `/v1/api-keys/${root.keyId}`, { token: org.token }), 404, 'not_found');
    expectProblem(await t.request('DELETE', `/v1/api-keys/${root.keyId}`, { token: org.token }), 404, 'not_found');
    const list = await t.request('GET', '/v1/system/api-keys?limit=100', { token: admin.token });
    expect(list.body.data.map((k: { id: string }) => k.id)).not.toContain(org.keyId);
  });

  it('a user who is not a global admin gets 403 forbidden on system key routes', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    const owner = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const session = await login(t, owner.email, owner.password);
    expectProblem(await t.request('GET', '/v1/system/api-keys', { token: session.token }), 403, 'forbidden');
    expectProblem(await t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 'x', scopes: ['health:read'] } }), 403, 'forbidden');
    expectProblem(await t.request('POST', `/v1/system/api-keys/${root.keyId}/revoke`, { token: session.token }), 403, 'forbidden');
  });

  it('a system key gets 403 forbidden on system key routes, whatever its scopes', async () => {
    expectProblem(await t.request('GET', '/v1/system/api-keys', { token: root.token }), 403, 'forbidden');
    expectProblem(await t.request('POST', '/v1/system/api-keys', { token: root.token, body: { name: 'self-made', scopes: ['health:read'] } }), 403, 'forbidden');
    expectProblem(await t.request('POST', `/v1/system/api-keys/${root.keyId}/rotate`, { token: root.token }), 403, 'forbidden');
  });

  it('an organization key gets 403 wrong_key_tier on system key routes', async () => {
    const org = await createOrgWithKey(t, ['api_key:*']);
    expectProblem(await t.request('GET', '/v1/system/api-keys', { token: org.token }), 403, 'wrong_key_tier');
    expectProblem(await t.request('POST', '/v1/system/api-keys', { token: org.token, body: { name: 'x', scopes: ['health:read'] } }), 403, 'wrong_key_tier');
  });
});

describe('key tiers', () => {
  const systemRoutes: Array<[string, string, unknown?]> = [
    ['GET', '/v1/system/organizations'],
    ['POST', '/v1/system/organizations', { name: 'Tier test' }],
    ['GET', `/v1/system/organizations/${newId('organization')}`],
    ['PATCH', `/v1/system/organizations/${newId('organization')}`, { name: 'x' }],
    ['DELETE', `/v1/system/organizations/${newId('organization')}`],
    ['GET', '/v1/system/settings'],
    ['PATCH', '/v1/system/settings', { portalMagicLinkTtlMinutes: 30 }],
    ['GET', '/v1/system/health'],
    ['GET', '/v1/system/audit-events'],
    ['GET', '/v1/system/api-keys'],
    ['POST', '/v1/system/api-keys', { name: 'x', scopes: ['health:read'] }],
    ['GET', '/v1/system/api-keys/aaaaaaaaaaaaaaaaaaaa'],
    ['PATCH', '/v1/system/api-keys/aaaaaaaaaaaaaaaaaaaa', { name: 'x' }],
    ['POST', '/v1/system/api-keys/aaaaaaaaaaaaaaaaaaaa/rotate'],
    ['POST', '/v1/system/api-keys/aaaaaaaaaaaaaaaaaaaa/revoke'],
    ['DELETE', '/v1/system/api-keys/aaaaaaaaaaaaaaaaaaaa'],
  ];

  it('an organization key gets 403 wrong_key_tier on every system route, whatever its scopes', async () => {
    const org = await createOrgWithKey(t, ['organization:*', 'api_key:*', 'audit:read', 'client:*']);
    for (const [method, path, body] of systemRoutes) {
      const result = await t.request(method, path, { token: org.token, body });
      expect(result.status, `${method} ${path}: ${result.text}`).toBe(403);
      expectProblem(result, 403, 'wrong_key_tier');
    }
    expect((await t.request('GET', '/v1/system/settings', { token: root.token })).body.portalMagicLinkTtlMinutes).toBe(15);
  });

  it('a system key gets 403 wrong_key_tier on organization routes', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    for (const [method, path, body] of [
      ['GET', '/v1/api-keys'],
      ['POST', '/v1/api-keys', { name: 'x', scopes: ['organization:read'] }],
      ['GET', '/v1/organization'],
      ['PATCH', '/v1/organization', { name: 'x' }],
      ['GET', '/v1/audit-events'],
      ['GET', `/v1/organizations/${org.organizationId}/api-keys`],
      ['GET', `/v1/organizations/${org.organizationId}/organization`],
      ['GET', `/v1/organizations/${org.organizationId}/members`],
    ] as Array<[string, string, unknown?]>) {
      const result = await t.request(method, path, { token: root.token, body, headers: { 'x-organization-id': org.organizationId } });
      expect(result.status, `${method} ${path}: ${result.text}`).toBe(403);
      expectProblem(result, 403, 'wrong_key_tier');
    }
  });

  it('a user who is not a global admin gets 403 forbidden on system routes', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    for (const [method, path, body] of systemRoutes) {
      const result = await t.request(method, path, { token: session.token, body });
      expect(result.status, `${method} ${path}: ${result.text}`).toBe(403);
      expectProblem(result, 403, 'forbidden');
    }
  });

  it('system routes without a credential get 401 missing_credentials', async () => {
    for (const [method, path, body] of systemRoutes) {
      expectProblem(await t.request(method, path, { body }), 401, 'missing_credentials');
    }
  });

  it('whoami describes a system key', async () => {
    const who = await t.request('GET', '/v1/auth/whoami', { token: root.token });
    expectStatus(who, 200);
    expect(who.body).toEqual({ type: 'api_key', keyId: root.keyId, tier: 'system', organizationId: null, scopes: ['audit:read', 'health:read', 'organization:*', 'system_settings:*'], status: 'active' });
  });
});

describe('system health', () => {
  it('GET /v1/system/health answers a key with health:read', async () => {
    const key = await createSystemKey(t, ['health:read']);
    const result = await t.request('GET', '/v1/system/health', { token: key.token });
    expectStatus(result, 200);
    expect(result.body).toMatchObject({ status: 'ok', database: { ok: true }, invalidationChannel: { live: true } });
    expect(result.body.counts.organizations).toBeGreaterThanOrEqual(0);
    // Secret-free.
    for (const secret of ['test-pepper', 'test-session', key.token]) expect(result.text).not.toContain(secret);
  });

  it('GET /v1/system/health needs health:read', async () => {
    const key = await createSystemKey(t, ['organization:read']);
    const result = await t.request('GET', '/v1/system/health', { token: key.token });
    expectProblem(result, 403, 'insufficient_scope');
    expect(result.body.requiredScope).toBe('health:read');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="health:read"');
  });

  it('a global-admin session reads system health', async () => {
    expectStatus(await t.request('GET', '/v1/system/health', { token: admin.token }), 200);
  });
});
