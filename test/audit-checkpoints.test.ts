/**
 * Audit checkpoints (SPEC §15): signed checkpoints of the chain head, on demand and every period
 * (exactly once per period across nodes), listed and written to the log; and the integrity check
 * against a checkpoint, which finds what the hash chain alone cannot: the newest events (or all of
 * them) removed with the chain head reset to match, and a replaced chain. The attacks are made as the
 * database's owner (a superuser), the only role that can make them: Paygate's runtime role cannot
 * (test/database-roles.test.ts).
 */
import { createPublicKey, verify } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrgWithKey,
  createSystemKey,
  createTestDatabase,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type TestApp,
  type TestDatabase,
} from './harness.js';
import { request, startCluster, type Cluster } from './cluster-harness.js';

interface Checkpoint {
  id: string;
  object: 'audit_checkpoint';
  seq: number;
  hash: string;
  at: string;
  signature: string;
}

interface Integrity {
  ok: boolean;
  checked: number;
  headMatches: boolean;
  firstBrokenEventId: string | null;
  reason: string | null;
  checkpoint: { id: string; seq: number | null; hash: string | null; at: string | null; found: boolean; signatureValid: boolean; matches: boolean } | null;
}

const ZERO_HASH = '0'.repeat(64);

/** The signed bytes exactly as docs/security.md spells them, written out here rather than imported. */
const signedBytes = (c: Checkpoint) => Buffer.from(`paygate-audit-checkpoint/v1\nid=${c.id}\nseq=${c.seq}\nhash=${c.hash}\nat=${c.at}\n`, 'utf8');

