/**
 * Invoices (SPEC §10): lines with quantity and unit amount, totals computed here in integer minor
 * units, draft -> open (finalize) -> paid (a checkout for it succeeds) | void.
 */
import type { Database, Queryable } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';
import { AppError, notFound } from '../../errors.js';
import { isId } from '../../ids.js';
import type { ClientService } from '../clients/service.js';

export interface InvoiceLine {
  description: string;
  quantity: number;
  unitAmount: number;
}

export interface InvoiceView {
  id: string;
  object: 'invoice';
  clientId: string;
  status: 'draft' | 'open' | 'paid' | 'void';
  currency: string;
  lines: InvoiceLine[];
  total: number;
  dueAt: string | null;
  recurringScheduleId: string | null;
  finalizedAt: string | null;
  paidAt: string | null;
  voidedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface InvoiceRow {
  id: string;
  organization_id: string;
  client_id: string;
  status: InvoiceView['status'];
  currency: string;
  lines: InvoiceLine[];
  total: number;
  due_at: Date | null;
  recurring_schedule_id: string | null;
  finalized_at: Date | null;
  paid_at: Date | null;
  voided_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const toInvoiceView = (r: InvoiceRow): InvoiceView => ({
  id: r.id,
  object: 'invoice',
  clientId: r.client_id,
  status: r.status,
  currency: r.currency,
  lines: r.lines,
  total: r.total,
  dueAt: iso(r.due_at),
  recurringScheduleId: r.recurring_schedule_id,
  finalizedAt: iso(r.finalized_at),
  paidAt: iso(r.paid_at),
  voidedAt: iso(r.voided_at),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export class InvoiceService {
  constructor(protected readonly deps: { db: Database; bus: InvalidationBus; clients: ClientService }) {}

  /** An invoice of this organization, optionally row-locked in the caller's transaction; 404 otherwise. */
  async get(db: Queryable, organizationId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<InvoiceView> {
    const rows = isId('invoice', id)
      ? await db.query<InvoiceRow>(
          `SELECT * FROM invoices WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL${options.forUpdate ? ' FOR UPDATE' : ''}`,
          [id, organizationId],
        )
      : [];
    if (!rows[0]) throw notFound('invoice');
    return toInvoiceView(rows[0]);
  }

  /** Checkouts: marks an open invoice paid in the payment's transaction. */
  async markPaid(tx: Queryable, organizationId: string, id: string): Promise<void> {
    const invoice = await this.get(tx, organizationId, id, { forUpdate: true });
    if (invoice.status === 'paid') return;
    if (invoice.status !== 'open') throw new AppError('conflict', `Invoice ${id} is ${invoice.status}, not open`);
    await tx.query("UPDATE invoices SET status = 'paid', paid_at = now(), updated_at = now() WHERE id = $1", [id]);
  }

  /** The portal: a client's invoices that are not drafts, newest first. */
  async listForClient(organizationId: string, clientId: string): Promise<InvoiceView[]> {
    const rows = await this.deps.db.query<InvoiceRow>(
      `SELECT * FROM invoices WHERE organization_id = $1 AND client_id = $2 AND deleted_at IS NULL AND status <> 'draft'
       ORDER BY created_at DESC, id DESC LIMIT 200`,
      [organizationId, clientId],
    );
    return rows.map(toInvoiceView);
  }
}
