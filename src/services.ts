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
import { AuditSigner } from './audit/signing.js';
import { AuditCheckpointService } from './audit/checkpoints.js';
import { UserService } from './users/service.js';
import { MemoryRateLimiter, type RateLimiter } from './rate-limit/limiter.js';
import { RedisRateLimiter } from './rate-limit/redis.js';
import { FailureThrottle, type ThrottleLimiters } from './auth/throttle.js';
import { createMailer, type Mailer } from './mail/mailer.js';
import { PasswordResetService } from './users/password-reset.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createPaymentServices, type PaymentServices } from './payments/services.js';
import { createWebhookServices } from './webhooks/create.js';
import type { WebhookService } from './webhooks/service.js';
import type { WebhookWorker } from './webhooks/worker.js';
import { createLeakService } from './leaks/create.js';
import type { LeakService } from './leaks/service.js';
import { ExpiryWarnings } from './keys/expiry-warnings.js';
import { UsageService } from './usage/service.js';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Secrets {
  pepper: string;
  sessionSecret: string;
  /** Ed25519 private key (PEM) signing audit checkpoints. */
  auditSigningKey: string;
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
  auditCheckpoints: AuditCheckpointService;
  /** The audit signing key (Ed25519): signs checkpoints, and any other statement about the audit log. */
  auditSigner: AuditSigner;
  /** Per-key rate limits (fail open when full or unreachable: they protect capacity). */
  rateLimiter: RateLimiter;
  rateLimiterKind: 'memory' | 'redis';
  /**
   * The sign-in throttle's own limiters, never shared with per-key limits (fail closed when full):
   * one for source addresses, one for accounts and invitations (auth/throttle.ts).
   */
  signInLimiters: ThrottleLimiters;
  /** Outgoing mail; null when SMTP is not configured (links are then handed to the caller). */
  mailer: Mailer | null;
  passwordResets: PasswordResetService;
  metrics: Metrics;
  payments: PaymentServices;
  /** Webhook endpoints (SPEC §16) and this node's delivery worker. */
  webhooks: WebhookService;
  webhookWorker: WebhookWorker;
  /** Leaked-key reports (SPEC §13): containment at once on every node; its own source limiter. */
  leaks: LeakService;
  /** Key hygiene (SPEC §14): warns owners once before a key expires; runs on every node, warns on one. */
  expiryWarnings: ExpiryWarnings;
  /** Usage per key and per secret, and the end of grace periods (SPEC §12). */
  usage: UsageService;
  /** Starts background work: the invalidation listener, the usage flusher (lastUsedAt) and the grace sweep, the scheduled audit checkpoints. */
  start(): Promise<void>;
  /** Stops background work and flushes pending writes; does not close the database. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** 'publisher' for the CLI: it caches nothing, so it does not join the cluster as a node. */
  role?: 'node' | 'publisher';
  /** Most open windows of each in-memory limiter (default 100,000); tests make it small. */
  limiterCapacity?: number;
  /** Most open key windows of one organization (default: a tenth of limiterCapacity, 10,000). */
  keyWindowsPerOrganization?: number;
  /** Most active API keys of one organization (default MAX_ACTIVE_KEYS_PER_ORGANIZATION, 10,000). */
  maxKeysPerOrganization?: number;
  /** The audit burst aggregator's timing and size (audit/bursts.ts); tests shorten the window. */
  auditBursts?: { windowMs?: number; tickMs?: number; maxTracked?: number };
  /** The usage aggregator's bounds (usage/aggregator.ts); tests make them small. */
  usage?: { flushAt?: number; maxEntries?: number };
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
  const limiterEvents = {
    onFailure(error: Error) {
      metrics.rateLimiterFailures.inc();
      // Logged at most every 10 s: during an outage every request would otherwise log.
      if (Date.now() - lastLimiterLog > 10_000) {
        lastLimiterLog = Date.now();
        log.warn({ err: error.message }, 'Redis rate limiter unavailable; key limits fail open and sign-in throttles count per node until it is back');
      }
    },
  };
  // Separate tables, never one: a flood of junk sign-ins must not push out key windows, nor the
  // reverse, and source addresses (anyone can open those) must not crowd out accounts
  // (src/rate-limit/limiter.ts). Key limits fail open when the table is full for keys that never had
  // a window (only keys that authenticated reach it; they protect capacity), each organization
  // holding at most its share; the sign-in throttle fails closed.
  const maxEntries = options.limiterCapacity ?? 100_000;
  const maxPerGroup = options.keyWindowsPerOrganization ?? Math.max(1, Math.floor(maxEntries / 10));
  const rateLimiter: RateLimiter = config.redisUrl
    ? new RedisRateLimiter(config.redisUrl, limiterEvents, `${config.redisPrefix}rl:`)
    : new MemoryRateLimiter({ whenFull: 'allow', maxEntries, maxPerGroup });
  const signInLimiter = (part: string): RateLimiter =>
    config.redisUrl
      ? new RedisRateLimiter(config.redisUrl, limiterEvents, `${config.redisPrefix}signin:${part}`, new MemoryRateLimiter({ whenFull: 'refuse', maxEntries }))
      : new MemoryRateLimiter({ whenFull: 'refuse', maxEntries });
  // The address table keeps the old Redis prefix (its keys are unchanged); accounts move to their own.
  const signInLimiters: ThrottleLimiters = { addresses: signInLimiter(''), accounts: signInLimiter('acct:') };
  const throttle = new FailureThrottle(signInLimiters);
  const mailer = createMailer(config, log);
  const usage = new UsageService({ db, work, log, countingOff: !config.usageCounting, ...options.usage });
  const verifier = new KeyVerifier({ db, peppers, bus, rateLimiter, cacheTtlMs: config.cacheTtlMs, flushUsage: () => usage.flush() });
  const keys = new ApiKeyService({ db, work, peppers, settings, ...(options.maxKeysPerOrganization !== undefined ? { maxKeysPerOrganization: options.maxKeysPerOrganization } : {}) });
  const members = new MemberService({ db, work, publicUrl: config.publicUrl, mailer, throttle });
  const organizations = new OrganizationService({ db, bus, work, keys, members });
  const sessions = new SessionService({ db, bus, work, throttle, secret: secrets.sessionSecret, ttlSeconds: config.sessionTtlSeconds, cacheTtlMs: config.cacheTtlMs });
  const signer = new AuditSigner(secrets.auditSigningKey);
  const auditCheckpoints = new AuditCheckpointService({ db, signer, log, intervalMs: config.auditCheckpointIntervalMs });
  const audit = new AuditService({ db, work, chain, checkpoints: auditCheckpoints, log, ...(options.auditBursts ? { bursts: options.auditBursts } : {}) });
  const users = new UserService({ db, work });
  const passwordResets = new PasswordResetService({ db, work, throttle, bursts: audit.bursts, mailer, publicUrl: config.publicUrl, log });
  const payments = createPaymentServices({ config, db, bus, work, settings, log, peppers });
  const { webhooks, webhookWorker } = createWebhookServices({ config, db, work, peppers, log, metrics, mailer });
  const leaks = createLeakService({ config, db, work, peppers, settings, mailer, log, limiterEvents, maxEntries });
  const expiryWarnings = new ExpiryWarnings({ db, work, settings, mailer, log, publicUrl: config.publicUrl, intervalMs: config.expiryWarningIntervalMs });

  return {
    config, db, bus, work, chain, peppers, verifier, keys, sessions, settings, organizations, members, users, audit, auditCheckpoints, auditSigner: signer, rateLimiter, metrics, payments,
    signInLimiters, mailer, passwordResets, webhooks, webhookWorker, usage, leaks, expiryWarnings,
    rateLimiterKind: rateLimiter.kind,
    async start() {
      await bus.start();
      usage.start();
      payments.start();
      webhookWorker.start();
      auditCheckpoints.start();
      audit.start();
      // The publisher role (the CLI) runs no background work of a node.
      if ((options.role ?? 'node') === 'node') expiryWarnings.start();
    },
    async stop() {
      // First: its attempts in flight are aborted and their claims released while the database is there.
      await webhookWorker.stop();
      await auditCheckpoints.stop();
      await expiryWarnings.stop();
      await payments.stop();
      // Writes what was counted (lastUsedAt among it) while the database is there.
      await usage.stop();
      await bus.stop();
      await passwordResets.idle();
      // After the resets: their requests for unknown addresses are counted there.
      await audit.stop();
      await mailer?.close();
      await rateLimiter.close();
      await signInLimiters.addresses.close();
      await signInLimiters.accounts.close();
      await leaks.close();
    },
  };
}
