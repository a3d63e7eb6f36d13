/** SQL for usage (SPEC §12). Only src/usage/ uses it. */
import type { Queryable } from '../db/database.js';
import type { KeyScope } from '../keys/store.js';
import { USAGE_OUTCOMES, type UsageEntry, type UsageOutcome } from './aggregator.js';

export type Granularity = 'minute' | 'hour' | 'day';

export const GRANULARITY_MS: Record<Granularity, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** How long rows of each granularity are kept (SPEC §12): minutes 7 days, hours 90 days, days 2 years. */
export const RETENTION_MS: Record<Granularity, number> = { minute: 7 * 86_400_000, hour: 90 * 86_400_000, day: 731 * 86_400_000 };

/** The start of the bucket holding `ms` (UTC: days start at midnight UTC). */
export function bucketStart(ms: number, granularity: Granularity): number {
  const size = GRANULARITY_MS[granularity];
  return ms - (((ms % size) + size) % size);
}

/** Longest user agent kept; longer ones are cut. Control characters are dropped (it is shown in tables). */
const MAX_USER_AGENT = 256;
const cleanAgent = (ua: string | null) => (ua === null ? null : ua.replace(/[\x00-\x1f\x7f]/g, '').slice(0, MAX_USER_AGENT));

interface BucketRow {
  keyId: string;
  granularity: Granularity;
  bucket: number;
  counts: number[]; // total, the outcomes in order, current, previous
}

/** Sums entries into one row per key, granularity and bucket (an upsert may touch a row only once). */
function bucketRows(entries: readonly UsageEntry[]): BucketRow[] {
  const rows = new Map<string, BucketRow>();
  for (const entry of entries) {
    if (entry.total === 0) continue;
    for (const granularity of ['minute', 'hour', 'day'] as const) {
      const bucket = bucketStart(entry.minute, granularity);
      const id = `${entry.keyId}|${granularity}|${bucket}`;
      let row = rows.get(id);
      if (!row) {
        row = { keyId: entry.keyId, granularity, bucket, counts: new Array(USAGE_OUTCOMES.length + 3).fill(0) };
        rows.set(id, row);
      }
      row.counts[0]! += entry.total;
      entry.outcomes.forEach((n, i) => (row!.counts[i + 1]! += n));
      row.counts[USAGE_OUTCOMES.length + 1]! += entry.current;
      row.counts[USAGE_OUTCOMES.length + 2]! += entry.previous;
    }
  }
  // Sorted: concurrent flushes of several nodes take the rows' locks in one order (no deadlock).
  return [...rows.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.granularity < b.granularity ? -1 : a.granularity > b.granularity ? 1 : a.bucket - b.bucket));
}

interface SeenRow {
  keyId: string;
  generation: number;
  verifiedAt: number;
  currentFirst: number;
  current: { at: number; ip: string; userAgent: string | null } | null;
  previous: { at: number; ip: string; userAgent: string | null } | null;
}

/**
 * The newest sightings per key, of the key's newest generation in the batch: lastUsedAt from every
 * entry, the per-secret sightings only from the newest generation (a rotation inside one flush
 * interval loses the old secret's sightings of those seconds; the rotation itself copied the older ones).
 */
function seenRows(entries: readonly UsageEntry[]): SeenRow[] {
  const rows = new Map<string, SeenRow>();
  for (const e of entries) {
    let row = rows.get(e.keyId);
    if (!row || e.generation > row.generation) {
      const verifiedAt = row?.verifiedAt ?? 0;
      row = { keyId: e.keyId, generation: e.generation, verifiedAt, currentFirst: 0, current: null, previous: null };
      rows.set(e.keyId, row);
    }
    row.verifiedAt = Math.max(row.verifiedAt, e.lastVerifiedAt);
    if (e.generation !== row.generation) continue;
    if (e.firstCurrentAt && (!row.currentFirst || e.firstCurrentAt < row.currentFirst)) row.currentFirst = e.firstCurrentAt;
    if (e.lastCurrent && (!row.current || e.lastCurrent.at >= row.current.at)) row.current = e.lastCurrent;
    if (e.lastPrevious && (!row.previous || e.lastPrevious.at >= row.previous.at)) row.previous = e.lastPrevious;
  }
  return [...rows.values()].filter((r) => r.verifiedAt || r.current || r.previous).sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
}

const at = (ms: number) => (ms ? new Date(ms) : null);

