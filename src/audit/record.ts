/**
 * The hash-chained audit log's writer. Events reach it only through the unit of work
 * (src/unit-of-work.ts), which appends them in the change's own transaction, at commit: an event
 * exists exactly when its change does. Each event's hash covers the previous event's hash and a
 * canonical form of its own fields; changing, removing or reordering a row breaks the chain.
 *
 * The chain is keyed: HMAC-SHA256 with a key derived from the secret pepper. Whoever can write to the
 * database but does not hold the pepper cannot rewrite an event and recompute a chain that verifies.
 */
import { createHmac } from 'node:crypto';
import type { Queryable } from '../db/database.js';
import { canonicalJson } from '../canonical-json.js';
import { newId } from '../ids.js';
import type { AuditEvent, AuditInput } from './events.js';

/**
 * PostgreSQL text and jsonb hold neither U+0000 nor lone surrogates; an attacker-chosen value (a
 * route parameter recorded in a refusal) must not make the insert fail and the refusal go unrecorded.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const text = (value: string): string => value.replace(UNSTORABLE, '\uFFFD');

/**
 * The value exactly as jsonb will give it back: JSON round trip (Dates become strings, undefined
 * entries disappear) and nothing PostgreSQL cannot store. The hash is computed over this form, so it
 * still verifies when the row is read back.
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

const COLUMNS = ['id', 'at', 'action', 'actor_type', 'actor_id', 'organization_id', 'target', 'ip', 'request_id', 'outcome', 'details', 'prev_hash', 'hash'];

/** Requests in flight whose caller sent an X-Request-Id of its own; bounded however requests end. */
const MAX_CLIENT_REQUEST_IDS = 10_000;

export class AuditChain {
  /** Paygate's request id -> the caller's own X-Request-Id, while the request is in flight. */
  private readonly clientRequestIds = new Map<string, string>();

  /** @param key the chain's HMAC key, derived from the pepper: every node of a deployment has the same. */
  constructor(private readonly key: Buffer) {}

  /**
   * While request `requestId` is in flight, its events carry the caller's own id as
   * `details.clientRequestId` (the event's `requestId` is always Paygate's: src/http/server.ts).
   */
  noteClientRequestId(requestId: string, clientRequestId: string): void {
    if (this.clientRequestIds.size >= MAX_CLIENT_REQUEST_IDS) this.clientRequestIds.delete(this.clientRequestIds.keys().next().value!);
    this.clientRequestIds.set(requestId, clientRequestId);
  }

  forgetClientRequestId(requestId: string): void {
    this.clientRequestIds.delete(requestId);
  }

  /** How many requests' own ids are held: zero once every request that sent one is answered. */
  get heldClientRequestIds(): number {
    return this.clientRequestIds.size;
  }

  hash(prevHash: string, event: AuditEvent): string {
    const { object: _object, ...fields } = event;
    return createHmac('sha256', this.key).update(prevHash).update('\n').update(canonicalJson(fields)).digest('hex');
  }

  /**
   * Appends events in order. Takes the chain head's row lock (appends are serialised, so every event
   * links to its predecessor) and holds it to the end of the transaction: the unit of work calls this
   * last, so the lock is held for the few statements before COMMIT and no longer.
   */
  async append(tx: Queryable, inputs: readonly AuditInput[]): Promise<AuditEvent[]> {
    if (inputs.length === 0) return [];
    const [head] = await tx.query<{ hash: string }>('SELECT hash FROM audit_chain_head WHERE id = 1 FOR UPDATE');
    // Taken after the lock, so `at` follows the order of the chain (on one node's clock).
    const at = new Date().toISOString();
    let prev = head!.hash;
    const events: AuditEvent[] = [];
    const params: unknown[] = [];
    const rows: string[] = [];
    for (const input of inputs) {
      const clientRequestId = input.requestId == null ? undefined : this.clientRequestIds.get(input.requestId);
      const event: AuditEvent = {
        id: newId('event'),
        object: 'audit_event',
        at,
        action: input.action,
        actor: { type: input.actor.type, id: input.actor.id === null ? null : text(input.actor.id) },
        organizationId: input.organizationId === null ? null : text(input.organizationId),
        target: input.target ? storable(input.target) : null,
        ip: input.ip == null ? null : text(input.ip),
        requestId: input.requestId == null ? null : text(input.requestId),
        outcome: input.outcome ?? 'success',
        details: storable(clientRequestId === undefined ? (input.details ?? {}) : { ...input.details, clientRequestId }),
      };
      const hash = this.hash(prev, event);
      const values = [
        event.id, event.at, event.action, event.actor.type, event.actor.id, event.organizationId,
        event.target ? JSON.stringify(event.target) : null, event.ip, event.requestId, event.outcome,
        JSON.stringify(event.details), prev, hash,
      ];
      rows.push(`(${values.map((value) => `$${params.push(value)}`).join(', ')})`);
      events.push(event);
      prev = hash;
    }
    // One statement for the rows and the new head: one round trip while the lock is held.
    await tx.query(
      `WITH appended AS (INSERT INTO audit_events (${COLUMNS.join(', ')}) VALUES ${rows.join(', ')} RETURNING seq)
       UPDATE audit_chain_head SET seq = (SELECT max(seq) FROM appended), hash = $${params.push(prev)} WHERE id = 1`,
      params,
    );
    return events;
  }
}
