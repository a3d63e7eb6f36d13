/**
 * Cluster-wide rate limits in Redis: one Lua script per decision, atomic, with windows timed by
 * Redis's clock (TIME) so every node counts in the same window whatever its own clock says. Each key
 * is one hash { end, count } that lives until its window ends (PEXPIREAT), so, as in the memory
 * limiter, an open window is neither restarted by a caller asking for another window length nor
 * dropped early. Configure Redis with a maxmemory policy that does not evict keys with a TTL ahead
 * of time (noeviction or volatile-ttl), or a full Redis may drop live windows (docs/security.md).
 *
 * If Redis cannot be reached, a limiter with a `fallback` decides on it instead (the sign-in
 * throttle falls back to the node's own memory limiter: per-node limits rather than none); one
 * without fails OPEN (the request is allowed): per-key rate limits protect capacity, not
 * authentication, and an outage of an optional component must not take the gateway down. Every
 * failure is counted (paygate_rate_limiter_failures_total) and logged, at most once every 10 s.
 */
import { Redis } from 'ioredis';
import type { RateDecision, RateLimiter } from './limiter.js';

const CONSUME = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local windowMs = tonumber(ARGV[1])
local ends = tonumber(redis.call('HGET', KEYS[1], 'end') or '0')
local opened = 0
if ends <= now then
  ends = now + windowMs
  opened = 1
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'end', ends)
  redis.call('PEXPIREAT', KEYS[1], ends + 1000)
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
return {count, ends - now, opened}
`;

const RELEASE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = tonumber(redis.call('HGET', KEYS[1], 'end') or '0')
if ends <= now then return 0 end
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if count > 0 then return redis.call('HINCRBY', KEYS[1], 'count', -1) end
return 0
`;

export interface RedisLimiterEvents {
  onFailure(error: Error): void;
}

export class RedisRateLimiter implements RateLimiter {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  /** Settles when the first connection is ready, or after the connect timeout: only the very first
   * decisions wait for it; afterwards a down Redis fails at once (no offline queue). */
  private firstConnection: Promise<void> | null;
  failures = 0;

  constructor(
    url: string,
    private readonly events: RedisLimiterEvents,
    private readonly prefix = 'paygate:rl:',
    /** Decides while Redis cannot be reached; without one, limits fail open. */
    private readonly fallback: RateLimiter | null = null,
  ) {
    this.redis = new Redis(url, {
      // Fail fast: a request never queues behind a Redis that is down.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 250,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(2_000, 50 * 2 ** Math.min(times, 6)),
    });
    this.redis.on('error', () => undefined); // reported per command instead
    this.redis.defineCommand('pgConsume', { numberOfKeys: 1, lua: CONSUME });
    this.redis.defineCommand('pgRelease', { numberOfKeys: 1, lua: RELEASE });
    this.firstConnection = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      timer.unref();
      this.redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    }).then(() => {
      this.firstConnection = null;
    });
  }

  private async ready(): Promise<void> {
    if (this.firstConnection) await this.firstConnection;
  }

  private fail(error: unknown): void {
    this.failures++;
    this.events.onFailure(error as Error);
  }

  /** `group` is ignored: Redis holds no fixed table for one tenant to fill (its memory is bounded by maxmemory). */
  async consume(key: string, limit: number, windowSeconds: number, group?: string): Promise<RateDecision> {
    await this.ready();
    try {
      const [count, retryMs, opened] = await (this.redis as unknown as { pgConsume(k: string, w: number): Promise<[number, number, number]> }).pgConsume(
        this.prefix + key,
        windowSeconds * 1000,
      );
      return { allowed: count <= limit, retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)), remaining: Math.max(0, limit - count), opened: opened === 1 };
    } catch (error) {
      this.fail(error);
      return this.fallback ? this.fallback.consume(key, limit, windowSeconds, group) : { allowed: true, retryAfterSeconds: 1, remaining: limit, opened: false };
    }
  }

  async release(key: string): Promise<void> {
    await this.ready();
    try {
      await (this.redis as unknown as { pgRelease(k: string): Promise<number> }).pgRelease(this.prefix + key);
    } catch (error) {
      this.fail(error);
      await this.fallback?.release(key);
    }
  }

  async reset(key: string): Promise<void> {
    await this.ready();
    try {
      await this.redis.del(this.prefix + key);
    } catch (error) {
      this.fail(error);
      await this.fallback?.reset(key);
    }
  }

  /** Whether Redis answers now (for /v1/system/health). */
  async ping(): Promise<boolean> {
    return this.redis.ping().then(() => true, () => false);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
    await this.fallback?.close();
  }
}
