/**
 * Concurrency rules of the unit of work, with concurrent requests against a real server:
 * - one lock order for every change (organization deletions and key revocations at once never deadlock);
 * - no code waits for a pool connection while holding one (a cold settings cache under a burst does not
 *   starve a pool of 10);
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, createSystemKey, expectStatus, startPaygate, type TestApp } from '../harness.js';

describe('one lock order for every change', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('8 organization deletions and 8 key revocations at once, 5 rounds, all succeed (no deadlock)', { timeout: 60_000 }, async () => {
    const system = await createSystemKey(t, ['organization:*']);
    const keyOwner = await createOrgWithKey(t, ['api_key:*']);
    const failures: string[] = [];
    for (let round = 0; round < 5; round++) {
      const orgs = await Promise.all(Array.from({ length: 8 }, () => createOrgWithKey(t, ['client:read'])));
      const keys = await Promise.all(Array.from({ length: 8 }, () => createOrgKey(t, keyOwner.organizationId, ['client:read'])));
      const results = await Promise.all([
        ...orgs.map((org) => t.request('DELETE', `/v1/system/organizations/${org.organizationId}`, { token: system.token })),
        ...keys.map((key) => t.request('POST', `/v1/api-keys/${key.id}/revoke`, { token: keyOwner.token })),
      ]);
      for (const result of results) if (result.status !== 200) failures.push(`round ${round}: ${result.status} ${result.text}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe('no pool connection is awaited while one is held', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Drops every cached entry (settings included) on this node, as a lost channel does. */
  const coldCaches = () => t.services.bus.distrust('test: cold caches');

  it('30 provisions with a cold settings cache complete on a pool of 10', { timeout: 30_000 }, async () => {
    const system = await createSystemKey(t, ['organization:*']);
    await t.request('PATCH', '/v1/system/settings', { token: (await createSystemKey(t, ['system_settings:*'])).token, body: { apiKeyMaxLifetimeDays: 30 } });
    coldCaches();
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        t.request('POST', '/v1/system/organizations', {
          token: system.token,
          body: { name: `Burst ${i}`, initialApiKey: { name: 'k', scopes: ['client:read'] } },
        }),
      ),
    );
    for (const result of results) expectStatus(result, 201);
    // The setting was read inside each provisioning transaction: every initial key got the capped expiry.
    for (const result of results) expect(result.body.initialApiKey.expiresAt).not.toBeNull();
  });

  it('20 key updates setting expiresAt with a cold settings cache complete on a pool of 10', { timeout: 30_000 }, async () => {
    const org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
    const keys = await Promise.all(Array.from({ length: 20 }, () => createOrgKey(t, org.organizationId, ['client:read'])));
    coldCaches();
    const expiresAt = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const results = await Promise.all(keys.map((key) => t.request('PATCH', `/v1/api-keys/${key.id}`, { token: org.token, body: { expiresAt } })));
    for (const result of results) expectStatus(result, 200);
  });

  it('20 magic links under Idempotency-Key with a cold settings cache complete on a pool of 10', { timeout: 30_000 }, async () => {
    const org = await createOrgWithKey(t, ['client:create', 'portal:create']);
    const client = await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada', email: 'ada@example.com' } });
    expectStatus(client, 201);
    coldCaches();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.request('POST', '/v1/portal/magic-links', { token: org.token, headers: { 'idempotency-key': `burst-${i}` }, body: { clientId: client.body.id } }),
      ),
    );
    for (const result of results) expectStatus(result, 201);
  });

  it('the guard throws when code queries the pool from inside an open transaction', async () => {
    await expect(t.db.transaction(async () => t.db.query('SELECT 1'))).rejects.toThrow(/inside an open transaction/);
    await expect(t.db.transaction(async () => t.db.transaction(async (tx) => tx.query('SELECT 1')))).rejects.toThrow(/inside an open transaction/);
    // Through the transaction's own handle it is fine.
    await expect(t.db.transaction(async (tx) => tx.query('SELECT 1 AS one'))).resolves.toEqual([{ one: 1 }]);
  });
});
