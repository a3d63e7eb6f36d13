/**
 * API key lifecycle (SPEC §4) for both tiers: create, list, get, update, rotate, revoke, delete.
 * Every change is one transaction together with its audit event and its invalidation; the node that
 * made the change applies the invalidation locally before answering.
 *
 * No escalation (SPEC §3): a grantor hands out only scopes it holds and, when it is an API key, no
 * looser restrictions than its own (keys/restrictions.ts). A refused escalation rolls its change
 * back and is audited on its own as `auth.insufficient_scope`, as route-scope refusals are.
 */
import type { Database, Queryable } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import type { AuditAction } from '../audit/events.js';
import type { KeyRestrictions, RequestContext } from '../auth/context.js';
import { AppError, notFound, validationError, type FieldError } from '../errors.js';
import { normalizeScopes, validateScopes } from '../scopes/check.js';
import type { Tier } from '../scopes/catalog.js';
import { normalizeCidr } from '../net/cidr.js';
import { parseStorableDate } from '../storable.js';
import { looserRestrictions } from './restrictions.js';
import { keyFlags, NO_THRESHOLDS, type HygieneThresholds, type KeyFlag } from './flags.js';
import type { SettingsService } from '../settings/service.js';
import { formatToken, newKeyId, tokenHint } from './token.js';
import { hashToken, type Peppers } from './hash.js';
import * as store from './store.js';
import type { ApiKeyRecord, KeyListFilter, KeyScope, RateLimit } from './store.js';

export const MAX_GRACE_MINUTES = 10080;
/** rotate's retireWhenIdleMinutes (SPEC §12): 1 minute to 1 day. */
export const MAX_RETIRE_WHEN_IDLE_MINUTES = 1440;

export interface RotateKeyInput {
  gracePeriodMinutes?: number;
  /** End the grace once the previous secret is idle this long after the new one's first use. */
  retireWhenIdleMinutes?: number;
}
const MAX_ALLOWED_IPS = 100;
/**
 * Active (neither revoked nor expired) keys an organization may hold. Past it, creating one is
 * `409 conflict` (a state to change, not a rate to wait out). Together with each organization's
 * share of the key limiter's table it keeps one tenant from crowding out the others' rate limits.
 */
export const MAX_ACTIVE_KEYS_PER_ORGANIZATION = 10_000;
/** Advisory lock class of an organization's key count (two-int4 keyspace). */
const KEY_COUNT_LOCK_CLASS = 0x6b657973; // 'keys'