/**
 * Writes a batch: the counts into api_key_usage at the three granularities (additive upserts), and
 * the sightings into api_keys (lastUsedAt, and per secret when, from where and with which client it
 * was last seen; never moving a time backwards).
 *
 * A sighting is credited to the secrets as they were when it was counted: `generation` is the key's
 * rotatedAt then. When the key was rotated since, the secret that was current is now the previous
 * one, and a sighting of the then-previous secret is of a secret that no longer exists.
 */
export async function writeUsage(db: Queryable, entries: readonly UsageEntry[]): Promise<void> {
  const buckets = bucketRows(entries);
  const seen = seenRows(entries);
  if (buckets.length === 0 && seen.length === 0) return;
  const params: unknown[] = [];
  const param = (value: unknown, type: string) => `$${params.push(value)}::${type}`;
  const columns = ['total', ...USAGE_OUTCOMES, 'current_secret', 'previous_secret'];
  const counts = `INSERT INTO api_key_usage (key_id, granularity, bucket, ${columns.join(', ')})
       SELECT * FROM unnest(${[
         param(buckets.map((r) => r.keyId), 'text[]'),
         param(buckets.map((r) => r.granularity), 'text[]'),
         param(buckets.map((r) => new Date(r.bucket)), 'timestamptz[]'),
         ...columns.map((_, i) => param(buckets.map((r) => r.counts[i]), 'bigint[]')),
       ].join(', ')}) ORDER BY 1, 2, 3
       ON CONFLICT (key_id, granularity, bucket) DO UPDATE SET ${columns.map((c) => `${c} = api_key_usage.${c} + EXCLUDED.${c}`).join(', ')}
       RETURNING 1`;
  const sightings = `unnest(${[
    param(seen.map((r) => r.keyId), 'text[]'),
    param(seen.map((r) => r.generation), 'bigint[]'),
    param(seen.map((r) => at(r.verifiedAt)), 'timestamptz[]'),
    param(seen.map((r) => at(r.currentFirst)), 'timestamptz[]'),
    param(seen.map((r) => at(r.current?.at ?? 0)), 'timestamptz[]'),
    param(seen.map((r) => r.current?.ip ?? null), 'text[]'),
    param(seen.map((r) => cleanAgent(r.current?.userAgent ?? null)), 'text[]'),
    param(seen.map((r) => at(r.previous?.at ?? 0)), 'timestamptz[]'),
    param(seen.map((r) => r.previous?.ip ?? null), 'text[]'),
    param(seen.map((r) => cleanAgent(r.previous?.userAgent ?? null)), 'text[]'),
  ].join(', ')}) AS u(id, generation, verified_at, cur_first, cur_at, cur_ip, cur_ua, prev_at, prev_ip, prev_ua)`;
  // One statement: the counts and the sightings are written together or not at all, with no
  // transaction of its own (one round trip per flush). Input sorted by key id, so two nodes
  // flushing the same keys take their row locks in the same order.
  // Whether a sighting's secrets are the key's secrets now, judged on the row as the UPDATE locks it
  // (a rotation that commits while the flush waits for the row is seen): the key's rotatedAt then
  // was the sighting's generation. If not, the key was rotated since: the secret that was current is
  // the previous one now, and the then-previous secret is gone.
  const same = `(u.generation < 0 OR coalesce(floor(extract(epoch FROM date_trunc('milliseconds', k.rotated_at)) * 1000)::bigint, 0) = u.generation)`;
  const cur = (column: string) => `CASE WHEN ${same} THEN u.${column} END`;
  const prev = (column: string) => `CASE WHEN ${same} THEN u.prev_${column} ELSE u.cur_${column} END`;
  const newer = (at: string, than: string) => `(${at} IS NOT NULL AND (${than} IS NULL OR ${at} >= ${than}))`;
  await db.query(
    `WITH counts AS (${counts}),
     touched AS (
       UPDATE api_keys AS k SET
         last_used_at = greatest(k.last_used_at, u.verified_at),
         secret_first_used_at = least(k.secret_first_used_at, ${cur('cur_first')}),
         secret_last_used_at = greatest(k.secret_last_used_at, ${cur('cur_at')}),
         last_used_ip = CASE WHEN ${newer(cur('cur_at'), 'k.secret_last_used_at')} THEN u.cur_ip ELSE k.last_used_ip END,
         last_user_agent = CASE WHEN ${newer(cur('cur_at'), 'k.secret_last_used_at')} THEN u.cur_ua ELSE k.last_user_agent END,
         previous_secret_last_used_at = CASE WHEN k.previous_secret_hash IS NULL THEN k.previous_secret_last_used_at ELSE greatest(k.previous_secret_last_used_at, ${prev('at')}) END,
         previous_secret_last_used_ip = CASE WHEN k.previous_secret_hash IS NOT NULL AND ${newer(prev('at'), 'k.previous_secret_last_used_at')} THEN ${prev('ip')} ELSE k.previous_secret_last_used_ip END,
         previous_secret_last_user_agent = CASE WHEN k.previous_secret_hash IS NOT NULL AND ${newer(prev('at'), 'k.previous_secret_last_used_at')} THEN ${prev('ua')} ELSE k.previous_secret_last_user_agent END
       FROM ${sightings} WHERE k.id = u.id
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM counts)::int AS counted, (SELECT count(*) FROM touched)::int AS touched`,
    params,
  );
}

