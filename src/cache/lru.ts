/**
 * A bounded map with approximately-least-recently-used eviction ("second chance", CLOCK-like) and a
 * per-entry time to live. A hit only sets a flag, so the hot path never reorders the map; eviction
 * takes the oldest entry, unless it was used since it was last considered, in which case it moves to
 * the back once and the next-oldest is considered.
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number; used: boolean }>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
  ) {}

  get(key: K, now = Date.now()): V | undefined {
    const entry = this.entries.get(key);
    if (!entry || entry.expiresAt <= now) {
      if (entry) this.entries.delete(key);
      this.misses++;
      return undefined;
    }
    entry.used = true;
    this.hits++;
    return entry.value;
  }

  set(key: K, value: V, ttlMs = this.ttlMs, now = Date.now()): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: now + ttlMs, used: false });
    // Bounded work per insert: at most a handful of second chances, then the oldest goes regardless.
    let chances = 8;
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.entries().next();
      if (oldest.done) break;
      const [oldestKey, oldestEntry] = oldest.value;
      this.entries.delete(oldestKey);
      if (oldestEntry.used && chances-- > 0 && oldestEntry.expiresAt > now) {
        oldestEntry.used = false;
        this.entries.set(oldestKey, oldestEntry);
      }
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  /** Drops every entry matching the predicate (bulk invalidation, e.g. all keys of an organization). */
  deleteWhere(predicate: (value: V, key: K) => boolean): void {
    for (const [key, entry] of this.entries) if (predicate(entry.value, key)) this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
