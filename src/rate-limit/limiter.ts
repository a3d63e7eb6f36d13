/**
 * Rate limiting behind one small interface. The in-memory limiter serves a single node; the Redis
 * limiter (cluster issue) shares counts across nodes. Fixed windows aligned to the clock: simple,
 * O(1), and identical on every node, so a Redis implementation counts exactly the same way.
 */
export interface RateDecision {
  allowed: boolean;
  /** Seconds until the window resets; sent as Retry-After when refused. */
  retryAfterSeconds: number;
  remaining: number;
}

export interface RateLimiter {
  consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision>;
  close(): Promise<void>;
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { windowStart: number; count: number }>();

  constructor(
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  async consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision> {
    return this.consumeSync(key, limit, windowSeconds);
  }

  consumeSync(key: string, limit: number, windowSeconds: number): RateDecision {
    const now = this.now();
    const windowMs = windowSeconds * 1000;
    const windowStart = Math.floor(now / windowMs) * windowMs;
    let entry = this.windows.get(key);
    if (!entry || entry.windowStart !== windowStart) {
      entry = { windowStart, count: 0 };
      this.windows.delete(key);
      this.windows.set(key, entry);
      // Bounded memory: the oldest windows go first; they are the ones most likely expired.
      if (this.windows.size > this.maxKeys) this.windows.delete(this.windows.keys().next().value!);
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
    if (entry.count >= limit) return { allowed: false, retryAfterSeconds, remaining: 0 };
    entry.count++;
    return { allowed: true, retryAfterSeconds, remaining: limit - entry.count };
  }

  async close(): Promise<void> {
    this.windows.clear();
  }
}
