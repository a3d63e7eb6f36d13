/**
 * Usage and rotation evidence across a cluster (SPEC §12): two real Paygate processes on one
 * database. Usage counted on node A is read on node B within 10 seconds; a grace ended on A is
 * refused on B as soon as the response returns; an idle previous secret is retired by the sweep that
 * runs on every node, once.
 *
 * The idle retirement does not wait real minutes: once both nodes have flushed their sightings, the
 * test moves them back in time in the database (as if the minutes had passed) and lets the nodes'
 * own sweep find it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type ClusterNode, type ProvisionedOrg } from './cluster-harness.js';

const TEST_TIMEOUT_MS = 90_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last: ${String(last)})` : ''}`);
}

describe('usage and rotation evidence across nodes (SPEC §12)', () => {
  let cluster: Cluster;
  let a: ClusterNode;
  let b: ClusterNode;
  let org: ProvisionedOrg;

  beforeAll(async () => {
    cluster = await startCluster({ ids: ['node-a', 'node-b'] });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    const admin = await cluster.login(a);
    org = await cluster.provisionOrg(a, admin, ['api_key:*']);
  }, 120_000);
  afterAll(async () => cluster?.stop(), 60_000);

  const createKey = async (node: ClusterNode) => {
    const result = await cluster.request(node, 'POST', '/v1/api-keys', { token: org.token, body: { name: 'worker', scopes: ['api_key:read'] } });
    expect(result.status, result.text).toBe(201);
    return result.body as { id: string; secret: string };
  };

  it('usage counted on node A is complete on node B within 10 seconds', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await createKey(a);
    for (let i = 0; i < 7; i++) expect((await cluster.request(a, 'GET', '/v1/api-keys', { token: key.secret })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await cluster.request(a, 'GET', '/v1/clients', { token: key.secret })).status).toBe(403);
    const started = Date.now();
    const totals = await eventually('the figures on node B', 10_000, async () => {
      const usage = await cluster.request(b, 'GET', `/v1/api-keys/${key.id}/usage?granularity=minute`, { token: org.token });
      expect(usage.status, usage.text).toBe(200);
      return usage.body.totals.total === 10 ? usage.body.totals : undefined;
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(totals.outcomes).toMatchObject({ ok: 7, insufficient_scope: 3 });
    expect(totals.bySecret).toEqual({ current: 10, previous: 0 });
  });

  it('end-grace on node A: node B refuses the previous secret as soon as the response returns', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await createKey(a);
    const rotated = await cluster.request(a, 'POST', `/v1/api-keys/${key.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expect(rotated.status, rotated.text).toBe(200);
    // Node B has verified (and cached) the previous secret.
    expect((await cluster.request(b, 'GET', '/v1/api-keys', { token: key.secret })).status).toBe(200);
    const ended = await cluster.request(a, 'POST', `/v1/api-keys/${key.id}/end-grace`, { token: org.token });
    expect(ended.status, ended.text).toBe(200);
    expect(ended.body.previousSecretExpiresAt).toBeNull();
    const refused = await cluster.request(b, 'GET', '/v1/api-keys', { token: key.secret });
    expect(refused.status, refused.text).toBe(401);
    expect(refused.body.code).toBe('invalid_api_key');
    expect((await cluster.request(b, 'GET', '/v1/api-keys', { token: rotated.body.secret })).status).toBe(200);
  });

  it('retireWhenIdleMinutes: the previous secret seen on node A, idle long enough, is retired by the nodes\' sweep once', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await createKey(a);
    const rotated = await cluster.request(a, 'POST', `/v1/api-keys/${key.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 600, retireWhenIdleMinutes: 5 } });
    expect(rotated.status, rotated.text).toBe(200);
    expect((await cluster.request(b, 'GET', '/v1/api-keys', { token: rotated.body.secret, headers: { 'user-agent': 'new-client/1' } })).status).toBe(200);
    expect((await cluster.request(a, 'GET', '/v1/api-keys', { token: key.secret, headers: { 'user-agent': 'old-client/1' } })).status).toBe(200);

    // Node B tells where the previous secret was last used (node A's sighting), within 10 s.
    const seen = await eventually("the previous secret's last use on node B", 10_000, async () => {
      const view = await cluster.request(b, 'GET', `/v1/api-keys/${key.id}`, { token: org.token });
      return view.body.previousSecretLastUsedAt && view.body.lastUserAgent === 'new-client/1' ? view.body : undefined;
    });
    expect(seen).toMatchObject({ previousSecretLastUsedIp: '127.0.0.1', previousSecretLastUserAgent: 'old-client/1', lastUsedIp: '127.0.0.1' });
    const rows = await cluster.pg.query('SELECT secret_first_used_at FROM api_keys WHERE id = $1', [key.id]);
    expect(rows.rows[0].secret_first_used_at).not.toBeNull();

    // Both used just now: still in its grace period.
    expect((await cluster.request(b, 'GET', `/v1/api-keys/${key.id}`, { token: org.token })).body.previousSecretExpiresAt).not.toBeNull();

    // Six minutes pass for the evidence (no request uses the previous secret meanwhile).
    await cluster.pg.query(
      "UPDATE api_keys SET secret_first_used_at = secret_first_used_at - interval '6 minutes', previous_secret_last_used_at = previous_secret_last_used_at - interval '6 minutes' WHERE id = $1",
      [key.id],
    );
    await eventually('the idle retirement', 15_000, async () => {
      const view = await cluster.request(b, 'GET', `/v1/api-keys/${key.id}`, { token: org.token });
      return view.body.previousSecretExpiresAt === null ? true : undefined;
    });
    for (const node of [a, b]) expect((await cluster.request(node, 'GET', '/v1/api-keys', { token: key.secret })).status).toBe(401);
    expect((await cluster.request(a, 'GET', '/v1/api-keys', { token: rotated.body.secret })).status).toBe(200);
    // Ended once, by one node, for being idle.
    const ends = await cluster.pg.query("SELECT details->>'graceEnded' AS reason FROM audit_events WHERE target->>'id' = $1 AND details ? 'graceEnded'", [key.id]);
    expect(ends.rows.map((r) => r.reason)).toEqual(['idle']);
  });
});
