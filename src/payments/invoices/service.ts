/**
 * Invoices (SPEC §10): lines with quantity and unit amount, totals computed here in integer minor
 * units, draft -> open (finalize) -> paid (a checkout for it succeeds) | void.
 *
 * Only drafts change (PATCH) or disappear (DELETE); an open invoice is voided instead, so every
 * invoice a client was ever shown stays in the books.
 */
import { listNewestFirst } from '../../db/pages.js';
import type { Database, Queryable } from '../../db/database.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import { AppError, notFound, validationError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import { MAX_AMOUNT } from '../money.js';
import type { ClientService } from '../clients/service.js';
import { normalizeLines, totalOf, type InvoiceLine } from './lines.js';

export type { InvoiceLine } from './lines.js';

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
  /** For an invoice issued by a recurring schedule: the scheduled instant of the run that issued it. */
  recurringPeriodStart: string | null;
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
  recurring_period_start: Date | null;
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
  recurringPeriodStart: iso(r.recurring_period_start),
  finalizedAt: iso(r.finalized_at),
  paidAt: iso(r.paid_at),
  voidedAt: iso(r.voided_at),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export type InvoiceStatus = InvoiceView['status'];

/** POST /v1/invoices. Lines are validated by LinesInput (../schemas.ts) at the edge; the total is ours to compute. */
export interface InvoiceInput {
  clientId: string;
  currency: string;
  lines: InvoiceLine[];
  dueAt?: string | null;
}

/** An invoice issued by a recurring schedule run: open at once, and unique per (schedule, period). */
export interface RecurringIssue {
  clientId: string;
  currency: string;
  lines: InvoiceLine[];
  scheduleId: string;
  periodStart: Date;
}

export interface InvoicePage {
  limit: number;
  startingAfter: string | null;
  status?: InvoiceStatus;
  clientId?: string;
}

/** 400 naming the lines when their total is not a payable amount (0 or above MAX_AMOUNT). */
export function requireTotal(lines: readonly InvoiceLine[], path: string): number {
  const total = totalOf(lines);
  if (total === null) throw validationError([{ path, message: `the total must be between 1 and ${MAX_AMOUNT} minor units` }]);
  return total;
}

export class InvoiceService {
  constructor(protected readonly deps: { db: Database; work: Work; clients: ClientService }) {}

  /**
   * A draft invoice, in the caller's transaction (the Idempotency-Key's). The client must be one of
   * this organization's (404 otherwise: another tenant's client does not exist for us).
   */
  async create(tx: Queryable, organizationId: string, input: InvoiceInput): Promise<InvoiceView> {
    const total = requireTotal(input.lines, '/lines');
    await this.deps.clients.get(tx, organizationId, input.clientId);
    const [row] = await tx.query<InvoiceRow>(
      `INSERT INTO invoices (id, organization_id, client_id, status, currency, lines, total, due_at)
       VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7) RETURNING *`,
      [newId('invoice'), organizationId, input.clientId, input.currency, JSON.stringify(normalizeLines(input.lines)), total, input.dueAt ?? null],
    );
    return toInvoiceView(row!);
  }

  /**
   * Recurring schedules: an open (finalized) invoice for one run, in the run's transaction. Returns
   * null when this (schedule, period) already has its invoice: the UNIQUE constraint, not timing, is
   * what makes a double issue impossible.
   */
  async issueRecurring(tx: UnitOfWork, organizationId: string, issue: RecurringIssue): Promise<InvoiceView | null> {
    const total = requireTotal(issue.lines, '/template/lines');
    const rows = await tx.query<InvoiceRow>(
      `INSERT INTO invoices (id, organization_id, client_id, status, currency, lines, total, recurring_schedule_id, recurring_period_start, finalized_at)
       VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, now())
       ON CONFLICT (recurring_schedule_id, recurring_period_start) DO NOTHING
       RETURNING *`,
      [newId('invoice'), organizationId, issue.clientId, issue.currency, JSON.stringify(normalizeLines(issue.lines)), total, issue.scheduleId, issue.periodStart],
    );
    if (!rows[0]) return null;
    // Issued open: for a webhook receiver it is finalized, as a draft finalized by hand is.
    const view = toInvoiceView(rows[0]);
    tx.emit({ type: 'invoice.finalized', organizationId, object: view });
    return view;
  }

