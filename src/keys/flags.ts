/**
 * Key hygiene flags (SPEC §12, §14): what a key's record says about the risk it carries, computed
 * from the record and the system settings' thresholds. Pure: no database, no Fastify (the one SQL
 * fragment below is a string that the queries reading keys select).
 *
 * | flag              | when                                                                       |
 * |-------------------|----------------------------------------------------------------------------|
 * | `rotation_due`    | the current secret is `apiKeyRotationMaxAgeDays` old or older (since the   |
 * |                   | last rotation, else the creation)                                          |
 * | `inactive`        | unused for `apiKeyInactiveDays` or longer (since its last use, else its    |
 * |                   | creation)                                                                  |
 * | `expiring_soon`   | expires within `apiKeyExpiryWarningDays`                                   |
 * | `no_expiry`       | has no `expiresAt`                                                         |
 * | `broad_scopes`    | holds a `resource:*` scope                                                 |
 * | `creator_removed` | created by a user who is no longer a member of the key's organization (nor |
 * |                   | a global admin), or no longer exists                                       |
 * | `leaked`          | a token of the key was reported leaked and no rotation has replaced it     |
 *
 * A threshold that is null (off) raises no flag. Flags describe a key that still works: a revoked
 * or expired key carries `leaked` alone (it is history worth seeing), nothing else.
 */

export const KEY_FLAGS = ['rotation_due', 'inactive', 'expiring_soon', 'no_expiry', 'broad_scopes', 'creator_removed', 'leaked'] as const;

export type KeyFlag = (typeof KEY_FLAGS)[number];

export function isKeyFlag(value: string): value is KeyFlag {
  return (KEY_FLAGS as readonly string[]).includes(value);
}

/** The settings the flags depend on (src/settings/service.ts), in days; null = off. */
export interface HygieneThresholds {
  apiKeyRotationMaxAgeDays: number | null;
  apiKeyInactiveDays: number | null;
  apiKeyExpiryWarningDays: number | null;
}

export const NO_THRESHOLDS: HygieneThresholds = { apiKeyRotationMaxAgeDays: null, apiKeyInactiveDays: null, apiKeyExpiryWarningDays: null };

/** What the flags read of a key. */
export interface FlagSubject {
  scopes: readonly string[];
  createdAt: Date;
  rotatedAt: Date | null;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  leakedAt?: Date | null;
  /**
   * Whether the creating user is still a member of the key's organization (or a global admin):
   * null when the creator was not a user (an API key, Paygate itself) or when the query that read
   * the key did not ask (then no `creator_removed`).
   */
  creatorIsMember?: boolean | null;
}

const DAY_MS = 86_400_000;

/** Whole days of the current secret: since the last rotation, else since the creation. */
export function secretAgeDays(key: Pick<FlagSubject, 'createdAt' | 'rotatedAt'>, now: Date): number {
  return Math.max(0, Math.floor((now.getTime() - (key.rotatedAt ?? key.createdAt).getTime()) / DAY_MS));
}

/** Whole days without a use: since the last use, else since the creation (a key never used). */
export function unusedDays(key: Pick<FlagSubject, 'createdAt' | 'lastUsedAt'>, now: Date): number {
  return Math.max(0, Math.floor((now.getTime() - (key.lastUsedAt ?? key.createdAt).getTime()) / DAY_MS));
}

/** `resource:*` (SPEC §3 has no `*:*`; a bare `*` would be broad too, were it ever stored). */
export function isBroadScope(scope: string): boolean {
  return scope === '*' || scope.endsWith(':*');
}

