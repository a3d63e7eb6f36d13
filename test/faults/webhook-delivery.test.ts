/**
 * Webhook delivery when a node dies for real (SPEC §16, docs/webhooks.md "At least once"): Paygate
 * node processes (test/cluster-harness.ts) on one database, a real receiver on 127.0.0.1, and
 * SIGKILL, so nothing of the dying node's shutdown runs (test/webhooks.test.ts covers a node that
 * stops gracefully, and claims that expire under in-process nodes).
 *
 * - Killed mid-attempt: the receiver holds the first attempt open, the node making it is found by
 *   the socket it holds and killed; once its claim expires (moved into the past, as the suite moves
 *   time) the surviving node attempts again under a new attempt id and the event arrives.
 * - Killed between commit and delivery: the test holds a lock that keeps every worker from fanning
 *   the committed event out; the node that committed it is killed while its worker waits; the
 *   survivor fans it out and delivers it once.
 * - Under load: 200 events committed on both nodes, some answers failing and retried at once, both
 *   workers claiming concurrently: no attempt id is ever delivered twice, and every event arrives.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type ClusterNode, type ProvisionedOrg } from '../cluster-harness.js';
import { startWebhookReceiver, verifySignature, type ReceivedHook, type WebhookReceiver } from '../webhook-receiver.js';

/** How long a node process may take to start (compiling with tsx on a busy machine is slow). */
const READY_MS = 180_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(probe: () => Promise<T | undefined | false | null>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false && value !== null) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The socket inodes of a process's open file descriptors (Linux /proc). */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  return inodes;
}

/**
 * The node whose process holds an open connection to the receiver (remote port `port`, state
 * ESTABLISHED in /proc/net/tcp): the one making the attempt the receiver holds open. Attempts open
 * a connection of their own, so before any other delivery to the receiver it is the only one.
 */
function nodeConnectedTo(nodes: ClusterNode[], port: number): ClusterNode {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[2]?.endsWith(`:${hex}`) && fields[3] === '01') inodes.add(fields[9]!);
    }
  }
  const holders = nodes.filter((node) => !node.done && [...socketInodes(node.child.pid!)].some((inode) => inodes.has(inode)));
  if (holders.length !== 1) throw new Error(`expected one node connected to the receiver, found ${holders.map((n) => n.id).join(', ') || 'none'}`);
  return holders[0]!;
}