/** Runs `fn` on the owner's connection, in one transaction, with the audit table's triggers off. */
async function asOwner(t: TestApp, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client(t.ownerUrl);
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
    await fn(client);
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

/** The attack of the issue: the newest events removed and the chain head reset to the last one left. */
const truncateAfter = (t: TestApp, seq: number) =>
  asOwner(t, async (client) => {
    await client.query('DELETE FROM audit_events WHERE seq > $1', [seq]);
    await client.query(
      `UPDATE audit_chain_head SET seq = coalesce((SELECT max(seq) FROM audit_events), 0),
         hash = coalesce((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), repeat('0', 64)) WHERE id = 1`,
    );
  });

const head = async (t: TestApp) => (await t.db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_chain_head WHERE id = 1'))[0]!;

describe('audit checkpoints', () => {
  let t: TestApp;
  let reader: { token: string };
  let creator: { token: string };
  const logged: Array<{ obj: any; msg: string }> = [];

  beforeAll(async () => {
    t = await startPaygate({
      logger: { info: (obj, msg) => void logged.push({ obj, msg }), warn: () => undefined, error: (obj, msg) => void logged.push({ obj, msg }) },
    });
    reader = await createSystemKey(t, ['audit:read']);
    creator = await createSystemKey(t, ['audit:create', 'audit:read']);
  });
  afterAll(async () => t?.close());

  const take = async (token = creator.token) => {
    const r = await t.request('POST', '/v1/system/audit-checkpoints', { token });
    expectStatus(r, 201);
    return r.body as Checkpoint;
  };

  it("POST signs the chain's head: seq and hash of the newest event, an Ed25519 signature of the documented bytes", async () => {
    const org = await createOrgWithKey(t, ['api_key:*']);
    expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'before', scopes: ['api_key:read'] } }), 201);
    const checkpoint = await take();
    expect(checkpoint).toMatchObject({ object: 'audit_checkpoint', ...(await head(t)) });
    expect(checkpoint.id).toMatch(/^acp_[0-9A-Za-z]{22}$/);
    expect(checkpoint.seq).toBeGreaterThan(0);
    expect(Math.abs(Date.parse(checkpoint.at) - Date.now())).toBeLessThan(60_000);
    const [newest] = await t.db.query<{ hash: string }>('SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    expect(checkpoint.hash).toBe(newest!.hash);

    const publicKey = await t.request('GET', '/v1/system/audit-checkpoints/public-key', { token: reader.token });
    expectStatus(publicKey, 200);
    expect(publicKey.headers.get('content-type')).toMatch(/^application\/x-pem-file/);
    expect(publicKey.text).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    const key = createPublicKey(publicKey.text);
    expect(key.asymmetricKeyType).toBe('ed25519');
    expect(verify(null, signedBytes(checkpoint), key, Buffer.from(checkpoint.signature, 'base64'))).toBe(true);
    // Any other value of a signed field does not verify.
    expect(verify(null, signedBytes({ ...checkpoint, seq: checkpoint.seq - 1 }), key, Buffer.from(checkpoint.signature, 'base64'))).toBe(false);
  });

  it('each checkpoint is written to the log at info, with its public key fingerprint', async () => {
    const checkpoint = await take();
    const line = logged.find((entry) => entry.msg === 'audit checkpoint' && entry.obj.auditCheckpoint?.id === checkpoint.id);
    expect(line, JSON.stringify(logged)).toBeDefined();
    expect(line!.obj).toMatchObject({ auditCheckpoint: { id: checkpoint.id, seq: checkpoint.seq, hash: checkpoint.hash, at: checkpoint.at, signature: checkpoint.signature }, trigger: 'request' });
    expect(line!.obj.publicKey).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('lists checkpoints newest first with limit, startingAfter and hasMore', async () => {
    const taken = [await take(), await take(), await take()];
    const first = await t.request('GET', '/v1/system/audit-checkpoints?limit=2', { token: reader.token });
    expectStatus(first, 200);
    expect(first.body).toMatchObject({ object: 'list', hasMore: true });
    expect(first.body.data.map((c: Checkpoint) => c.id)).toEqual([taken[2]!.id, taken[1]!.id]);
    expect(first.body.data[0]).toEqual(taken[2]);
    const second = await t.request('GET', `/v1/system/audit-checkpoints?limit=2&startingAfter=${taken[1]!.id}`, { token: reader.token });
    expectStatus(second, 200);
    expect(second.body.data[0].id).toBe(taken[0]!.id);
    const all = await t.request('GET', '/v1/system/audit-checkpoints?limit=100', { token: reader.token });
    expect(all.body.hasMore).toBe(false);
    expectProblem(await t.request('GET', '/v1/system/audit-checkpoints?startingAfter=acp_0000000000000000000000', { token: reader.token }), 404, 'not_found');
    expectProblem(await t.request('GET', '/v1/system/audit-checkpoints?limit=101', { token: reader.token }), 400, 'validation_error');
    expectProblem(await t.request('GET', '/v1/system/audit-checkpoints?limit=0', { token: reader.token }), 400, 'validation_error');
  });

  it('reading needs system audit:read, taking one needs audit:create; global admins may do both', async () => {
    expectProblem(await t.request('POST', '/v1/system/audit-checkpoints', { token: reader.token }), 403, 'insufficient_scope');
    const noAudit = await createSystemKey(t, ['health:read']);
    for (const path of ['/v1/system/audit-checkpoints', '/v1/system/audit-checkpoints/public-key', '/v1/system/audit-integrity']) {
      expectProblem(await t.request('GET', path, { token: noAudit.token }), 403, 'insufficient_scope');
      expectProblem(await t.request('GET', path), 401, 'missing_credentials');
    }
    const org = await createOrgWithKey(t, ['audit:read', 'audit:create']);
    expectProblem(await t.request('POST', '/v1/system/audit-checkpoints', { token: org.token }), 403, 'wrong_key_tier');
    expectProblem(await t.request('GET', '/v1/system/audit-checkpoints', { token: org.token }), 403, 'wrong_key_tier');
    const wildcard = await createSystemKey(t, ['audit:*']);
    await take(wildcard.token);

    const admin = await createUser(t, { globalAdmin: true });
    const session = await login(t, admin.email, admin.password);
    const byAdmin = await take(session.token);
    const listed = await t.request('GET', '/v1/system/audit-checkpoints?limit=1', { token: session.token });
    expect(listed.body.data[0].id).toBe(byAdmin.id);
    expectStatus(await t.request('GET', `/v1/system/audit-integrity?checkpoint=${byAdmin.id}`, { token: session.token }), 200);
  });

  it('the integrity check verifies against the newest checkpoint by default, or the one named', async () => {
    const checkpoint = await take();
    const latest = await t.request('GET', '/v1/system/audit-integrity', { token: reader.token });
    expectStatus(latest, 200);
    expect(latest.body, latest.text).toMatchObject({ ok: true, headMatches: true, reason: null, checkpoint: { id: checkpoint.id, seq: checkpoint.seq, hash: checkpoint.hash, found: true, signatureValid: true, matches: true } });
    const named = await t.request('GET', `/v1/system/audit-integrity?checkpoint=${checkpoint.id}`, { token: reader.token });
    expect(named.body, named.text).toMatchObject({ ok: true, checkpoint: { id: checkpoint.id, matches: true } });
    expectProblem(await t.request('GET', '/v1/system/audit-integrity?checkpoint=not-a-checkpoint', { token: reader.token }), 400, 'validation_error');
  });
});

describe('the integrity check with a checkpoint finds what the chain alone cannot', () => {
  // Each attack leaves the log broken for good: a server and a database of its own for each.
  let t: TestApp;
  let sys: { token: string };
  let org: { token: string };
  beforeAll(async () => {
    t = await startPaygate();
    sys = await createSystemKey(t, ['audit:read', 'audit:create']);
  });
  afterAll(async () => t?.close());

  /** A fresh chain of a few events, anchored by a checkpoint, then a few more events after it. */
  async function anchoredChain(): Promise<Checkpoint> {
    await asOwner(t, async (client) => {
      await client.query('DELETE FROM audit_events');
      await client.query("UPDATE audit_chain_head SET seq = 0, hash = repeat('0', 64) WHERE id = 1");
      await client.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER USER');
      await client.query('DELETE FROM audit_checkpoints');
      await client.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER USER');
    });
    org = await createOrgWithKey(t, ['api_key:*']);
    for (let i = 0; i < 3; i++) expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `k${i}`, scopes: ['api_key:read'] } }), 201);
    const taken = await t.request('POST', '/v1/system/audit-checkpoints', { token: sys.token });
    expectStatus(taken, 201);
    for (let i = 0; i < 3; i++) expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `after${i}`, scopes: ['api_key:read'] } }), 201);
    expect((await check()).ok).toBe(true);
    return taken.body as Checkpoint;
  }

  const check = async (checkpoint?: string): Promise<Integrity> => {
    const r = await t.request('GET', `/v1/system/audit-integrity${checkpoint ? `?checkpoint=${checkpoint}` : ''}`, { token: sys.token });
    expectStatus(r, 200);
    return r.body as Integrity;
  };

  /** The check before checkpoints existed: the walk and the head alone. */
  const chainAlonePasses = (report: Integrity) => report.firstBrokenEventId === null && report.headMatches;

  it('the newest events removed with the head reset pass the chain alone, but not the checkpoint', async () => {
    const checkpoint = await anchoredChain();
    // Everything from two events before the checkpoint on is removed; the head names the last one left.
    await truncateAfter(t, checkpoint.seq - 2);

    const report = await check();
    expect(chainAlonePasses(report), JSON.stringify(report)).toBe(true);
    expect(report).toMatchObject({ ok: false, checkpoint: { id: checkpoint.id, found: true, signatureValid: true, matches: false } });
    expect(report.reason).toMatch(/before checkpoint .* the newest events were removed/);
    expect(await check(checkpoint.id)).toMatchObject({ ok: false, checkpoint: { matches: false } });
  });

  it('with the checkpoints deleted too, only a checkpoint id kept outside the database (the log) still shows it', async () => {
    const checkpoint = await anchoredChain();
    await truncateAfter(t, checkpoint.seq - 1);
    await asOwner(t, async (client) => {
      await client.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER USER');
      await client.query('DELETE FROM audit_checkpoints');
      await client.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER USER');
    });
    // With no checkpoint left the check is what it always was, and it passes: the hole of the issue.
    expect(await check()).toMatchObject({ ok: true, checkpoint: null });
    expect(await check(checkpoint.id)).toMatchObject({ ok: false, checkpoint: { id: checkpoint.id, found: false, matches: false } });
  });

  it('every event deleted and the head reset to the empty chain: the checkpoint is past the end', async () => {
    const checkpoint = await anchoredChain();
    await truncateAfter(t, 0);
    expect(await head(t)).toEqual({ seq: 0, hash: ZERO_HASH });
    const report = await check();
    expect(chainAlonePasses(report)).toBe(true);
    expect(report).toMatchObject({ ok: false, checked: 0, checkpoint: { id: checkpoint.id, matches: false } });
  });

  it('a replaced chain, new events at the same positions, does not hold the signed event', async () => {
    const checkpoint = await anchoredChain();
    await asOwner(t, async (client) => {
      await client.query('DELETE FROM audit_events');
      await client.query("UPDATE audit_chain_head SET seq = 0, hash = repeat('0', 64) WHERE id = 1");
      await client.query("SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), 1, false)");
    });
    // Paygate itself writes the new chain, so every hash and link is genuine.
    while ((await head(t)).seq < checkpoint.seq + 2) {
      expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'replacement', scopes: ['api_key:read'] } }), 201);
    }
    const report = await check();
    expect(chainAlonePasses(report), JSON.stringify(report)).toBe(true);
    expect(report).toMatchObject({ ok: false, checkpoint: { id: checkpoint.id, signatureValid: true, matches: false } });
    expect(report.reason).toMatch(/does not hold the event of checkpoint .* replaced/);
  });

  it('a checkpoint row altered or forged in the database fails its signature', async () => {
    const checkpoint = await anchoredChain();
    const [second] = await t.db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1', [checkpoint.seq]);
    // Point the checkpoint at an earlier event (as a truncation would need), keeping its signature.
    await asOwner(t, async (client) => {
      await client.query('ALTER TABLE audit_checkpoints DISABLE TRIGGER USER');
      await client.query('UPDATE audit_checkpoints SET seq = $2, hash = $3 WHERE id = $1', [checkpoint.id, second!.seq, second!.hash]);
      await client.query('ALTER TABLE audit_checkpoints ENABLE TRIGGER USER');
    });
    const report = await check(checkpoint.id);
    expect(report).toMatchObject({ ok: false, checkpoint: { found: true, signatureValid: false } });
    expect(report.reason).toMatch(/signature/);
  });

  it('no new checkpoint anchors a chain that lost anchored events, on demand (409) or on schedule', async () => {
    const checkpoint = await anchoredChain();
    await truncateAfter(t, checkpoint.seq - 1);
    expectProblem(await t.request('POST', '/v1/system/audit-checkpoints', { token: sys.token }), 409, 'conflict');
    expect(await t.services.auditCheckpoints.runDue()).toBeNull();
    const listed = await t.request('GET', '/v1/system/audit-checkpoints', { token: sys.token });
    expect(listed.body.data.map((c: Checkpoint) => c.id)).toEqual([checkpoint.id]);
    // So the default check keeps failing, rather than passing against a checkpoint of the truncated chain.
    expect(await check()).toMatchObject({ ok: false, checkpoint: { id: checkpoint.id } });
  });
});