/** The flags of a key, in the order of KEY_FLAGS. */
export function keyFlags(key: FlagSubject, thresholds: HygieneThresholds, now: Date): KeyFlag[] {
  const flags: KeyFlag[] = [];
  const live = key.revokedAt === null && (key.expiresAt === null || key.expiresAt > now);
  if (live) {
    const t = now.getTime();
    const { apiKeyRotationMaxAgeDays: maxAge, apiKeyInactiveDays: inactive, apiKeyExpiryWarningDays: warning } = thresholds;
    if (maxAge !== null && t - (key.rotatedAt ?? key.createdAt).getTime() >= maxAge * DAY_MS) flags.push('rotation_due');
    if (inactive !== null && t - (key.lastUsedAt ?? key.createdAt).getTime() >= inactive * DAY_MS) flags.push('inactive');
    if (warning !== null && key.expiresAt !== null && key.expiresAt.getTime() - t <= warning * DAY_MS) flags.push('expiring_soon');
    if (key.expiresAt === null) flags.push('no_expiry');
    if (key.scopes.some(isBroadScope)) flags.push('broad_scopes');
    if (key.creatorIsMember === false) flags.push('creator_removed');
  }
  if (key.leakedAt) flags.push('leaked');
  return flags;
}

/**
 * SQL: whether the user who created the `api_keys` row (alias `api_keys`) is still a member of its
 * organization or a global admin (system keys have no organization: a global admin only); NULL when
 * the creator was not a user. Selected by the queries that read keys for a view (list, get, the
 * credential report) so that `creator_removed` costs no round trip per key: two primary-key probes
 * per row, inside the same statement.
 */
export const CREATOR_IS_MEMBER_SQL = `CASE WHEN api_keys.created_by->>'type' = 'user' THEN EXISTS (
    SELECT 1 FROM users creator WHERE creator.id = api_keys.created_by->>'id' AND (creator.is_global_admin OR EXISTS (
      SELECT 1 FROM memberships creator_membership
       WHERE creator_membership.organization_id = api_keys.organization_id AND creator_membership.user_id = creator.id)))
  END`;

/**
 * SQL: whether the `api_keys` row (alias `api_keys`) carries `flag`, by the rules of keyFlags above,
 * as one predicate for a WHERE clause (the key list's `flag` filter: filtered before the LIMIT, so
 * cursor pages stay whole). `bind` adds a parameter and returns its placeholder; the cut-offs are
 * computed here from `now` in milliseconds, exactly as keyFlags compares, so the filter and the
 * flags a key shows agree for the same `now` and thresholds. A threshold that is off matches nothing.
 */
export function keyFlagSql(flag: KeyFlag, thresholds: HygieneThresholds, now: Date, bind: (value: unknown) => string): string {
  const t = now.getTime();
  const live = () => `(api_keys.revoked_at IS NULL AND (api_keys.expires_at IS NULL OR api_keys.expires_at > ${bind(now)}))`;
  const { apiKeyRotationMaxAgeDays: maxAge, apiKeyInactiveDays: inactive, apiKeyExpiryWarningDays: warning } = thresholds;
  switch (flag) {
    case 'rotation_due':
      return maxAge === null ? 'false' : `(${live()} AND coalesce(api_keys.rotated_at, api_keys.created_at) <= ${bind(new Date(t - maxAge * DAY_MS))})`;
    case 'inactive':
      return inactive === null ? 'false' : `(${live()} AND coalesce(api_keys.last_used_at, api_keys.created_at) <= ${bind(new Date(t - inactive * DAY_MS))})`;
    case 'expiring_soon':
      return warning === null ? 'false' : `(${live()} AND api_keys.expires_at <= ${bind(new Date(t + warning * DAY_MS))})`;
    case 'no_expiry':
      return `(api_keys.revoked_at IS NULL AND api_keys.expires_at IS NULL)`;
    case 'broad_scopes':
      // isBroadScope: `*` or `resource:*` (LIKE: neither `:` nor `*` is a pattern character).
      return `(${live()} AND EXISTS (SELECT 1 FROM unnest(api_keys.scopes) AS scope WHERE scope = '*' OR scope LIKE '%:*'))`;
    case 'creator_removed':
      // NULL (the creator was not a user) is not "removed".
      return `(${live()} AND (${CREATOR_IS_MEMBER_SQL}) IS FALSE)`;
    case 'leaked':
      return `(api_keys.leaked_at IS NOT NULL)`;
  }
}
