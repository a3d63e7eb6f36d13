/**
 * The key list's filters (SPEC §4, §12) on a real server: `status`, `flag` and `q` on
 * `/v1/api-keys`, its `/v1/organizations/{orgId}/api-keys` twin and `/v1/system/api-keys`. Filters
 * run in SQL before the page is cut, so every page of a filtered walk is full and the cursor walks
 * exactly the filtered list; a filter agrees with the `status` and `flags` the listed keys show.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../src/auth/context.js';
import { KEY_FLAGS } from '../src/keys/flags.js';
import { KEY_STATUSES } from '../src/keys/store.js';
import { changeKeyRow, createOrgKey, createOrgWithKey, createSystemKey, createUser, expectProblem, expectStatus, login, startPaygate, type TestApp } from './harness.js';

interface ListedKey {
  id: string;
  name: string;
  hint: string;
  status: string;
  flags: string[];
}

const DAY_MS = 86_400_000;
const inDays = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString();

describe('key list filters', () => {
  let t: TestApp;
  let organizationId: string;
  let manager: string;
  let settingsKey: string;
  /** The keys of the organization by what the test made them for. */
  const made: Record<string, string> = {};

  /** Every key of a list, walking its pages `limit` at a time; fails if a page before the last is short. */
  async function walk(path: string, token: string, limit = 100): Promise<ListedKey[]> {
    const keys: ListedKey[] = [];
    let after: string | null = null;
    for (;;) {
      const separator = path.includes('?') ? '&' : '?';
      const page = await t.request('GET', `${path}${separator}limit=${limit}${after ? `&startingAfter=${after}` : ''}`, { token });
      expectStatus(page, 200);
      const data = page.body.data as ListedKey[];
      if (page.body.hasMore) expect(data, `a page of ${path} before the last is full`).toHaveLength(limit);
      keys.push(...data);
      if (!page.body.hasMore) return keys;
      after = data[data.length - 1]!.id;
    }
  }

  beforeAll(async () => {
    t = await startPaygate();
    settingsKey = (await createSystemKey(t, ['system_settings:*'])).token;
    expectStatus(
      await t.request('PATCH', '/v1/system/settings', { token: settingsKey, body: { apiKeyRotationMaxAgeDays: 30, apiKeyInactiveDays: 60, apiKeyExpiryWarningDays: 7 } }),
      200,
    );
    const org = await createOrgWithKey(t, ['api_key:*', 'client:read'], 'Filters Org');
    organizationId = org.organizationId;
    manager = org.token;
    made.manager = org.keyId;
    const key = async (label: string, scopes: string[], extra: Record<string, unknown> = {}) => {
      made[label] = (await createOrgKey(t, organizationId, scopes, { name: label, ...extra })).id;
    };
    // Interleaved so that a filter applied after the LIMIT would leave pages short.
    await key('Fresh narrow', ['client:read'], { expiresAt: inDays(300) });
    await key('Old secret', ['client:read'], { expiresAt: inDays(300) });
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '40 days' WHERE id = $1", made['Old secret']!);
    await key('Broad', ['client:*'], { expiresAt: inDays(300) });
    await key('Unused long', ['client:read'], { expiresAt: inDays(300) });
    await changeKeyRow(t, "UPDATE api_keys SET created_at = now() - interval '70 days', rotated_at = now() - interval '1 day' WHERE id = $1", made['Unused long']!);
    await key('Expiring', ['client:read'], { expiresAt: inDays(3) });
    await key('Forever', ['client:read']);
    await key('Revoked', ['client:read'], { expiresAt: inDays(300) });
    expectStatus(await t.request('POST', `/v1/api-keys/${made.Revoked}/revoke`, { token: manager }), 200);
    await key('Expired', ['client:read'], { expiresAt: inDays(300) });
    // Old as well: a key that no longer works carries no flag but leaked.
    await changeKeyRow(t, "UPDATE api_keys SET expires_at = now() - interval '1 hour', created_at = now() - interval '90 days' WHERE id = $1", made.Expired!);
    await key('Revoked broad forever', ['client:*']);
    expectStatus(await t.request('POST', `/v1/api-keys/${made['Revoked broad forever']}/revoke`, { token: manager }), 200);
    await key('Quarantined', ['client:read'], { expiresAt: inDays(300) });
    await changeKeyRow(t, 'UPDATE api_keys SET leaked_at = now(), quarantined_at = now() WHERE id = $1', made.Quarantined!);
    await key('Leaked and revoked', ['client:read'], { expiresAt: inDays(300) });
    await changeKeyRow(t, 'UPDATE api_keys SET leaked_at = now(), revoked_at = now() WHERE id = $1', made['Leaked and revoked']!);
    // Created by a user who then left the organization.
    const leaver = await createUser(t, { organizationId, role: 'developer' });
    made['Left behind'] = (
      await t.services.keys.create({ ...systemContext(), actor: { type: 'user', id: leaver.id } }, { tier: 'organization', organizationId }, { name: 'Left behind', scopes: ['client:read'], expiresAt: inDays(300) })
    ).id;
    await t.db.query('DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2', [organizationId, leaver.id]);
    await key('100% literal_name', ['client:read'], { expiresAt: inDays(300) });
    // Another organization's keys never show.
    const other = await createOrgWithKey(t, ['client:*']);
    made.otherOrganization = other.keyId;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('each flag lists exactly the keys that show it, and the keys it was made for', async () => {
    const all = await walk('/v1/api-keys', manager);
    expect(all.map((k) => k.id)).not.toContain(made.otherOrganization);
    const expected: Record<string, string[]> = {
      rotation_due: ['Old secret'],
      inactive: ['Unused long'],
      expiring_soon: ['Expiring'],
      no_expiry: ['Forever'],
      broad_scopes: ['Broad'],
      creator_removed: ['Left behind'],
      leaked: ['Quarantined', 'Leaked and revoked'],
    };
    for (const flag of KEY_FLAGS) {
      const listed = await walk(`/v1/api-keys?flag=${flag}`, manager);
      expect(listed.map((k) => k.id), flag).toEqual(all.filter((k) => k.flags.includes(flag)).map((k) => k.id));
      const ids = listed.map((k) => k.id);
      for (const label of expected[flag]!) expect(ids, `${flag}: ${label}`).toContain(made[label]);
      for (const label of ['Fresh narrow', 'Expired', 'Revoked broad forever']) expect(ids, `${flag}: ${label}`).not.toContain(made[label]);
    }
  });

  it('each status lists exactly the keys with that status', async () => {
    const all = await walk('/v1/api-keys', manager);
    const expected: Record<string, string> = { active: 'Fresh narrow', quarantined: 'Quarantined', expired: 'Expired', revoked: 'Revoked' };
    for (const status of KEY_STATUSES) {
      const listed = await walk(`/v1/api-keys?status=${status}`, manager);
      expect(listed.map((k) => k.id), status).toEqual(all.filter((k) => k.status === status).map((k) => k.id));
      expect(listed.map((k) => k.id), status).toContain(made[expected[status]!]);
    }
    // Filters combine: revoked and leaked, but not the key only revoked.
    const both = await walk('/v1/api-keys?status=revoked&flag=leaked', manager);
    expect(both.map((k) => k.name)).toEqual(['Leaked and revoked']);
  });

  it('a filtered walk in small pages returns full pages and exactly the filtered list', async () => {
    const whole = await walk('/v1/api-keys?status=active', manager);
    expect(whole.length).toBeGreaterThan(6);
    const paged = await walk('/v1/api-keys?status=active', manager, 2);
    expect(paged.map((k) => k.id)).toEqual(whole.map((k) => k.id));
    // A cursor that is a key outside the filter still marks a place in the list.
    const afterRevoked = await t.request('GET', `/v1/api-keys?status=active&startingAfter=${made.Revoked}`, { token: manager });
    expectStatus(afterRevoked, 200);
    const revokedAt = (await walk('/v1/api-keys', manager)).findIndex((k) => k.id === made.Revoked);
    const olderActive = (await walk('/v1/api-keys', manager)).slice(revokedAt + 1).filter((k) => k.status === 'active');
    expect(afterRevoked.body.data.map((k: ListedKey) => k.id)).toEqual(olderActive.map((k) => k.id));
  });

  it('q finds a key by exact id, exact hint, or name prefix in any case; LIKE characters are literal', async () => {
    const byId = await walk(`/v1/api-keys?q=${made.Broad}`, manager);
    expect(byId.map((k) => k.id)).toEqual([made.Broad]);
    const broad = byId[0]!;
    const byHint = await walk(`/v1/api-keys?q=${encodeURIComponent(broad.hint)}`, manager);
    expect(byHint.map((k) => k.id)).toContain(made.Broad);
    expect(byHint.every((k) => k.hint === broad.hint || k.name.toLowerCase().startsWith(broad.hint.toLowerCase()))).toBe(true);
    expect((await walk('/v1/api-keys?q=old%20SEC', manager)).map((k) => k.name)).toEqual(['Old secret']);
    // Not a substring search: "secret" is inside "Old secret" but starts no name.
    expect(await walk('/v1/api-keys?q=secret', manager)).toEqual([]);
    expect((await walk(`/v1/api-keys?q=${encodeURIComponent('100%')}`, manager)).map((k) => k.name)).toEqual(['100% literal_name']);
    expect(await walk(`/v1/api-keys?q=${encodeURIComponent('%')}`, manager)).toEqual([]);
    expect(await walk(`/v1/api-keys?q=${encodeURIComponent('_')}`, manager)).toEqual([]);
    // Another organization's key is not found by its id.
    expect(await walk(`/v1/api-keys?q=${made.otherOrganization}`, manager)).toEqual([]);
    // q with a flag: both must hold.
    expect(await walk('/v1/api-keys?q=Broad&flag=no_expiry', manager)).toEqual([]);
  });

  it('a bad status, flag or q is 400 validation_error', async () => {
    for (const query of ['status=deleted', 'status=ACTIVE', 'flag=stale', 'flag=', 'q=', `q=${'x'.repeat(101)}`]) {
      expectProblem(await t.request('GET', `/v1/api-keys?${query}`, { token: manager }), 400, 'validation_error');
    }
  });

  it('the /v1/organizations/{orgId}/api-keys twin filters the same way for a member session', async () => {
    const owner = await createUser(t, { organizationId, role: 'owner' });
    const session = await login(t, owner.email, owner.password);
    const twin = await walk(`/v1/organizations/${organizationId}/api-keys?flag=broad_scopes`, session.token);
    expect(twin.map((k) => k.id)).toEqual((await walk('/v1/api-keys?flag=broad_scopes', manager)).map((k) => k.id));
    expect(twin.map((k) => k.id)).toContain(made.Broad);
    expectProblem(await t.request('GET', `/v1/organizations/${organizationId}/api-keys?status=nope`, { token: session.token }), 400, 'validation_error');
  });

  it('the system key list filters too (global-admin session)', async () => {
    const admin = await createUser(t, { globalAdmin: true });
    const session = await login(t, admin.email, admin.password);
    const broad = await t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 'System broad', scopes: ['health:*'], expiresAt: inDays(300) } });
    expectStatus(broad, 201);
    const gone = await t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 'System gone', scopes: ['health:read'] } });
    expectStatus(gone, 201);
    expectStatus(await t.request('POST', `/v1/system/api-keys/${gone.body.id}/revoke`, { token: session.token }), 200);

    const revoked = await walk('/v1/system/api-keys?status=revoked', session.token);
    expect(revoked.map((k) => k.id)).toEqual([gone.body.id]);
    const broadScoped = await walk('/v1/system/api-keys?flag=broad_scopes', session.token);
    expect(broadScoped.map((k) => k.id)).toContain(broad.body.id);
    expect(broadScoped.map((k) => k.id)).not.toContain(gone.body.id);
    // Organization keys are not system keys.
    expect(broadScoped.map((k) => k.id)).not.toContain(made.Broad);
    expect((await walk('/v1/system/api-keys?q=system%20b', session.token)).map((k) => k.id)).toEqual([broad.body.id]);
    expectProblem(await t.request('GET', '/v1/system/api-keys?flag=bogus', { token: session.token }), 400, 'validation_error');
  });
});
