/**
 * The unit of work: one change, one transaction, with its audit events and its cache invalidations.
 *
 * A change runs its own statements through `uow.query`, and declares what it audits (`uow.audit`)
 * and what it invalidates (`uow.publish`). Both are buffered and written at commit, in one fixed
 * order, by this module alone:
 *
 *   1. the change's own statements (its row locks)
 *   2. the audit events, under the chain head's row lock          (cluster-wide)
 *   3. the invalidations, under the publish advisory lock          (cluster-wide)
 *   4. COMMIT; then the invalidations are applied on this node and acknowledged by every live peer
 *
 * Because the shape of the code fixes the order, two changes can never take the two cluster-wide
 * locks in opposite orders (which deadlocked when organization deletion published before it audited).
 * Because they are taken last, they are held for the few statements before COMMIT, not across the
 * change's own round trips: a node that stalls in the middle of a change holds only its own rows,
 * and one that stalls in the commit phase is ended by the server's idle-in-transaction bound.
 *
 * The rule beside it: plain `db.transaction` is for work that neither audits nor invalidates
 * (snapshots, background bookkeeping). Its handle has no `audit` or `publish`, so a change that
 * needs them cannot be written on it by mistake.
 */
import type { Database, Queryable, TransactionOptions } from './db/database.js';
import type { AuditChain } from './audit/record.js';
import type { AuditInput } from './audit/events.js';
import type { Invalidation, InvalidationBus } from './cache/invalidation.js';

export interface UnitOfWork extends Queryable {
  /** Records an audit event; it is appended to the chain when the unit commits, never otherwise. */
  audit(input: AuditInput): void;
  /** Drops cached state on every node: applied once the unit commits, before `run` resolves. */
  publish(...invalidations: Invalidation[]): void;
}

export class Work {
  constructor(private readonly deps: { db: Database; bus: InvalidationBus; chain: AuditChain }) {}

  /**
   * Runs `fn` as one unit of work. Resolves after COMMIT and, when it published invalidations, after
   * every live node has applied them (or has stopped trusting its caches): a response sent after it
   * reflects the change on every node.
   */
  async run<T>(fn: (uow: UnitOfWork) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const audits: AuditInput[] = [];
    const invalidations: Invalidation[] = [];
    let seq = 0;
    const result = await this.deps.db.transaction(async (tx) => {
      const uow: UnitOfWork = {
        query: (sql, params) => tx.query(sql, params),
        audit: (input) => void audits.push(input),
        publish: (...items) => void invalidations.push(...items),
      };
      const value = await fn(uow);
      // The commit phase: cluster-wide locks, always in this order, as late as possible.
      await this.deps.chain.append(tx, audits);
      if (invalidations.length > 0) seq = await this.deps.bus.publishWithin(tx, invalidations);
      return value;
    }, options);
    if (invalidations.length > 0) await this.deps.bus.settle(invalidations, seq);
    return result;
  }
}
