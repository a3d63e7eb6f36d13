/** Composition root: builds every service once from the config and the database. */
import type { Config } from './config.js';
import type { Database } from './db/database.js';
import { InvalidationBus } from './cache/invalidation.js';
import { makePeppers, type Peppers } from './keys/hash.js';
import { AuditChain } from './audit/record.js';
import { Work } from './unit-of-work.js';
import { KeyVerifier } from './keys/verify.js';
import { ApiKeyService } from './keys/service.js';
import { SessionService } from './auth/sessions.js';
import { SettingsService } from './settings/service.js';
import { OrganizationService } from './organizations/service.js';
import { MemberService } from './organizations/members.js';
import { AuditService } from './audit/service.js';
import { UserService } from './users/service.js';
import { MemoryRateLimiter, type RateLimiter } from './rate-limit/limiter.js';
import { RedisRateLimiter } from './rate-limit/redis.js';
import { FailureThrottle } from './auth/throttle.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createPaymentServices, type PaymentServices } from './payments/services.js';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Secrets {
  pepper: string;
  sessionSecret: string;
}

export interface Services {
  config: Config;
  db: Database;
  bus: InvalidationBus;
  work: Work;
  chain: AuditChain;
  peppers: Peppers;
  verifier: KeyVerifier;
  keys: ApiKeyService;
  sessions: SessionService;
  settings: SettingsService;
  organizations: OrganizationService;
  members: MemberService;
  users: UserService;
  audit: AuditService;
  rateLimiter: RateLimiter;
  rateLimiterKind: 'memory' | 'redis';
  metrics: Metrics;
  payments: PaymentServices;
  /** Starts background work: the invalidation listener and the lastUsedAt flusher. */
  start(): Promise<void>;
  /** Stops background work and flushes pending writes; does not close the database. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** 'publisher' for the CLI: it caches nothing, so it does not join the cluster as a node. */
  role?: 'node' | 'publisher';
}

export function createServices(config: Config, db: Database, secrets: Secrets, log: Logger, options: ServiceOptions = {}): Services {
  const bus = new InvalidationBus(db, log, { heartbeatMs: config.heartbeatMs, role: options.role ?? 'node', ...(config.nodeId ? { nodeId: config.nodeId } : {}) });
  const peppers = makePeppers([secrets.pepper]);
  const chain = new AuditChain(peppers.auditChainKey);
  const work = new Work({ db, bus, chain });
  const settings = new SettingsService({ db, bus, work });
  const metrics = createMetrics({
    cacheStats: () => ({ hits: verifier.stats.cacheHits, misses: verifier.stats.cacheMisses, negativeHits: verifier.stats.negativeHits, size: verifier.cacheSize }),
    channelLive: () => bus.trusted,
    ackTimeouts: () => bus.stats.ackTimeouts,
  });
  let lastLimiterLog = 0;
  const rateLimiter: RateLimiter = config.redisUrl
    ? new RedisRateLimiter(config.redisUrl, {
        onFailure(error) {
          metrics.rateLimiterFailures.inc();
          // Logged at most every 10 s: during an outage every request would otherwise log.
          if (Date.now() - lastLimiterLog > 10_000) {
            lastLimiterLog = Date.now();
            log.warn({ err: error.message }, 'Redis rate limiter unavailable; limits fail open until it is back');
          }
        },
      }, `${config.redisPrefix}rl:`)
    : new MemoryRateLimiter();
  const verifier = new KeyVerifier({ db, peppers, bus, rateLimiter, cacheTtlMs: config.cacheTtlMs });
  const keys = new ApiKeyService({ db, work, peppers, settings });
  const members = new MemberService({ db, work, publicUrl: config.publicUrl });
  const organizations = new OrganizationService({ db, bus, work, keys, members });
  const sessions = new SessionService({ db, bus, work, throttle: new FailureThrottle(rateLimiter), secret: secrets.sessionSecret, ttlSeconds: config.sessionTtlSeconds, cacheTtlMs: config.cacheTtlMs });
  const audit = new AuditService({ db, work, chain, log });
  const users = new UserService({ db, work });
  const payments = createPaymentServices({ config, db, bus, work, settings, log });

  return {
    config, db, bus, work, chain, peppers, verifier, keys, sessions, settings, organizations, members, users, audit, rateLimiter, metrics, payments,
    rateLimiterKind: rateLimiter.kind,
    async start() {
      await bus.start();
      verifier.startUsageFlusher(5_000, (error) => log.error({ err: error }, 'could not record key usage'));
      payments.start();
    },
    async stop() {
      await payments.stop();
      await verifier.stop();
      await bus.stop();
      await rateLimiter.close();
    },
  };
}
