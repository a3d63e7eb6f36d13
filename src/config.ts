/**
 * Configuration: the only module that reads process.env.
 * Every other module receives a typed Config.
 */
import path from 'node:path';

export interface Config {
  port: number;
  host: string;
  /** A postgres:// URL, or null for the embedded PostgreSQL. */
  databaseUrl: string | null;
  redisUrl: string | null;
  dataDir: string;
  publicUrl: string;
  /** HMAC key for API key secrets; null means "generate and keep in dataDir" (embedded only). */
  secretPepper: string | null;
  /** HMAC key for session JWTs; same rule as the pepper. */
  sessionSecret: string | null;
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
}

export class ConfigError extends Error {}

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
    redisUrl: env.REDIS_URL || null,
    dataDir: path.resolve(env.PAYGATE_DATA_DIR || './data'),
    publicUrl: (env.PAYGATE_PUBLIC_URL || `http://${host}:${port}`).replace(/\/+$/, ''),
    secretPepper,
    sessionSecret,
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
  };
}
