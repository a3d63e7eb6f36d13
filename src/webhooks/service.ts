/**
 * Webhook endpoints of an organization (SPEC §16): create, list, get, update, delete, rotate the
 * signing secret; their deliveries, a manual retry, a test event.
 *
 * The signing secret is shown once (create and rotate-secret responses) and stored sealed
 * (AES-256-GCM under a pepper-derived key, src/sealing.ts), never hashed: Paygate must read it back
 * to sign every delivery. The database alone cannot sign anything. A rotation keeps the previous
 * secret live for a grace period (default 24 h, at most 7 days, 0 ends it at once), during which
 * deliveries carry one signature per live secret; as for API keys, only one previous secret is kept.
 *
 * Every change is one unit of work with its audit event (`webhook_endpoint.*`), which never holds a
 * secret. The target URL passes the SSRF guard (ssrf.ts) before anything is written; the DNS lookup
 * it may need happens before the transaction opens.
 */
import type { Database, Queryable } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import type { Peppers } from '../keys/hash.js';
import { AppError, notFound, validationError } from '../errors.js';
import { isId, newId } from '../ids.js';
import { Sealer } from '../sealing.js';
import type { PageRequest } from '../db/pages.js';
import { TEST_EVENT_TYPE, prepareEvent } from './events.js';
import { newWebhookSecret } from './signing.js';
import { checkTarget, parseTargetUrl, type Resolver } from './ssrf.js';
import * as store from './store.js';
import type { AttemptJson, DeliveryRow, EndpointRow } from './store.js';

/** Rotation grace: the default (24 h, as for API keys) and the most (7 days). */
export const DEFAULT_SECRET_GRACE_MINUTES = 1440;
export const MAX_SECRET_GRACE_MINUTES = 10080;
/** Endpoints per organization. */
export const MAX_ENDPOINTS = 20;
/** HKDF info of the secrets' sealing key. */
export const SECRET_SEAL_INFO = 'paygate webhook secret v1';
/** Advisory lock class of an organization's endpoint count (two-int4 keyspace). */
const ENDPOINTS_LOCK_CLASS = 0x77686b73; // 'whks'

export interface EndpointView {
  id: string;
  object: 'webhook_endpoint';
  url: string;
  events: string[];
  status: 'enabled' | 'disabled';
  description: string | null;
  createdAt: string;
  updatedAt: string;
  /** While a rotated-out secret still signs deliveries: until when. */
  previousSecretExpiresAt: string | null;
  /** Only in the create and rotate-secret responses. */
  secret?: string;
}

export interface AttemptView {
  id: string;
  startedAt: string;
  durationMs: number | null;
  /** The receiver's HTTP status; null when it did not answer (timeout, connection error, refused target). */
  responseStatus: number | null;
  /** The first 1 KiB of the receiver's answer. */
  responseBody: string | null;
  error: string | null;
  /** `unknown`: the node making the attempt stopped before it recorded the outcome. */
  outcome: 'succeeded' | 'failed' | 'unknown';
}

export interface DeliveryView {
  id: string;
  object: 'webhook_delivery';
  endpointId: string;
  eventId: string;
  eventType: string;
  status: 'pending' | 'succeeded' | 'failed';
  /** Attempts made so far (every one is recorded; the newest are in `recentAttempts`). */
  attempts: number;
  nextAttemptAt: string | null;
  lastAttemptAt: string | null;
  /** The last attempt's HTTP status, null when it got none. */
  responseStatus: number | null;
  lastError: string | null;
  createdAt: string;
  recentAttempts: AttemptView[];
}

export interface CreateEndpointInput {
  url: string;
  events: string[];
  description?: string | null;
}

export interface UpdateEndpointInput {
  url?: string;
  events?: string[];
  description?: string | null;
  status?: 'enabled' | 'disabled';
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toEndpointView(row: EndpointRow, secret?: string, now = new Date()): EndpointView {
  const previousLive = row.previous_secret_expires_at && row.previous_secret_expires_at > now ? row.previous_secret_expires_at : null;
  return {
    id: row.id,
    object: 'webhook_endpoint',
    url: row.url,
    events: row.events,
    status: row.status,
    description: row.description,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    previousSecretExpiresAt: iso(previousLive),
    ...(secret !== undefined ? { secret } : {}),
  };
}

const toAttemptView = (a: AttemptJson): AttemptView => ({
  id: a.id,
  startedAt: new Date(a.started_at).toISOString(),
  durationMs: a.duration_ms,
  responseStatus: a.response_status,
  responseBody: a.response_body,
  error: a.error,
  outcome: a.outcome ?? 'unknown',
});

export function toDeliveryView(row: DeliveryRow): DeliveryView {
  return {
    id: row.id,
    object: 'webhook_delivery',
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === 'pending' ? iso(row.next_attempt_at) : null,
    lastAttemptAt: iso(row.last_attempt_at),
    responseStatus: row.last_response_status,
    lastError: row.last_error,
    createdAt: row.created_at.toISOString(),
    recentAttempts: (row.recent ?? []).map(toAttemptView),
  };
}

/** `*` alone, or the named types de-duplicated and sorted (the schema checks each name). */
function normalizeEvents(events: readonly string[]): string[] {
  if (events.includes('*')) return ['*'];
  return [...new Set(events)].sort();
}

/**
 * The URL as audit events record it: origin and path. A receiver may carry a token of its own in
 * the query string, which the audit log has no need of.
 */
export function auditedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '';
  }
}

