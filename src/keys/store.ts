/** SQL for API keys. keys/service.ts and keys/verify.ts use it, and src/usage/ (reads; its own SQL writes the usage columns). */
import type { Queryable } from '../db/database.js';
import type { Actor } from '../audit/events.js';
import type { Tier } from '../scopes/catalog.js';
import { CREATOR_IS_MEMBER_SQL, keyFlagSql, type HygieneThresholds, type KeyFlag } from './flags.js';

export interface RateLimit {
  requests: number;
  windowSeconds: number;
}

export interface ApiKeyRecord {
  id: string;
  tier: Tier;
  organizationId: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  secretHash: Buffer;
  pepperVersion: number;
  hint: string;
  previousSecretHash: Buffer | null;
  previousPepperVersion: number | null;
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  createdBy: Actor;
  updatedAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  rotatedAt: Date | null;
  allowedIps: string[] | null;
  rateLimit: RateLimit | null;
  /** When a token of this key was reported leaked (SPEC §13); null once a rotation replaced it. */
  leakedAt: Date | null;
  /** Set while the key is quarantined (SPEC §13): it may call `:read` routes only. */
  quarantinedAt: Date | null;
  /** Per-secret evidence of use (SPEC §12, src/usage/); always set when read from the database. */
  secretUse?: SecretUse;
  /**
   * Whether the creating user is still a member (src/keys/flags.ts CREATOR_IS_MEMBER_SQL): set only
   * by the queries that select it (list, get); null when the creator was not a user.
   */
  creatorIsMember?: boolean | null;
}

/** When and from where each secret was last seen (src/usage/flush.ts writes it in batches). */
export interface SecretUse {
  currentFirstUsedAt: Date | null;
  currentLastUsedAt: Date | null;
  currentLastIp: string | null;
  currentLastUserAgent: string | null;
  previousLastUsedAt: Date | null;
  previousLastIp: string | null;
  previousLastUserAgent: string | null;
  /** rotate's retireWhenIdleMinutes, while a grace period runs. */
  retireWhenIdleMinutes: number | null;
}

interface Row {
  id: string;
  tier: Tier;
  organization_id: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  secret_hash: Buffer;
  pepper_version: number;
  hint: string;
  previous_secret_hash: Buffer | null;
  previous_pepper_version: number | null;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  created_by: Actor;
  updated_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  rotated_at: Date | null;
  allowed_ips: string[] | null;
  rate_limit_requests: number | null;
  rate_limit_window_seconds: number | null;
  leaked_at: Date | null;
  quarantined_at: Date | null;
  secret_first_used_at: Date | null;
  secret_last_used_at: Date | null;
  last_used_ip: string | null;
  last_user_agent: string | null;
  previous_secret_last_used_at: Date | null;
  previous_secret_last_used_ip: string | null;
  previous_secret_last_user_agent: string | null;
  retire_when_idle_minutes: number | null;
  /** Only when the query selects CREATOR_IS_MEMBER_SQL. */
  creator_is_member?: boolean | null;
}

function fromRow(row: Row): ApiKeyRecord {
  return {
    id: row.id,
    tier: row.tier,
    organizationId: row.organization_id,
    name: row.name,
    description: row.description,
    scopes: row.scopes,
    secretHash: row.secret_hash,
    pepperVersion: row.pepper_version,
    hint: row.hint,
    previousSecretHash: row.previous_secret_hash,
    previousPepperVersion: row.previous_pepper_version,
    previousSecretExpiresAt: row.previous_secret_expires_at,
    createdAt: row.created_at,
    createdBy: row.created_by,
    updatedAt: row.updated_at,
    lastUsedAt: row.last_used_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    rotatedAt: row.rotated_at,
    allowedIps: row.allowed_ips,
    rateLimit:
      row.rate_limit_requests !== null && row.rate_limit_window_seconds !== null
        ? { requests: row.rate_limit_requests, windowSeconds: row.rate_limit_window_seconds }
        : null,
    leakedAt: row.leaked_at,
    quarantinedAt: row.quarantined_at,
    secretUse: {
      currentFirstUsedAt: row.secret_first_used_at,
      currentLastUsedAt: row.secret_last_used_at,
      currentLastIp: row.last_used_ip,
      currentLastUserAgent: row.last_user_agent,
      previousLastUsedAt: row.previous_secret_last_used_at,
      previousLastIp: row.previous_secret_last_used_ip,
      previousLastUserAgent: row.previous_secret_last_user_agent,
      retireWhenIdleMinutes: row.retire_when_idle_minutes,
    },
    ...(row.creator_is_member !== undefined ? { creatorIsMember: row.creator_is_member } : {}),
  };
}

/** A key from a row of `SELECT api_keys.*` (the credential report reads its own pages: src/reports/). */
export const keyFromRow = (row: Record<string, unknown>): ApiKeyRecord => fromRow(row as unknown as Row);

/** Reserves an id forever; false when it was ever used before (then the caller draws another). */
export async function reserveKeyId(tx: Queryable, id: string): Promise<boolean> {
  const rows = await tx.query('INSERT INTO api_key_ids (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id', [id]);
  return rows.length === 1;
}

