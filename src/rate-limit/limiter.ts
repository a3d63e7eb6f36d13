/**
 * Rate limiting behind one small interface. The in-memory limiter serves a single node; the Redis
 * limiter (rate-limit/redis.ts) shares counts across nodes. Fixed windows aligned to the clock:
 * simple, O(1), and the same arithmetic in both implementations.
 */
export interface RateDecision {
  allowed: boolean;
  /** Seconds until the window resets; sent as Retry-After when refused. */
  retryAfterSeconds: number;
  remaining: number;
}

export interface RateLimiter {
  readonly kind: 'memory' | 'redis';
  /** Counts one attempt against `key` and says whether it is within `limit` for the current window. */
  consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision>;
  /** Takes back one counted attempt in the current window (one that turned out not to count). */
  release(key: string, windowSeconds: number): Promise<void>;
  /** Forgets the current window's count for `key`. */
  reset(key: string, windowSeconds: number): Promise<void>;
  close(): Promise<void>;
}

export class MemoryRateLimiter implements RateLimiter {
  readonly kind = 'memory' as const;
  private readonly windows = new Map<string, { windowStart: number; count: number }>();

  constructor(
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision> {
    const now = this.now();
    const windowMs = windowSeconds * 1000;
    const windowStart = now - (now % windowMs);
    let entry = this.windows.get(key);
    if (!entry || entry.windowStart !== windowStart) {
      entry = { windowStart, count: 0 };
      this.windows.delete(key);
      this.windows.set(key, entry);
      // Bounded memory: the oldest windows go first; they are the ones most likely expired.
      if (this.windows.size > this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
    }
    entry.count++;
    const retryAfterSeconds = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
    return { allowed: entry.count <= limit, retryAfterSeconds, remaining: Math.max(0, limit - entry.count) };
  }

  async release(key: string, windowSeconds: number): Promise<void> {
    const entry = this.windows.get(key);
    const now = this.now();
    if (entry && entry.windowStart === now - (now % (windowSeconds * 1000)) && entry.count > 0) entry.count--;
  }

  async reset(key: string): Promise<void> {
    this.windows.delete(key);
  }

  async close(): Promise<void> {
    this.windows.clear();
  }
}
