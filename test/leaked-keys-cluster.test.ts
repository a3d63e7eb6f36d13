/**
 * A leak reported on node A is contained on node B as soon as A's answer returns (SPEC §13), with
 * B holding the key in its cache beforehand: money-moving requests (a client create, a checkout) are
 * refused on B by the very next request, revoked or quarantined per `leakedKeyAction`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type ClusterNode } from './cluster-harness.js';

describe('leaked keys across a cluster', () => {
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let admin: string;

  beforeAll(async () => {
    cluster = await startCluster({ ids: ['node-a', 'node-b'] });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    admin = await cluster.login(a);
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  const scopes = ['client:*', 'checkout:*', 'api_key:read'];

  /** B verifies the key and caches it: a write that works, then the cached path. */
  async function warmOnB(token: string) {
    const created = await cluster.request(b, 'POST', '/v1/clients', { token, body: { name: 'warm', email: 'warm@example.com' } });
    expect(created.status, created.text).toBe(201);
    expect((await cluster.request(b, 'GET', '/v1/clients', { token })).status).toBe(200);
  }

  it('revoke (the default): reported on A, the next money-moving request on B is refused', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const org = await cluster.provisionOrg(a, admin, scopes);
      await warmOnB(org.token);
      const report = await cluster.request(a, 'POST', '/v1/leaked-keys', { body: { tokens: [org.token], source: 'cluster test' } });
      expect(report.status, report.text).toBe(202);
      const create = await cluster.request(b, 'POST', '/v1/clients', { token: org.token, body: { name: 'after', email: 'after@example.com' } });
      expect(create.status, `trial ${trial}: ${create.text}`).toBe(401);
      expect(create.body.code).toBe('api_key_revoked');
      const checkout = await cluster.request(b, 'POST', '/v1/checkouts', { token: org.token, body: { amount: 1000, currency: 'EUR' } });
      expect(checkout.status, checkout.text).toBe(401);
    }
  });

  it('quarantine: reported on A, B refuses writes with api_key_quarantined at once and still serves reads', async () => {
    const settings = await cluster.request(a, 'PATCH', '/v1/system/settings', { token: admin, body: { leakedKeyAction: 'quarantine' } });
    expect(settings.status, settings.text).toBe(200);
    expect(settings.body.leakedKeyAction).toBe('quarantine');
    for (let trial = 0; trial < 3; trial++) {
      const org = await cluster.provisionOrg(a, admin, scopes);
      await warmOnB(org.token);
      const report = await cluster.request(a, 'POST', '/v1/leaked-keys', { body: { tokens: [org.token] } });
      expect(report.status, report.text).toBe(202);
      const create = await cluster.request(b, 'POST', '/v1/clients', { token: org.token, body: { name: 'after', email: 'after@example.com' } });
      expect(create.status, `trial ${trial}: ${create.text}`).toBe(403);
      expect(create.body.code).toBe('api_key_quarantined');
      const checkout = await cluster.request(b, 'POST', '/v1/checkouts', { token: org.token, body: { amount: 1000, currency: 'EUR' } });
      expect(checkout.body.code, checkout.text).toBe('api_key_quarantined');
      expect((await cluster.request(b, 'GET', '/v1/clients', { token: org.token })).status).toBe(200);
      const who = await cluster.request(b, 'GET', '/v1/auth/whoami', { token: org.token });
      expect(who.body.status).toBe('quarantined');
    }
  });
});
