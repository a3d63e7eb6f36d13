/**
 * Rate limiting behind one small interface. The in-memory limiter serves a single node; the Redis
 * limiter (rate-limit/redis.ts) shares counts across nodes. Fixed windows, each opened by its first
 * attempt and lasting its length: simple, O(1), the same arithmetic in both implementations, and no
 * clock boundary at which every key's count starts again at once.
 *
 * Paygate runs two limiters, never one shared table (src/services.ts): the sign-in throttle (failed
 * logins per account and per address, password-reset requests), which anyone can feed with junk,
 * and per-key rate limits, which only authenticated keys with a rate limit reach. A flood of one
 * can then never push the other's state out.
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
}

export interface RateLimiter {
  readonly kind: 'memory' | 'redis';
  /**
   * Counts one attempt against `key` and says whether it is within `limit` for its window. The
   * window is opened by the first attempt and ends `windowSeconds` later; later calls count in it
   * until it ends, whatever window length they ask for.
   */
  consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision>;
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
  now?: () => number;
}

interface Window {
  /** When the window ends (ms since the epoch). */
  end: number;
  count: number;
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

  constructor(private readonly options: MemoryLimiterOptions) {
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.windows.size;
  }

  async consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision> {
    const now = this.now();
    let entry = this.live(key, now);
    if (!entry) {
      if (this.windows.size >= this.maxEntries && !this.sweep(now)) {
        this.fullAnswers++;
        // Security: a full table never drops a live window to make room. Refusing waits at most
        // until the earliest open window ends, when the next sweep frees its slot.
        return this.options.whenFull === 'refuse'
          ? { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((this.noneEndsBefore - now) / 1000)), remaining: 0 }
          : { allowed: true, retryAfterSeconds: 1, remaining: limit };
      }
      entry = { end: now + windowSeconds * 1000, count: 0 };
      this.windows.set(key, entry);
      if (entry.end < this.noneEndsBefore) this.noneEndsBefore = entry.end;
    }
    entry.count++;
    return { allowed: entry.count <= limit, retryAfterSeconds: Math.max(1, Math.ceil((entry.end - now) / 1000)), remaining: Math.max(0, limit - entry.count) };
  }

  async release(key: string): Promise<void> {
    const entry = this.live(key, this.now());
    if (entry && entry.count > 0) entry.count--;
  }

  async reset(key: string): Promise<void> {
    this.windows.delete(key);
  }

  async close(): Promise<void> {
    this.windows.clear();
  }

  /** The open window of `key`; an ended one is dropped on the way. */
  private live(key: string, now: number): Window | undefined {
    const entry = this.windows.get(key);
    if (entry && entry.end <= now) {
      this.windows.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * Drops every ended window and says whether that made room. A scan runs only once the earliest
   * open window may have ended, so a table full of live windows costs O(1) per refused attempt,
   * not a scan each (a flood must not buy CPU with junk keys either).
   */
  private sweep(now: number): boolean {
    if (now < this.noneEndsBefore) return false;
    let earliest = Infinity;
    for (const [key, window] of this.windows) {
      if (window.end <= now) this.windows.delete(key);
      else if (window.end < earliest) earliest = window.end;
    }
    this.noneEndsBefore = earliest;
    return this.windows.size < this.maxEntries;
  }
}
