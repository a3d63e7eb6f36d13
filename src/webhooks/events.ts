/**
 * Webhook events (SPEC §16): their types and their one JSON shape,
 * `{ id: "wev_...", object: "event", type, createdAt, organizationId, data: { object } }`.
 *
 * `data.object` is the view the API returns for that object at the moment of the change, never
 * with a secret in it (a created key's event carries the key without `secret`). The body is
 * serialised once, when the change emits it, and delivered byte for byte the same on every attempt:
 * the signature covers the raw body, so a retry never re-serialises.
 */
import { newId } from '../ids.js';

export const WEBHOOK_EVENT_TYPES = [
  'api_key.created',
  'api_key.updated',
  'api_key.rotated',
  'api_key.revoked',
  'api_key.deleted',
  // Defined now, emitted by the leaked-key and key-hygiene work (SPEC §13, §14).
  'api_key.leaked',
  'api_key.quarantined',
  'api_key.expiring',
  'checkout.completed',
  'checkout.expired',
  'transaction.succeeded',
  'transaction.failed',
  'refund.created',
  'invoice.finalized',
  'invoice.paid',
  'invoice.voided',
  'portal_link.redeemed',
  'data_io.job_completed',
  'data_io.job_failed',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * The type of the event `POST /v1/webhook-endpoints/{id}/test` sends: to that endpoint alone,
 * whatever it subscribes to. No change causes it, so no endpoint can subscribe to it.
 */
export const TEST_EVENT_TYPE = 'webhook_endpoint.test';

export function isWebhookEventType(value: string): value is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

/** What a change emits: the type, the organization it happened in, and the object as the API shows it. */
export interface EventInput {
  type: WebhookEventType;
  organizationId: string;
  /** The API view of the object, secrets excluded (`{ id, object: "api_key", ... }`). */
  object: { id: string; object: string };
}

/** An event ready to be stored: its id, its type and organization, and the exact body to deliver. */
export interface PreparedEvent {
  id: string;
  type: string;
  organizationId: string;
  body: string;
}

/** Serialises an event now: a snapshot of the object as it is at the change, never re-read later. */
export function prepareEvent(input: { type: string; organizationId: string; object: object }, createdAt = new Date()): PreparedEvent {
  const id = newId('webhookEvent');
  const body = JSON.stringify({
    id,
    object: 'event',
    type: input.type,
    createdAt: createdAt.toISOString(),
    organizationId: input.organizationId,
    data: { object: input.object },
  });
  return { id, type: input.type, organizationId: input.organizationId, body };
}
