/**
 * Rotation that completes on evidence (SPEC §12): a grace period ends by request
 * (`POST .../end-grace`), once the previous secret has been idle for rotate's
 * `retireWhenIdleMinutes` after the new secret's first use, or when it expires. Each end is one
 * unit of work: the previous secret is cleared, the change audited (`api_key.updated` /
 * `system_key.updated` with `graceEnded: "by request" | "idle" | "expired"`) and published, so every
 * node refuses the previous secret as soon as it commits.
 *
 * The sweep runs on every node; each grace ends once: the rows are claimed with
 * `FOR UPDATE SKIP LOCKED` and the UPDATE re-checks the condition, so a second node finds nothing.
 * It decides on sightings up to one flush interval old (src/usage/flush.ts): a use of the previous
 * secret in the last seconds before an idle retirement is one that came just too late.
 */
import type { Queryable } from '../db/database.js';
import type { Work, UnitOfWork } from '../unit-of-work.js';
import { SYSTEM_ACTOR, type Actor } from '../audit/events.js';
import type { RequestContext } from '../auth/context.js';
import { AppError, notFound } from '../errors.js';
import { toView } from '../keys/service.js';
import { findKeyById, type ApiKeyRecord, type KeyScope } from '../keys/store.js';

export type GraceEnd = 'by request' | 'idle' | 'expired';

/** Most graces one sweep ends; the rest wait for the next (a few seconds). */
const SWEEP_BATCH = 100;

const END_GRACE = `previous_secret_hash = NULL, previous_pepper_version = NULL, previous_secret_expires_at = NULL,
  retire_when_idle_minutes = NULL`;

function recordEnd(tx: UnitOfWork, key: ApiKeyRecord, reason: GraceEnd, who: { actor: Actor; ip: string | null; requestId: string | null }, now: Date): void {
  tx.audit({
    action: key.tier === 'system' ? 'system_key.updated' : 'api_key.updated',
    actor: who.actor,
    organizationId: key.organizationId,
    target: { type: 'api_key', id: key.id },
    ip: who.ip,
    requestId: who.requestId,
    details: { fields: ['previousSecretExpiresAt'], graceEnded: reason },
  });
  if (key.tier === 'organization' && key.organizationId) tx.emit({ type: 'api_key.updated', organizationId: key.organizationId, object: toView(key, undefined, now) });
  tx.publish({ kind: 'api_key', subject: key.id });
}

/** `POST .../end-grace`: the previous secret stops working now; `409 conflict` when there is none. */
export async function endGraceByRequest(work: Work, ctx: RequestContext, where: KeyScope, id: string, now: Date): Promise<void> {
  await work.run(async (tx) => {
    const key = id.length === 20 ? await findKeyById(tx, id, { forUpdate: true }) : null;
    // Tenant isolation as everywhere: another organization's or tier's key is "not found".
    if (!key || key.tier !== where.tier || key.organizationId !== where.organizationId) throw notFound('API key');
    if (key.previousSecretHash === null || !key.previousSecretExpiresAt || key.previousSecretExpiresAt <= now) {
      throw new AppError('conflict', 'This key has no previous secret in a grace period');
    }
    const [ended] = await tx.query<{ id: string }>(`UPDATE api_keys SET ${END_GRACE}, updated_at = $2 WHERE id = $1 RETURNING id`, [id, now]);
    const after = (await findKeyById(tx, ended!.id))!;
    recordEnd(tx, after, 'by request', { actor: ctx.actor, ip: ctx.ip, requestId: ctx.requestId }, now);
  });
}

/**
 * Ends the graces that are over at `now`: idle ones (retireWhenIdleMinutes) and expired ones.
 * Returns how many ended for each reason.
 */
const OVER = `previous_secret_hash IS NOT NULL
  AND (previous_secret_expires_at <= $1
       OR (retire_when_idle_minutes IS NOT NULL AND secret_first_used_at IS NOT NULL
           AND greatest(secret_first_used_at, previous_secret_last_used_at) <= $1::timestamptz - retire_when_idle_minutes * interval '1 minute'))`;

export async function sweepGraces(db: Queryable, work: Work, now: Date): Promise<{ idle: number; expired: number }> {
  // Most sweeps find nothing: one indexed read, no transaction, until there is something to end.
  const due = await db.query(`SELECT 1 FROM api_keys WHERE ${OVER} LIMIT 1`, [now]);
  if (due.length === 0) return { idle: 0, expired: 0 };
  return work.run(async (tx) => {
    const claimed = await tx.query<{ id: string; reason: 'idle' | 'expired' }>(
      `SELECT id, CASE WHEN previous_secret_expires_at <= $1 THEN 'expired' ELSE 'idle' END AS reason
         FROM api_keys WHERE ${OVER}
        ORDER BY id
        LIMIT ${SWEEP_BATCH}
        FOR UPDATE SKIP LOCKED`,
      [now],
    );
    const counts = { idle: 0, expired: 0 };
    if (claimed.length === 0) return counts;
    const ids = claimed.map((c) => c.id);
    const reasons = new Map(claimed.map((c) => [c.id, c.reason]));
    // Only the claimed rows, and only while they still have a previous secret.
    await tx.query(`UPDATE api_keys SET ${END_GRACE}, updated_at = $2 WHERE id = ANY($1::text[]) AND previous_secret_hash IS NOT NULL`, [ids, now]);
    for (const id of ids) {
      const key = (await findKeyById(tx, id))!;
      const reason = reasons.get(id)!;
      counts[reason]++;
      recordEnd(tx, key, reason, { actor: SYSTEM_ACTOR, ip: null, requestId: null }, now);
    }
    return counts;
  });
}