export interface ApiKeyView {
  id: string;
  object: 'api_key';
  tier: Tier;
  organizationId: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  status: 'active' | 'revoked' | 'expired' | 'quarantined';
  createdAt: string;
  createdBy: { type: string; id: string | null };
  updatedAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  rotatedAt: string | null;
  previousSecretExpiresAt: string | null;
  allowedIps: string[] | null;
  rateLimit: RateLimit | null;
  hint: string;
  /** SPEC §12: where and with what the current secret was last used (src/usage/). */
  lastUsedIp: string | null;
  lastUserAgent: string | null;
  /** SPEC §12: the previous secret's last use, during a grace period only (else null). */
  previousSecretLastUsedAt: string | null;
  previousSecretLastUsedIp: string | null;
  previousSecretLastUserAgent: string | null;
  /** Key hygiene (SPEC §12, §14; src/keys/flags.ts), from the settings' thresholds. */
  flags: KeyFlag[];
  secret?: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function keyStatus(key: ApiKeyRecord, now = new Date()): ApiKeyView['status'] {
  if (key.revokedAt) return 'revoked';
  if (key.expiresAt && key.expiresAt <= now) return 'expired';
  // Reported leaked and quarantined (SPEC §13): `:read` routes only, until rotated or revoked.
  if (key.quarantinedAt) return 'quarantined';
  return 'active';
}

/**
 * The public shape of a key. Hashes never leave this module; `secret` only on create and rotate.
 * `thresholds`: the settings the flags depend on (the cached system settings); without them only
 * the flags that need none are raised.
 */
export function toView(key: ApiKeyRecord, secret?: string, now = new Date(), thresholds: HygieneThresholds = NO_THRESHOLDS): ApiKeyView {
  const previousLive = key.previousSecretExpiresAt && key.previousSecretExpiresAt > now ? key.previousSecretExpiresAt : null;
  return {
    id: key.id,
    object: 'api_key',
    tier: key.tier,
    organizationId: key.organizationId,
    name: key.name,
    description: key.description,
    scopes: key.scopes,
    status: keyStatus(key, now),
    createdAt: key.createdAt.toISOString(),
    createdBy: key.createdBy,
    updatedAt: key.updatedAt.toISOString(),
    lastUsedAt: iso(key.lastUsedAt),
    expiresAt: iso(key.expiresAt),
    revokedAt: iso(key.revokedAt),
    rotatedAt: iso(key.rotatedAt),
    previousSecretExpiresAt: key.revokedAt ? null : iso(previousLive),
    allowedIps: key.allowedIps,
    rateLimit: key.rateLimit,
    hint: key.hint,
    lastUsedIp: key.secretUse?.currentLastIp ?? null,
    lastUserAgent: key.secretUse?.currentLastUserAgent ?? null,
    // Outside a grace period the previous secret does not exist, and neither does its evidence.
    previousSecretLastUsedAt: previousLive && !key.revokedAt ? iso(key.secretUse?.previousLastUsedAt ?? null) : null,
    previousSecretLastUsedIp: previousLive && !key.revokedAt ? (key.secretUse?.previousLastIp ?? null) : null,
    previousSecretLastUserAgent: previousLive && !key.revokedAt ? (key.secretUse?.previousLastUserAgent ?? null) : null,
    flags: keyFlags(key, thresholds, now),
    ...(secret !== undefined ? { secret } : {}),
  };
}

export interface CreateKeyInput {
  name: string;
  scopes: string[];
  description?: string | null;
  expiresAt?: string | null;
  allowedIps?: string[] | null;
  rateLimit?: RateLimit | null;
}

export type UpdateKeyInput = Partial<CreateKeyInput>;

function auditAction(tier: Tier, verb: 'created' | 'updated' | 'rotated' | 'revoked' | 'deleted'): AuditAction {
  return `${tier === 'system' ? 'system_key' : 'api_key'}.${verb}` as AuditAction;
}

function parseFutureDate(value: string, path: string, errors: FieldError[], now: Date): Date | null {
  // The HTTP schema checks the same rule; a caller that is not a request reaches this without it.
  const date = parseStorableDate(value);
  if (!date) {
    errors.push({ path, message: 'must be an RFC 3339 date-time with a time zone, in the years 1..9999' });
    return null;
  }
  if (date <= now) {
    errors.push({ path, message: 'must be in the future' });
    return null;
  }
  return date;
}

function normalizeIps(values: string[], errors: FieldError[]): string[] {
  if (values.length > MAX_ALLOWED_IPS) errors.push({ path: '/allowedIps', message: `at most ${MAX_ALLOWED_IPS} entries` });
  const out: string[] = [];
  values.forEach((value, index) => {
    const cidr = normalizeCidr(value);
    if (!cidr) errors.push({ path: `/allowedIps/${index}`, message: `"${value}" is not an IP address or CIDR range` });
    else out.push(cidr);
  });
  return [...new Set(out)];
}

type Operation = 'create' | 'update' | 'rotate';

const OPERATION_SCOPE: Record<Operation, string> = { create: 'api_key:create', update: 'api_key:update', rotate: 'api_key:update' };

/** A refused escalation: the 403 to answer, and what its audit event records besides. */
class EscalationRefused extends AppError {
  /** @param scopes the scopes the refusal names, first the `requiredScope` (RFC 6750: a space-separated list). */
  constructor(
    detail: string,
    scopes: readonly string[],
    extra: Record<string, unknown>,
    readonly audited: Record<string, unknown>,
  ) {
    super('insufficient_scope', detail, {
      extra: { requiredScope: scopes[0], ...extra },
      headers: { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scopes.join(' ')}"` },
    });
  }
}

export class ApiKeyService {
  constructor(
    private readonly deps: {
      db: Database;
      work: Work;
      peppers: Peppers;
      settings: SettingsService;
      now?: () => Date;
      /** MAX_ACTIVE_KEYS_PER_ORGANIZATION unless a test lowers it. */
      maxKeysPerOrganization?: number;
    },
  ) {}

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /**
   * Refuses privilege escalation: a grantor may only hand out (`grant`) or take over (`hold`: update
   * or rotate a key) scopes it holds.
   */
  private assertGrantable(ctx: RequestContext, scopes: readonly string[], as: 'grant' | 'hold' = 'grant'): void {
    if (!ctx.grantable) return;
    const missing = scopes.filter((s) => !ctx.grantable!.has(s));
    if (missing.length > 0) {
      const detail = as === 'grant' ? `You cannot grant scopes you do not hold: ${missing.join(', ')}` : `This key holds scopes you do not hold: ${missing.join(', ')}`;
      throw new EscalationRefused(detail, missing, { missingScopes: missing }, { requiredScope: missing[0], missingScopes: missing });
    }
  }

