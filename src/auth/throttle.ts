/**
 * Failed sign-in throttling: after `limit` failures within the window, a key (an account or a source
 * address) is refused until the window ends. Per node and in memory, bounded.
 */
export class FailureThrottle {
  private readonly failures = new Map<string, { first: number; count: number }>();

  constructor(
    private readonly windowMs = 15 * 60_000,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds the key must still wait, or 0 when it may try. */
  blockedFor(key: string, limit: number): number {
    const entry = this.failures.get(key);
    if (!entry) return 0;
    const ends = entry.first + this.windowMs;
    if (ends <= this.now()) {
      this.failures.delete(key);
      return 0;
    }
    return entry.count >= limit ? Math.ceil((ends - this.now()) / 1000) : 0;
  }

  recordFailure(key: string): void {
    const now = this.now();
    const entry = this.failures.get(key);
    if (!entry || entry.first + this.windowMs <= now) {
      this.failures.delete(key);
      this.failures.set(key, { first: now, count: 1 });
      if (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value!);
    } else {
      entry.count++;
    }
  }

  /** Takes back one counted attempt (one that turned out not to be a failure). */
  forgive(key: string): void {
    const entry = this.failures.get(key);
    if (!entry) return;
    if (entry.count <= 1) this.failures.delete(key);
    else entry.count--;
  }

  reset(key: string): void {
    this.failures.delete(key);
  }
}
