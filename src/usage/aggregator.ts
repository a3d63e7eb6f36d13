/**
 * Usage counting on the request path (SPEC §12): every verification of a known key is added to an
 * in-memory entry per key and minute, never written per request. flush.ts takes the entries in
 * batches (`drain`) and writes them with a few statements.
 *
 * Bounded memory: at most `maxEntries` entries live at once, whatever the traffic. When the map
 * reaches `flushAt` entries the owner is told to flush early (`onFull`); if it still reaches
 * `maxEntries` (the database is slow or away), a verification of a key without an entry is not
 * counted but tallied in `dropped` (the flush logs it), while keys that have an entry keep counting.
 * An entry is a few numbers and references to strings the request already holds (address, user agent).
 *
 * Pure: no Fastify, no database. Costs one Map lookup and a few increments per verification.
 */

/** The outcomes of SPEC §12, in the order of the response's `outcomes` object. */
export const USAGE_OUTCOMES = [
  'ok',
  'invalid_api_key',
  'api_key_revoked',
  'api_key_expired',
  'ip_not_allowed',
  'rate_limited',
  'insufficient_scope',
  'api_key_quarantined',
] as const;

export type UsageOutcome = (typeof USAGE_OUTCOMES)[number];

const OUTCOME_INDEX: Record<UsageOutcome, number> = Object.fromEntries(USAGE_OUTCOMES.map((o, i) => [o, i])) as Record<UsageOutcome, number>;

export function isUsageOutcome(code: string): code is UsageOutcome {
  return Object.prototype.hasOwnProperty.call(OUTCOME_INDEX, code);
}

/** Which secret of the key the presented token matched; null: a wrong secret for an existing id. */
export type SecretSlot = 'current' | 'previous' | null;

/** Outcomes of a verification that passed (the secret matched, the key is usable): they set lastUsedAt. */
const VERIFIED = new Set<UsageOutcome>(['ok', 'insufficient_scope', 'api_key_quarantined']);

export interface LastSeen {
  at: number;
  ip: string;
  userAgent: string | null;
}

export interface UsageEntry {
  keyId: string;
  /**
   * The key's rotation the secrets refer to (its rotatedAt in ms, 0 when never rotated): a count
   * taken just before a rotation and flushed after it must not be credited to the new secret.
   */
  generation: number;
  /** Start of the minute, in ms since the epoch. */
  minute: number;
  total: number;
  /** Counts per outcome, in USAGE_OUTCOMES order. */
  outcomes: number[];
  current: number;
  previous: number;
  /** The first use of the current secret in this entry (0: none), for the secret's first use. */
  firstCurrentAt: number;
  lastCurrent: LastSeen | null;
  lastPrevious: LastSeen | null;
  /** The last verification that passed, for lastUsedAt (0: none). */
  lastVerifiedAt: number;
}

export interface AggregatorOptions {
  /** Ask for an early flush from this many entries on (default 5,000: a few statements of a flush). */
  flushAt?: number;
  /** Never hold more entries than this (default 100,000). */
  maxEntries?: number;
  /** Called once when `flushAt` is reached, until the next drain. */
  onFull?: () => void;
  /** Counting off (PAYGATE_USAGE_COUNTING=off): only lastUsedAt is kept, as before SPEC §12. */
  countingOff?: boolean;
}

/** The newest sighting, updated in place: no allocation per request once an entry has one. */
function seen(last: LastSeen | null, at: number, ip: string, userAgent: string | null): LastSeen {
  if (!last) return { at, ip, userAgent };
  if (at >= last.at) {
    last.at = at;
    last.ip = ip;
    last.userAgent = userAgent;
  }
  return last;
}

export class UsageAggregator {
  /** Live entries by key id; an entry whose minute ended moves to `sealed` when its key is seen again. */
  private live = new Map<string, UsageEntry>();
  private sealed: UsageEntry[] = [];
  private asked = false;
  /** Verifications not counted because the table was full. */
  dropped = 0;
  private readonly flushAt: number;
  private readonly maxEntries: number;

  constructor(private readonly options: AggregatorOptions = {}) {
    this.maxEntries = options.maxEntries ?? 100_000;
    this.flushAt = Math.min(options.flushAt ?? 5_000, this.maxEntries);
  }

  /** Entries held now (live and sealed). */
  get size(): number {
    return this.live.size + this.sealed.length;
  }

  record(keyId: string, generation: number, secret: SecretSlot, outcome: UsageOutcome, ip: string, userAgent: string | null, now: number): void {
    const minute = now - (now % 60_000);
    let entry = this.live.get(keyId);
    if (entry && (entry.minute !== minute || entry.generation !== generation)) {
      this.sealed.push(entry);
      this.live.delete(keyId);
      entry = undefined;
    }
    let full = false;
    if (!entry) {
      if (this.size >= this.maxEntries) {
        this.dropped++;
        this.askForFlush();
        return;
      }
      entry = { keyId, generation, minute, total: 0, outcomes: [0, 0, 0, 0, 0, 0, 0, 0], current: 0, previous: 0, firstCurrentAt: 0, lastCurrent: null, lastPrevious: null, lastVerifiedAt: 0 };
      this.live.set(keyId, entry);
      full = this.size >= this.flushAt;
    }
    this.add(entry, secret, outcome, ip, userAgent, now);
    // Only once this verification is in its entry: a flush asked for now may drain (and write) it at once.
    if (full) this.askForFlush();
  }

  private add(entry: UsageEntry, secret: SecretSlot, outcome: UsageOutcome, ip: string, userAgent: string | null, now: number): void {
    if (VERIFIED.has(outcome) && now > entry.lastVerifiedAt) entry.lastVerifiedAt = now;
    if (this.options.countingOff) return;
    entry.total++;
    entry.outcomes[OUTCOME_INDEX[outcome]]!++;
    if (secret === 'current') {
      entry.current++;
      if (entry.firstCurrentAt === 0) entry.firstCurrentAt = now;
      entry.lastCurrent = seen(entry.lastCurrent, now, ip, userAgent);
    } else if (secret === 'previous') {
      entry.previous++;
      entry.lastPrevious = seen(entry.lastPrevious, now, ip, userAgent);
    }
  }

  private askForFlush(): void {
    if (this.asked) return;
    this.asked = true;
    this.options.onFull?.();
  }

  /** Takes every entry out (to be written); `restore` gives them back when the write failed. */
  drain(): UsageEntry[] {
    const out = this.sealed;
    for (const entry of this.live.values()) out.push(entry);
    this.sealed = [];
    this.live = new Map();
    this.asked = false;
    return out;
  }

  /**
   * Puts back entries a failed write took, as sealed entries (they are merged by key and minute when
   * written). Within the bound: what does not fit is dropped and tallied.
   */
  restore(entries: UsageEntry[]): void {
    for (const entry of entries) {
      if (this.size >= this.maxEntries) {
        this.dropped += entry.total || 1;
        continue;
      }
      this.sealed.push(entry);
    }
  }
}
