/**
 * The usage aggregator's bound under a flood (1M verifications over 100k keys), and the stored
 * figures: rolled up minute -> hour -> day at write time, additive across flushes and nodes, and
 * purged past their retention (SPEC §12), on a real database with back-dated rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageAggregator, type UsageEntry } from '../src/usage/aggregator.js';
import { purgeUsage, writeUsage } from '../src/usage/store.js';
import { createOrgKey, createOrgWithKey, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

const FLOOD = 1_000_000;
const KEYS = 100_000;

describe('the usage aggregator', () => {
  it('holds at most maxEntries under 1M verifications over 100k keys while flushes keep up, and loses nothing', () => {
    const drained: UsageEntry[][] = [];
    let full = 0;
    const aggregator: UsageAggregator = new UsageAggregator({
      flushAt: 10_000,
      maxEntries: 50_000,
      // A flush that keeps up: it takes the entries as soon as it is asked.
      onFull: () => {
        full++;
        drained.push(aggregator.drain());
      },
    });
    const ids = Array.from({ length: KEYS }, (_, i) => `key${String(i).padStart(17, '0')}`);
    let largest = 0;
    const now = Date.UTC(2026, 0, 1, 12, 0, 30);
    for (let i = 0; i < FLOOD; i++) {
      aggregator.record(ids[(i * 7919) % KEYS]!, 0, i % 3 === 0 ? null : 'current', i % 3 === 0 ? 'invalid_api_key' : 'ok', '10.0.0.1', 'flood/1', now);
      if (aggregator.size > largest) largest = aggregator.size;
    }
    drained.push(aggregator.drain());
    expect(largest).toBeLessThanOrEqual(10_000);
    expect(full).toBeGreaterThanOrEqual(FLOOD / 10_000 - 1);
    const counted = drained.flat().reduce((n, e) => n + e.total, 0);
    expect(counted + aggregator.dropped).toBe(FLOOD);
    expect(aggregator.dropped).toBe(0);
  });

  it('a flush asked for by a verification includes that verification (the flush may write at once)', () => {
    let written = 0;
    const aggregator: UsageAggregator = new UsageAggregator({
      flushAt: 100,
      maxEntries: 1_000,
      // Writes as soon as asked: the totals as they are at that moment.
      onFull: () => (written += aggregator.drain().reduce((n, e) => n + e.total, 0)),
    });
    for (let i = 0; i < 10_000; i++) aggregator.record(`k${i}`, 0, 'current', 'ok', '10.0.0.1', null, 1_000);
    written += aggregator.drain().reduce((n, e) => n + e.total, 0);
    expect(written).toBe(10_000);
  });

  it('never holds more than maxEntries when flushes cannot keep up (database away): the excess is tallied, not kept', () => {
    const aggregator = new UsageAggregator({ flushAt: 10_000, maxEntries: 50_000 });
    const before = process.memoryUsage().heapUsed;
    const now = Date.UTC(2026, 0, 1, 12, 0, 30);
    for (let i = 0; i < FLOOD; i++) {
      aggregator.record(`key${String((i * 7919) % KEYS).padStart(17, '0')}`, 0, 'current', 'ok', `10.0.${i % 250}.1`, 'flood/1', now);
    }
    expect(aggregator.size).toBe(50_000);
    // Keys that have an entry keep counting; the others are tallied as dropped.
    const kept = aggregator.drain();
    const counted = kept.reduce((n, e) => n + e.total, 0);
    expect(counted + aggregator.dropped).toBe(FLOOD);
    expect(aggregator.dropped).toBeGreaterThan(0);
    // A few hundred bytes an entry: 50k entries stay far below 100 MiB of heap.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(100 * 2 ** 20);
  });

  it('a key seen in a new minute or after a rotation starts a new entry; the old one is kept for the flush', () => {
    const aggregator = new UsageAggregator();
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 59);
    aggregator.record('k', 0, 'current', 'ok', '10.0.0.1', 'a', t0);
    aggregator.record('k', 0, 'current', 'ok', '10.0.0.2', 'b', t0 + 2_000);
    aggregator.record('k', 5, 'previous', 'insufficient_scope', '10.0.0.3', null, t0 + 3_000);
    const entries = aggregator.drain();
    expect(entries.map((e) => [e.minute - Date.UTC(2026, 0, 1, 12), e.generation, e.total, e.current, e.previous])).toEqual([
      [0, 0, 1, 1, 0],
      [60_000, 0, 1, 1, 0],
      [60_000, 5, 1, 0, 1],
    ]);
    expect(entries[2]!.lastPrevious).toEqual({ at: t0 + 3_000, ip: '10.0.0.3', userAgent: null });
    expect(entries[2]!.lastVerifiedAt).toBe(t0 + 3_000);
  });

  it('with counting off only the time of the last verification is kept', () => {
    const aggregator = new UsageAggregator({ countingOff: true });
    aggregator.record('k', 0, 'current', 'ok', '10.0.0.1', 'a', 1_000);
    const [entry] = aggregator.drain();
    expect(entry).toMatchObject({ total: 0, current: 0, lastCurrent: null, lastVerifiedAt: 1_000 });
  });
});

describe('stored usage: rollups and retention', () => {
  let t: TestApp;
  let org: OrgWithKey;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*']);
  });
  afterAll(async () => t?.close());

  const entry = (keyId: string, minute: number, ok: number, invalid: number): UsageEntry => ({
    keyId,
    generation: -1,
    minute,
    total: ok + invalid,
    outcomes: [ok, invalid, 0, 0, 0, 0, 0, 0],
    current: ok,
    previous: 0,
    firstCurrentAt: 0,
    lastCurrent: null,
    lastPrevious: null,
    lastVerifiedAt: 0,
  });

  it('minutes roll up into hours and days, additively across flushes (as from several nodes)', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const h = Date.UTC(2026, 5, 10, 22);
    // Two nodes' flushes: minutes in two hours of one day, and the next day.
    await writeUsage(t.db, [entry(key.id, h + 5 * 60_000, 3, 1), entry(key.id, h + 65 * 60_000, 2, 0)]);
    await writeUsage(t.db, [entry(key.id, h + 5 * 60_000, 1, 0), entry(key.id, h + 125 * 60_000, 4, 0)]);
    const read = async (granularity: string, from: string, to: string) => {
      const result = await t.request('GET', `/v1/api-keys/${key.id}/usage?granularity=${granularity}&from=${from}&to=${to}`, { token: org.token });
      expectStatus(result, 200);
      return result.body.buckets.filter((b: { total: number }) => b.total > 0).map((b: { start: string; total: number; outcomes: { ok: number } }) => [b.start, b.total, b.outcomes.ok]);
    };
    expect(await read('minute', '2026-06-10T22:00:00Z', '2026-06-11T01:00:00Z')).toEqual([
      ['2026-06-10T22:05:00.000Z', 5, 4],
      ['2026-06-10T23:05:00.000Z', 2, 2],
      ['2026-06-11T00:05:00.000Z', 4, 4],
    ]);
    expect(await read('hour', '2026-06-10T00:00:00Z', '2026-06-12T00:00:00Z')).toEqual([
      ['2026-06-10T22:00:00.000Z', 5, 4],
      ['2026-06-10T23:00:00.000Z', 2, 2],
      ['2026-06-11T00:00:00.000Z', 4, 4],
    ]);
    expect(await read('day', '2026-06-01T00:00:00Z', '2026-07-01T00:00:00Z')).toEqual([
      ['2026-06-10T00:00:00.000Z', 7, 6],
      ['2026-06-11T00:00:00.000Z', 4, 4],
    ]);
  });

  it('a sighting counted before a rotation and flushed after it is credited to the secret it was of, now the previous one', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const rotated = await t.request('POST', `/v1/api-keys/${key.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expectStatus(rotated, 200);
    const now = Date.now();
    const sighting = (generation: number, ip: string): UsageEntry => ({
      ...entry(key.id, now - (now % 60_000), 1, 0),
      generation,
      firstCurrentAt: now,
      lastCurrent: { at: now, ip, userAgent: 'x' },
      lastVerifiedAt: now,
    });
    // Counted with the key as it was before the rotation (generation 0: never rotated).
    await writeUsage(t.db, [sighting(0, '10.9.9.9')]);
    let view = (await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body;
    expect(view).toMatchObject({ previousSecretLastUsedIp: '10.9.9.9', lastUsedIp: null });
    // Counted with the key as it is now: the new secret's first use.
    await writeUsage(t.db, [sighting(Date.parse(rotated.body.rotatedAt), '10.8.8.8')]);
    view = (await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body;
    expect(view).toMatchObject({ previousSecretLastUsedIp: '10.9.9.9', lastUsedIp: '10.8.8.8' });
    const [row] = await t.db.query<{ first: Date | null }>('SELECT secret_first_used_at AS first FROM api_keys WHERE id = $1', [key.id]);
    expect(row!.first).not.toBeNull();
  });

  it('a flush of a full table is written in chunks, each statement small, and loses nothing', async () => {
    const ids = Array.from({ length: 2_500 }, (_, i) => `chunk${String(i).padStart(15, '0')}`);
    for (const id of ids) for (let n = 0; n < 3; n++) t.services.usage.record(id, 'current', 'ok', '10.0.0.1', 'chunks/1', 0);
    await t.services.usage.flush();
    const [row] = await t.db.query<{ keys: number; total: number }>(
      "SELECT count(DISTINCT key_id)::int AS keys, sum(total)::int AS total FROM api_key_usage WHERE key_id LIKE 'chunk%' AND granularity = 'minute'",
    );
    expect(row).toEqual({ keys: 2_500, total: 7_500 });
  });

  it('the purge keeps minutes 7 days, hours 90 days, days 2 years, and is idempotent', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const now = Date.UTC(2026, 11, 3, 12);
    const day = 86_400_000;
    const rows: Array<[string, number]> = [
      ['minute', now - 7 * day - 60_000],
      ['minute', now - 7 * day + 60_000],
      ['hour', now - 90 * day - 3_600_000],
      ['hour', now - 89 * day],
      ['day', now - 732 * day],
      ['day', now - 700 * day],
    ];
    for (const [granularity, at] of rows) {
      await t.db.query('INSERT INTO api_key_usage (key_id, granularity, bucket, total, ok) VALUES ($1, $2, $3, 1, 1)', [key.id, granularity, new Date(at)]);
    }
    expect(await purgeUsage(t.db, new Date(now))).toBeGreaterThanOrEqual(3);
    expect(await purgeUsage(t.db, new Date(now))).toBe(0);
    const left = await t.db.query<{ granularity: string; bucket: Date }>('SELECT granularity, bucket FROM api_key_usage WHERE key_id = $1 ORDER BY bucket', [key.id]);
    expect(left.map((r) => [r.granularity, r.bucket.getTime()])).toEqual([
      ['day', now - 700 * day],
      ['hour', now - 89 * day],
      ['minute', now - 7 * day + 60_000],
    ]);
  });
});
