/** SQL of webhook endpoints, deliveries and attempts. Only the webhooks folder uses it. */
import type { Queryable } from '../db/database.js';
import { listNewestFirst, type PageRequest } from '../db/pages.js';

export interface EndpointRow {
  id: string;
  organization_id: string;
  url: string;
  events: string[];
  status: 'enabled' | 'disabled';
  description: string | null;
  secret_sealed: Buffer;
  previous_secret_sealed: Buffer | null;
  previous_secret_expires_at: Date | null;
  /** Set by the first failed attempt after a success; an endpoint failing for 3 days is disabled. */
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface DeliveryRow {
  id: string;
  organization_id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  next_attempt_at: Date | null;
  last_attempt_at: Date | null;
  last_response_status: number | null;
  last_error: string | null;
  claimed_by: string | null;
  claim_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
  /** The newest attempts, newest first (json_agg: timestamps as text). */
  recent?: AttemptJson[] | null;
}

export interface AttemptJson {
  id: string;
  started_at: string;
  duration_ms: number | null;
  response_status: number | null;
  response_body: string | null;
  error: string | null;
  outcome: 'succeeded' | 'failed' | null;
}

/** Attempts listed with each delivery (the count of all of them is `attempts`). */
export const RECENT_ATTEMPTS = 10;

// ---- endpoints --------------------------------------------------------------------------------

export async function countEndpoints(q: Queryable, organizationId: string): Promise<number> {
  const [row] = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_endpoints WHERE organization_id = $1', [organizationId]);
  return row!.n;
}

export async function insertEndpoint(
  q: Queryable,
  e: { id: string; organizationId: string; url: string; events: string[]; description: string | null; secretSealed: Buffer },
): Promise<EndpointRow> {
  const [row] = await q.query<EndpointRow>(
    `INSERT INTO webhook_endpoints (id, organization_id, url, events, description, secret_sealed)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [e.id, e.organizationId, e.url, e.events, e.description, e.secretSealed],
  );
  return row!;
}

export async function findEndpoint(q: Queryable, organizationId: string, id: string, lock: '' | 'FOR UPDATE' | 'FOR SHARE' = ''): Promise<EndpointRow | null> {
  const [row] = await q.query<EndpointRow>(`SELECT * FROM webhook_endpoints WHERE id = $1 AND organization_id = $2 ${lock}`, [id, organizationId]);
  return row ?? null;
}

export async function listEndpoints(q: Queryable, organizationId: string, page: PageRequest) {
  return listNewestFirst(q, { table: 'webhook_endpoints', organizationId, page, what: 'webhook endpoint', map: (r: EndpointRow) => r });
}

export interface EndpointChanges {
  url?: string;
  events?: string[];
  description?: string | null;
  status?: 'enabled' | 'disabled';
}

export async function updateEndpoint(q: Queryable, id: string, c: EndpointChanges): Promise<EndpointRow> {
  const [row] = await q.query<EndpointRow>(
    `UPDATE webhook_endpoints SET
       url = coalesce($2, url),
       events = coalesce($3, events),
       description = CASE WHEN $4 THEN $5 ELSE description END,
       status = coalesce($6, status),
       -- Enabled again (by hand): the failures before it no longer count towards disabling it.
       failing_since = CASE WHEN $6 = 'enabled' THEN NULL ELSE failing_since END,
       updated_at = now()
     WHERE id = $1 RETURNING *`,
    [id, c.url ?? null, c.events ?? null, c.description !== undefined, c.description ?? null, c.status ?? null],
  );
  return row!;
}

export async function rotateEndpointSecret(q: Queryable, id: string, secretSealed: Buffer, previous: { sealed: Buffer; graceMinutes: number } | null): Promise<EndpointRow> {
  const [row] = await q.query<EndpointRow>(
    `UPDATE webhook_endpoints SET
       secret_sealed = $2,
       previous_secret_sealed = $3,
       previous_secret_expires_at = CASE WHEN $3::bytea IS NULL THEN NULL ELSE now() + make_interval(mins => $4) END,
       updated_at = now()
     WHERE id = $1 RETURNING *`,
    [id, secretSealed, previous?.sealed ?? null, previous?.graceMinutes ?? 0],
  );
  return row!;
}

export async function deleteEndpoint(q: Queryable, id: string): Promise<void> {
  // Its deliveries and their attempts go with it (ON DELETE CASCADE); the events stay for the other endpoints.
  await q.query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
}

/** The addresses of the organization's owners, for the notice that an endpoint was disabled. */
export async function ownerEmails(q: Queryable, organizationId: string): Promise<string[]> {
  const rows = await q.query<{ email: string }>(
    `SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
      WHERE m.organization_id = $1 AND m.role = 'owner' ORDER BY u.email`,
    [organizationId],
  );
  return rows.map((r) => r.email);
}

// ---- deliveries -------------------------------------------------------------------------------

const DELIVERY_SELECT = `
  SELECT d.*,
    (SELECT json_agg(a ORDER BY a.started_at DESC, a.id DESC) FROM (
       SELECT id, started_at, duration_ms, response_status, response_body, error, outcome
         FROM webhook_attempts WHERE delivery_id = d.id ORDER BY started_at DESC, id DESC LIMIT ${RECENT_ATTEMPTS}) a) AS recent
  FROM webhook_deliveries d`;

export async function listDeliveries(
  q: Queryable,
  organizationId: string,
  endpointId: string,
  filter: PageRequest & { status?: DeliveryRow['status'] },
) {
  return listNewestFirst(q, {
    table: 'webhook_deliveries',
    select: DELIVERY_SELECT,
    organizationId,
    filters: [['endpoint_id', endpointId], ['status', filter.status]],
    page: filter,
    what: 'webhook delivery',
    map: (r: DeliveryRow) => r,
  });
}

export async function findDelivery(q: Queryable, organizationId: string, endpointId: string, id: string, forUpdate = false): Promise<DeliveryRow | null> {
  const [row] = await q.query<DeliveryRow>(
    `${forUpdate ? 'SELECT * FROM webhook_deliveries d' : DELIVERY_SELECT} WHERE d.id = $1 AND d.organization_id = $2 AND d.endpoint_id = $3${forUpdate ? ' FOR UPDATE' : ''}`,
    [id, organizationId, endpointId],
  );
  return row ?? null;
}

export async function getDelivery(q: Queryable, id: string): Promise<DeliveryRow> {
  const [row] = await q.query<DeliveryRow>(`${DELIVERY_SELECT} WHERE d.id = $1`, [id]);
  return row!;
}

/** A manual retry: due now, whatever its state was. */
export async function scheduleNow(q: Queryable, id: string): Promise<void> {
  await q.query("UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now() WHERE id = $1", [id]);
}

/** The test event: an event of its own and its one delivery, already fanned out. */
export async function insertTestDelivery(
  q: Queryable,
  e: { eventId: string; organizationId: string; type: string; body: string; deliveryId: string; endpointId: string },
): Promise<void> {
  await q.query(
    `INSERT INTO webhook_events (id, organization_id, type, body, fanned_out_at) VALUES ($1, $2, $3, $4, now())`,
    [e.eventId, e.organizationId, e.type, e.body],
  );
  await q.query(
    `INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, next_attempt_at)
     VALUES ($1, $2, $3, $4, $5, now())`,
    [e.deliveryId, e.organizationId, e.endpointId, e.eventId, e.type],
  );
}
