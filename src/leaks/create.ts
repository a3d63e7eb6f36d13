/** Builds the leaked-key service with its own limiter table and the partner keys of the configuration. */
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import type { Peppers } from '../keys/hash.js';
import type { SettingsService } from '../settings/service.js';
import type { Mailer } from '../mail/mailer.js';
import { MemoryRateLimiter, type RateLimiter } from '../rate-limit/limiter.js';
import { RedisRateLimiter, type RedisLimiterEvents } from '../rate-limit/redis.js';
import { LeakService } from './service.js';
import { PartnerKeys } from './signature.js';

export function createLeakService(deps: {
  config: Config;
  db: Database;
  work: Work;
  peppers: Peppers;
  settings: SettingsService;
  mailer: Mailer | null;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  limiterEvents: RedisLimiterEvents;
  maxEntries: number;
}): LeakService {
  const { config } = deps;
  // A table of its own: anyone can open windows in it, so it must not crowd out sign-in or key
  // limits (src/rate-limit/limiter.ts). Cluster-wide in Redis, per node in memory when Redis is
  // down; full, it refuses (fail closed: the endpoint is public and costs work).
  const limiter: RateLimiter = config.redisUrl
    ? new RedisRateLimiter(config.redisUrl, deps.limiterEvents, `${config.redisPrefix}leaks:`, new MemoryRateLimiter({ whenFull: 'refuse', maxEntries: deps.maxEntries }))
    : new MemoryRateLimiter({ whenFull: 'refuse', maxEntries: deps.maxEntries });
  return new LeakService({
    db: deps.db,
    work: deps.work,
    peppers: deps.peppers,
    settings: deps.settings,
    mailer: deps.mailer,
    limiter,
    partnerKeys: new PartnerKeys(config.secretScanningKeys),
    publicUrl: config.publicUrl,
    log: deps.log,
  });
}