export interface Counts {
  total: number;
  outcomes: Record<UsageOutcome, number>;
  bySecret: { current: number; previous: number };
}

export function emptyCounts(): Counts {
  return { total: 0, outcomes: Object.fromEntries(USAGE_OUTCOMES.map((o) => [o, 0])) as Record<UsageOutcome, number>, bySecret: { current: 0, previous: 0 } };
}

function addRow(into: Counts, row: Record<string, string | number | Date>): void {
  into.total += Number(row.total);
  for (const o of USAGE_OUTCOMES) into.outcomes[o] += Number(row[o]);
  into.bySecret.current += Number(row.current_secret);
  into.bySecret.previous += Number(row.previous_secret);
}

const SUMS = ['total', ...USAGE_OUTCOMES, 'current_secret', 'previous_secret'].map((c) => `sum(${c})::bigint AS ${c}`).join(', ');

/** One key's buckets in [from, to), in order; buckets without rows are absent. */
export async function keyBuckets(db: Queryable, keyId: string, granularity: Granularity, from: Date, to: Date): Promise<Map<number, Counts>> {
  const rows = await db.query<Record<string, string | number | Date>>(
    `SELECT bucket, ${['total', ...USAGE_OUTCOMES, 'current_secret', 'previous_secret'].join(', ')} FROM api_key_usage
      WHERE key_id = $1 AND granularity = $2 AND bucket >= $3 AND bucket < $4 ORDER BY bucket`,
    [keyId, granularity, from, to],
  );
  const out = new Map<number, Counts>();
  for (const row of rows) {
    const counts = emptyCounts();
    addRow(counts, row);
    out.set((row.bucket as Date).getTime(), counts);
  }
  return out;
}

export interface KeyTotals extends Counts {
  keyId: string;
  name: string;
  hint: string;
}

/** The keys of a tier/organization with their totals in [from, to), most requests first. */
export async function keyTotals(db: Queryable, where: KeyScope, granularity: Granularity, from: Date, to: Date, limit: number): Promise<{ keys: KeyTotals[]; totals: Counts; keyCount: number }> {
  const rows = await db.query<Record<string, string | number | Date>>(
    `SELECT u.key_id, k.name, k.hint, ${SUMS}
       FROM api_key_usage u JOIN api_keys k ON k.id = u.key_id
      WHERE k.tier = $1 AND k.organization_id IS NOT DISTINCT FROM $2 AND u.granularity = $3 AND u.bucket >= $4 AND u.bucket < $5
      GROUP BY u.key_id, k.name, k.hint
      ORDER BY total DESC, u.key_id`,
    [where.tier, where.organizationId, granularity, from, to],
  );
  const totals = emptyCounts();
  const keys: KeyTotals[] = [];
  for (const row of rows) {
    addRow(totals, row);
    if (keys.length < limit) {
      const counts = emptyCounts();
      addRow(counts, row);
      keys.push({ keyId: row.key_id as string, name: row.name as string, hint: row.hint as string, ...counts });
    }
  }
  return { keys, totals, keyCount: rows.length };
}

/**
 * Deletes rows past their retention, at most `batch` per granularity per call (a big backlog is
 * worked off over several runs rather than in one long statement). Idempotent: safe on every node.
 */
export async function purgeUsage(db: Queryable, now: Date, batch = 10_000): Promise<number> {
  let deleted = 0;
  for (const granularity of ['minute', 'hour', 'day'] as const) {
    const cutoff = new Date(now.getTime() - RETENTION_MS[granularity]);
    const rows = await db.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM api_key_usage WHERE ctid IN (
           SELECT ctid FROM api_key_usage WHERE granularity = $1 AND bucket < $2 LIMIT $3)
         RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [granularity, cutoff, batch],
    );
    deleted += rows[0]?.n ?? 0;
  }
  return deleted;
}