  /** Newest first, cursor-paginated; optional status and client filters. */
  async list(organizationId: string, page: InvoicePage) {
    return listNewestFirst(this.deps.db, {
      table: 'invoices',
      organizationId,
      conditions: ['deleted_at IS NULL'],
      filters: [['status', page.status], ['client_id', page.clientId]],
      page,
      what: 'invoice',
      map: toInvoiceView,
    });
  }


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

  /** Checkouts: marks an open invoice paid in the payment's unit of work, with its `invoice.paid` event. */
  async markPaid(tx: UnitOfWork, organizationId: string, id: string): Promise<void> {
    const invoice = await this.get(tx, organizationId, id, { forUpdate: true });
    if (invoice.status === 'paid') return;
    if (invoice.status !== 'open') throw new AppError('conflict', `Invoice ${id} is ${invoice.status}, not open`);
    const [row] = await tx.query<InvoiceRow>("UPDATE invoices SET status = 'paid', paid_at = now(), updated_at = now() WHERE id = $1 RETURNING *", [id]);
    tx.emit({ type: 'invoice.paid', organizationId, object: toInvoiceView(row!) });
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

  /** Drafts only: anything else is 409 (void an open invoice instead). */
  async update(organizationId: string, id: string, changes: Partial<InvoiceInput>): Promise<InvoiceView> {
    // Bad input is a 400 whatever the invoice's state, as with the schema's own checks.
    const newTotal = changes.lines ? requireTotal(changes.lines, '/lines') : null;
    return this.deps.work.run(async (tx) => {
      const invoice = await this.get(tx, organizationId, id, { forUpdate: true });
      requireStatus(invoice, 'draft', 'Only a draft invoice can be changed');
      const lines = changes.lines ?? invoice.lines;
      const total = newTotal ?? invoice.total;
      if (changes.clientId !== undefined) await this.deps.clients.get(tx, organizationId, changes.clientId);
      const [row] = await tx.query<InvoiceRow>(
        `UPDATE invoices SET client_id = $3, currency = $4, lines = $5, total = $6,
           due_at = CASE WHEN $7 THEN $8::timestamptz ELSE due_at END, updated_at = now()
         WHERE id = $1 AND organization_id = $2 RETURNING *`,
        [
          id,
          organizationId,
          changes.clientId ?? invoice.clientId,
          changes.currency ?? invoice.currency,
          JSON.stringify(normalizeLines(lines)),
          total,
          changes.dueAt !== undefined,
          changes.dueAt ?? null,
        ],
      );
      return toInvoiceView(row!);
    });
  }

  /** Drafts only (soft delete); an open invoice is voided instead. */
  async delete(organizationId: string, id: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const invoice = await this.get(tx, organizationId, id, { forUpdate: true });
      requireStatus(invoice, 'draft', 'Only a draft invoice can be deleted; void an open invoice instead');
      await tx.query('UPDATE invoices SET deleted_at = now(), updated_at = now() WHERE id = $1', [id]);
    });
  }

  /** draft -> open. The row lock makes two concurrent finalizes one success and one 409. */
  async finalize(organizationId: string, id: string): Promise<InvoiceView> {
    return this.transition(organizationId, id, 'draft', 'open', 'finalized_at', 'Only a draft invoice can be finalized');
  }

  /** open -> void (an extension to SPEC §10's table: the way to withdraw an invoice a client has seen). */
  async void(organizationId: string, id: string): Promise<InvoiceView> {
    return this.transition(organizationId, id, 'open', 'void', 'voided_at', 'Only an open invoice can be voided');
  }

  private async transition(
    organizationId: string,
    id: string,
    from: InvoiceStatus,
    to: InvoiceStatus,
    stamp: 'finalized_at' | 'voided_at',
    refusal: string,
  ): Promise<InvoiceView> {
    return this.deps.work.run(async (tx) => {
      const invoice = await this.get(tx, organizationId, id, { forUpdate: true });
      requireStatus(invoice, from, refusal);
      const [row] = await tx.query<InvoiceRow>(
        `UPDATE invoices SET status = $2, ${stamp} = now(), updated_at = now() WHERE id = $1 RETURNING *`,
        [id, to],
      );
      const view = toInvoiceView(row!);
      tx.emit({ type: to === 'open' ? 'invoice.finalized' : 'invoice.voided', organizationId, object: view });
      return view;
    });
  }
}

function requireStatus(invoice: InvoiceView, status: InvoiceStatus, refusal: string): void {
  if (invoice.status !== status) {
    throw new AppError('conflict', `${refusal}; invoice ${invoice.id} is ${invoice.status}`);
  }
}
