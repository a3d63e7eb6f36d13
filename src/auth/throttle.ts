/**
 * Failed sign-in throttling per account and per source address, on the shared rate limiter (Redis
 * when configured, so the limits hold across nodes). An attempt is counted atomically when it starts,
 * before the slow password hash, so a burst of parallel guesses cannot all pass; an attempt that did
 * not fail is taken back.
 */
import type { RateLimiter } from '../rate-limit/limiter.js';

const WINDOW_SECONDS = 15 * 60;

export class FailureThrottle {
  constructor(private readonly limiter: RateLimiter) {}

  /** Counts an attempt; returns the seconds to wait when over `limit`, else 0. */
  async attempt(key: string, limit: number): Promise<number> {
    const decision = await this.limiter.consume(`login:${key}`, limit, WINDOW_SECONDS);
    return decision.allowed ? 0 : decision.retryAfterSeconds;
  }

  /** Takes back one counted attempt (one that turned out not to be a failure). */
  forgive(key: string): Promise<void> {
    return this.limiter.release(`login:${key}`, WINDOW_SECONDS);
  }

  reset(key: string): Promise<void> {
    return this.limiter.reset(`login:${key}`, WINDOW_SECONDS);
  }
}
