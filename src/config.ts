/**
 * Configuration: the only module that reads process.env.
 * Every other module receives a typed Config.
 */
import path from 'node:path';
import { isEmailAddress } from './users/email.js';
import { parseSigningKey } from './audit/signing.js';

export interface Config {
  port: number;
  host: string;
  /** A postgres:// URL, or null for the embedded PostgreSQL. */
  databaseUrl: string | null;
  /**
   * With databaseUrl: the owner role's URL, which runs the migrations (and grants the databaseUrl
   * role its runtime privileges, src/db/roles.ts); null: databaseUrl's role does both.
   */
  migrationDatabaseUrl: string | null;
  redisUrl: string | null;
  dataDir: string;
  publicUrl: string;
  /** HMAC key for API key secrets; null means "generate and keep in dataDir" (embedded only). */
  secretPepper: string | null;
  /** HMAC key for session JWTs; same rule as the pepper. */
  sessionSecret: string | null;
  /** Ed25519 private key (PEM) that signs audit checkpoints; same rule as the pepper. */
  auditSigningKey: string | null;
  /** Period of the scheduled audit checkpoints; 0: on demand only. */
  auditCheckpointIntervalMs: number;
  adminEmail: string | null;
  adminPassword: string | null;
  /** Fastify trustProxy value: false, or a list of addresses/CIDRs of trusted proxies. */
  trustedProxies: string[] | false;
  logLevel: string;
  /** Session lifetime in seconds. */
  sessionTtlSeconds: number;
  /** Safety-net TTL of cached verified keys and sessions, in milliseconds. */
  cacheTtlMs: number;
  /** This node's name in the cluster (paygate_nodes, listener application_name); random when unset. */
  nodeId: string | null;
  /** Invalidation heartbeat period; a node stops trusting its caches after three missed beats. */
  heartbeatMs: number;
  /** Prefix of every Redis key, so several deployments (or test runs) can share one Redis. */
  redisPrefix: string;
  /** Development checks that cost a little on every request (the tests turn them on): see database.ts. */
  debugChecks: boolean;
  /** An smtp:// or smtps:// URL (credentials in it), or null: no mail; links are handed to the caller. */
  smtpUrl: string | null;
  /** The From of every mail: `address` or `Name <address>`; required with smtpUrl. */
  mailFrom: string | null;
}

export class ConfigError extends Error {}

