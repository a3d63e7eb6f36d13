/**
 * The unit of work: one change, one transaction, with its audit events and its cache invalidations.
 *
 * A change runs its own statements through `uow.query`, and declares what it audits (`uow.audit`),
 * what it invalidates (`uow.publish`) and which webhook events it causes (`uow.emit`). All three are
 * buffered and written at commit, in one fixed order, by this module alone:
 *
 *   1. the change's own statements (its row locks)
 *   2. the webhook events, into the outbox                         (no lock beyond the new rows)
 *   3. the audit events, under the chain head's row lock          (cluster-wide)
 *   4. the invalidations, under the publish advisory lock          (cluster-wide)
 *   5. COMMIT; then the invalidations are applied on this node and acknowledged by every live peer,
 *      and this node's webhook worker is told there are events to deliver
 *
 * Because the shape of the code fixes the order, two changes can never take the two cluster-wide
 * locks in opposite orders (which deadlocked when organization deletion published before it audited).
 * Because they are taken last, they are held for the few statements before COMMIT, not across the
 * change's own round trips: a node that stalls in the middle of a change holds only its own rows,
 * and one that stalls in the commit phase is ended by the server's idle-in-transaction bound.
 *
 * Events are written in the change's transaction (src/webhooks/outbox.ts): never sent for a change
 * that rolled back, never lost for one that committed. They take no cluster-wide lock, so they go
 * before the audit append and keep the time the chain head is held as short as before.
 *
 * The rule beside it: plain `db.transaction` is for work that neither audits, invalidates nor emits
 * (snapshots, background bookkeeping). Its handle has no `audit`, `publish` or `emit`, so a change
 * that needs them cannot be written on it by mistake.
 */
import type { Database, Queryable, TransactionOptions } from './db/database.js';
import type { AuditChain } from './audit/record.js';
import type { AuditInput } from './audit/events.js';
import type { Invalidation, InvalidationBus } from './cache/invalidation.js';
import { prepareEvent, type EventInput, type PreparedEvent } from './webhooks/events.js';
import { writeEvents } from './webhooks/outbox.js';

export interface UnitOfWork extends Queryable {
  /** Records an audit event; it is appended to the chain when the unit commits, never otherwise. */
  audit(input: AuditInput): void;
  /** Drops cached state on every node: applied once the unit commits, before `run` resolves. */
  publish(...invalidations: Invalidation[]): void;
  /**
   * Records a webhook event (SPEC §16); its body is serialised now, a snapshot of `object`. It is
   * written to the outbox when the unit commits, never otherwise. Returns the event's id.
   */
  emit(event: EventInput): string;
}

export class Work {
  private readonly emitted: Array<() => void> = [];

  constructor(private readonly deps: { db: Database; bus: InvalidationBus; chain: AuditChain }) {}

  /** Called after every commit that wrote webhook events (the local delivery worker starts at once). */
  onEmitted(listener: () => void): void {
    this.emitted.push(listener);
  }

  /**
   * Runs `fn` as one unit of work. Resolves after COMMIT and, when it published invalidations, after
   * every live node has applied them (or has stopped trusting its caches): a response sent after it
   * reflects the change on every node.
   */
  async run<T>(fn: (uow: UnitOfWork) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const audits: AuditInput[] = [];
    const invalidations: Invalidation[] = [];
    const events: PreparedEvent[] = [];
    let seqs: number[] = [];
    const result = await this.deps.db.transaction(async (tx) => {
      const uow: UnitOfWork = {
        query: (sql, params) => tx.query(sql, params),
        audit: (input) => void audits.push(input),
        publish: (...items) => void invalidations.push(...items),
        emit: (input) => {
          const event = prepareEvent(input);
          events.push(event);
          return event.id;
        },
      };
      const value = await fn(uow);
      // The commit phase: the outbox (no shared lock), then the cluster-wide locks, always in this
      // order, as late as possible.
      await writeEvents(tx, events);
      await this.deps.chain.append(tx, audits);
      if (invalidations.length > 0) seqs = await this.deps.bus.publishWithin(tx, invalidations);
      return value;
    }, options);
    if (events.length > 0) for (const listener of this.emitted) listener();
    if (invalidations.length > 0) await this.deps.bus.settle(invalidations, seqs);
    return result;
  }
}
