/** Organization context (SPEC §2): the key's organization wins; crossing tenants is refused and audited. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, createSystemKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

describe('organization context', () => {
  let t: TestApp;
  let a: OrgWithKey;
  let b: OrgWithKey;
  beforeAll(async () => {
    t = await startPaygate();
    a = await createOrgWithKey(t, ['api_key:*', 'organization:read', 'audit:read']);
    b = await createOrgWithKey(t, ['api_key:*', 'organization:read']);
  });
  afterAll(async () => t?.close());

  /** Mismatch events of a key, in its own organization (the probed organization records one too). */
  const mismatchEvents = async (keyId: string, organizationId = a.organizationId) =>
    (await t.db.query("SELECT * FROM audit_events WHERE action = 'auth.organization_mismatch' AND actor_id = $1 AND organization_id = $2", [keyId, organizationId])).length;

  it("an organization key acts in its own organization without X-Organization-ID", async () => {
    const result = await t.request('GET', '/v1/organization', { token: a.token });
    expectStatus(result, 200);
    expect(result.body).toMatchObject({ id: a.organizationId, object: 'organization' });
  });

  it('X-Organization-ID naming the same organization is ignored', async () => {
    const result = await t.request('GET', '/v1/organization', { token: a.token, headers: { 'x-organization-id': a.organizationId } });
    expectStatus(result, 200);
  });

  it('X-Organization-ID naming another organization is 403 organization_mismatch and audited', async () => {
    const before = await mismatchEvents(a.keyId);
    const result = await t.request('GET', '/v1/organization', { token: a.token, headers: { 'x-organization-id': b.organizationId } });
    expectProblem(result, 403, 'organization_mismatch');
    expect(await mismatchEvents(a.keyId)).toBe(before + 1);
  });

  it('a route {orgId} that differs from the key organization is 403 organization_mismatch and audited, in both organizations', async () => {
    const before = await mismatchEvents(a.keyId);
    const probedBefore = await mismatchEvents(a.keyId, b.organizationId);
    const result = await t.request('GET', `/v1/organizations/${b.organizationId}/api-keys`, { token: a.token });
    expectProblem(result, 403, 'organization_mismatch');
    expect(await mismatchEvents(a.keyId)).toBe(before + 1);
    expect(await mismatchEvents(a.keyId, b.organizationId)).toBe(probedBefore + 1);
    const write = await t.request('POST', `/v1/organizations/${b.organizationId}/api-keys`, { token: a.token, body: { name: 'x', scopes: [] } });
    expectProblem(write, 403, 'organization_mismatch');
    const [row] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE organization_id = $1', [b.organizationId]);
    expect(row!.n).toBe(1);
  });

  it('every organization route also answers under /v1/organizations/{orgId}', async () => {
    const result = await t.request('GET', `/v1/organizations/${a.organizationId}/organization`, { token: a.token });
    expectStatus(result, 200);
    const keys = await t.request('GET', `/v1/organizations/${a.organizationId}/api-keys`, { token: a.token });
    expectStatus(keys, 200);
    expect(keys.body.data.map((k: any) => k.organizationId)).toEqual(keys.body.data.map(() => a.organizationId));
  });

  it("another organization's key is 404 to this organization, for every verb", async () => {
    const other = await createOrgKey(t, b.organizationId, ['api_key:read']);
    expectProblem(await t.request('GET', `/v1/api-keys/${other.id}`, { token: a.token }), 404, 'not_found');
    expectProblem(await t.request('PATCH', `/v1/api-keys/${other.id}`, { token: a.token, body: { name: 'x' } }), 404, 'not_found');
    expectProblem(await t.request('POST', `/v1/api-keys/${other.id}/rotate`, { token: a.token, body: {} }), 404, 'not_found');
    expectProblem(await t.request('POST', `/v1/api-keys/${other.id}/revoke`, { token: a.token }), 404, 'not_found');
    expectProblem(await t.request('DELETE', `/v1/api-keys/${other.id}`, { token: a.token }), 404, 'not_found');
    expectStatus(await t.request('GET', '/v1/auth/whoami', { token: other.secret! }), 200);
    const list = await t.request('GET', '/v1/api-keys', { token: a.token });
    expect(list.body.data.some((k: any) => k.id === other.id)).toBe(false);
    expectProblem(await t.request('GET', `/v1/api-keys?startingAfter=${other.id}`, { token: a.token }), 404, 'not_found');
  });

  it('a system key on an organization route is 403 wrong_key_tier', async () => {
    const system = await createSystemKey(t, ['organization:*', 'audit:read']);
    expectProblem(await t.request('GET', '/v1/api-keys', { token: system.token }), 403, 'wrong_key_tier');
    expectProblem(await t.request('GET', `/v1/organizations/${a.organizationId}/organization`, { token: system.token }), 403, 'wrong_key_tier');
  });

  it('an organization key on a system route is 403 wrong_key_tier', async () => {
    for (const path of ['/v1/system/organizations', '/v1/system/settings', '/v1/system/health', '/v1/system/audit-events', '/v1/system/api-keys']) {
      expectProblem(await t.request('GET', path, { token: a.token }), 403, 'wrong_key_tier');
    }
  });

  it('an organization key scoped organization:* cannot call system routes or manage system keys', async () => {
    const broad = await createOrgKey(t, a.organizationId, ['organization:*']);
    expectProblem(await t.request('POST', '/v1/system/organizations', { token: broad.secret!, body: { name: 'x' } }), 403, 'wrong_key_tier');
  });
});