describe('scheduled checkpoints', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    a = await startPaygate({ database });
    b = await startPaygate({ database });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  const scheduled = async () =>
    (await a.db.query<{ id: string; period_start: Date }>('SELECT id, period_start FROM audit_checkpoints WHERE period_start IS NOT NULL ORDER BY n')).map((r) => ({
      id: r.id,
      period: r.period_start.toISOString(),
    }));

  it('two nodes due at the same moment record exactly one checkpoint per period', async () => {
    const base = Date.UTC(2031, 0, 1, 0, 2, 30); // inside the period that starts at 00:00
    const periods = [0, 1, 2, 3, 4].map((i) => base + i * 300_000);
    // Every period attempted by both nodes at once, several periods in parallel.
    const outcomes = await Promise.all(periods.flatMap((now) => [a.services.auditCheckpoints.runDue(now), b.services.auditCheckpoints.runDue(now + 1_000)]));
    expect(outcomes.filter((c) => c !== null)).toHaveLength(periods.length);
    // Late attempts in a period already taken record nothing.
    expect(await Promise.all(periods.map((now) => b.services.auditCheckpoints.runDue(now + 100_000)))).toEqual(periods.map(() => null));
    const rows = (await scheduled()).filter((r) => r.period.startsWith('2031-01-01'));
    expect(rows.map((r) => r.period).sort()).toEqual(['00', '05', '10', '15', '20'].map((m) => `2031-01-01T00:${m}:00.000Z`));
  });

  it("a starting node takes the current period's checkpoint by itself", async () => {
    const node = await startPaygate({ database, env: { PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '300' } });
    try {
      const deadline = Date.now() + 10_000;
      let rows: Array<{ id: string; period: string }> = [];
      while (Date.now() < deadline) {
        rows = (await scheduled()).filter((r) => Date.parse(r.period) <= Date.now() && Date.now() - Date.parse(r.period) < 600_000);
        if (rows.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(rows.length).toBeGreaterThan(0);
    } finally {
      await node.close();
    }
  });
});

describe('scheduled checkpoints across a cluster of processes', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ ids: ['node-a', 'node-b'], env: { LOG_LEVEL: 'info' } });
  }, 90_000);
  afterAll(async () => cluster?.stop(), 60_000);

  it('the nodes record one checkpoint per period between them, each logged once, and it verifies', { timeout: 30_000 }, async () => {
    const [A, B] = cluster.nodes;
    const logLines = () =>
      cluster.nodes.flatMap((node) => node.stdout().split('\n')).filter((line) => line.includes('"msg":"audit checkpoint"')).map((line) => JSON.parse(line));
    let rows: Array<{ id: string; period_start: Date }> = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      rows = (await cluster.pg.query('SELECT id, period_start FROM audit_checkpoints WHERE period_start IS NOT NULL ORDER BY n')).rows;
      if (rows.length > 0 && logLines().length === rows.length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rows.length).toBeGreaterThan(0);
    // One per period (a period boundary may fall inside the start, hence possibly two periods).
    expect(new Set(rows.map((r) => r.period_start.toISOString())).size).toBe(rows.length);
    expect(logLines().map((line) => line.auditCheckpoint.id).sort()).toEqual(rows.map((r) => r.id).sort());

    const admin = await cluster.login(A!);
    const integrity = await request(B!, 'GET', '/v1/system/audit-integrity', { token: admin });
    expectStatus(integrity, 200);
    expect(integrity.body, integrity.text).toMatchObject({ ok: true, checkpoint: { id: rows.at(-1)!.id, signatureValid: true, matches: true } });
  });
});