/** paygate_webhook_deliveries_total of one node, all outcomes. */
async function deliveriesCounted(cluster: Cluster, node: ClusterNode): Promise<number> {
  const metrics = await cluster.request(node, 'GET', '/metrics');
  return metrics.text
    .split('\n')
    .filter((line) => line.startsWith('paygate_webhook_deliveries_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('webhook delivery when a node is killed', () => {
  let cluster: Cluster;
  let receiver: WebhookReceiver;
  let adminToken: string;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    cluster = await startCluster({ ids: [], env: { PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    // Started here rather than by startCluster, to give a loaded machine longer to start them.
    const nodes = await Promise.all(['node-a', 'node-b'].map((id) => cluster.addNode(id)));
    await Promise.all(nodes.map((node) => cluster.waitReady(node, READY_MS)));
    adminToken = await cluster.login(cluster.nodes[0]!);
  }, 2 * READY_MS);

  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
  });

  /** A fresh organization with an endpoint at `/hooks/<name>`, made on `on`. */
  async function orgWithEndpoint(on: ClusterNode, name: string, events: string[]) {
    const org: ProvisionedOrg = await cluster.provisionOrg(on, adminToken, ['api_key:*', 'webhook:*']);
    const created = await cluster.request(on, 'POST', '/v1/webhook-endpoints', { token: org.token, body: { url: receiver.urlFor(name), events } });
    expect(created.status, created.text).toBe(201);
    return { org, endpoint: created.body as { id: string; secret: string } };
  }

  async function createKey(on: ClusterNode, org: ProvisionedOrg): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const key = await cluster.request(on, 'POST', '/v1/api-keys', { token: org.token, body: { name: `k-${randomBytes(3).toString('hex')}`, scopes: [] } });
      // On a loaded machine a change may find the database busy (503, rolled back, nothing emitted): asked again, as a client would.
      if (key.status === 503 && attempt < 5) {
        await sleep(200 * attempt);
        continue;
      }
      expect(key.status, key.text).toBe(201);
      return key.body.id as string;
    }
  }

  const eventOf = (hook: ReceivedHook, keyId: string) => hook.json?.type === 'api_key.created' && hook.json.data.object.id === keyId;

  /** A node like the others, joined after one was killed, so the rest of the file keeps two. */
  async function replace(dead: ClusterNode): Promise<void> {
    await dead.exited;
    cluster.nodes.splice(cluster.nodes.indexOf(dead), 1);
    const node = await cluster.addNode(`${dead.id}-again-${randomBytes(2).toString('hex')}`);
    await cluster.waitReady(node, READY_MS);
  }

  it('a node killed in the middle of an attempt: the survivor attempts again under a new attempt id once the claim expires, and the event arrives', async () => {
    const [a] = cluster.nodes as [ClusterNode, ClusterNode];
    const name = `mid-${randomBytes(3).toString('hex')}`;
    const { org, endpoint } = await orgWithEndpoint(a, name, ['api_key.created']);
    receiver.answers.set(`/hooks/${name}`, (_hook, index) => (index === 0 ? 'hang' : 200));
    const keyId = await createKey(a, org);
    await receiver.waitFor((all) => all.some((h) => eventOf(h, keyId)), 'the first attempt');
    const first = receiver.to(name)[0]!;
    // This file's first delivery: the only connection to the receiver is the held attempt's.
    const attemptNode = nodeConnectedTo(cluster.nodes, receiver.port);
    const survivor = cluster.nodes.find((n) => n !== attemptNode)!;
    const survivorBefore = await deliveriesCounted(cluster, survivor);

    attemptNode.child.kill('SIGKILL');
    expect((await attemptNode.exited).signal).toBe('SIGKILL');
    // Still claimed by the dead node's attempt: nothing is attempted again before the claim expires.
    await sleep(1_500);
    expect(receiver.to(name)).toHaveLength(1);
    const [claimed] = (await cluster.pg.query('SELECT id, claimed_by, status FROM webhook_deliveries WHERE endpoint_id = $1', [endpoint.id])).rows;
    expect(claimed).toMatchObject({ claimed_by: first.headers['paygate-attempt-id'], status: 'pending' });

    // The claim's 60 seconds pass.
    await cluster.pg.query("UPDATE webhook_deliveries SET claim_expires_at = now() - interval '1 second' WHERE id = $1", [claimed.id]);
    await receiver.waitFor(() => receiver.to(name).length === 2, 'the second attempt, by the survivor');
    const [, second] = receiver.to(name) as [ReceivedHook, ReceivedHook];
    expect(second.headers['paygate-event-id']).toBe(first.headers['paygate-event-id']);
    expect(second.headers['paygate-attempt-id']).not.toBe(first.headers['paygate-attempt-id']);
    expect(verifySignature(second.headers['paygate-signature'], second.body, endpoint.secret)).toBe(true);

    const delivery = await eventually(async () => {
      const list = await cluster.request(survivor, 'GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`, { token: org.token });
      const d = list.body.data[0];
      return d?.status === 'succeeded' ? d : null;
    }, 'the delivery recorded as succeeded');
    expect(delivery.attempts).toBe(2);
    // The dead node's attempt never got an outcome: listed as unknown.
    expect(delivery.recentAttempts.map((x: { id: string; outcome: string }) => [x.id, x.outcome])).toEqual([
      [second.headers['paygate-attempt-id'], 'succeeded'],
      [first.headers['paygate-attempt-id'], 'unknown'],
    ]);
    expect(await deliveriesCounted(cluster, survivor)).toBe(survivorBefore + 1);
    // Nothing more comes: one request per attempt id.
    await sleep(1_500);
    expect(receiver.to(name)).toHaveLength(2);
    await replace(attemptNode);
  }, 90_000 + READY_MS);

  it('a node killed after its commit, before any worker could fan the event out: the survivor delivers it, once', async () => {
    const [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    const name = `commit-${randomBytes(3).toString('hex')}`;
    const { org } = await orgWithEndpoint(a, name, ['api_key.created']);
    const survivorBefore = await deliveriesCounted(cluster, b);
    const blocker = cluster.pg;
    // No delivery can be made while this lock is held: fan-out's INSERT into webhook_deliveries waits
    // (Paygate's lock_timeout is 4 s, so the kill follows within it).
    await blocker.query('BEGIN');
    let keyId: string;
    try {
      await blocker.query('LOCK TABLE webhook_deliveries IN SHARE MODE');
      keyId = await createKey(a, org);
      // A worker has taken the committed event and waits on the lock.
      await eventually(async () => {
        const { rows } = await blocker.query("SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'webhook_deliveries'::regclass AND NOT granted");
        return rows[0].n > 0;
      }, 'a worker waiting to fan the event out', 10_000);
      a.child.kill('SIGKILL');
      expect((await a.exited).signal).toBe('SIGKILL');
      const [row] = (await blocker.query('SELECT count(*)::int AS n FROM webhook_events WHERE organization_id = $1', [org.organizationId])).rows;
      expect(row.n).toBeGreaterThan(0); // committed, in the outbox
      expect(receiver.to(name)).toHaveLength(0);
    } finally {
      await blocker.query('COMMIT');
    }
    const hook = await eventually(async () => receiver.to(name).find((h) => eventOf(h, keyId)), 'the event, from the survivor');
    expect(hook.headers['paygate-attempt-id']).toMatch(/^wha_/);
    expect(await deliveriesCounted(cluster, b), 'the attempt was made by the survivor').toBe(survivorBefore + 1);
    await sleep(2_000);
    expect(receiver.to(name)).toHaveLength(1);
    const { rows } = await cluster.pg.query(
      "SELECT d.status, d.attempts FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE e.organization_id = $1 AND d.event_type = 'api_key.created'",
      [org.organizationId],
    );
    expect(rows).toEqual([{ status: 'succeeded', attempts: 1 }]);
    await replace(a);
  }, 90_000 + READY_MS);

  it('two nodes delivering 200 events at once, with failures retried at once: no attempt id is delivered twice, and every event arrives', async () => {
    const [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
    const name = `load-${randomBytes(3).toString('hex')}`;
    const { org, endpoint } = await orgWithEndpoint(a, name, ['api_key.created']);
    // One answer in eight fails: those deliveries are retried, and the test makes them due at once.
    receiver.answers.set(`/hooks/${name}`, () => (Math.random() < 0.125 ? 500 : 200));
    const before = await Promise.all([deliveriesCounted(cluster, a), deliveriesCounted(cluster, b)]);
    const count = 200;
    const keyIds: string[] = [];
    for (let batch = 0; batch < count / 10; batch++) {
      keyIds.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => createKey(i % 2 === 0 ? a : b, org)))));
    }
    const succeeded = async () =>
      (await cluster.pg.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'", [endpoint.id])).rows[0]!.n;
    await eventually(async () => {
      // Failed attempts wait 30-60 s for their retry: bring it forward, as the suite moves time.
      await cluster.pg.query("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1 AND status = 'pending' AND next_attempt_at > now()", [endpoint.id]);
      return (await succeeded()) === count;
    }, `${count} deliveries succeeded`, 90_000);

    const hooks = receiver.to(name);
    const attemptIds = hooks.map((h) => String(h.headers['paygate-attempt-id']));
    expect(new Set(attemptIds).size, 'an attempt id delivered twice').toBe(attemptIds.length);
    const events = new Set(hooks.map((h) => h.json.data.object.id as string));
    expect([...events].sort()).toEqual([...keyIds].sort());
    // Every attempt the receiver saw is recorded, once, with its outcome; none in doubt.
    const { rows } = await cluster.pg.query<{ id: string; outcome: string | null }>(
      'SELECT a.id, a.outcome FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = $1',
      [endpoint.id],
    );
    expect(rows.map((r) => r.id).sort()).toEqual([...attemptIds].sort());
    expect(rows.filter((r) => r.outcome === null)).toEqual([]);
    expect(hooks.length).toBeGreaterThan(count); // some failed and were retried
    // Both workers took part.
    const after = await Promise.all([deliveriesCounted(cluster, a), deliveriesCounted(cluster, b)]);
    expect(after[0] - before[0], 'attempts by node a').toBeGreaterThan(0);
    expect(after[1] - before[1], 'attempts by node b').toBeGreaterThan(0);
    expect(after[0] - before[0] + after[1] - before[1]).toBe(hooks.length);
  }, 150_000);
});
