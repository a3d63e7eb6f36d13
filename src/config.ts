/**
 * Configuration: the only module that reads process.env.
 * Every other module receives a typed Config.
 *
 * Every variable is checked here, before anything is created, connected or printed (SPEC §11): a
 * start with a bad value stops with one line naming every problem found (ConfigError), never in the
 * middle of a start that has already initialised a database or printed credentials. Messages never
 * repeat a secret (a password, a key, a URL that may carry credentials).
 */
import { createPublicKey } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import { isEmailAddress, normalizeEmail } from './users/email.js';
import { checkPasswordPolicy } from './users/passwords.js';
import { parseSigningKey } from './audit/signing.js';

export type LogFormat = 'json' | 'pretty' | 'auto';

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
  /** How long a start waits for the server of databaseUrl to accept connections (runtime.ts). */
  databaseWaitMs: number;
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
  /** How often each node looks for API keys to warn about before they expire (src/keys/expiry-warnings.ts); 0: never. */
  expiryWarningIntervalMs: number;
  /** The first global admin's address, normalised (users/email.ts); null: admin@localhost. */
  adminEmail: string | null;
  /** The first global admin's password, checked against the password policy; null: generated. */
  adminPassword: string | null;
  /** Fastify trustProxy value: false, or a list of addresses/CIDRs of trusted proxies. */
  trustedProxies: string[] | false;
  logLevel: string;
  /** `auto`: human-readable on a terminal, JSON otherwise (src/logging.ts). */
  logFormat: LogFormat;
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
  /** PAYGATE_WEBHOOK_ALLOW_PRIVATE: webhooks may target loopback and private addresses (never cloud metadata). */
  webhookAllowPrivate: boolean;
  /**
   * PAYGATE_USAGE_COUNTING (on|off, default on): usage per key and per secret (SPEC §12). Off keeps
   * only the batched lastUsedAt; for measuring what counting costs (bench/scenarios/usage.ts).
   */
  usageCounting: boolean;
  /**
   * PAYGATE_SECRET_SCANNING_KEYS: the public keys (PEM, ECDSA P-256) that sign secret-scanning
   * partner reports to POST /v1/leaked-keys (SPEC §13), by key id; empty: no partner report verifies.
   */
  secretScanningKeys: Record<string, string>;
}

/** One or more configuration problems; the message names them all, in one line. */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : problems;
    super(list.join('; '));
    this.name = 'ConfigError';
    this.problems = list;
  }
}

/** The first admin's address when none is given; accepted as a value too, though its domain has one label. */
export const DEFAULT_ADMIN_EMAIL = 'admin@localhost';

const LOG_LEVELS = [...Object.keys(pino.levels.values), 'silent'];
const NODE_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** Names proxy-addr (Fastify's trustProxy) understands besides addresses and CIDRs. */
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const SECRET_HINT = `generate with: node -e "console.log(require('crypto').randomBytes(32).toString('base64url'))"`;

/** A value quoted for a message: JSON-escaped, so a newline in it cannot break the one line; cut when long. */
function shown(raw: string): string {
  return JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}...` : raw);
}

/** Collects problems while every variable is read, so one start reports all of them. */
class Reader {
  readonly problems: string[] = [];

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  /** The value, or null when unset or empty. */
  text(name: string): string | null {
    const value = this.env[name];
    return value === undefined || value === '' ? null : value;
  }

  problem(message: string): void {
    this.problems.push(message);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const raw = this.text(name);
    if (raw === null) return fallback;
    const value = Number(raw);
    if (!/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      this.problem(`${name} must be an integer between ${min} and ${max}, got ${shown(raw)}`);
      return fallback;
    }
    return value;
  }

  /**
   * A postgres:// URL, parsed as node-postgres parses it (an empty host means its default, the local
   * socket). The message never repeats the URL: it may hold a password.
   */
  postgresUrl(name: string): string | null {
    const raw = this.text(name);
    if (raw === null) return null;
    if (!/^postgres(ql)?:\/\//.test(raw)) {
      this.problem(`${name} must be a postgres:// URL (postgres://user:password@host:5432/database)`);
      return raw;
    }
    const encoded = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(raw) ? encodeURI(raw).replace(/%25(\d\d)/g, '%$1') : raw;
    if (!URL.canParse(encoded) && !URL.canParse(encoded.replace('@/', '@localhost/'))) {
      this.problem(`${name} is not a valid URL (percent-encode special characters of the user name and password, e.g. @ as %40)`);
    }
    return raw;
  }
}

