/**
 * Usage per key and per secret (SPEC §12): counting on the request path (`record`), the batched
 * flush, the reads of the usage routes, retention, and the end of grace periods (grace.ts).
 *
 * Background work, on every node (start/stop):
 *   - flush every FLUSH_MS (2 s; early when the table fills): figures reach the database within
 *     a few seconds, so every node's view is complete within 10 s of the requests (one retry included);
 *   - the grace sweep every SWEEP_MS (5 s): idle and expired graces end (grace.ts; each once);
 *   - the retention purge every PURGE_MS (10 min): idempotent deletes, safe on every node.
 */
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import { isDatabaseUnavailable } from '../db/database.js';
import { notFound, validationError } from '../errors.js';
import type { Logger } from '../services.js';
import { findKeyById, type KeyScope } from '../keys/store.js';
import { UsageAggregator, USAGE_OUTCOMES, type SecretSlot, type UsageOutcome } from './aggregator.js';
import { bucketStart, emptyCounts, GRANULARITY_MS, keyBuckets, keyTotals, purgeUsage, RETENTION_MS, writeUsage, type Counts, type Granularity, type KeyTotals } from './store.js';
import { endGraceByRequest, sweepGraces } from './grace.js';

export const FLUSH_MS = 2_000;
export const SWEEP_MS = 5_000;
export const PURGE_MS = 10 * 60_000;
/** Entries per statement of a flush (each becomes up to 3 bucket rows and one key update). */
const WRITE_CHUNK = 1_000;

/** The longest range one usage request may cover, per granularity (its number of buckets stays small). */
export const MAX_RANGE_MS: Record<Granularity, number> = { minute: 86_400_000, hour: 31 * 86_400_000, day: 731 * 86_400_000 };
const DAY_MS = 86_400_000;

export interface UsageBucket extends Counts {
  start: string;
}

export interface KeyUsageView {
  object: 'api_key_usage';
  keyId: string;
  granularity: Granularity;
  from: string;
  to: string;
  totals: Counts;
  buckets: UsageBucket[];
}

export interface UsageListView {
  object: 'usage';
  organizationId: string | null;
  granularity: Granularity;
  from: string;
  to: string;
  totals: Counts;
  data: KeyTotals[];
  hasMore: boolean;
}

export interface RangeQuery {
  from?: string;
  to?: string;
  granularity?: string;
}

export class UsageService {
  readonly aggregator: UsageAggregator;
  private timers: NodeJS.Timeout[] = [];
  private flushing: Promise<void> | null = null;
  private flushAgain = false;
  private droppedReported = 0;

  constructor(
    private readonly deps: {
      db: Database;
      work: Work;
      log: Logger;
      /** PAYGATE_USAGE_COUNTING=off: no counts, no per-secret sightings; lastUsedAt only. */
      countingOff?: boolean;
      now?: () => Date;
      /** Aggregator bounds (tests make them small). */
      flushAt?: number;
      maxEntries?: number;
    },
  ) {
    this.aggregator = new UsageAggregator({
      countingOff: deps.countingOff ?? false,
      ...(deps.flushAt !== undefined ? { flushAt: deps.flushAt } : {}),
      ...(deps.maxEntries !== undefined ? { maxEntries: deps.maxEntries } : {}),
      onFull: () => void this.flush().catch((error) => this.reportFlushError(error)),
    });
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /**
   * Counts one verification of a known key (SPEC §12). The one call of the request path: a Map
   * lookup and a few increments, no I/O.
   * @param secret which secret matched; null for a wrong secret of an existing key
   * @param generation the key's rotatedAt in ms (0 if never rotated) as the verifier saw it; -1 unknown
   */
  record(keyId: string, secret: SecretSlot, outcome: UsageOutcome, ip: string, userAgent: string | null | undefined, generation = -1): void {
    this.aggregator.record(keyId, generation, secret, outcome, ip, userAgent ?? null, this.deps.now ? this.deps.now().getTime() : Date.now());
  }

  /** Writes what was counted; concurrent calls share one write, and one more follows if asked meanwhile. */
  flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    const run = this.writeAll().finally(() => {
      if (this.flushing === run) this.flushing = null;
    });
    this.flushing = run;
    return run;
  }

  private async writeAll(): Promise<void> {
    do {
      this.flushAgain = false;
      if (this.aggregator.dropped > this.droppedReported) {
        // The table was full (the database slow or away): say how many went uncounted, once per flush.
        this.deps.log.warn({ uncounted: this.aggregator.dropped - this.droppedReported }, 'key verifications not counted: the usage table was full');
        this.droppedReported = this.aggregator.dropped;
      }
      const entries = this.aggregator.drain();
      if (entries.length === 0) break;
      // In chunks of about WRITE_CHUNK entries, a key's entries in one chunk: each statement stays
      // far inside the database's statement bound however much was counted (a full table of 100,000
      // entries written at once would not, and would then fail again with every retry).
      entries.sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
      let from = 0;
      try {
        while (from < entries.length) {
          let to = Math.min(entries.length, from + WRITE_CHUNK);
          while (to < entries.length && entries[to]!.keyId === entries[to - 1]!.keyId) to++;
          await writeUsage(this.deps.db, entries.slice(from, to));
          from = to;
        }
      } catch (error) {
        // Not lost: what was not written is given back (within the bound) and written with the next flush.
        this.aggregator.restore(entries.slice(from));
        throw error;
      }
    } while (this.flushAgain);
  }

