/**
 * Cluster-wide rate limits in Redis: one Lua script per decision, atomic, with the window aligned to
 * Redis's clock (TIME) so every node counts in the same window whatever its own clock says.
 *
 * If Redis cannot be reached, limits fail OPEN (the request is allowed): rate limiting protects
 * capacity, not authentication, and an outage of an optional component must not take the gateway
 * down. Every such failure is counted (paygate_rate_limiter_failures_total) and logged, at most once
 * every 10 s.
 */
import { Redis } from 'ioredis';
import type { RateDecision, RateLimiter } from './limiter.js';

const CONSUME = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local windowMs = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local windowStart = now - (now % windowMs)
local key = KEYS[1] .. ':' .. windowStart
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, windowMs + 1000) end
return {count, windowStart + windowMs - now}
`;

const ADJUST = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local windowMs = tonumber(ARGV[1])
local key = KEYS[1] .. ':' .. (now - (now % windowMs))
if ARGV[2] == 'reset' then return redis.call('DEL', key) end
local count = tonumber(redis.call('GET', key) or '0')
if count > 0 then return redis.call('DECR', key) end
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
    this.redis.defineCommand('pgAdjust', { numberOfKeys: 1, lua: ADJUST });
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

  async consume(key: string, limit: number, windowSeconds: number): Promise<RateDecision> {
    await this.ready();
    try {
      const [count, retryMs] = (await (this.redis as unknown as { pgConsume(k: string, w: number, l: number): Promise<[number, number]> }).pgConsume(
        this.prefix + key,
        windowSeconds * 1000,
        limit,
      ));
      return { allowed: count <= limit, retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)), remaining: Math.max(0, limit - count) };
    } catch (error) {
      this.fail(error);
      return { allowed: true, retryAfterSeconds: 1, remaining: limit };
    }
  }

  private async adjust(key: string, windowSeconds: number, mode: 'release' | 'reset'): Promise<void> {
    await this.ready();
    try {
      await (this.redis as unknown as { pgAdjust(k: string, w: number, m: string): Promise<number> }).pgAdjust(this.prefix + key, windowSeconds * 1000, mode);
    } catch (error) {
      this.fail(error);
    }
  }

  release(key: string, windowSeconds: number): Promise<void> {
    return this.adjust(key, windowSeconds, 'release');
  }

  reset(key: string, windowSeconds: number): Promise<void> {
    return this.adjust(key, windowSeconds, 'reset');
  }

  /** Whether Redis answers now (for /v1/system/health). */
  async ping(): Promise<boolean> {
    return this.redis.ping().then(() => true, () => false);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