/** PAYGATE_SMTP_URL and PAYGATE_MAIL_FROM: checked here so a typo stops the start, not the first mail. */
function mailFrom(env: NodeJS.ProcessEnv): { smtpUrl: string | null; mailFrom: string | null } {
  const smtpUrl = env.PAYGATE_SMTP_URL || null;
  const from = env.PAYGATE_MAIL_FROM?.trim() || null;
  if (smtpUrl) {
    let url: URL | null = null;
    try {
      url = new URL(smtpUrl);
    } catch {
      url = null;
    }
    // The message never repeats the URL: it may hold the SMTP password.
    if (!url || (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || !url.hostname) {
      throw new ConfigError('PAYGATE_SMTP_URL must be an smtp:// or smtps:// URL, e.g. smtps://user:password@mail.example.com:465');
    }
    if (!from) throw new ConfigError('PAYGATE_MAIL_FROM must be set when PAYGATE_SMTP_URL is (e.g. "Paygate <paygate@example.com>")');
  }
  if (from) {
    const named = /^([^<>\r\n"]*)<([^<>\s]+)>$/.exec(from);
    const address = named ? named[2]! : from;
    // No control characters: the value becomes a mail header.
    if (/[\x00-\x1f\x7f]/.test(from) || !isEmailAddress(address)) {
      throw new ConfigError(`PAYGATE_MAIL_FROM must be an address or "Name <address>", got "${from}"`);
    }
  }
  return { smtpUrl, mailFrom: from };
}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = intFrom(env, 'PORT', 8080, 0, 65535);
  const host = env.HOST || '127.0.0.1';
  const databaseUrl = env.DATABASE_URL || null;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL');
  }
  const secretPepper = env.PAYGATE_SECRET_PEPPER || null;
  const sessionSecret = env.PAYGATE_SESSION_SECRET || null;
  if (databaseUrl) {
    // With a shared database every node must use the same secrets, so they cannot be generated locally.
    const missing = [
      !secretPepper && 'PAYGATE_SECRET_PEPPER',
      !sessionSecret && 'PAYGATE_SESSION_SECRET',
    ].filter(Boolean);
    if (missing.length > 0) {
      throw new ConfigError(
        `${missing.join(' and ')} must be set when DATABASE_URL is set (at least 32 characters each; ` +
          `generate with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))")`,
      );
    }
  }
  const migrationDatabaseUrl = env.PAYGATE_MIGRATION_DATABASE_URL || null;
  if (migrationDatabaseUrl && !databaseUrl) throw new ConfigError('PAYGATE_MIGRATION_DATABASE_URL needs DATABASE_URL (embedded mode creates its own roles)');
  if (migrationDatabaseUrl && !/^postgres(ql)?:\/\//.test(migrationDatabaseUrl)) throw new ConfigError('PAYGATE_MIGRATION_DATABASE_URL must be a postgres:// URL');
  // Every node signs checkpoints with the same key, and it must not live in the database.
  const rawSigningKey = env.PAYGATE_AUDIT_SIGNING_KEY || null;
  const signingKey = rawSigningKey === null ? null : parseSigningKey(rawSigningKey);
  if (rawSigningKey !== null && !signingKey) {
    throw new ConfigError('PAYGATE_AUDIT_SIGNING_KEY must be an Ed25519 private key in PEM (PKCS#8; generate with: openssl genpkey -algorithm ed25519)');
  }
  if (databaseUrl && !signingKey) {
    throw new ConfigError('PAYGATE_AUDIT_SIGNING_KEY must be set when DATABASE_URL is set (an Ed25519 private key in PEM, the same on every node; generate with: openssl genpkey -algorithm ed25519)');
  }
  for (const [name, value] of [
    ['PAYGATE_SECRET_PEPPER', secretPepper],
    ['PAYGATE_SESSION_SECRET', sessionSecret],
  ] as const) {
    if (value !== null && value.length < 32) throw new ConfigError(`${name} must be at least 32 characters`);
  }
  const trusted = (env.PAYGATE_TRUSTED_PROXIES || '').split(',').map((s) => s.trim()).filter(Boolean);
  return {
    port,
    host,
    databaseUrl,
    migrationDatabaseUrl,
    redisUrl: env.REDIS_URL || null,
    dataDir: path.resolve(env.PAYGATE_DATA_DIR || './data'),
    publicUrl: (env.PAYGATE_PUBLIC_URL || `http://${host}:${port}`).replace(/\/+$/, ''),
    secretPepper,
    sessionSecret,
    auditSigningKey: signingKey ? (signingKey.export({ type: 'pkcs8', format: 'pem' }) as string) : null,
    auditCheckpointIntervalMs: intFrom(env, 'PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS', 300, 0, 86_400) * 1000,
    adminEmail: env.PAYGATE_ADMIN_EMAIL || null,
    adminPassword: env.PAYGATE_ADMIN_PASSWORD || null,
    trustedProxies: trusted.length > 0 ? trusted : false,
    logLevel: env.LOG_LEVEL || 'info',
    sessionTtlSeconds: intFrom(env, 'PAYGATE_SESSION_TTL_SECONDS', 12 * 3600, 60, 30 * 24 * 3600),
    cacheTtlMs: intFrom(env, 'PAYGATE_CACHE_TTL_MS', 30_000, 0, 3_600_000),
    nodeId: env.PAYGATE_NODE_ID && /^[A-Za-z0-9_.-]{1,64}$/.test(env.PAYGATE_NODE_ID) ? env.PAYGATE_NODE_ID : null,
    heartbeatMs: intFrom(env, 'PAYGATE_HEARTBEAT_MS', 500, 50, 10_000),
    redisPrefix: env.PAYGATE_REDIS_PREFIX || 'paygate:',
    debugChecks: env.PAYGATE_DEBUG_CHECKS === '1',
    ...mailFrom(env),
  };
}
