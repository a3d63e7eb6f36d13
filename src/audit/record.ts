/**
 * Appending to the hash-chained audit log. Callers pass the transaction that makes the change, so an
 * event exists exactly when its change does. Each event's hash covers the previous event's hash and a
 * canonical form of its own fields; changing, removing or reordering a row breaks the chain.
 *
 * The chain is keyed: HMAC-SHA256 with a key derived from the secret pepper. Whoever can write to the
 * database but does not hold the pepper cannot rewrite an event and recompute a chain that verifies.
 */
import { createHmac } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import { newId } from '../ids.js';
import type { AuditEvent, AuditInput } from './events.js';

/** JSON with object keys sorted at every depth: jsonb does not keep key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

let chainKey: Buffer | null = null;

/** Set once at start from the pepper (services.ts); every node of a deployment derives the same key. */
export function setAuditChainKey(key: Buffer): void {
  chainKey = key;
}

export function eventHash(prevHash: string, event: AuditEvent): string {
  // Fail closed: an unkeyed chain would silently lose its protection.
  if (!chainKey) throw new Error('the audit chain key is not configured');
  const { object: _object, ...fields } = event;
  return createHmac('sha256', chainKey).update(prevHash).update('\n').update(canonicalJson(fields)).digest('hex');
}

/**
 * PostgreSQL text and jsonb hold neither U+0000 nor lone surrogates; an attacker-chosen value (a
 * route parameter recorded in a refusal) must not make the insert fail and the refusal go unrecorded.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const text = (value: string): string => value.replace(UNSTORABLE, '\uFFFD');

/**
 * The value exactly as jsonb will give it back: JSON round trip (Dates become strings, undefined
 * entries disappear) and nothing PostgreSQL cannot store. The hash is computed over this form, so it still
 * verifies when the row is read back.
 */
function storable<T>(value: T): T {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) => {
    if (typeof v === 'string') return text(v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).map(([k, inner]) => [text(k), inner]));
    }
    return v;
  }) as T;
}

export async function recordAudit(tx: Queryable, input: AuditInput): Promise<AuditEvent> {
  // Row lock on the chain head: appends are serialised, so every event links to its predecessor.
  // Taken before the timestamp, so `at` follows the order of the chain (on one node's clock).
  const [head] = await tx.query<{ hash: string }>('SELECT hash FROM audit_chain_head WHERE id = 1 FOR UPDATE');
  const event: AuditEvent = {
    id: newId('event'),
    object: 'audit_event',
    at: new Date().toISOString(),
    action: input.action,
    actor: { type: input.actor.type, id: input.actor.id === null ? null : text(input.actor.id) },
    organizationId: input.organizationId === null ? null : text(input.organizationId),
    target: input.target ? storable(input.target) : null,
    ip: input.ip == null ? null : text(input.ip),
    requestId: input.requestId == null ? null : text(input.requestId),
    outcome: input.outcome ?? 'success',
    details: storable(input.details ?? {}),
  };
  const hash = eventHash(head!.hash, event);
  const [row] = await tx.query<{ seq: number }>(
    `INSERT INTO audit_events (id, at, action, actor_type, actor_id, organization_id, target, ip, request_id,
       outcome, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING seq`,
    [
      event.id,
      event.at,
      event.action,
      event.actor.type,
      event.actor.id,
      event.organizationId,
      event.target ? JSON.stringify(event.target) : null,
      event.ip,
      event.requestId,
      event.outcome,
      JSON.stringify(event.details),
      head!.hash,
      hash,
    ],
  );
  await tx.query('UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1', [row!.seq, hash]);
  return event;
}
