/**
 * API key verification on the request path, in SPEC §4's order:
 * malformed, bad checksum, unknown id or wrong secret -> invalid_api_key; then revoked, expired,
 * IP not allowed, rate limited. (Scopes are the route's business: auth/plugin.ts.)
 *
 * Cost model: a malformed token, a bad checksum or an id Paygate never minted costs no database query
 * and no cache entry. A minted id unknown to the database is remembered in a bounded negative cache.
 * Verified keys are cached (bounded, short TTL as a safety net) only while the invalidation channel is
 * live. Which secret matched (and the key's generation) is part of the outcome, for usage counting
 * (src/usage/: lastUsedAt and the per-secret figures are batched there, never written per request).
 */
import { hash } from 'node:crypto';
import type { Database } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import { LruCache } from '../cache/lru.js';
import type { RateLimiter } from '../rate-limit/limiter.js';
import { addressAllowed, parseCidr, type Cidr } from '../net/cidr.js';
import { ScopeSet } from '../scopes/check.js';
import { isMintedKeyId, parseToken } from './token.js';
import { tokenMatches, type Peppers } from './hash.js';
import { findKeyById, type ApiKeyRecord } from './store.js';

export type VerifyFailure = 'invalid_api_key' | 'api_key_revoked' | 'api_key_expired' | 'ip_not_allowed' | 'rate_limited';

/**
 * Where a rate-limited key stands after this request, for the RateLimit-* response headers: its
 * limit, what is left of it in the open window, and the seconds until that window ends. Present only
 * for keys with a rateLimit, so keys without one pay nothing.
 */
export interface RateLimitState {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

/** Which secret matched: the current or the previous one; null when the id exists but the secret is wrong. */
export type MatchedSecret = 'current' | 'previous' | null;

/**
 * `keyId`, `secret` and `generation` (the key's rotatedAt in ms, 0 if never rotated) are present for
 * every verification of a known key, so that it can be counted (SPEC §12); never sent to the client.
 */
export type VerifyOutcome =
  | { ok: true; key: ApiKeyRecord; scopes: ScopeSet; secret: 'current' | 'previous'; rateLimit?: RateLimitState }
  | {
      ok: false;
      code: VerifyFailure;
      keyId?: string;
      organizationId?: string | null;
      secret?: MatchedSecret;
      generation?: number;
      retryAfterSeconds?: number;
      rateLimit?: RateLimitState;
    };

interface CachedKey {
  record: ApiKeyRecord;
  allowed: Cidr[] | null;
  /**
   * SHA-256 of the token that last matched the current (or previous) secret's HMAC on this node. A
   * repeat of the same token is then confirmed by one fast hash and a constant-time compare instead of
   * a second HMAC. Only digests are kept; the token itself never stays in memory.
   */
  currentDigest: string | null;
  previousDigest: string | null;
  /** Compiled once per cached key rather than per request. */
  scopes: ScopeSet;
  expiresAtMs: number;
  previousExpiresAtMs: number;
}

export interface VerifierStats {
  databaseLookups: number;
  cacheHits: number;
  cacheMisses: number;
  negativeHits: number;
}

/**
 * Constant-time equality of two SHA-256 digests in their 32-character binary (latin1) form: every character is
 * compared, whatever differs. Strings rather than Buffers because Node makes a Buffer result of a
 * hash slower than the hash itself, on the path of every request made with a key.
 */
function digestsEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** The refusal of every token that names no key: nothing of the request in it, so one object. */
const INVALID: VerifyOutcome = Object.freeze({ ok: false, code: 'invalid_api_key' });

export class KeyVerifier {
  private readonly positive: LruCache<string, CachedKey>;
  private readonly negative: LruCache<string, true>;
  private inflight = new Map<string, { generation: number; promise: Promise<CachedKey | null> }>();
  readonly stats: VerifierStats = { databaseLookups: 0, cacheHits: 0, cacheMisses: 0, negativeHits: 0 };

  constructor(
    private readonly deps: {
      db: Database;
      peppers: Peppers;
      bus: InvalidationBus;
      rateLimiter: RateLimiter;
      cacheTtlMs: number;
      now?: () => Date;
      /** Writes the batched usage (lastUsedAt included): src/usage/service.ts. */
      flushUsage?: () => Promise<void>;
    },
  ) {
    this.positive = new LruCache(50_000, deps.cacheTtlMs);
    this.negative = new LruCache(100_000, deps.cacheTtlMs);
    deps.bus.onInvalidate((inv) => {
      if (inv.kind === 'api_key') {
        this.positive.delete(inv.subject);
        this.negative.delete(inv.subject);
      } else if (inv.kind === 'organization') {
        this.positive.deleteWhere((entry) => entry.record.organizationId === inv.subject);
      }
    });
    deps.bus.onFlush(() => {
      this.positive.clear();
      this.negative.clear();
    });
  }

  private nowMs(): number {
    return this.deps.now ? this.deps.now().getTime() : Date.now();
  }