/** PAYGATE_SMTP_URL and PAYGATE_MAIL_FROM: checked here so a typo stops the start, not the first mail. */
function readMail(r: Reader): { smtpUrl: string | null; mailFrom: string | null } {
  const smtpUrl = r.text('PAYGATE_SMTP_URL');
  const from = r.text('PAYGATE_MAIL_FROM')?.trim() || null;
  if (smtpUrl) {
    let url: URL | null = null;
    try {
      url = new URL(smtpUrl);
    } catch {
      url = null;
    }
    // The message never repeats the URL: it may hold the SMTP password.
    if (!url || (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || !url.hostname) {
      r.problem('PAYGATE_SMTP_URL must be an smtp:// or smtps:// URL, e.g. smtps://user:password@mail.example.com:465');
    }
    if (!from) r.problem('PAYGATE_MAIL_FROM must be set when PAYGATE_SMTP_URL is (e.g. "Paygate <paygate@example.com>")');
  }
  if (from) {
    const named = /^([^<>\r\n"]*)<([^<>\s]+)>$/.exec(from);
    const address = named ? named[2]! : from;
    // No control characters: the value becomes a mail header.
    if (/[\x00-\x1f\x7f]/.test(from) || !isEmailAddress(address)) {
      r.problem(`PAYGATE_MAIL_FROM must be an address or "Name <address>", got ${shown(from)}`);
    }
  }
  return { smtpUrl, mailFrom: from };
}

/**
 * PAYGATE_SECRET_SCANNING_KEYS: a JSON object `{ "<key id>": "<PEM public key>" }`, each an ECDSA
 * P-256 public key (GitHub publishes its keys with their ids). Checked here so a bad key stops the
 * start rather than every partner report being refused later.
 */
function readSecretScanningKeys(r: Reader): Record<string, string> {
  const raw = r.text('PAYGATE_SECRET_SCANNING_KEYS');
  if (raw === null) return {};
  const format = 'PAYGATE_SECRET_SCANNING_KEYS must be a JSON object of key id -> PEM public key (ECDSA P-256), e.g. {"<key id>": "-----BEGIN PUBLIC KEY-----\\n...\\n-----END PUBLIC KEY-----\\n"}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    r.problem(format);
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    r.problem(format);
    return {};
  }
  const keys: Record<string, string> = {};
  const bad: string[] = [];
  for (const [id, pem] of Object.entries(parsed)) {
    let ok = id.length > 0 && id.length <= 200 && typeof pem === 'string';
    if (ok) {
      try {
        const key = createPublicKey(pem as string);
        ok = key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
      } catch {
        ok = false;
      }
    }
    if (ok) keys[id] = pem as string;
    else bad.push(shown(id));
  }
  if (bad.length > 0) r.problem(`PAYGATE_SECRET_SCANNING_KEYS: the key${bad.length > 1 ? 's' : ''} ${bad.join(', ')} must be ECDSA P-256 public keys in PEM`);
  return keys;
}

function readHost(r: Reader): string {
  const host = r.text('HOST') ?? '127.0.0.1';
  if (net.isIP(host) === 0 && !HOST_NAME.test(host)) {
    r.problem(`HOST must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0 or ::), got ${shown(host)}`);
  }
  return host;
}

function readPublicUrl(r: Reader, host: string, port: number): string {
  const raw = r.text('PAYGATE_PUBLIC_URL');
  if (raw === null) return `http://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || url.username || url.password || url.search || url.hash) {
    r.problem(`PAYGATE_PUBLIC_URL must be an http:// or https:// URL without credentials, query or fragment (e.g. https://pay.example.com), got ${shown(raw)}`);
  }
  return raw.replace(/\/+$/, '');
}

function readRedisUrl(r: Reader): string | null {
  const raw = r.text('REDIS_URL');
  if (raw === null) return null;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    url = null;
  }
  // The message never repeats the URL: it may hold the Redis password.
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
    r.problem('REDIS_URL must be a redis:// or rediss:// URL (redis://:password@host:6379/0)');
  }
  return raw;
}

