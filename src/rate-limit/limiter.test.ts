import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter, type RateLimiter } from './limiter.js';
import { RedisRateLimiter } from './redis.js';

function contract(name: string, make: () => { a: RateLimiter; b: RateLimiter; close(): Promise<void> }) {
  describe(`${name} rate limiter`, () => {
    it('allows `limit` attempts per window, then refuses with a Retry-After within the window', async () => {
      const { a, close } = make();
      const key = `k-${randomBytes(4).toString('hex')}`;
      const decisions = [];
      for (let i = 0; i < 4; i++) decisions.push(await a.consume(key, 3, 60));
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
      expect(decisions[3]!.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(decisions[3]!.retryAfterSeconds).toBeLessThanOrEqual(60);
      await close();
    });

    it('counts concurrent attempts atomically', async () => {
      const { a, close } = make();
      const key = `k-${randomBytes(4).toString('hex')}`;
      const decisions = await Promise.all(Array.from({ length: 20 }, () => a.consume(key, 5, 60)));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
      await close();
    });

    it('release takes one attempt back; reset forgets the window', async () => {
      const { a, close } = make();
      const key = `k-${randomBytes(4).toString('hex')}`;
      await a.consume(key, 2, 60);
      await a.consume(key, 2, 60);
      await a.release(key);
      expect((await a.consume(key, 2, 60)).allowed).toBe(true);
      expect((await a.consume(key, 2, 60)).allowed).toBe(false);
      await a.reset(key);
      expect((await a.consume(key, 2, 60)).allowed).toBe(true);
      await close();
    });

    it('an open window keeps counting when a caller asks for another window length', async () => {
      const { a, close } = make();
      const key = `k-${randomBytes(4).toString('hex')}`;
      for (let i = 0; i < 3; i++) await a.consume(key, 3, 86_400);
      // A key whose window was edited (or a caller with another idea of the window) gets no fresh quota.
      const changed = await a.consume(key, 3, 60);
      expect(changed.allowed).toBe(false);
      expect(changed.retryAfterSeconds).toBeGreaterThan(60);
      await close();
    });

    it('says which attempt opened the window', async () => {
      const { a, close } = make();
      const key = `k-${randomBytes(4).toString('hex')}`;
      expect((await a.consume(key, 3, 60)).opened).toBe(true);
      expect((await a.consume(key, 3, 60)).opened).toBe(false);
      await a.release(key);
      await a.release(key);
      // Taken back to zero, the window is still the same one.
      expect((await a.consume(key, 3, 60)).opened).toBe(false);
      await close();
    });

    it('keys are independent', async () => {
      const { a, close } = make();
      const k1 = `k-${randomBytes(4).toString('hex')}`;
      const k2 = `k-${randomBytes(4).toString('hex')}`;
      expect((await a.consume(k1, 1, 60)).allowed).toBe(true);
      expect((await a.consume(k2, 1, 60)).allowed).toBe(true);
      expect((await a.consume(k1, 1, 60)).allowed).toBe(false);
      await close();
    });
  });
}

contract('memory', () => {
  const a = new MemoryRateLimiter({ whenFull: 'refuse' });
  return { a, b: a, close: () => a.close() };
});

describe('memory rate limiter when its table is full', () => {
  function clock(start = 1_000_000_000_000) {
    let now = start;
    return { now: () => now, advance: (ms: number) => void (now += ms) };
  }

  it('never evicts a denying window before it ends, however many new keys arrive', async () => {
    for (const whenFull of ['refuse', 'allow'] as const) {
      const time = clock();
      const limiter = new MemoryRateLimiter({ whenFull, maxEntries: 10, now: time.now });
      for (let i = 0; i < 3; i++) await limiter.consume('locked', 3, 900);
      expect((await limiter.consume('locked', 3, 900)).allowed).toBe(false);
      // A flood of fresh keys: ten times the table.
      for (let i = 0; i < 100; i++) await limiter.consume(`junk-${i}`, 5, 900);
      expect(limiter.size).toBe(10);
      expect((await limiter.consume('locked', 3, 900)).allowed, whenFull).toBe(false);
    }
  });

  it("a full sign-in table refuses new keys (fail closed), with a Retry-After until the earliest window ends", async () => {
    const time = clock(0);
    const limiter = new MemoryRateLimiter({ whenFull: 'refuse', maxEntries: 2, now: time.now });
    await limiter.consume('a', 5, 60);
    await limiter.consume('b', 5, 900);
    time.advance(10_000);
    const refused = await limiter.consume('c', 5, 60);
    expect(refused).toMatchObject({ allowed: false, remaining: 0 });
    expect(refused.retryAfterSeconds).toBe(50);
    expect(limiter.fullAnswers).toBe(1);
    // Keys that hold a window are still counted as usual.
    expect((await limiter.consume('a', 5, 60)).allowed).toBe(true);
  });

  it('a full key table lets new keys through untracked (fail open)', async () => {
    const limiter = new MemoryRateLimiter({ whenFull: 'allow', maxEntries: 1 });
    await limiter.consume('a', 1, 60);
    expect((await limiter.consume('b', 1, 60)).allowed).toBe(true);
    expect((await limiter.consume('b', 1, 60)).allowed).toBe(true);
    expect(limiter.size).toBe(1);
  });

  it('a group holds at most its share of the table: past it only that group waits, others still get windows', async () => {
    const time = clock(0);
    const limiter = new MemoryRateLimiter({ whenFull: 'allow', maxEntries: 10, maxPerGroup: 3, now: time.now });
    for (let i = 0; i < 3; i++) expect((await limiter.consume(`a-${i}`, 5, 60, 'org_a')).allowed).toBe(true);
    // The share is full: fail closed for the group that filled it, whatever whenFull says.
    const refused = await limiter.consume('a-3', 5, 60, 'org_a');
    expect(refused).toMatchObject({ allowed: false, remaining: 0 });
    expect(refused.retryAfterSeconds).toBe(60);
    expect((await limiter.consume('b-0', 1, 60, 'org_b')).allowed).toBe(true);
    expect((await limiter.consume('b-0', 1, 60, 'org_b')).allowed).toBe(false);
    expect([limiter.sizeOf('org_a'), limiter.sizeOf('org_b')]).toEqual([3, 1]);
    // Ended windows give the share back.
    time.advance(60_000);
    expect((await limiter.consume('a-3', 5, 60, 'org_a')).allowed).toBe(true);
    expect(limiter.sizeOf('org_a')).toBe(1);
  });

  it('a full key table refuses a key that held a window before (it was being limited), and lets new keys through', async () => {
    const time = clock(0);
    const limiter = new MemoryRateLimiter({ whenFull: 'allow', maxEntries: 2, now: time.now });
    await limiter.consume('limited', 1, 60);
    await limiter.consume('long', 1, 3_600);
    time.advance(60_000);
    // The limited key's window ended; a newcomer takes its slot in the sweep.
    expect((await limiter.consume('newcomer', 1, 3_600)).allowed).toBe(true);
    // Full again: the key that had a window is refused, a key never seen passes untracked.
    expect((await limiter.consume('limited', 1, 60)).allowed).toBe(false);
    expect((await limiter.consume('never-seen', 1, 60)).allowed).toBe(true);
  });

  it('ended windows are dropped first to make room for new ones', async () => {
    const time = clock(0);
    const limiter = new MemoryRateLimiter({ whenFull: 'refuse', maxEntries: 3, now: time.now });
    await limiter.consume('short-1', 1, 60);
    await limiter.consume('short-2', 1, 60);
    await limiter.consume('long', 1, 3_600);
    expect((await limiter.consume('new', 1, 60)).allowed).toBe(false);
    time.advance(60_000);
    expect((await limiter.consume('new', 1, 60)).allowed).toBe(true);
    expect((await limiter.consume('newer', 1, 60)).allowed).toBe(true);
    // The long window survived the sweep: it is still exhausted.
    expect((await limiter.consume('long', 1, 3_600)).allowed).toBe(false);
  });
});

const redisUrl = process.env.REDIS_URL;
if (redisUrl) {
  const prefix = `paygate-test:${randomBytes(6).toString('hex')}:`;
  contract('redis', () => {
    const events = { onFailure: () => undefined };
    const a = new RedisRateLimiter(redisUrl, events, prefix);
    const b = new RedisRateLimiter(redisUrl, events, prefix);
    return { a, b, close: async () => { await a.close(); await b.close(); } };
  });

  describe('redis rate limiter across nodes', () => {
    it('two limiters on one Redis share one count', async () => {
      const events = { onFailure: () => undefined };
      const a = new RedisRateLimiter(redisUrl, events, prefix);
      const b = new RedisRateLimiter(redisUrl, events, prefix);
      const key = `shared-${randomBytes(4).toString('hex')}`;
      const results = [];
      for (let i = 0; i < 3; i++) results.push((await a.consume(key, 5, 60)).allowed, (await b.consume(key, 5, 60)).allowed);
      expect(results.filter(Boolean)).toHaveLength(5);
      await a.close();
      await b.close();
    });
  });
} else {
  describe.skip('redis rate limiter (REDIS_URL not set)', () => {
    it('runs in CI, where REDIS_URL is set', () => undefined);
  });
}

describe('redis rate limiter when Redis is unreachable', () => {
  it('decides on its fallback limiter when it has one (the sign-in throttle then counts per node)', async () => {
    const fallback = new MemoryRateLimiter({ whenFull: 'refuse' });
    const limiter = new RedisRateLimiter('redis://127.0.0.1:1', { onFailure: () => undefined }, 'x:', fallback);
    const decisions = [];
    for (let i = 0; i < 3; i++) decisions.push((await limiter.consume('k', 2, 60)).allowed);
    expect(decisions).toEqual([true, true, false]);
    await limiter.reset('k');
    expect((await limiter.consume('k', 2, 60)).allowed).toBe(true);
    await limiter.close();
  });

  it('fails open, and counts and reports every failure', async () => {
    const failures: Error[] = [];
    // Port 1 on loopback: nothing listens, connections are refused at once.
    const limiter = new RedisRateLimiter('redis://127.0.0.1:1', { onFailure: (e) => failures.push(e) });
    const decisions = await Promise.all(Array.from({ length: 5 }, () => limiter.consume('k', 1, 60)));
    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect(limiter.failures).toBe(5);
    expect(failures).toHaveLength(5);
    await limiter.close();
  });
});
