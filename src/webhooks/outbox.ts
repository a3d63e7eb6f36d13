/**
 * The outbox: events are rows written by the unit of work (src/unit-of-work.ts) in the change's own
 * transaction, at commit. An event therefore exists exactly when its change does: a change that
 * rolls back leaves none, and one that committed keeps it even if its node dies the next instant.
 *
 * Writing an event is one INSERT and takes no cluster-wide lock. Fanning it out to the endpoints
 * that subscribe to it is the delivery worker's job (worker.ts), on any node, after the commit, so
 * the change pays for one statement whatever the number of endpoints.
 */
import type { Queryable } from '../db/database.js';
import type { PreparedEvent } from './events.js';

export async function writeEvents(tx: Queryable, events: readonly PreparedEvent[]): Promise<void> {
  if (events.length === 0) return;
  const params: unknown[] = [];
  const rows = events.map((event) => {
    params.push(event.id, event.organizationId, event.type, event.body);
    const n = params.length;
    return `($${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
  });
  await tx.query(`INSERT INTO webhook_events (id, organization_id, type, body) VALUES ${rows.join(', ')}`, params);
}