  /**
   * The outcome, decided synchronously whenever no I/O is needed (a malformed or never-minted token,
   * a remembered unknown id, a cached key without a rate limit), so that the request path pays no
   * promise for the common cases; a promise when the key must be read or its rate-limit window
   * counted.
   */
  verify(presented: string, clientIp: string): VerifyOutcome | Promise<VerifyOutcome> {
    const parsed = parseToken(presented);
    if (!parsed.ok) return INVALID;
    const { id, token } = parsed.token;
    // Cached ids were minted here; any other id must carry a valid tag, or it was never issued and is
    // refused without touching the database.
    const cached = this.cached(id);
    if (cached) return this.check(cached, token, clientIp);
    if (!isMintedKeyId(this.deps.peppers.idTagKey, id)) return INVALID;
    if (this.deps.bus.trusted && this.negative.get(id)) {
      this.stats.negativeHits++;
      return INVALID;
    }
    return this.load(id).then((loaded) => (loaded ? this.check(loaded, token, clientIp) : INVALID));
  }

  /** The secret, then SPEC §4's order of refusals, for a key found in the cache or the database. */
  private check(cached: CachedKey, token: string, clientIp: string): VerifyOutcome | Promise<VerifyOutcome> {
    const { record } = cached;
    const now = this.nowMs();

    // Constant-time comparisons of fixed-length digests; the previous secret only within its grace.
    const previousLive = record.previousSecretHash !== null && cached.previousExpiresAtMs > now;
    const digest = hash('sha256', token, 'binary');
    let current = cached.currentDigest !== null && digestsEqual(digest, cached.currentDigest);
    let previous = !current && previousLive && cached.previousDigest !== null && digestsEqual(digest, cached.previousDigest);
    if (!current && !previous) {
      current = tokenMatches(this.deps.peppers, token, record.secretHash, record.pepperVersion);
      if (current) cached.currentDigest = digest;
      else if (previousLive && tokenMatches(this.deps.peppers, token, record.previousSecretHash!, record.previousPepperVersion ?? 0)) {
        previous = true;
        cached.previousDigest = digest;
      }
    }
    const generation = record.rotatedAt ? record.rotatedAt.getTime() : 0;
    // A wrong secret for an existing id is still a verification of a known key: counted, never told apart.
    if (!current && !previous) return { ok: false, code: 'invalid_api_key', keyId: record.id, organizationId: record.organizationId, secret: null, generation };

    const secret = current ? 'current' : 'previous';
    const who = { keyId: record.id, organizationId: record.organizationId, secret, generation } as const;
    if (record.revokedAt) return { ok: false, code: 'api_key_revoked', ...who };
    if (cached.expiresAtMs <= now) return { ok: false, code: 'api_key_expired', ...who };
    if (cached.allowed && !addressAllowed(clientIp, cached.allowed)) return { ok: false, code: 'ip_not_allowed', ...who };
    const limit = record.rateLimit;
    if (!limit) return { ok: true, key: record, scopes: cached.scopes, secret };
    // Grouped by organization: each holds a bounded share of the table (rate-limit/limiter.ts).
    return this.deps.rateLimiter.consume(`key:${record.id}`, limit.requests, limit.windowSeconds, record.organizationId ?? 'system').then((decision) => {
      const rateLimit: RateLimitState = { limit: limit.requests, remaining: decision.remaining, resetSeconds: decision.retryAfterSeconds };
      if (!decision.allowed) return { ok: false, code: 'rate_limited', retryAfterSeconds: decision.retryAfterSeconds, rateLimit, ...who };
      return { ok: true, key: record, scopes: cached.scopes, secret, rateLimit };
    });
  }

  /** A cached, verified key: only while the invalidation channel is trusted. */
  private cached(id: string): CachedKey | undefined {
    if (!this.deps.bus.trusted) return undefined;
    const hit = this.positive.get(id);
    if (hit) this.stats.cacheHits++;
    return hit;
  }

  /** The key by id from the database, after a miss of both caches (verify). */
  private load(id: string): Promise<CachedKey | null> {
    const trusted = this.deps.bus.trusted;
    this.stats.cacheMisses++;
    // Concurrent misses for one key share one read (no stampede when a hot key's entry expires), but
    // only while no invalidation has arrived since that read began: a request that comes after a
    // revocation never takes a result read before it.
    const generation = this.deps.bus.generation;
    const flight = this.inflight.get(id);
    if (flight && flight.generation === generation) return flight.promise;
    const promise = this.read(id, generation, trusted).finally(() => {
      if (this.inflight.get(id)?.promise === promise) this.inflight.delete(id);
    });
    this.inflight.set(id, { generation, promise });
    return promise;
  }

  private async read(id: string, generation: number, trusted: boolean): Promise<CachedKey | null> {
    this.stats.databaseLookups++;
    // An invalidation that lands while we read must win: cache only if none arrived meanwhile.
    const record = await findKeyById(this.deps.db, id);
    const cacheable = trusted && this.deps.bus.trusted && generation === this.deps.bus.generation;
    if (!record) {
      if (cacheable) this.negative.set(id, true);
      return null;
    }
    const entry: CachedKey = {
      record,
      allowed: record.allowedIps ? record.allowedIps.map(parseCidr).filter((c): c is Cidr => c !== null) : null,
      currentDigest: null,
      previousDigest: null,
      scopes: new ScopeSet(record.scopes),
      expiresAtMs: record.expiresAt ? record.expiresAt.getTime() : Infinity,
      previousExpiresAtMs: record.previousSecretExpiresAt ? record.previousSecretExpiresAt.getTime() : -Infinity,
    };
    if (cacheable) this.positive.set(id, entry);
    return entry;
  }

  get cacheSize(): number {
    return this.positive.size;
  }

  /** Writes the batched usage now (lastUsedAt among it); src/usage/ owns the batching and its timer. */
  async flushUsage(): Promise<void> {
    await this.deps.flushUsage?.();
  }
}
