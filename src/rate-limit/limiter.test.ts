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
      await a.release(key, 60);
      expect((await a.consume(key, 2, 60)).allowed).toBe(true);
      expect((await a.consume(key, 2, 60)).allowed).toBe(false);
      await a.reset(key, 60);
      expect((await a.consume(key, 2, 60)).allowed).toBe(true);
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
  const a = new MemoryRateLimiter();
  return { a, b: a, close: () => a.close() };
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