function readTrustedProxies(r: Reader): string[] | false {
  const entries = (r.text('PAYGATE_TRUSTED_PROXIES') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const invalid = entries.filter((entry) => {
    if (PROXY_NAMES.has(entry)) return false;
    const [address, bits, extra] = entry.split('/');
    const family = net.isIP(address!);
    if (family === 0 || extra !== undefined) return true;
    if (bits === undefined) return false;
    return !/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128);
  });
  if (invalid.length > 0) {
    r.problem(`PAYGATE_TRUSTED_PROXIES must be comma-separated IP addresses or CIDRs (10.0.0.0/8, ::1), got ${invalid.map(shown).join(', ')}`);
  }
  return entries.length > 0 ? entries : false;
}

function readAdmin(r: Reader): { adminEmail: string | null; adminPassword: string | null } {
  const rawEmail = r.text('PAYGATE_ADMIN_EMAIL');
  const adminEmail = rawEmail === null ? null : normalizeEmail(rawEmail);
  if (adminEmail !== null && adminEmail !== DEFAULT_ADMIN_EMAIL && !isEmailAddress(adminEmail)) {
    r.problem(`PAYGATE_ADMIN_EMAIL must be an e-mail address (e.g. admin@example.com), got ${shown(rawEmail!)}`);
  }
  const adminPassword = r.text('PAYGATE_ADMIN_PASSWORD');
  // The policy every password meets (users/passwords.ts); the message names the rule, never the value.
  const broken = adminPassword === null ? null : checkPasswordPolicy(adminPassword, 'PAYGATE_ADMIN_PASSWORD');
  if (broken) r.problem(`PAYGATE_ADMIN_PASSWORD ${broken.message}`);
  return { adminEmail, adminPassword };
}

function readSecrets(r: Reader, databaseUrl: string | null) {
  const secretPepper = r.text('PAYGATE_SECRET_PEPPER');
  const sessionSecret = r.text('PAYGATE_SESSION_SECRET');
  // With a shared database every node must use the same secrets, so they cannot be generated locally.
  const missing = databaseUrl ? [!secretPepper && 'PAYGATE_SECRET_PEPPER', !sessionSecret && 'PAYGATE_SESSION_SECRET'].filter(Boolean) : [];
  if (missing.length > 0) {
    r.problem(`${missing.join(' and ')} must be set when DATABASE_URL is set (at least 32 characters each; ${SECRET_HINT})`);
  }
  for (const [name, value] of [
    ['PAYGATE_SECRET_PEPPER', secretPepper],
    ['PAYGATE_SESSION_SECRET', sessionSecret],
  ] as const) {
    if (value !== null && value.length < 32) r.problem(`${name} must be at least 32 characters (${SECRET_HINT})`);
  }
  // Every node signs checkpoints with the same key, and it must not live in the database.
  const rawSigningKey = r.text('PAYGATE_AUDIT_SIGNING_KEY');
  const signingKey = rawSigningKey === null ? null : parseSigningKey(rawSigningKey);
  if (rawSigningKey !== null && !signingKey) {
    r.problem('PAYGATE_AUDIT_SIGNING_KEY must be an Ed25519 private key in PEM (PKCS#8; generate with: openssl genpkey -algorithm ed25519)');
  } else if (databaseUrl && !signingKey) {
    r.problem('PAYGATE_AUDIT_SIGNING_KEY must be set when DATABASE_URL is set (an Ed25519 private key in PEM, the same on every node; generate with: openssl genpkey -algorithm ed25519)');
  }
  return {
    secretPepper,
    sessionSecret,
    auditSigningKey: signingKey ? (signingKey.export({ type: 'pkcs8', format: 'pem' }) as string) : null,
  };
}