  private reportFlushError(error: unknown): void {
    // An outage is reported once per flush, in one line; the batch is retried with the next one.
    if (isDatabaseUnavailable(error)) this.deps.log.warn({ reason: (error as Error).message }, 'could not record key usage: the database is unavailable');
    else this.deps.log.error({ err: error }, 'could not record key usage');
  }

  start(): void {
    const every = (ms: number, task: () => Promise<unknown>, what: string) => {
      const timer = setInterval(() => {
        task().catch((error) =>
          what === 'flush' ? this.reportFlushError(error) : isDatabaseUnavailable(error) ? this.deps.log.warn({ reason: (error as Error).message }, `usage ${what} skipped: the database is unavailable`) : this.deps.log.error({ err: error }, `usage ${what} failed`),
        );
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(FLUSH_MS, () => this.flush(), 'flush');
    every(SWEEP_MS, () => this.sweepGraces(), 'grace sweep');
    every(PURGE_MS, () => this.purge(), 'retention purge');
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.flush().catch(() => undefined);
  }

  /** Ends idle and expired graces (grace.ts); exposed for tests, which pass a later `now`. */
  sweepGraces(now = this.now()) {
    return sweepGraces(this.deps.db, this.deps.work, now);
  }

  /** Deletes rows past their retention (SPEC §12). */
  purge(now = this.now()): Promise<number> {
    return purgeUsage(this.deps.db, now);
  }

  /** `POST .../end-grace`; resolves once every node refuses the previous secret. */
  async endGrace(ctx: RequestContext, where: KeyScope, id: string): Promise<void> {
    await endGraceByRequest(this.deps.work, ctx, where, id, this.now());
  }

  /** The range of a usage request: defaults (the last 24 hours, by hour) and its bounds; 400 when bad. */
  private range(query: RangeQuery, defaultGranularity: Granularity | null): { from: Date; to: Date; granularity: Granularity } {
    const now = this.now();
    const to = query.to !== undefined ? new Date(query.to) : now;
    const from = query.from !== undefined ? new Date(query.from) : new Date(to.getTime() - DAY_MS);
    const errors = [];
    if (Number.isNaN(to.getTime())) errors.push({ path: '/querystring/to', message: 'must be an RFC 3339 date-time' });
    if (Number.isNaN(from.getTime())) errors.push({ path: '/querystring/from', message: 'must be an RFC 3339 date-time' });
    const granularity = (query.granularity ?? defaultGranularity ?? pickGranularity(from, to, now)) as Granularity;
    if (!(granularity in GRANULARITY_MS)) errors.push({ path: '/querystring/granularity', message: 'must be minute, hour or day' });
    if (errors.length === 0 && from > to) errors.push({ path: '/querystring/from', message: 'must not be after to' });
    if (errors.length === 0 && to.getTime() - from.getTime() > MAX_RANGE_MS[granularity]) {
      errors.push({ path: '/querystring/to', message: `a ${granularity} range covers at most ${MAX_RANGE_MS[granularity] / DAY_MS} days` });
    }
    if (errors.length > 0) throw validationError(errors);
    return { from, to, granularity };
  }

  /** `GET .../api-keys/{id}/usage`: every bucket of the range, zeros included, every outcome present. */
  async keyUsage(where: KeyScope, id: string, query: RangeQuery): Promise<KeyUsageView> {
    const { from, to, granularity } = this.range(query, 'hour');
    const key = id.length === 20 ? await findKeyById(this.deps.db, id) : null;
    if (!key || key.tier !== where.tier || key.organizationId !== where.organizationId) throw notFound('API key');
    const start = bucketStart(from.getTime(), granularity);
    const rows = await keyBuckets(this.deps.db, id, granularity, new Date(start), to);
    const totals = emptyCounts();
    const buckets: UsageBucket[] = [];
    const step = GRANULARITY_MS[granularity];
    for (let t = start; t < to.getTime(); t += step) {
      const counts = rows.get(t) ?? emptyCounts();
      add(totals, counts);
      buckets.push({ start: new Date(t).toISOString(), ...counts });
    }
    return { object: 'api_key_usage', keyId: id, granularity, from: new Date(start).toISOString(), to: to.toISOString(), totals, buckets };
  }

  /** `GET /v1/usage`: the keys of the organization (or the system keys) by requests, with totals. */
  async listUsage(where: KeyScope, query: RangeQuery & { limit?: number }): Promise<UsageListView> {
    const { from, to, granularity } = this.range({ from: query.from, to: query.to }, null);
    const start = bucketStart(from.getTime(), granularity);
    const limit = query.limit ?? 100;
    const { keys, totals, keyCount } = await keyTotals(this.deps.db, where, granularity, new Date(start), to, limit);
    return {
      object: 'usage',
      organizationId: where.organizationId,
      granularity,
      from: new Date(start).toISOString(),
      to: to.toISOString(),
      totals,
      data: keys,
      hasMore: keyCount > keys.length,
    };
  }
}

/**
 * The granularity of an overview: the finest one whose rows still cover `from` and whose buckets
 * for the range stay few.
 */
function pickGranularity(from: Date, to: Date, now: Date): Granularity {
  const span = to.getTime() - from.getTime();
  if (span <= MAX_RANGE_MS.minute && from.getTime() >= now.getTime() - RETENTION_MS.minute) return 'minute';
  if (span <= MAX_RANGE_MS.hour && from.getTime() >= now.getTime() - RETENTION_MS.hour) return 'hour';
  return 'day';
}

function add(into: Counts, counts: Counts): void {
  into.total += counts.total;
  for (const o of USAGE_OUTCOMES) into.outcomes[o] += counts.outcomes[o];
  into.bySecret.current += counts.bySecret.current;
  into.bySecret.previous += counts.bySecret.previous;
}