/** The associated data a secret is sealed under: it opens only in its own endpoint's row. */
export const secretAad = (endpointId: string) => `webhook_endpoint:${endpointId}`;

export interface WebhookServiceDeps {
  db: Database;
  work: Work;
  peppers: Peppers;
  /** PAYGATE_WEBHOOK_ALLOW_PRIVATE. */
  allowPrivate: boolean;
  /** DNS for the create-time check (bounded). */
  resolve: Resolver;
  /** Starts this node's worker now (a retry or a test was queued). */
  kick: () => void;
}

export class WebhookService {
  private readonly sealer: Sealer;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.sealer = new Sealer(deps.peppers, SECRET_SEAL_INFO);
  }

  /** Refuses a URL that is malformed or whose target the SSRF guard refuses: `400 validation_error` on `/url`. */
  private async checkUrl(value: string): Promise<string> {
    const parsed = parseTargetUrl(value);
    if ('error' in parsed) throw validationError([{ path: '/url', message: parsed.error }]);
    const target = await checkTarget(parsed.url, this.deps.allowPrivate, this.deps.resolve);
    if (!target.ok) {
      throw validationError([{ path: '/url', message: `is refused: ${target.reason} (webhooks are sent to public addresses only)` }]);
    }
    return parsed.url.href;
  }

  /** Tenant isolation: another organization's endpoint is "not found", never "forbidden". */
  private async find(q: Queryable, organizationId: string, id: string, lock: '' | 'FOR UPDATE' | 'FOR SHARE' = ''): Promise<EndpointRow> {
    const row = isId('webhookEndpoint', id) ? await store.findEndpoint(q, organizationId, id, lock) : null;
    if (!row) throw notFound('webhook endpoint');
    return row;
  }

  private audit(tx: UnitOfWork, ctx: RequestContext, row: EndpointRow, verb: 'created' | 'updated' | 'deleted' | 'secret_rotated', details: Record<string, unknown>): void {
    tx.audit({
      action: `webhook_endpoint.${verb}`,
      actor: ctx.actor,
      organizationId: row.organization_id,
      target: { type: 'webhook_endpoint', id: row.id },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details,
    });
  }

  async create(ctx: RequestContext, organizationId: string, input: CreateEndpointInput): Promise<EndpointView> {
    const url = await this.checkUrl(input.url);
    const events = normalizeEvents(input.events);
    const secret = newWebhookSecret();
    const id = newId('webhookEndpoint');
    const row = await this.deps.work.run(async (tx) => {
      // Counted and inserted under a lock per organization: two nodes cannot both take the last place.
      await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [ENDPOINTS_LOCK_CLASS, organizationId]);
      if ((await store.countEndpoints(tx, organizationId)) >= MAX_ENDPOINTS) {
        throw new AppError('conflict', `An organization has at most ${MAX_ENDPOINTS} webhook endpoints; delete one first`);
      }
      const created = await store.insertEndpoint(tx, {
        id,
        organizationId,
        url,
        events,
        description: input.description ?? null,
        secretSealed: this.sealer.seal(secret, secretAad(id)),
      });
      // Security: the audit event names the target and the events, never the secret.
      this.audit(tx, ctx, created, 'created', { url: auditedUrl(url), events });
      return created;
    });
    return toEndpointView(row, secret);
  }

  async list(organizationId: string, page: PageRequest) {
    if (page.startingAfter && !isId('webhookEndpoint', page.startingAfter)) throw notFound('webhook endpoint');
    const result = await store.listEndpoints(this.deps.db, organizationId, page);
    const now = new Date();
    return { ...result, data: result.data.map((row) => toEndpointView(row, undefined, now)) };
  }

  async get(organizationId: string, id: string): Promise<EndpointView> {
    return toEndpointView(await this.find(this.deps.db, organizationId, id));
  }

  async update(ctx: RequestContext, organizationId: string, id: string, input: UpdateEndpointInput): Promise<EndpointView> {
    const url = input.url !== undefined ? await this.checkUrl(input.url) : undefined;
    const events = input.events !== undefined ? normalizeEvents(input.events) : undefined;
    const row = await this.deps.work.run(async (tx) => {
      const before = await this.find(tx, organizationId, id, 'FOR UPDATE');
      const updated = await store.updateEndpoint(tx, id, { url, events, description: input.description, status: input.status });
      const fields = Object.keys(input).filter((k) => input[k as keyof UpdateEndpointInput] !== undefined);
      this.audit(tx, ctx, updated, 'updated', {
        fields,
        ...(url !== undefined ? { url: { from: auditedUrl(before.url), to: auditedUrl(url) } } : {}),
        ...(events !== undefined ? { events: { from: before.events, to: updated.events } } : {}),
        ...(input.status !== undefined ? { status: { from: before.status, to: updated.status } } : {}),
      });
      return updated;
    });
    if (row.status === 'enabled') this.deps.kick();
    return toEndpointView(row);
  }

  async delete(ctx: RequestContext, organizationId: string, id: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const row = await this.find(tx, organizationId, id, 'FOR UPDATE');
      await store.deleteEndpoint(tx, id);
      this.audit(tx, ctx, row, 'deleted', { url: auditedUrl(row.url), events: row.events });
    });
  }

  async rotateSecret(ctx: RequestContext, organizationId: string, id: string, input: { gracePeriodMinutes?: number }): Promise<EndpointView> {
    const grace = input.gracePeriodMinutes ?? DEFAULT_SECRET_GRACE_MINUTES;
    if (!Number.isInteger(grace) || grace < 0 || grace > MAX_SECRET_GRACE_MINUTES) {
      throw validationError([{ path: '/gracePeriodMinutes', message: `must be an integer from 0 to ${MAX_SECRET_GRACE_MINUTES}` }]);
    }
    const secret = newWebhookSecret();
    const row = await this.deps.work.run(async (tx) => {
      // FOR UPDATE serialises rotations: at most the current and one previous secret are ever live.
      const current = await this.find(tx, organizationId, id, 'FOR UPDATE');
      // Rotating again ends the older previous secret at once: only the current one carries over.
      const previous = grace > 0 ? { sealed: current.secret_sealed, graceMinutes: grace } : null;
      const rotated = await store.rotateEndpointSecret(tx, id, this.sealer.seal(secret, secretAad(id)), previous);
      this.audit(tx, ctx, rotated, 'secret_rotated', { gracePeriodMinutes: grace, previousSecretExpiresAt: iso(rotated.previous_secret_expires_at) });
      return rotated;
    });
    return toEndpointView(row, secret);
  }

  async listDeliveries(organizationId: string, endpointId: string, filter: PageRequest & { status?: DeliveryView['status'] }) {
    await this.find(this.deps.db, organizationId, endpointId);
    if (filter.startingAfter && !isId('webhookDelivery', filter.startingAfter)) throw notFound('webhook delivery');
    const result = await store.listDeliveries(this.deps.db, organizationId, endpointId, filter);
    return { ...result, data: result.data.map(toDeliveryView) };
  }

  /**
   * A manual retry: the delivery is attempted again now, whatever its state (a succeeded one is sent
   * again). If that attempt fails, the delivery goes on with its schedule, or fails at once when its
   * 3 days are over. The endpoint must be enabled (`409` otherwise), and no attempt of the delivery
   * may be in flight (`409`).
   */
  async retry(organizationId: string, endpointId: string, deliveryId: string): Promise<DeliveryView> {
    const row = await this.deps.db.transaction(async (tx) => {
      const endpoint = await this.find(tx, organizationId, endpointId, 'FOR SHARE');
      const delivery = isId('webhookDelivery', deliveryId) ? await store.findDelivery(tx, organizationId, endpointId, deliveryId, true) : null;
      if (!delivery) throw notFound('webhook delivery');
      if (endpoint.status !== 'enabled') throw new AppError('conflict', 'This endpoint is disabled; enable it (PATCH status "enabled") before retrying its deliveries');
      const [inFlight] = await tx.query<{ yes: boolean }>('SELECT claim_expires_at > now() AS yes FROM webhook_deliveries WHERE id = $1', [deliveryId]);
      if (inFlight?.yes) throw new AppError('conflict', 'An attempt of this delivery is in progress; retry once it has finished');
      await store.scheduleNow(tx, deliveryId);
      return store.getDelivery(tx, deliveryId);
    });
    this.deps.kick();
    return toDeliveryView(row);
  }

  /**
   * Sends a test event to this endpoint alone, whatever it subscribes to: type
   * `webhook_endpoint.test`, `data.object` the endpoint (no secret). Signed and retried like any
   * other delivery. The endpoint must be enabled (`409` otherwise).
   */
  async sendTest(organizationId: string, endpointId: string): Promise<DeliveryView> {
    const row = await this.deps.db.transaction(async (tx) => {
      const endpoint = await this.find(tx, organizationId, endpointId, 'FOR SHARE');
      if (endpoint.status !== 'enabled') throw new AppError('conflict', 'This endpoint is disabled; enable it (PATCH status "enabled") to send it a test event');
      const event = prepareEvent({ type: TEST_EVENT_TYPE, organizationId, object: toEndpointView(endpoint) });
      const deliveryId = newId('webhookDelivery');
      await store.insertTestDelivery(tx, { eventId: event.id, organizationId, type: event.type, body: event.body, deliveryId, endpointId });
      return store.getDelivery(tx, deliveryId);
    });
    this.deps.kick();
    return toDeliveryView(row);
  }
}
