import { describe, expect, it } from 'vitest';
import { LruCache } from './lru.js';

describe('bounded cache', () => {
  it('never holds more than its bound', () => {
    const cache = new LruCache<number, number>(100, 60_000);
    for (let i = 0; i < 10_000; i++) cache.set(i, i);
    expect(cache.size).toBe(100);
  });

  it('keeps an entry that is in use while others churn past it', () => {
    const cache = new LruCache<string, number>(10, 60_000);
    cache.set('hot', 1);
    for (let i = 0; i < 1000; i++) {
      cache.set(`cold-${i}`, i);
      expect(cache.get('hot')).toBe(1);
    }
  });

  it('expires entries after their time to live', () => {
    const cache = new LruCache<string, number>(10, 1000);
    cache.set('a', 1, 1000, 0);
    expect(cache.get('a', 999)).toBe(1);
    expect(cache.get('a', 1000)).toBeUndefined();
  });

  it('deleteWhere and clear drop entries', () => {
    const cache = new LruCache<string, number>(10, 60_000);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.deleteWhere((v) => v === 1);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
  });
});