  /**
   * Refuses looser restrictions (SPEC §3): when an API key acts, the key it creates or changes
   * (itself included), as it will be after the change, is no looser than the caller. A session is
   * not a key: members keep their role rules. `grantable: null` is a grantor bound by nothing
   * (Paygate itself, provisioning an organization's first key), for restrictions as for scopes.
   */
  private assertNoLooser(ctx: RequestContext, operation: Operation, key: KeyRestrictions): void {
    if (!ctx.restrictions || !ctx.grantable) return;
    const looser = looserRestrictions(ctx.restrictions, key);
    if (looser.length === 0) return;
    const names = looser.map((l) => l.restriction);
    throw new EscalationRefused(
      `A key cannot hand out looser restrictions than its own: ${looser.map((l) => `${l.restriction} (${l.reason})`).join('; ')}`,
      [OPERATION_SCOPE[operation]],
      { restrictions: names },
      { requiredScope: OPERATION_SCOPE[operation], restrictions: names },
    );
  }

  /**
   * Runs a change; when it is refused as an escalation (and so rolled back), records the refusal in
   * a unit of work of its own before answering. If that record cannot be written, the request fails
   * with that error rather than answer a refusal nobody can find later.
   */
  private async auditingRefusals<T>(ctx: RequestContext, where: KeyScope, operation: Operation, targetId: string | null, change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } catch (error) {
      if (!(error instanceof EscalationRefused)) throw error;
      await this.deps.work.run(async (tx) =>
        tx.audit({
          action: 'auth.insufficient_scope',
          actor: ctx.actor,
          organizationId: where.organizationId,
          target: targetId ? { type: 'api_key', id: targetId } : null,
          ip: ctx.ip,
          requestId: ctx.requestId,
          outcome: 'denied',
          details: { operation, tier: where.tier, ...error.audited },
        }),
      );
      throw error;
    }
  }

