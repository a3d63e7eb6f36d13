/** SQL for API keys. Only keys/service.ts and keys/verify.ts use it. */
import type { Queryable } from '../db/database.js';
import type { Actor } from '../audit/events.js';
import type { Tier } from '../scopes/catalog.js';

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
  };
}

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

export async function findKeyById(db: Queryable, id: string, options: { forUpdate?: boolean } = {}): Promise<ApiKeyRecord | null> {
  const rows = await db.query<Row>(`SELECT * FROM api_keys WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export interface KeyScope {
  tier: Tier;
  organizationId: string | null;
}

export async function listKeys(
  db: Queryable,
  scope: KeyScope,
  page: { limit: number; startingAfter: string | null },
): Promise<ApiKeyRecord[]> {
  const params: unknown[] = [scope.tier, scope.organizationId, page.limit + 1];
  let after = '';
  if (page.startingAfter) {
    params.push(page.startingAfter);
    // Newest first; the cursor is the last id of the previous page.
    after = `AND (created_at, id) < (SELECT created_at, id FROM api_keys WHERE id = $4)`;
  }
  const rows = await db.query<Row>(
    `SELECT * FROM api_keys WHERE tier = $1 AND organization_id IS NOT DISTINCT FROM $2 ${after}
     ORDER BY created_at DESC, id DESC LIMIT $3`,
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
): Promise<ApiKeyRecord> {
  const [row] = await tx.query<Row>(
    `UPDATE api_keys SET secret_hash = $2, pepper_version = $3, hint = $4,
       previous_secret_hash = $5, previous_pepper_version = $6, previous_secret_expires_at = $7,
       rotated_at = $8, updated_at = $8
     WHERE id = $1 RETURNING *`,
    [id, next.secretHash, next.pepperVersion, next.hint, previous?.secretHash ?? null, previous?.pepperVersion ?? null, previous?.expiresAt ?? null, now],
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

/** Batched lastUsedAt: one statement for many keys; never moves a timestamp backwards. */
export async function touchKeys(db: Queryable, usage: Map<string, Date>): Promise<void> {
  if (usage.size === 0) return;
  await db.query(
    `UPDATE api_keys AS k SET last_used_at = u.at
     FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
     WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
    [[...usage.keys()], [...usage.values()]],
  );
}
