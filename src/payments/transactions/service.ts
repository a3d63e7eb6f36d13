/**
 * Transactions (SPEC §10): every payment attempt on a checkout is one transaction, `succeeded` or
 * `failed`. Refunds draw down a succeeded transaction; the database guarantees that the refunded
 * total never exceeds the amount, whatever the concurrency (guarded UPDATE + the table's CHECK).
 */
import { listNewestFirst } from '../../db/pages.js';
import type { Database, Queryable } from '../../db/database.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import type { RequestContext } from '../../auth/context.js';
import { AppError, notFound, validationError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import type { PaymentProcessor } from '../processor/processor.js';

export interface TransactionView {
  id: string;
  object: 'transaction';
  status: 'succeeded' | 'failed';
  amount: number;
  amountRefunded: number;
  currency: string;
  checkoutId: string | null;
  clientId: string | null;
  invoiceId: string | null;
  /** Why a failed attempt failed (`card_declined`, `insufficient_funds`, `invalid_number`, ...); null when it succeeded. */
  failureCode: string | null;
  /** Brand and last four digits only: the full card number is never stored. Null when the number was invalid. */
  card: { brand: string | null; last4: string } | null;
  metadata: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface RefundView {
  id: string;
  object: 'refund';
  transactionId: string;
  amount: number;
  currency: string;
  createdAt: string;
}

interface Row {
  id: string;
  organization_id: string;
  status: TransactionView['status'];
  amount: number;
  amount_refunded: number;
  currency: string;
  checkout_id: string | null;
  client_id: string | null;
  invoice_id: string | null;
  failure_code: string | null;
  card_last4: string | null;
  card_brand: string | null;
  processor: string;
  processor_reference: string | null;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date;
}

interface RefundRow {
  id: string;
  transaction_id: string;
  amount: number;
  created_at: Date;
}

export const toTransactionView = (r: Row): TransactionView => ({
  id: r.id,
  object: 'transaction',
  status: r.status,
  amount: r.amount,
  amountRefunded: r.amount_refunded,
  currency: r.currency,
  checkoutId: r.checkout_id,
  clientId: r.client_id,
  invoiceId: r.invoice_id,
  failureCode: r.failure_code,
  card: r.card_last4 ? { brand: r.card_brand, last4: r.card_last4 } : null,
  metadata: r.metadata,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const toRefundView = (r: RefundRow, currency: string): RefundView => ({
  id: r.id,
  object: 'refund',
  transactionId: r.transaction_id,
  amount: r.amount,
  currency,
  createdAt: r.created_at.toISOString(),
});

/** One payment attempt as the checkout flow records it. */
export interface AttemptInput {
  id: string;
  status: 'succeeded' | 'failed';
  amount: number;
  currency: string;
  checkoutId: string;
  clientId: string | null;
  invoiceId: string | null;
  failureCode: string | null;
  cardBrand: string | null;
  cardLast4: string | null;
  processor: string;
  processorReference: string | null;
}

export interface TransactionFilter {
  limit: number;
  startingAfter: string | null;
  status?: 'succeeded' | 'failed';
  clientId?: string;
  checkoutId?: string;
  invoiceId?: string;
}

export class TransactionService {
  constructor(protected readonly deps: { db: Database; work: Work }) {}

  /** Checkouts: records an attempt in the payment's transaction. */
  async recordAttempt(tx: Queryable, organizationId: string, input: AttemptInput): Promise<TransactionView> {
    const [row] = await tx.query<Row>(
      `INSERT INTO transactions (id, organization_id, status, amount, currency, checkout_id, client_id, invoice_id,
         failure_code, card_brand, card_last4, processor, processor_reference)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
      [
        input.id,
        organizationId,
        input.status,
        input.amount,
        input.currency,
        input.checkoutId,
        input.clientId,
        input.invoiceId,
        input.failureCode,
        input.cardBrand,
        input.cardLast4,
        input.processor,
        input.processorReference,
      ],
    );
    return toTransactionView(row!);
  }

  async list(organizationId: string, filter: TransactionFilter) {
    return listNewestFirst(this.deps.db, {
      table: 'transactions',
      organizationId,
      filters: [['status', filter.status], ['client_id', filter.clientId], ['checkout_id', filter.checkoutId], ['invoice_id', filter.invoiceId]],
      page: filter,
      what: 'transaction',
      map: toTransactionView,
    });
  }


  /** Tenant isolation: another organization's transaction is "not found". */
  async get(db: Queryable, organizationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<TransactionView> {
    return toTransactionView(await this.row(db, organizationId, id, options));
  }

  private async row(db: Queryable, organizationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<Row> {
    const rows = isId('transaction', id)
      ? await db.query<Row>(`SELECT * FROM transactions WHERE id = $1 AND organization_id = $2${options.forUpdate ? ' FOR UPDATE' : ''}`, [
          id,
          organizationId,
        ])
      : [];
    if (!rows[0]) throw notFound('transaction');
    return rows[0];
  }

  /** Metadata is the only changeable field; the new object replaces the old one (as for clients). */
  async updateMetadata(organizationId: string, id: string, metadata: Record<string, string>): Promise<TransactionView> {
    return this.deps.work.run(async (tx) => {
      await this.row(tx, organizationId, id);
      const [row] = await tx.query<Row>(
        'UPDATE transactions SET metadata = $3, updated_at = now() WHERE id = $1 AND organization_id = $2 RETURNING *',
        [id, organizationId, JSON.stringify(metadata)],
      );
      return toTransactionView(row!);
    });
  }

  /**
   * Refunds `amount` (default: what remains) of a succeeded transaction, in the caller's transaction
   * (which also holds the Idempotency-Key row), with its audit event.
   * Concurrency: the row is locked first, so refunds of one transaction are serialised and "what
   * remains" is exact; the UPDATE is guarded as well, and the table's CHECK
   * (amount_refunded <= amount) is the last line: no interleaving can refund more than was captured.
   * `processor` is the one that captured the payment (services.payments.processor).
   */
  async refund(
    tx: UnitOfWork,
    ctx: RequestContext,
    processor: PaymentProcessor,
    organizationId: string,
    id: string,
    requested: number | undefined,
  ): Promise<RefundView> {
    const txn = await this.row(tx, organizationId, id, { forUpdate: true });
    if (txn.processor !== processor.name) {
      throw new AppError('conflict', `This transaction was captured by the ${txn.processor} processor, which is not the one configured`);
    }
    if (txn.status !== 'succeeded') {
      throw validationError([{ path: '/amount', message: 'this transaction failed: nothing was captured, so nothing can be refunded' }]);
    }
    const remaining = txn.amount - txn.amount_refunded;
    if (remaining <= 0) throw validationError([{ path: '/amount', message: 'this transaction is already fully refunded' }]);
    const amount = requested ?? remaining;
    if (amount > remaining) {
      throw validationError([{ path: '/amount', message: `must be at most ${remaining}, what remains to refund` }]);
    }
    const updated = await tx.query<{ amount_refunded: number }>(
      `UPDATE transactions SET amount_refunded = amount_refunded + $3, updated_at = now()
       WHERE id = $1 AND organization_id = $2 AND status = 'succeeded' AND amount_refunded + $3 <= amount
       RETURNING amount_refunded`,
      [id, organizationId, amount],
    );
    if (updated.length === 0) throw validationError([{ path: '/amount', message: 'is more than what remains to refund' }]);
    const refundId = newId('refund');
    // Last: the processor moves money only once the amount is reserved; if it refuses, all rolls back.
    const result = await processor.refund({
      chargeReference: txn.processor_reference ?? txn.id,
      amount,
      currency: txn.currency,
      reference: refundId,
    });
    const [row] = await tx.query<RefundRow>(
      'INSERT INTO refunds (id, organization_id, transaction_id, amount, processor_reference) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [refundId, organizationId, id, amount, result.processorReference],
    );
    tx.audit({
      action: 'refund.created',
      actor: ctx.actor,
      organizationId,
      target: { type: 'refund', id: refundId },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details: { transactionId: id, amount, currency: txn.currency, amountRefunded: updated[0]!.amount_refunded },
    });
    const refund = toRefundView(row!, txn.currency);
    tx.emit({ type: 'refund.created', organizationId, object: refund });
    return refund;
  }
}