  /**
   * `409 conflict` when the organization already holds its most active keys. Counted under an
   * advisory lock per organization, so concurrent creations cannot both take the last place.
   */
  private async assertRoomForKey(tx: Queryable, organizationId: string, now: Date): Promise<void> {
    const max = this.deps.maxKeysPerOrganization ?? MAX_ACTIVE_KEYS_PER_ORGANIZATION;
    await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [KEY_COUNT_LOCK_CLASS, organizationId]);
    const [row] = await tx.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM api_keys WHERE organization_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)',
      [organizationId, now],
    );
    if (row!.n >= max) {
      throw new AppError('conflict', `This organization already has ${row!.n} active API keys, the most it may hold; revoke or delete keys it no longer uses first`, {
        extra: { limit: max },
      });
    }
  }

  /** Settings are read through `q`, the caller's transaction: never a second connection while holding one. */
  private async capExpiry(q: Queryable, requested: Date | null, createdAt: Date): Promise<Date | null> {
    const { apiKeyMaxLifetimeDays } = await this.deps.settings.get(q);
    if (apiKeyMaxLifetimeDays === null) return requested;
    const limit = new Date(createdAt.getTime() + apiKeyMaxLifetimeDays * 86_400_000);
    return requested === null || requested > limit ? limit : requested;
  }

  /**
   * Creates a key; pass `outer` to create it inside a caller's transaction (provisioning, whose
   * grantor is bound by nothing: a refusal there could not be recorded apart from the caller's work).
   */
  async create(ctx: RequestContext, where: KeyScope, input: CreateKeyInput, outer?: UnitOfWork): Promise<ApiKeyView> {
    if (outer) return this.createKey(ctx, where, input, outer);
    return this.auditingRefusals(ctx, where, 'create', null, () => this.createKey(ctx, where, input));
  }

  private async createKey(ctx: RequestContext, where: KeyScope, input: CreateKeyInput, outer?: UnitOfWork): Promise<ApiKeyView> {
    const now = this.now();
    const errors: FieldError[] = validateScopes(where.tier, input.scopes, '/scopes');
    const expiresAt = input.expiresAt ? parseFutureDate(input.expiresAt, '/expiresAt', errors, now) : null;
    const allowedIps = input.allowedIps ? normalizeIps(input.allowedIps, errors) : null;
    if (errors.length > 0) throw validationError(errors);
    const scopes = normalizeScopes(input.scopes);
    this.assertGrantable(ctx, scopes);
    const rateLimit = input.rateLimit ?? null;
    const pepper = this.deps.peppers.current;

    const insert = async (tx: UnitOfWork) => {
      if (where.tier === 'organization') await this.assertRoomForKey(tx, where.organizationId!, now);
      const cappedExpiry = await this.capExpiry(tx, expiresAt, now);
      // The expiry as it will be stored (after the lifetime cap) is what must be no looser.
      this.assertNoLooser(ctx, 'create', { expiresAt: cappedExpiry, allowedIps, rateLimit });
      let id = newKeyId(this.deps.peppers.idTagKey);
      // Ids are unique forever; a collision (practically never) just draws again.
      while (!(await store.reserveKeyId(tx, id))) id = newKeyId(this.deps.peppers.idTagKey);
      const token = formatToken(id);
      const record = await store.insertKey(tx, {
        id,
        tier: where.tier,
        organizationId: where.organizationId,
        name: input.name,
        description: input.description ?? null,
        scopes,
        secretHash: hashToken(pepper, token),
        pepperVersion: pepper.version,
        hint: tokenHint(token),
        previousSecretHash: null,
        previousPepperVersion: null,
        previousSecretExpiresAt: null,
        createdAt: now,
        createdBy: ctx.actor,
        updatedAt: now,
        lastUsedAt: null,
        expiresAt: cappedExpiry,
        revokedAt: null,
        rotatedAt: null,
        allowedIps,
        rateLimit,
        leakedAt: null,
        quarantinedAt: null,
      });
      await this.audit(tx, ctx, record, 'created', { name: record.name, scopes, expiresAt: iso(cappedExpiry) });
      // A node may hold this id in its negative cache (someone guessed it before it existed).
      tx.publish({ kind: 'api_key', subject: id });
      return { record, token };
    };
    const { record, token } = outer ? await insert(outer) : await this.deps.work.run(insert);
    // Settings through the caller's transaction when there is one (never a second connection).
    return toView(record, token, now, await this.deps.settings.get(outer));
  }

  /** A page of keys, newest first; `filter` (status, flag, q) is applied in SQL, before the page is cut. */
  async list(where: KeyScope, page: { limit: number; startingAfter: string | null }, filter: KeyListFilter = {}) {
    if (page.startingAfter) await this.get(where, page.startingAfter);
    const now = this.now();
    // The flags' thresholds from the node's settings cache: no round trip while it is trusted. The
    // query judges status and flags by the same instant and thresholds as the views below.
    const thresholds = await this.deps.settings.get();
    const rows = await store.listKeys(this.deps.db, where, page, filter, { now, thresholds });
    return {
      object: 'list' as const,
      data: rows.slice(0, page.limit).map((r) => toView(r, undefined, now, thresholds)),
      hasMore: rows.length > page.limit,
    };
  }

  async get(where: KeyScope, id: string): Promise<ApiKeyView> {
    const key = await this.find(this.deps.db, where, id);
    return toView(key, undefined, this.now(), await this.deps.settings.get());
  }

  /** Tenant isolation: a key of another organization or tier is "not found", never "forbidden". */
  private async find(db: Queryable, where: KeyScope, id: string, forUpdate = false): Promise<ApiKeyRecord> {
    // withCreator: creator_removed is read in the same statement (src/keys/flags.ts).
    const key = id.length === 20 ? await store.findKeyById(db, id, { forUpdate, withCreator: true }) : null;
    if (!key || key.tier !== where.tier || key.organizationId !== where.organizationId) throw notFound('API key');
    return key;
  }

  async update(ctx: RequestContext, where: KeyScope, id: string, input: UpdateKeyInput): Promise<ApiKeyView> {
    return this.auditingRefusals(ctx, where, 'update', id, () => this.updateKey(ctx, where, id, input));
  }

  private async updateKey(ctx: RequestContext, where: KeyScope, id: string, input: UpdateKeyInput): Promise<ApiKeyView> {
    const now = this.now();
    const errors: FieldError[] = input.scopes !== undefined ? validateScopes(where.tier, input.scopes, '/scopes') : [];
    const expiresAt =
      input.expiresAt === undefined ? undefined : input.expiresAt === null ? null : parseFutureDate(input.expiresAt, '/expiresAt', errors, now);
    const allowedIps = input.allowedIps === undefined ? undefined : input.allowedIps === null ? null : normalizeIps(input.allowedIps, errors);
    if (errors.length > 0) throw validationError(errors);
    const scopes = input.scopes !== undefined ? normalizeScopes(input.scopes) : undefined;
    if (scopes) this.assertGrantable(ctx, scopes);

    const record = await this.deps.work.run(async (tx) => {
      const key = await this.find(tx, where, id, true);
      // Changing a key is as strong as holding it: no taking over a broader key.
      this.assertGrantable(ctx, key.scopes, 'hold');
      if (key.revokedAt) throw new AppError('conflict', 'A revoked key cannot be changed');
      // An expired key stays expired (SPEC §4): a new expiresAt would bring it back to life.
      if (expiresAt !== undefined && keyStatus(key, now) === 'expired') throw new AppError('conflict', 'An expired key stays expired: its expiresAt cannot be changed');
      const changes: store.KeyChanges = {
        name: input.name,
        description: input.description,
        scopes,
        allowedIps,
        rateLimit: input.rateLimit,
        expiresAt: expiresAt === undefined ? undefined : await this.capExpiry(tx, expiresAt, key.createdAt),
      };
      // The key as it will be after this change, untouched restrictions included: no taking over a looser key either.
      this.assertNoLooser(ctx, 'update', {
        expiresAt: changes.expiresAt === undefined ? key.expiresAt : changes.expiresAt,
        allowedIps: changes.allowedIps === undefined ? key.allowedIps : changes.allowedIps,
        rateLimit: changes.rateLimit === undefined ? key.rateLimit : changes.rateLimit,
      });
      const updated = await store.updateKey(tx, id, changes, now);
      updated.creatorIsMember = key.creatorIsMember;
      const changed = Object.keys(input).filter((k) => input[k as keyof UpdateKeyInput] !== undefined);
      await this.audit(tx, ctx, updated, 'updated', {
        fields: changed,
        ...(scopes ? { scopes: { from: key.scopes, to: updated.scopes } } : {}),
      });
      tx.publish({ kind: 'api_key', subject: id });
      return updated;
    });
    return toView(record, undefined, now, await this.deps.settings.get());
  }

  async rotate(ctx: RequestContext, where: KeyScope, id: string, input: RotateKeyInput): Promise<ApiKeyView> {
    return this.auditingRefusals(ctx, where, 'rotate', id, () => this.rotateKey(ctx, where, id, input));
  }

  private async rotateKey(ctx: RequestContext, where: KeyScope, id: string, input: RotateKeyInput): Promise<ApiKeyView> {
    const now = this.now();
    const grace = input.gracePeriodMinutes ?? (await this.deps.settings.get()).apiKeyRotationGraceMinutes;
    if (!Number.isInteger(grace) || grace < 0 || grace > MAX_GRACE_MINUTES) {
      throw validationError([{ path: '/gracePeriodMinutes', message: `must be an integer from 0 to ${MAX_GRACE_MINUTES}` }]);
    }
    // SPEC §12: the grace also ends once the previous secret is idle this long (src/usage/grace.ts).
    const idle = input.retireWhenIdleMinutes ?? null;
    if (idle !== null && (!Number.isInteger(idle) || idle < 1 || idle > MAX_RETIRE_WHEN_IDLE_MINUTES)) {
      throw validationError([{ path: '/retireWhenIdleMinutes', message: `must be an integer from 1 to ${MAX_RETIRE_WHEN_IDLE_MINUTES}` }]);
    }
    const pepper = this.deps.peppers.current;
    const { record, token } = await this.deps.work.run(async (tx) => {
      // FOR UPDATE serialises concurrent rotations of one key: each sees the other's result, so at
      // most the current secret and one previous secret are ever valid.
      const key = await this.find(tx, where, id, true);
      // Rotating hands out the key's new secret: as strong as holding the key, scopes and restrictions alike.
      this.assertGrantable(ctx, key.scopes, 'hold');
      this.assertNoLooser(ctx, 'rotate', key);
      if (key.revokedAt) throw new AppError('conflict', 'A revoked key cannot be rotated');
      if (key.expiresAt && key.expiresAt <= now) throw new AppError('conflict', 'An expired key cannot be rotated');
      const token = formatToken(id);
      // Rotating again ends the older previous secret at once: only the current one carries over.
      // A key reported leaked gets no grace (SPEC §13): the leaked secret ends at once, and the
      // rotation returns a quarantined key to active (store.rotateKey clears both marks).
      const leaked = key.leakedAt !== null;
      const previous = grace > 0 && !leaked ? { secretHash: key.secretHash, pepperVersion: key.pepperVersion, expiresAt: new Date(now.getTime() + grace * 60_000) } : null;
      const record = await store.rotateKey(tx, id, { secretHash: hashToken(pepper, token), pepperVersion: pepper.version, hint: tokenHint(token) }, previous, now, idle);
      record.creatorIsMember = key.creatorIsMember;
      await this.audit(tx, ctx, record, 'rotated', {
        gracePeriodMinutes: previous ? grace : 0,
        previousSecretExpiresAt: iso(previous?.expiresAt ?? null),
        ...(previous && idle !== null ? { retireWhenIdleMinutes: idle } : {}),
        ...(leaked ? { leakedSecretEnded: true, wasQuarantined: key.quarantinedAt !== null } : {}),
      });
      tx.publish({ kind: 'api_key', subject: id });
      return { record, token };
    });
    return toView(record, token, now, await this.deps.settings.get());
  }

  async revoke(ctx: RequestContext, where: KeyScope, id: string): Promise<ApiKeyView> {
    const now = this.now();
    const record = await this.deps.work.run(async (tx) => {
      const key = await this.find(tx, where, id, true);
      if (key.revokedAt) return key; // irreversible and idempotent: a second revoke changes nothing
      const revoked = await store.revokeKey(tx, id, now);
      revoked.creatorIsMember = key.creatorIsMember;
      await this.audit(tx, ctx, revoked, 'revoked', {});
      tx.publish({ kind: 'api_key', subject: id });
      return revoked;
    });
    return toView(record, undefined, now, await this.deps.settings.get());
  }

  async delete(ctx: RequestContext, where: KeyScope, id: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const key = await this.find(tx, where, id, true);
      await store.deleteKey(tx, id);
      await this.audit(tx, ctx, key, 'deleted', { name: key.name });
      tx.publish({ kind: 'api_key', subject: id });
    });
  }

  /** Organization deletion: every key of the organization stops working at once. */
  async revokeAllOfOrganization(tx: UnitOfWork, organizationId: string): Promise<void> {
    await store.revokeOrganizationKeys(tx, organizationId, this.now());
    // One invalidation for the whole organization rather than one per key: bulk-safe for NOTIFY.
    tx.publish({ kind: 'organization', subject: organizationId });
  }

  /** Audits a change and, for an organization's key, emits its webhook event (SPEC §16) in the same unit. */
  private async audit(tx: UnitOfWork, ctx: RequestContext, key: ApiKeyRecord, verb: Parameters<typeof auditAction>[1], details: Record<string, unknown>): Promise<void> {
    tx.audit({
      action: auditAction(key.tier, verb),
      actor: ctx.actor,
      organizationId: key.organizationId,
      target: { type: 'api_key', id: key.id },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details,
    });
    // The key as the API shows it, never its secret (toView without one); system keys belong to no organization.
    // Its flags' thresholds are read through the transaction (the settings cache first).
    if (key.tier === 'organization' && key.organizationId) {
      tx.emit({ type: `api_key.${verb}`, organizationId: key.organizationId, object: toView(key, undefined, this.now(), await this.deps.settings.get(tx)) });
    }
  }
}
