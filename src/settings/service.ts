/** System settings (SPEC §6): one row, cached per node and invalidated cluster-wide on change. */
import type { Database, Queryable } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import type { Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import { validationError, type FieldError } from '../errors.js';

export interface SystemSettings {
  portalMagicLinkTtlMinutes: number;
  apiKeyRotationGraceMinutes: number;
  apiKeyMaxLifetimeDays: number | null;
  /** Key hygiene (SPEC §14), null = off: a key whose secret is this many days old gets `rotation_due`. */
  apiKeyRotationMaxAgeDays: number | null;
  /** A key unused (since its last use, or its creation) this many days gets `inactive`. */
  apiKeyInactiveDays: number | null;
  /** A key expiring within this many days gets `expiring_soon`, and its owners are warned once. */
  apiKeyExpiryWarningDays: number | null;
  /** What happens to a key whose token is reported leaked (SPEC §13, src/leaks/): revoke it, or quarantine it. */
  leakedKeyAction: LeakedKeyAction;
  updatedAt: string;
}

export const SETTINGS_BOUNDS = {
  portalMagicLinkTtlMinutes: { min: 1, max: 1440 },
  apiKeyRotationGraceMinutes: { min: 0, max: 10080 },
  apiKeyMaxLifetimeDays: { min: 1, max: 36500 },
  apiKeyRotationMaxAgeDays: { min: 1, max: 3650 },
  apiKeyInactiveDays: { min: 1, max: 3650 },
  apiKeyExpiryWarningDays: { min: 1, max: 365 },
} as const;

export const LEAKED_KEY_ACTIONS = ['revoke', 'quarantine'] as const;
export type LeakedKeyAction = (typeof LEAKED_KEY_ACTIONS)[number];

/** Settings that may be null (off). */
const NULLABLE_SETTINGS = new Set<string>(['apiKeyMaxLifetimeDays', 'apiKeyRotationMaxAgeDays', 'apiKeyInactiveDays', 'apiKeyExpiryWarningDays']);

export type SettingsChanges = Partial<Omit<SystemSettings, 'updatedAt'>>;

interface Row {
  portal_magic_link_ttl_minutes: number;
  api_key_rotation_grace_minutes: number;
  api_key_max_lifetime_days: number | null;
  api_key_rotation_max_age_days: number | null;
  api_key_inactive_days: number | null;
  api_key_expiry_warning_days: number | null;
  leaked_key_action: LeakedKeyAction;
  updated_at: Date;
}

function fromRow(row: Row): SystemSettings {
  return {
    portalMagicLinkTtlMinutes: row.portal_magic_link_ttl_minutes,
    apiKeyRotationGraceMinutes: row.api_key_rotation_grace_minutes,
    apiKeyMaxLifetimeDays: row.api_key_max_lifetime_days,
    apiKeyRotationMaxAgeDays: row.api_key_rotation_max_age_days,
    apiKeyInactiveDays: row.api_key_inactive_days,
    apiKeyExpiryWarningDays: row.api_key_expiry_warning_days,
    leakedKeyAction: row.leaked_key_action,
    updatedAt: row.updated_at.toISOString(),
  };
}

export function validateSettingsChanges(changes: SettingsChanges): FieldError[] {
  const errors: FieldError[] = [];
  for (const [field, bounds] of Object.entries(SETTINGS_BOUNDS)) {
    const value = changes[field as keyof SettingsChanges];
    if (value === undefined) continue;
    if (value === null && NULLABLE_SETTINGS.has(field)) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < bounds.min || value > bounds.max) {
      errors.push({ path: `/${field}`, message: `must be an integer from ${bounds.min} to ${bounds.max}` });
    }
  }
  if (changes.leakedKeyAction !== undefined && !(LEAKED_KEY_ACTIONS as readonly unknown[]).includes(changes.leakedKeyAction)) {
    errors.push({ path: '/leakedKeyAction', message: `must be one of ${LEAKED_KEY_ACTIONS.join(', ')}` });
  }
  return errors;
}

export class SettingsService {
  private cached: SystemSettings | null = null;

  constructor(private readonly deps: { db: Database; bus: InvalidationBus; work: Work }) {
    deps.bus.onInvalidate((inv) => {
      if (inv.kind === 'settings') this.cached = null;
    });
    deps.bus.onFlush(() => {
      this.cached = null;
    });
  }

  /**
   * The settings, from the node's cache while it is trusted. Inside a transaction pass its handle as
   * `q`: a miss then reads through it instead of waiting for a second pool connection (and what a
   * transaction reads is never cached: it may be its own uncommitted change).
   */
  async get(q: Queryable = this.deps.db): Promise<SystemSettings> {
    if (this.cached && this.deps.bus.trusted) return this.cached;
    const generation = this.deps.bus.generation;
    const [row] = await q.query<Row>('SELECT * FROM system_settings WHERE id = 1');
    const settings = fromRow(row!);
    if (q === this.deps.db && this.deps.bus.trusted && generation === this.deps.bus.generation) this.cached = settings;
    return settings;
  }

  async update(ctx: RequestContext, changes: SettingsChanges): Promise<SystemSettings> {
    const errors = validateSettingsChanges(changes);
    if (errors.length > 0) throw validationError(errors);
    const settings = await this.deps.work.run(async (tx) => {
      const [before] = await tx.query<Row>('SELECT * FROM system_settings WHERE id = 1 FOR UPDATE');
      const [row] = await tx.query<Row>(
        `UPDATE system_settings SET
           portal_magic_link_ttl_minutes = coalesce($1, portal_magic_link_ttl_minutes),
           api_key_rotation_grace_minutes = coalesce($2, api_key_rotation_grace_minutes),
           api_key_max_lifetime_days = CASE WHEN $3 THEN $4::integer ELSE api_key_max_lifetime_days END,
           api_key_rotation_max_age_days = CASE WHEN $5 THEN $6::integer ELSE api_key_rotation_max_age_days END,
           api_key_inactive_days = CASE WHEN $7 THEN $8::integer ELSE api_key_inactive_days END,
           api_key_expiry_warning_days = CASE WHEN $9 THEN $10::integer ELSE api_key_expiry_warning_days END,
           leaked_key_action = coalesce($11, leaked_key_action),
           updated_at = now()
         WHERE id = 1 RETURNING *`,
        [
          changes.portalMagicLinkTtlMinutes ?? null,
          changes.apiKeyRotationGraceMinutes ?? null,
          changes.apiKeyMaxLifetimeDays !== undefined,
          changes.apiKeyMaxLifetimeDays ?? null,
          changes.apiKeyRotationMaxAgeDays !== undefined,
          changes.apiKeyRotationMaxAgeDays ?? null,
          changes.apiKeyInactiveDays !== undefined,
          changes.apiKeyInactiveDays ?? null,
          changes.apiKeyExpiryWarningDays !== undefined,
          changes.apiKeyExpiryWarningDays ?? null,
          changes.leakedKeyAction ?? null,
        ],
      );
      const previous = fromRow(before!);
      const next = fromRow(row!);
      tx.audit({
        action: 'system_settings.updated',
        actor: ctx.actor,
        organizationId: null,
        target: { type: 'system_settings', id: 'system' },
        ip: ctx.ip,
        requestId: ctx.requestId,
        details: {
          changes: Object.fromEntries(
            Object.keys(changes).map((k) => [k, { from: previous[k as keyof SystemSettings], to: next[k as keyof SystemSettings] }]),
          ),
        },
      });
      tx.publish({ kind: 'settings', subject: '1' });
      return next;
    });
    return settings;
  }
}