export async function insertKey(tx: Queryable, key: ApiKeyRecord): Promise<ApiKeyRecord> {
  const [row] = await tx.query<Row>(
    `INSERT INTO api_keys (id, tier, organization_id, name, description, scopes, secret_hash, pepper_version, hint,
       created_at, created_by, updated_at, expires_at, allowed_ips, rate_limit_requests, rate_limit_window_seconds)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$10,$12,$13,$14,$15) RETURNING *`,
    [
      key.id,
      key.tier,
      key.organizationId,
      key.name,
      key.description,
      key.scopes,
      key.secretHash,
      key.pepperVersion,
      key.hint,
      key.createdAt,
      JSON.stringify(key.createdBy),
      key.expiresAt,
      key.allowedIps,
      key.rateLimit?.requests ?? null,
      key.rateLimit?.windowSeconds ?? null,
    ],
  );
  return fromRow(row!);
}

export async function findKeyById(db: Queryable, id: string, options: { forUpdate?: boolean; withCreator?: boolean } = {}): Promise<ApiKeyRecord | null> {
  // withCreator: whether the creating user is still a member, in the same statement (src/keys/flags.ts).
  const select = options.withCreator ? `SELECT *, ${CREATOR_IS_MEMBER_SQL} AS creator_is_member` : 'SELECT *';
  const rows = await db.query<Row>(`${select} FROM api_keys WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Several keys by id in one query (leaked-key reports); ids that do not exist are simply absent. */
export async function findKeysByIds(db: Queryable, ids: readonly string[]): Promise<ApiKeyRecord[]> {
  if (ids.length === 0) return [];
  const rows = await db.query<Row>('SELECT * FROM api_keys WHERE id = ANY($1::text[])', [ids]);
  return rows.map(fromRow);
}

export interface KeyScope {
  tier: Tier;
  organizationId: string | null;
}

/** The statuses of the key view (service.ts keyStatus), in the order the panel's tabs show them. */
export const KEY_STATUSES = ['active', 'quarantined', 'expired', 'revoked'] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** The key list's optional filters (SPEC §4, §12), all applied in SQL before the LIMIT. */
export interface KeyListFilter {
  status?: KeyStatus;
  flag?: KeyFlag;
  /** An exact id or hint, or the start of the name (any case). */
  q?: string;
}

/** SQL: whether the row has `status`, by the rules of service.ts keyStatus (revoked, then expired, then quarantined). */
function keyStatusSql(status: KeyStatus, now: Date, bind: (value: unknown) => string): string {
  // Bound only where used: PostgreSQL cannot type a parameter no expression mentions.
  const live = () => `api_keys.revoked_at IS NULL AND (api_keys.expires_at IS NULL OR api_keys.expires_at > ${bind(now)})`;
  switch (status) {
    case 'revoked':
      return 'api_keys.revoked_at IS NOT NULL';
    case 'expired':
      return `(api_keys.revoked_at IS NULL AND api_keys.expires_at <= ${bind(now)})`;
    case 'quarantined':
      return `(${live()} AND api_keys.quarantined_at IS NOT NULL)`;
    case 'active':
      return `(${live()} AND api_keys.quarantined_at IS NULL)`;
  }
}

const likePrefix = (text: string) => `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export async function listKeys(
  db: Queryable,
  scope: KeyScope,
  page: { limit: number; startingAfter: string | null },
  filter: KeyListFilter,
  // The instant and thresholds the status and flags are judged by: the same the views are built with.
  judged: { now: Date; thresholds: HygieneThresholds },
): Promise<ApiKeyRecord[]> {
  const params: unknown[] = [scope.tier, scope.organizationId];
  const bind = (value: unknown) => `$${params.push(value)}`;
  const where = ['api_keys.tier = $1', 'api_keys.organization_id IS NOT DISTINCT FROM $2'];
  if (page.startingAfter) {
    // Newest first; the cursor is the last id of the previous page.
    where.push(`(api_keys.created_at, api_keys.id) < (SELECT created_at, id FROM api_keys cursor_key WHERE cursor_key.id = ${bind(page.startingAfter)})`);
  }
  if (filter.status) where.push(keyStatusSql(filter.status, judged.now, bind));
  if (filter.flag) where.push(keyFlagSql(filter.flag, judged.thresholds, judged.now, bind));
  if (filter.q) {
    where.push(`(api_keys.id = ${bind(filter.q)} OR api_keys.hint = $${params.length} OR lower(api_keys.name) LIKE lower(${bind(likePrefix(filter.q))}))`);
  }
  const rows = await db.query<Row>(
    `SELECT *, ${CREATOR_IS_MEMBER_SQL} AS creator_is_member FROM api_keys WHERE ${where.join(' AND ')}
     ORDER BY api_keys.created_at DESC, api_keys.id DESC LIMIT ${bind(page.limit + 1)}`,
    params,
  );
  return rows.map(fromRow);
}

export interface KeyChanges {
  name?: string;
  description?: string | null;
  scopes?: string[];
  expiresAt?: Date | null;
  allowedIps?: string[] | null;
  rateLimit?: RateLimit | null;
}

export async function updateKey(tx: Queryable, id: string, changes: KeyChanges, now: Date): Promise<ApiKeyRecord> {
  const sets: string[] = ['updated_at = $2'];
  const params: unknown[] = [id, now];
  const set = (column: string, value: unknown) => {
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  };
  if (changes.name !== undefined) set('name', changes.name);
  if (changes.description !== undefined) set('description', changes.description);
  if (changes.scopes !== undefined) set('scopes', changes.scopes);
  if (changes.expiresAt !== undefined) set('expires_at', changes.expiresAt);
  if (changes.allowedIps !== undefined) set('allowed_ips', changes.allowedIps);
  if (changes.rateLimit !== undefined) {
    set('rate_limit_requests', changes.rateLimit?.requests ?? null);
    set('rate_limit_window_seconds', changes.rateLimit?.windowSeconds ?? null);
  }
  const [row] = await tx.query<Row>(`UPDATE api_keys SET ${sets.join(', ')} WHERE id = $1 RETURNING *`, params);
  return fromRow(row!);
}

export async function rotateKey(
  tx: Queryable,
  id: string,
  next: { secretHash: Buffer; pepperVersion: number; hint: string },
  previous: { secretHash: Buffer; pepperVersion: number; expiresAt: Date } | null,
  now: Date,
  retireWhenIdleMinutes: number | null = null,
): Promise<ApiKeyRecord> {
  const [row] = await tx.query<Row>(
    `UPDATE api_keys SET secret_hash = $2, pepper_version = $3, hint = $4,
       previous_secret_hash = $5, previous_pepper_version = $6, previous_secret_expires_at = $7,
       rotated_at = $8, updated_at = $8,
       -- A rotation replaces a leaked secret: the key is no longer leaked, nor quarantined (SPEC §13).
       leaked_at = NULL, quarantined_at = NULL,
       -- The secret that was current becomes the previous one, with its evidence of use (SPEC §12).
       previous_secret_last_used_at = CASE WHEN $5::bytea IS NULL THEN NULL ELSE secret_last_used_at END,
       previous_secret_last_used_ip = CASE WHEN $5::bytea IS NULL THEN NULL ELSE last_used_ip END,
       previous_secret_last_user_agent = CASE WHEN $5::bytea IS NULL THEN NULL ELSE last_user_agent END,
       secret_first_used_at = NULL, secret_last_used_at = NULL, last_used_ip = NULL, last_user_agent = NULL,
       retire_when_idle_minutes = CASE WHEN $5::bytea IS NULL THEN NULL ELSE $9::int END
     WHERE id = $1 RETURNING *`,
    [id, next.secretHash, next.pepperVersion, next.hint, previous?.secretHash ?? null, previous?.pepperVersion ?? null, previous?.expiresAt ?? null, now, retireWhenIdleMinutes],
  );
  return fromRow(row!);
}

export async function revokeKey(tx: Queryable, id: string, now: Date): Promise<ApiKeyRecord> {
  const [row] = await tx.query<Row>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2), updated_at = $2,
       previous_secret_hash = NULL, previous_pepper_version = NULL, previous_secret_expires_at = NULL
     WHERE id = $1 RETURNING *`,
    [id, now],
  );
  return fromRow(row!);
}

/**
 * Marks a key reported leaked (SPEC §13) and contains it: `revoke` revokes it (both secrets end);
 * `quarantine` restricts it to `:read` routes (auth/plugin.ts) until it is rotated or revoked.
 */
export async function containLeakedKey(tx: Queryable, id: string, action: 'revoke' | 'quarantine', now: Date): Promise<ApiKeyRecord> {
  const [row] = await tx.query<Row>(
    action === 'revoke'
      ? `UPDATE api_keys SET leaked_at = $2, revoked_at = coalesce(revoked_at, $2), updated_at = $2,
           previous_secret_hash = NULL, previous_pepper_version = NULL, previous_secret_expires_at = NULL
         WHERE id = $1 RETURNING *`
      : `UPDATE api_keys SET leaked_at = $2, quarantined_at = coalesce(quarantined_at, $2), updated_at = $2 WHERE id = $1 RETURNING *`,
    [id, now],
  );
  return fromRow(row!);
}

/** Revokes every active key of an organization; returns their ids. */
export async function revokeOrganizationKeys(tx: Queryable, organizationId: string, now: Date): Promise<string[]> {
  const rows = await tx.query<{ id: string }>(
    `UPDATE api_keys SET revoked_at = $2, updated_at = $2,
       previous_secret_hash = NULL, previous_pepper_version = NULL, previous_secret_expires_at = NULL
     WHERE organization_id = $1 AND revoked_at IS NULL RETURNING id`,
    [organizationId, now],
  );
  return rows.map((r) => r.id);
}

export async function deleteKey(tx: Queryable, id: string): Promise<void> {
  await tx.query('DELETE FROM api_keys WHERE id = $1', [id]);
}
