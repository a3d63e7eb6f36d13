/**
 * No escalation when minting or editing keys (SPEC §3, §4, §9): a key hands out no scopes it lacks
 * and no looser restrictions than its own (itself included); an expired key stays expired; every
 * refused escalation is audited as `auth.insufficient_scope`, like route-scope refusals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeKeyRow, createOrgKey, createOrgWithKey, createUser, expectProblem, expectStatus, login, startPaygate, type HttpResult, type OrgWithKey, type TestApp } from './harness.js';

const HOUR = 3_600_000;

describe('keys cannot hand out more than they have', () => {
  let t: TestApp;
  let org: OrgWithKey;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
  });
  afterAll(async () => t?.close());

  /** A key of the organization with every api_key scope and these restrictions. */
  async function restrictedKey(extra: Record<string, unknown>) {
    const key = await createOrgKey(t, org.organizationId, ['api_key:*', 'client:read'], { name: 'restricted', ...extra });
    return { token: key.secret!, id: key.id };
  }

  const refusalsOf = (result: HttpResult) =>
    t.db.query<{ actor_type: string; actor_id: string | null; target: { type: string; id: string } | null; outcome: string; details: Record<string, unknown> }>(
      "SELECT actor_type, actor_id, target, outcome, details FROM audit_events WHERE action = 'auth.insufficient_scope' AND request_id = $1",
      [result.headers.get('x-request-id')],
    );

  const keysNamed = async (name: string) => (await t.db.query('SELECT id FROM api_keys WHERE name = $1', [name])).length;

  function expectRestrictionRefused(result: HttpResult, restrictions: string[], scope: string) {
    expectProblem(result, 403, 'insufficient_scope');
    expect(result.body.restrictions, result.text).toEqual(restrictions);
    expect(result.body.requiredScope).toBe(scope);
    for (const name of restrictions) expect(result.body.detail).toContain(name);
    expect(result.headers.get('www-authenticate')).toBe(`Bearer error="insufficient_scope", scope="${scope}"`);
  }

  describe('expiry', () => {
    it('a key that expires cannot create one that never expires or expires later; the same or earlier is fine', async () => {
      const expiresAt = new Date(Date.now() + 48 * HOUR).toISOString();
      const caller = await restrictedKey({ expiresAt });
      const forever = await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'forever', scopes: ['client:read'] } });
      expectRestrictionRefused(forever, ['expiresAt'], 'api_key:create');
      expect(await keysNamed('forever')).toBe(0);
      const later = await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'later', scopes: [], expiresAt: new Date(Date.now() + 49 * HOUR).toISOString() } });
      expectRestrictionRefused(later, ['expiresAt'], 'api_key:create');
      expectStatus(await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'same', scopes: [], expiresAt } }), 201);
      expectStatus(await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'earlier', scopes: [], expiresAt: new Date(Date.now() + HOUR).toISOString() } }), 201);
    });

    it('the refusal is audited with the restriction and no target (the key was never created)', async () => {
      const caller = await restrictedKey({ expiresAt: new Date(Date.now() + 48 * HOUR).toISOString() });
      const refused = await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'audited', scopes: [] } });
      expectProblem(refused, 403, 'insufficient_scope');
      expect(await refusalsOf(refused)).toEqual([
        {
          actor_type: 'api_key',
          actor_id: caller.id,
          target: null,
          outcome: 'denied',
          details: { operation: 'create', tier: 'organization', requiredScope: 'api_key:create', restrictions: ['expiresAt'] },
        },
      ]);
    });

    it('a key cannot extend its own expiry or remove it, but may shorten it', async () => {
      const caller = await restrictedKey({ expiresAt: new Date(Date.now() + 48 * HOUR).toISOString() });
      const extend = await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { expiresAt: new Date(Date.now() + 96 * HOUR).toISOString() } });
      expectRestrictionRefused(extend, ['expiresAt'], 'api_key:update');
      expect((await refusalsOf(extend))[0]).toMatchObject({ target: { type: 'api_key', id: caller.id }, details: { operation: 'update', restrictions: ['expiresAt'] } });
      expectRestrictionRefused(await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { expiresAt: null } }), ['expiresAt'], 'api_key:update');
      const shorter = new Date(Date.now() + 24 * HOUR).toISOString();
      const shortened = await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { expiresAt: shorter } });
      expectStatus(shortened, 200);
      expect(shortened.body.expiresAt).toBe(shorter);
    });
  });

  describe('allowedIps', () => {
    it('every range of the new key must lie inside one of the caller\'s; no allowlist is looser', async () => {
      const caller = await restrictedKey({ allowedIps: ['127.0.0.0/8', '10.0.0.0/8'] });
      expectRestrictionRefused(await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'anywhere', scopes: [] } }), ['allowedIps'], 'api_key:create');
      const outside = await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'outside', scopes: [], allowedIps: ['10.1.0.0/16', '192.168.0.0/16'] } });
      expectRestrictionRefused(outside, ['allowedIps'], 'api_key:create');
      expect(outside.body.detail).toContain('192.168.0.0/16');
      expect(outside.body.detail).not.toContain('10.1.0.0/16 is');
      expectStatus(await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'inside', scopes: [], allowedIps: ['127.0.0.1', '10.1.0.0/16'] } }), 201);
    });

    it('a key cannot drop or widen its own allowlist', async () => {
      const caller = await restrictedKey({ allowedIps: ['127.0.0.0/8'] });
      expectRestrictionRefused(await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { allowedIps: null } }), ['allowedIps'], 'api_key:update');
      expectRestrictionRefused(await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { allowedIps: ['0.0.0.0/0'] } }), ['allowedIps'], 'api_key:update');
      expectStatus(await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { allowedIps: ['127.0.0.1'] } }), 200);
    });
  });

  describe('rateLimit', () => {
    it('no more requests per window and no higher rate than the caller; no limit is looser', async () => {
      const caller = await restrictedKey({ rateLimit: { requests: 50, windowSeconds: 60 } });
      const post = (name: string, rateLimit?: unknown) => t.request('POST', '/v1/api-keys', { token: caller.token, body: { name, scopes: [], ...(rateLimit !== undefined ? { rateLimit } : {}) } });
      expectRestrictionRefused(await post('unlimited'), ['rateLimit'], 'api_key:create');
      expectRestrictionRefused(await post('faster', { requests: 1, windowSeconds: 1 }), ['rateLimit'], 'api_key:create');
      expectRestrictionRefused(await post('burstier', { requests: 100, windowSeconds: 86_400 }), ['rateLimit'], 'api_key:create');
      expectStatus(await post('slower', { requests: 25, windowSeconds: 60 }), 201);
      expectStatus(await post('same rate, shorter window', { requests: 25, windowSeconds: 30 }), 201);
      expectRestrictionRefused(await t.request('PATCH', `/v1/api-keys/${caller.id}`, { token: caller.token, body: { rateLimit: null } }), ['rateLimit'], 'api_key:update');
    });
  });

  it('every looser restriction is named at once', async () => {
    const caller = await restrictedKey({ expiresAt: new Date(Date.now() + 48 * HOUR).toISOString(), allowedIps: ['127.0.0.0/8'], rateLimit: { requests: 50, windowSeconds: 60 } });
    expectRestrictionRefused(await t.request('POST', '/v1/api-keys', { token: caller.token, body: { name: 'loose', scopes: [] } }), ['expiresAt', 'allowedIps', 'rateLimit'], 'api_key:create');
  });

  it('a restricted key cannot change or rotate a looser sibling: that would take it over', async () => {
    const caller = await restrictedKey({ expiresAt: new Date(Date.now() + 48 * HOUR).toISOString() });
    const sibling = await createOrgKey(t, org.organizationId, ['client:read'], { name: 'sibling without expiry' });
    const renamed = await t.request('PATCH', `/v1/api-keys/${sibling.id}`, { token: caller.token, body: { name: 'mine now' } });
    expectRestrictionRefused(renamed, ['expiresAt'], 'api_key:update');
    const rotated = await t.request('POST', `/v1/api-keys/${sibling.id}/rotate`, { token: caller.token, body: {} });
    expectRestrictionRefused(rotated, ['expiresAt'], 'api_key:update');
    expect((await refusalsOf(rotated))[0]).toMatchObject({ target: { type: 'api_key', id: sibling.id }, details: { operation: 'rotate' } });
    // Tightening it to the caller's bounds in the same request is allowed.
    expectStatus(await t.request('PATCH', `/v1/api-keys/${sibling.id}`, { token: caller.token, body: { expiresAt: new Date(Date.now() + HOUR).toISOString() } }), 200);
    // Revoking takes power away and stays allowed.
    expectStatus(await t.request('POST', `/v1/api-keys/${sibling.id}/revoke`, { token: caller.token }), 200);
  });

  it('members are not keys: a developer creates a key without expiry though nothing else limits them', async () => {
    const developer = await createUser(t, { organizationId: org.organizationId, role: 'developer' });
    const session = await login(t, developer.email, developer.password);
    expectStatus(await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: session.token, body: { name: 'by a developer', scopes: ['client:read'] } }), 201);
  });

  describe('scope escalations are audited', () => {
    it('a key asking for scopes it lacks is refused and audited with the missing scopes', async () => {
      const refused = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'escalate', scopes: ['client:*', 'audit:read'] } });
      expectProblem(refused, 403, 'insufficient_scope');
      expect(refused.body.missingScopes).toEqual(['audit:read', 'client:*']);
      expect(refused.body.requiredScope).toBe('audit:read');
      expect(refused.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="audit:read client:*"');
      expect(await refusalsOf(refused)).toEqual([
        {
          actor_type: 'api_key',
          actor_id: org.keyId,
          target: null,
          outcome: 'denied',
          details: { operation: 'create', tier: 'organization', requiredScope: 'audit:read', missingScopes: ['audit:read', 'client:*'] },
        },
      ]);
      expect(await keysNamed('escalate')).toBe(0);
    });

    it('widening or taking over a broader key is refused and audited with the target key', async () => {
      const broader = await createOrgKey(t, org.organizationId, ['client:*'], { name: 'broader' });
      const widen = await t.request('PATCH', `/v1/api-keys/${org.keyId}`, { token: org.token, body: { scopes: ['client:*'] } });
      expectProblem(widen, 403, 'insufficient_scope');
      expect((await refusalsOf(widen))[0]).toMatchObject({ target: { type: 'api_key', id: org.keyId }, details: { operation: 'update', missingScopes: ['client:*'] } });
      const takeOver = await t.request('POST', `/v1/api-keys/${broader.id}/rotate`, { token: org.token, body: {} });
      expectProblem(takeOver, 403, 'insufficient_scope');
      expect((await refusalsOf(takeOver))[0]).toMatchObject({ target: { type: 'api_key', id: broader.id }, details: { operation: 'rotate', missingScopes: ['client:*'] } });
    });

    it("a member asking for scopes beyond their role is refused and audited as the user", async () => {
      const developer = await createUser(t, { organizationId: org.organizationId, role: 'developer' });
      const session = await login(t, developer.email, developer.password);
      const refused = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: session.token, body: { name: 'dev escalate', scopes: ['client:create'] } });
      expectProblem(refused, 403, 'insufficient_scope');
      expect(await refusalsOf(refused)).toEqual([
        expect.objectContaining({ actor_type: 'user', actor_id: developer.id, details: expect.objectContaining({ missingScopes: ['client:create'] }) }),
      ]);
    });
  });

  describe('an expired key stays expired (SPEC §4)', () => {
    it('changing the expiresAt of an expired key is 409 conflict; other fields may still change', async () => {
      const key = await createOrgKey(t, org.organizationId, ['client:read'], { name: 'soon expired', expiresAt: new Date(Date.now() + HOUR).toISOString() });
      await changeKeyRow(t, "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1", key.id);
      const revive = await t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { expiresAt: new Date(Date.now() + 24 * HOUR).toISOString() } });
      expectProblem(revive, 409, 'conflict');
      expectProblem(await t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { expiresAt: null } }), 409, 'conflict');
      const renamed = await t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { name: 'expired, renamed' } });
      expectStatus(renamed, 200);
      expect(renamed.body.status).toBe('expired');
      const [row] = await t.db.query<{ expires_at: Date }>('SELECT expires_at FROM api_keys WHERE id = $1', [key.id]);
      expect(row!.expires_at.getTime()).toBeLessThan(Date.now());
    });
  });
});
