/**
 * Rate limiting behind one small interface. The in-memory limiter serves a single node; the Redis
 * limiter (rate-limit/redis.ts) shares counts across nodes. Fixed windows, each opened by its first
 * attempt and lasting its length: simple, O(1), the same arithmetic in both implementations, and no
 * clock boundary at which every key's count starts again at once.
 *
 * Paygate never shares one table between uses that different callers can fill (src/services.ts):
 * the sign-in throttle has one table for source addresses, which anyone can feed with junk, and one
 * for accounts (existing ones only) and invitations; per-key rate limits have their own, which only
 * authenticated keys with a rate limit reach, and in which each organization holds a bounded share
 * (`maxPerGroup`). A flood of one can then never push another's state out.
 *
 * A window, once open, lives until it ends: it is never evicted early (an evicted denying window
 * would hand a locked account fresh guesses, or an exhausted key a fresh quota), nor restarted when
 * a caller asks for another window length. Memory is bounded by refusing to open new windows when
 * the table is full (after dropping the ended ones); what a refused entry means is the limiter's
 * `whenFull` policy, chosen per use.
 */
export interface RateDecision {
  allowed: boolean;
  /** Seconds until the window resets; sent as Retry-After when refused. */
  retryAfterSeconds: number;
  remaining: number;
  /** Whether this attempt opened the window (the key had none open): hierarchical limits count new windows. */
  opened: boolean;
}

export interface RateLimiter {
  readonly kind: 'memory' | 'redis';
  /**
   * Counts one attempt against `key` and says whether it is within `limit` for its window. The
   * window is opened by the first attempt and ends `windowSeconds` later; later calls count in it
   * until it ends, whatever window length they ask for. `group` names the share of the table the
   * key belongs to (an organization), where the limiter bounds shares.
   */
  consume(key: string, limit: number, windowSeconds: number, group?: string): Promise<RateDecision>;
  /** Takes back one counted attempt in the open window (one that turned out not to count). */
  release(key: string): Promise<void>;
  /** Forgets the open window of `key`. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

export interface MemoryLimiterOptions {
  /**
   * What a full table answers for a key it holds no open window for:
   * - 'refuse': fail closed (security state: the sign-in throttle refuses the attempt);
   * - 'allow': fail open, untracked (capacity limits, as when Redis is down).
   */
  whenFull: 'refuse' | 'allow';
  /** Most open windows held at once (~150 bytes each). */
  maxEntries?: number;
  /**
   * Most open windows of one `group` (an organization's keys): past it, that group's new windows are
   * refused (fail closed, whatever `whenFull` says: a share is only ever filled by its own group), so
   * one tenant can never fill the table and switch off everyone else's limits.
   */
  maxPerGroup?: number;
  now?: () => number;
}

interface Window {
  /** When the window ends (ms since the epoch). */
  end: number;
  count: number;
  group: string | undefined;
}

export class MemoryRateLimiter implements RateLimiter {
  readonly kind = 'memory' as const;
  private readonly windows = new Map<string, Window>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** No open window ends before this instant: a full table is not swept again until then. */
  private noneEndsBefore = Infinity;
  /** Attempts answered by the `whenFull` policy because the table was full. */
  fullAnswers = 0;
  /** Open windows per group. */
  private readonly groups = new Map<string, number>();
  /**
   * Keys whose window a sweep dropped (bounded, oldest forgotten first): when the table is full, such
   * a key is refused rather than let through untracked, so a key that was being limited stays limited.
   */
  private readonly hadWindow = new Map<string, true>();

  constructor(private readonly options: MemoryLimiterOptions) {
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** Open windows of `group` (tests). */
  sizeOf(group: string): number {
    return this.groups.get(group) ?? 0;
  }

  get size(): number {
    return this.windows.size;
  }

  async consume(key: string, limit: number, windowSeconds: number, group?: string): Promise<RateDecision> {
    const now = this.now();
    let entry = this.live(key, now);
    const opened = !entry;
    if (!entry) {
      const waitUntilEarliest = () => Math.max(1, Math.ceil((this.noneEndsBefore - now) / 1000));
      if (group !== undefined && this.options.maxPerGroup !== undefined && this.sizeOf(group) >= this.options.maxPerGroup && !this.sweep(now, group)) {
        // The group's own share is full: only the group itself filled it, so only it waits.
        this.fullAnswers++;
        return { allowed: false, retryAfterSeconds: waitUntilEarliest(), remaining: 0, opened: false };
      }
      if (this.windows.size >= this.maxEntries && !this.sweep(now)) {
        this.fullAnswers++;
        // Security: a full table never drops a live window to make room. Refusing waits at most
        // until the earliest open window ends, when the next sweep frees its slot. A key that held a
        // window before is refused even where new keys pass: it was being limited.
        return this.options.whenFull === 'refuse' || this.hadWindow.has(key)
          ? { allowed: false, retryAfterSeconds: waitUntilEarliest(), remaining: 0, opened: false }
          : { allowed: true, retryAfterSeconds: 1, remaining: limit, opened: false };
      }
      entry = { end: now + windowSeconds * 1000, count: 0, group };
      this.windows.set(key, entry);
      if (group !== undefined) this.groups.set(group, this.sizeOf(group) + 1);
      this.hadWindow.delete(key);
      if (entry.end < this.noneEndsBefore) this.noneEndsBefore = entry.end;
    }
    entry.count++;
    return { allowed: entry.count <= limit, retryAfterSeconds: Math.max(1, Math.ceil((entry.end - now) / 1000)), remaining: Math.max(0, limit - entry.count), opened };
  }

  async release(key: string): Promise<void> {
    const entry = this.live(key, this.now());
    if (entry && entry.count > 0) entry.count--;
  }

  async reset(key: string): Promise<void> {
    const entry = this.windows.get(key);
    if (entry) this.drop(key, entry);
  }

  async close(): Promise<void> {
    this.windows.clear();
    this.groups.clear();
    this.hadWindow.clear();
  }

  /** The open window of `key`; an ended one is dropped on the way. */
  private live(key: string, now: number): Window | undefined {
    const entry = this.windows.get(key);
    if (entry && entry.end <= now) {
      this.drop(key, entry);
      return undefined;
    }
    return entry;
  }

  private drop(key: string, entry: Window): void {
    this.windows.delete(key);
    if (entry.group !== undefined) {
      const left = this.sizeOf(entry.group) - 1;
      if (left > 0) this.groups.set(entry.group, left);
      else this.groups.delete(entry.group);
    }
  }

  /**
   * Drops every ended window and says whether that made room. A scan runs only once the earliest
   * open window may have ended, so a table full of live windows costs O(1) per refused attempt,
   * not a scan each (a flood must not buy CPU with junk keys either).
   */
  private sweep(now: number, group?: string): boolean {
    if (now >= this.noneEndsBefore) {
      let earliest = Infinity;
      for (const [key, window] of this.windows) {
        if (window.end <= now) {
          this.drop(key, window);
          // Remembered (as many as the table holds): see hadWindow.
          this.hadWindow.delete(key);
          this.hadWindow.set(key, true);
          if (this.hadWindow.size > this.maxEntries) this.hadWindow.delete(this.hadWindow.keys().next().value!);
        } else if (window.end < earliest) earliest = window.end;
      }
      this.noneEndsBefore = earliest;
    }
    if (group !== undefined) return this.sizeOf(group) < this.options.maxPerGroup!;
    return this.windows.size < this.maxEntries;
  }
}