function readLogging(r: Reader): { logLevel: string; logFormat: LogFormat } {
  const logLevel = r.text('LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) r.problem(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${shown(logLevel)}`);
  const format = r.text('LOG_FORMAT') ?? 'auto';
  if (format !== 'json' && format !== 'pretty' && format !== 'auto') r.problem(`LOG_FORMAT must be json or pretty, got ${shown(format)}`);
  return { logLevel, logFormat: format as LogFormat };
}

/** Reads and checks every variable; throws one ConfigError naming every problem found. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const r = new Reader(env);
  const port = r.int('PORT', 8080, 0, 65535);
  const host = readHost(r);
  const databaseUrl = r.postgresUrl('DATABASE_URL');
  const migrationDatabaseUrl = r.postgresUrl('PAYGATE_MIGRATION_DATABASE_URL');
  if (migrationDatabaseUrl && !databaseUrl) r.problem('PAYGATE_MIGRATION_DATABASE_URL needs DATABASE_URL (embedded mode creates its own roles)');
  const databaseWaitMs = r.int('PAYGATE_DATABASE_WAIT_SECONDS', 30, 0, 3_600) * 1000;
  const secrets = readSecrets(r, databaseUrl);
  const publicUrl = readPublicUrl(r, host, port);
  const redisUrl = readRedisUrl(r);
  const trustedProxies = readTrustedProxies(r);
  const admin = readAdmin(r);
  const logging = readLogging(r);
  const nodeId = r.text('PAYGATE_NODE_ID');
  if (nodeId !== null && !NODE_ID.test(nodeId)) {
    r.problem(`PAYGATE_NODE_ID must be 1 to 64 characters of A-Z, a-z, 0-9, "_", "." and "-", got ${shown(nodeId)}`);
  }
  const debugChecks = r.text('PAYGATE_DEBUG_CHECKS');
  if (debugChecks !== null && debugChecks !== '0' && debugChecks !== '1') r.problem(`PAYGATE_DEBUG_CHECKS must be 1 or 0, got ${shown(debugChecks)}`);
  const webhookAllowPrivate = r.text('PAYGATE_WEBHOOK_ALLOW_PRIVATE');
  if (webhookAllowPrivate !== null && webhookAllowPrivate !== 'true' && webhookAllowPrivate !== 'false') {
    r.problem(`PAYGATE_WEBHOOK_ALLOW_PRIVATE must be true or false, got ${shown(webhookAllowPrivate)}`);
  }
  const usageCounting = r.text('PAYGATE_USAGE_COUNTING');
  if (usageCounting !== null && usageCounting !== 'on' && usageCounting !== 'off') r.problem(`PAYGATE_USAGE_COUNTING must be on or off, got ${shown(usageCounting)}`);
  const config: Config = {
    port,
    host,
    databaseUrl,
    migrationDatabaseUrl,
    databaseWaitMs,
    redisUrl,
    dataDir: path.resolve(r.text('PAYGATE_DATA_DIR') ?? './data'),
    publicUrl,
    ...secrets,
    auditCheckpointIntervalMs: r.int('PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS', 300, 0, 86_400) * 1000,
    expiryWarningIntervalMs: r.int('PAYGATE_EXPIRY_WARNING_INTERVAL_SECONDS', 3_600, 0, 86_400) * 1000,
    ...admin,
    trustedProxies,
    ...logging,
    sessionTtlSeconds: r.int('PAYGATE_SESSION_TTL_SECONDS', 12 * 3600, 60, 30 * 24 * 3600),
    cacheTtlMs: r.int('PAYGATE_CACHE_TTL_MS', 30_000, 0, 3_600_000),
    nodeId,
    heartbeatMs: r.int('PAYGATE_HEARTBEAT_MS', 500, 50, 10_000),
    redisPrefix: r.text('PAYGATE_REDIS_PREFIX') ?? 'paygate:',
    debugChecks: debugChecks === '1',
    ...readMail(r),
    webhookAllowPrivate: webhookAllowPrivate === 'true',
    usageCounting: usageCounting !== 'off',
    secretScanningKeys: readSecretScanningKeys(r),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}
