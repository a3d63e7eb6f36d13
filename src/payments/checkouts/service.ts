/**
 * Checkouts (SPEC §10): an amount to collect, paid on Paygate's hosted page `/pay/{id}`.
 * open -> completed (a payment succeeded) | expired (past expiresAt; computed on read, stored lazily).
 *
 * Paying is one database transaction: lock the invoice (if any), lock the checkout, charge, record
 * the attempt, and on success complete the checkout and mark the invoice paid. Locks are always taken
 * in the order invoice -> checkout, so concurrent submissions queue instead of deadlocking, and a
 * submission that gets the lock after a success sees `completed` and never reaches the processor.
 * The unique index transactions_one_success_per_checkout is the last line behind that lock.
 *
 * Declines feed the card-testing brake (brake.ts): before charging, an attempt is refused when its
 * checkout, invoice, client, source address or organization has collected too many declines.
 */
import { listNewestFirst } from '../../db/pages.js';
import type { Database, Queryable } from '../../db/database.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import type { Config } from '../../config.js';
import type { Logger } from '../../services.js';
import { AppError, notFound, validationError, type FieldError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import type { ClientService } from '../clients/service.js';
import type { InvoiceService } from '../invoices/service.js';
import type { PaymentProcessor } from '../processor/processor.js';
import type { TransactionService, TransactionView } from '../transactions/service.js';
import { CARD_BRAKES, countsAsDecline, type AttemptSubjects, type BrakeSubject, type BrakeTrip, type CardBrake } from './brake.js';

export interface CheckoutView {
  id: string;
  object: 'checkout';
  status: 'open' | 'completed' | 'expired';
  amount: number;
  currency: string;
  clientId: string | null;
  invoiceId: string | null;
  /** The hosted pay page: `${PAYGATE_PUBLIC_URL}/pay/{id}`. */
  url: string;
  successUrl: string | null;
  cancelUrl: string | null;
  transactionId: string | null;
  expiresAt: string;
  completedAt: string | null;
  createdAt: string;
}

interface Row {
  id: string;
  organization_id: string;
  status: CheckoutView['status'];
  /** `status`, with an open checkout past its expiry reported as expired (computed by the database clock). */
  effective_status: CheckoutView['status'];
  amount: number;
  currency: string;
  client_id: string | null;
  invoice_id: string | null;
  success_url: string | null;
  cancel_url: string | null;
  transaction_id: string | null;
  expires_at: Date;
  completed_at: Date | null;
  created_at: Date;
}

const EFFECTIVE_STATUS = "CASE WHEN status = 'open' AND expires_at <= now() THEN 'expired' ELSE status END";
const SELECT = `SELECT *, ${EFFECTIVE_STATUS} AS effective_status FROM checkouts`;

/** Default and largest lifetime of a checkout, in minutes (one hour; one day). */
export const DEFAULT_EXPIRY_MINUTES = 60;
export const MAX_EXPIRY_MINUTES = 1440;
/** Declines after which a checkout stops accepting cards (the brake's checkout limit, brake.ts). */
export const MAX_FAILED_ATTEMPTS = CARD_BRAKES.find((r) => r.subject === 'checkout')!.limit;
/** The portal reuses an invoice's open checkout only while the payer has this long left to pay. */
const REUSE_MIN_REMAINING_MINUTES = 15;
const MAX_URL_LENGTH = 2048;

export interface CheckoutInput {
  amount?: number;
  currency?: string;
  clientId?: string;
  invoiceId?: string;
  successUrl?: string | null;
  cancelUrl?: string | null;
  expiresInMinutes?: number;
}

export interface CheckoutFilter {
  limit: number;
  startingAfter: string | null;
  status?: CheckoutView['status'];
  clientId?: string;
  invoiceId?: string;
}

/** What the hosted page needs besides the public view. */
export interface PayableCheckout {
  checkout: CheckoutView;
  organizationId: string;
}

/** Outcome of one submission of the pay page; expected outcomes are values, not throws. */
export type PayOutcome =
  | { kind: 'not_found' }
  | { kind: 'completed'; checkout: CheckoutView; organizationId: string }
  | { kind: 'expired'; checkout: CheckoutView; organizationId: string }
  /** The invoice behind the checkout is no longer open (paid elsewhere, voided). */
  | { kind: 'not_payable'; checkout: CheckoutView; organizationId: string; reason: string }
  /** The card-testing brake refused the attempt before it reached the processor. */
  | { kind: 'too_many_attempts'; checkout: CheckoutView; organizationId: string; trip: BrakeTrip }
  | { kind: 'succeeded'; checkout: CheckoutView; organizationId: string; transaction: TransactionView }
  | { kind: 'failed'; checkout: CheckoutView; organizationId: string; transaction: TransactionView; message: string };

/**
 * A redirect target given by the merchant: absolute http(s) only (never javascript:, data: or a
 * relative path), no credentials. Returns the normalised form, which is what is stored and used.
 */
export function parseRedirectUrl(value: string, path: string, errors: FieldError[]): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    errors.push({ path, message: 'must be an absolute http or https URL' });
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    errors.push({ path, message: 'must be an http or https URL' });
    return null;
  }
  if (url.username || url.password) {
    errors.push({ path, message: 'must not contain credentials' });
    return null;
  }
  if (url.href.length > MAX_URL_LENGTH) {
    errors.push({ path, message: `must be at most ${MAX_URL_LENGTH} characters` });
    return null;
  }
  return url.href;
}

export class CheckoutService {
  constructor(
    protected readonly deps: {
      config: Config;
      db: Database;
      work: Work;
      clients: ClientService;
      invoices: InvoiceService;
      processor: PaymentProcessor;
      transactions: TransactionService;
      brake: CardBrake;
      log: Logger;
    },
  ) {}

  /** What an attempt on this checkout is counted under (brake.ts). */
  private subjects(checkout: CheckoutView, organizationId: string, source: string | null): AttemptSubjects {
    return { checkoutId: checkout.id, invoiceId: checkout.invoiceId, clientId: checkout.clientId, organizationId, source };
  }

  /**
   * The brake's verdict on a checkout now (the pay page shows it before a card is typed; the portal
   * before it sends the payer there). `source` is from brake.ts sourceOf().
   */
  async brakeFor(q: Queryable, found: PayableCheckout, source: string | null): Promise<BrakeTrip | null> {
    return this.deps.brake.check(q, this.subjects(found.checkout, found.organizationId, source));
  }

  /** Refuses to make a checkout for an invoice or client whose declines are over the brake: `429 rate_limited`. */
  private async refuseIfBraked(q: Queryable, organizationId: string, invoiceId: string | null, clientId: string | null): Promise<void> {
    const subjects: AttemptSubjects = { checkoutId: null, invoiceId, clientId, organizationId, source: null };
    const only: BrakeSubject[] = ['invoice', 'client'];
    const trip = await this.deps.brake.check(q, subjects, only);
    if (!trip) return;
    throw new AppError(
      'rate_limited',
      `This ${trip.subject} has had ${trip.limit} declined card attempts in ${trip.windowSeconds / 3600} h (card-testing brake); retry after ${trip.retryAfterSeconds} s`,
      { headers: { 'Retry-After': String(trip.retryAfterSeconds) }, extra: { retryAfterSeconds: trip.retryAfterSeconds } },
    );
  }

  private view(r: Row): CheckoutView {
    return {
      id: r.id,
      object: 'checkout',
      status: r.effective_status,
      amount: r.amount,
      currency: r.currency,
      clientId: r.client_id,
      invoiceId: r.invoice_id,
      url: `${this.deps.config.publicUrl}/pay/${r.id}`,
      successUrl: r.success_url,
      cancelUrl: r.cancel_url,
      transactionId: r.transaction_id,
      expiresAt: r.expires_at.toISOString(),
      completedAt: r.completed_at ? r.completed_at.toISOString() : null,
      createdAt: r.created_at.toISOString(),
    };
  }

  /**
   * POST /v1/checkouts: either `amount` + `currency` (+ optional `clientId`), or `invoiceId` (amount,
   * currency and client come from the invoice, which must be open). Runs in the caller's transaction
   * (the Idempotency-Key's); every rule is checked before anything is written.
   */
  async create(tx: Queryable, organizationId: string, input: CheckoutInput): Promise<CheckoutView> {
    const errors: FieldError[] = [];
    if (input.invoiceId !== undefined) {
      for (const field of ['amount', 'currency', 'clientId'] as const) {
        if (input[field] !== undefined) errors.push({ path: `/${field}`, message: 'must not be sent with invoiceId: it comes from the invoice' });
      }
    } else {
      if (input.amount === undefined) errors.push({ path: '/amount', message: 'is required (or send invoiceId)' });
      if (input.currency === undefined) errors.push({ path: '/currency', message: 'is required (or send invoiceId)' });
    }
    const successUrl = input.successUrl == null ? null : parseRedirectUrl(input.successUrl, '/successUrl', errors);
    const cancelUrl = input.cancelUrl == null ? null : parseRedirectUrl(input.cancelUrl, '/cancelUrl', errors);
    const minutes = input.expiresInMinutes ?? DEFAULT_EXPIRY_MINUTES;
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > MAX_EXPIRY_MINUTES) {
      errors.push({ path: '/expiresInMinutes', message: `must be an integer from 1 to ${MAX_EXPIRY_MINUTES}` });
    }
    if (errors.length > 0) throw validationError(errors);

    if (input.invoiceId !== undefined) {
      return this.insertForInvoice(tx, organizationId, input.invoiceId, { successUrl, cancelUrl, minutes });
    }
    if (input.clientId !== undefined) {
      await this.deps.clients.get(tx, organizationId, input.clientId);
      await this.refuseIfBraked(tx, organizationId, null, input.clientId);
    }
    return this.insert(tx, organizationId, {
      amount: input.amount!,
      currency: input.currency!,
      clientId: input.clientId ?? null,
      invoiceId: null,
      successUrl,
      cancelUrl,
      minutes,
    });
  }

  /**
   * The portal's "pay" button (and POST /v1/checkouts with invoiceId): a checkout for an open invoice
   * of this organization, in the caller's transaction. amount = invoice total, currency = invoice
   * currency, clientId = invoice client; expires after DEFAULT_EXPIRY_MINUTES.
   * Throws 404 not_found (no such invoice in this organization), 409 conflict (not open, or nothing
   * to pay) and 400 validation_error (a URL that is not absolute http(s)).
   */
  async createForInvoice(
    tx: Queryable,
    organizationId: string,
    invoiceId: string,
    options: { successUrl?: string | null; cancelUrl?: string | null },
  ): Promise<CheckoutView> {
    const errors: FieldError[] = [];
    const successUrl = options.successUrl == null ? null : parseRedirectUrl(options.successUrl, '/successUrl', errors);
    const cancelUrl = options.cancelUrl == null ? null : parseRedirectUrl(options.cancelUrl, '/cancelUrl', errors);
    if (errors.length > 0) throw validationError(errors);
    return this.insertForInvoice(tx, organizationId, invoiceId, { successUrl, cancelUrl, minutes: DEFAULT_EXPIRY_MINUTES });
  }

  private async insertForInvoice(
    tx: Queryable,
    organizationId: string,
    invoiceId: string,
    options: { successUrl: string | null; cancelUrl: string | null; minutes: number },
  ): Promise<CheckoutView> {
    const invoice = await this.deps.invoices.get(tx, organizationId, invoiceId);
    if (invoice.status !== 'open') throw new AppError('conflict', `Invoice ${invoice.id} is ${invoice.status}; only an open invoice can be paid`);
    if (invoice.total <= 0) throw new AppError('conflict', `Invoice ${invoice.id} has nothing to pay`);
    // A new link for an invoice gives no new attempts: the invoice's declines are counted across its links.
    await this.refuseIfBraked(tx, organizationId, invoice.id, invoice.clientId);
    return this.insert(tx, organizationId, {
      amount: invoice.total,
      currency: invoice.currency,
      clientId: invoice.clientId,
      invoiceId: invoice.id,
      ...options,
    });
  }

  /**
   * The portal's Pay button reuses the invoice's open checkout that it made (same success and cancel
   * URLs) while enough of its life is left, rather than making a new link per click: newest first.
   * Call with the invoice row locked, so simultaneous clicks find the same one.
   */
  async reusableForInvoice(
    tx: Queryable,
    organizationId: string,
    invoiceId: string,
    urls: { successUrl: string; cancelUrl: string },
  ): Promise<CheckoutView | null> {
    const [row] = await tx.query<Row>(
      `${SELECT} WHERE organization_id = $1 AND invoice_id = $2 AND status = 'open'
         AND expires_at > now() + make_interval(mins => $3) AND success_url = $4 AND cancel_url = $5
       ORDER BY created_at DESC LIMIT 1`,
      [organizationId, invoiceId, REUSE_MIN_REMAINING_MINUTES, urls.successUrl, urls.cancelUrl],
    );
    return row ? this.view(row) : null;
  }

  private async insert(
    tx: Queryable,
    organizationId: string,
    c: { amount: number; currency: string; clientId: string | null; invoiceId: string | null; successUrl: string | null; cancelUrl: string | null; minutes: number },
  ): Promise<CheckoutView> {
    const [row] = await tx.query<Row>(
      `INSERT INTO checkouts (id, organization_id, status, amount, currency, client_id, invoice_id, success_url, cancel_url, expires_at)
       VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, now() + make_interval(mins => $9))
       RETURNING *, ${EFFECTIVE_STATUS} AS effective_status`,
      [newId('checkout'), organizationId, c.amount, c.currency, c.clientId, c.invoiceId, c.successUrl, c.cancelUrl, c.minutes],
    );
    return this.view(row!);
  }

  async list(organizationId: string, filter: CheckoutFilter) {
    return listNewestFirst(this.deps.db, {
      table: 'checkouts',
      select: SELECT,
      organizationId,
      // The status a reader sees: an open checkout past its expiry is expired.
      filters: [[`(${EFFECTIVE_STATUS})`, filter.status], ['client_id', filter.clientId], ['invoice_id', filter.invoiceId]],
      page: filter,
      what: 'checkout',
      map: (r: Row) => this.view(r),
    });
  }


  /** Tenant isolation: another organization's checkout is "not found". */
  async get(db: Queryable, organizationId: string, id: string): Promise<CheckoutView> {
    const rows = isId('checkout', id) ? await db.query<Row>(`${SELECT} WHERE id = $1 AND organization_id = $2`, [id, organizationId]) : [];
    if (!rows[0]) throw notFound('checkout');
    return this.view(rows[0]);
  }

  /**
   * The hosted page: a checkout by id alone. The id (22 random base62 characters, ~131 bits) is the
   * capability, as with any payment link; the page shows nothing beyond what the payer needs.
   */
  async findForPayment(id: string): Promise<PayableCheckout | null> {
    if (!isId('checkout', id)) return null;
    const [row] = await this.deps.db.query<Row>(`${SELECT} WHERE id = $1`, [id]);
    return row ? { checkout: this.view(row), organizationId: row.organization_id } : null;
  }

  /** The checkout's invoice, row-locked; 'gone' when it was deleted since. */
  private async lockInvoice(tx: Queryable, organizationId: string, invoiceId: string) {
    try {
      return await this.deps.invoices.get(tx, organizationId, invoiceId, { forUpdate: true });
    } catch (error) {
      if (error instanceof AppError && error.code === 'not_found') return 'gone' as const;
      throw error;
    }
  }

  /**
   * Stores the expiry of open checkouts past their `expiresAt` and emits `checkout.expired` for each,
   * in the caller's unit of work. The `status = 'open'` condition makes it once per checkout, whether
   * the sweep or a late payment attempt gets there first.
   */
  private async storeExpiry(tx: UnitOfWork, ids: readonly string[]): Promise<number> {
    const rows = await tx.query<Row>(
      `UPDATE checkouts SET status = 'expired', updated_at = now()
        WHERE id = ANY($1::text[]) AND status = 'open' AND expires_at <= now()
        RETURNING *, ${EFFECTIVE_STATUS} AS effective_status`,
      [ids],
    );
    for (const row of rows) tx.emit({ type: 'checkout.expired', organizationId: row.organization_id, object: this.view(row) });
    return rows.length;
  }

  /**
   * The sweep (every node, on a timer): stores the expiry of up to `limit` open checkouts whose time
   * ran out, so `checkout.expired` is sent when a checkout expires rather than when someone next
   * tries to pay it. Rows another node holds are skipped. Returns how many it expired.
   */
  async expireDue(limit = 500): Promise<number> {
    return this.deps.work.run(async (tx) => {
      const due = await tx.query<{ id: string }>(
        `SELECT id FROM checkouts WHERE status = 'open' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      return due.length === 0 ? 0 : this.storeExpiry(tx, due.map((d) => d.id));
    });
  }

  /**
   * One submission of the hosted page: at most one attempt, recorded as a transaction. `source` is
   * the payer's address as brake.ts sourceOf() gives it (null when unknown).
   */
  async pay(id: string, cardNumber: string, source: string | null = null): Promise<PayOutcome> {
    if (!isId('checkout', id)) return { kind: 'not_found' };
    return this.deps.work.run(async (tx): Promise<PayOutcome> => {
      const [peek] = await tx.query<Row>(`${SELECT} WHERE id = $1`, [id]);
      if (!peek) return { kind: 'not_found' };
      const organizationId = peek.organization_id;
      // Lock order invoice -> checkout (see the file comment).
      const invoice = peek.invoice_id ? await this.lockInvoice(tx, organizationId, peek.invoice_id) : null;
      const [row] = await tx.query<Row>(`${SELECT} WHERE id = $1 FOR UPDATE`, [id]);
      const checkout = this.view(row!);
      const base = { checkout, organizationId };
      if (row!.status === 'completed') return { kind: 'completed', ...base };
      if (row!.effective_status === 'expired') {
        // Stored lazily (or by the sweep, expireDue): the row says what every read already reports.
        if (row!.status === 'open') await this.storeExpiry(tx, [id]);
        return { kind: 'expired', ...base };
      }
      if (invoice === 'gone' || (invoice && invoice.status !== 'open')) {
        return { kind: 'not_payable', ...base, reason: invoice !== 'gone' && invoice.status === 'paid' ? 'This invoice has already been paid.' : 'This invoice can no longer be paid.' };
      }
      // Lock order: invoice -> checkout -> client, source (brake.ts); then count.
      const subjects = this.subjects(checkout, organizationId, source);
      await this.deps.brake.lock(tx, subjects);
      const trip = await this.deps.brake.check(tx, subjects);
      if (trip) return { kind: 'too_many_attempts', ...base, trip };

      const transactionId = newId('transaction');
      const charge = await this.deps.processor.charge({ amount: checkout.amount, currency: checkout.currency, cardNumber, reference: transactionId });
      const attempt = {
        id: transactionId,
        amount: checkout.amount,
        currency: checkout.currency,
        checkoutId: id,
        clientId: checkout.clientId,
        invoiceId: checkout.invoiceId,
        processor: this.deps.processor.name,
      };
      if (charge.status === 'failed') {
        const transaction = await this.deps.transactions.recordAttempt(tx, organizationId, {
          ...attempt,
          status: 'failed',
          failureCode: charge.failureCode,
          cardBrand: charge.cardBrand,
          cardLast4: charge.cardLast4,
          processorReference: null,
        });
        if (countsAsDecline(charge.failureCode)) {
          await this.deps.brake.recordDecline(tx, { ...subjects, checkoutId: id });
          // This decline may be the one that engages a limit: tell the operator once (the attempts
          // refused after it are not declines, so they do not log again).
          const engaged = await this.deps.brake.check(tx, subjects);
          if (engaged && engaged.subject !== 'checkout') {
            this.deps.log.warn(
              { organizationId, checkoutId: id, brake: engaged.subject, limit: engaged.limit, windowSeconds: engaged.windowSeconds, ...(engaged.subject === 'source' ? { source } : {}) },
              'card-testing brake engaged: further card attempts are refused until declines age out',
            );
          }
        }
        tx.emit({ type: 'transaction.failed', organizationId, object: transaction });
        return { kind: 'failed', ...base, transaction, message: charge.message };
      }
      const transaction = await this.deps.transactions.recordAttempt(tx, organizationId, {
        ...attempt,
        status: 'succeeded',
        failureCode: null,
        cardBrand: charge.cardBrand,
        cardLast4: charge.cardLast4,
        processorReference: charge.processorReference,
      });
      const [completed] = await tx.query<Row>(
        `UPDATE checkouts SET status = 'completed', transaction_id = $2, completed_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'open' RETURNING *, ${EFFECTIVE_STATUS} AS effective_status`,
        [id, transaction.id],
      );
      const view = this.view(completed!);
      tx.emit({ type: 'transaction.succeeded', organizationId, object: transaction });
      tx.emit({ type: 'checkout.completed', organizationId, object: view });
      if (checkout.invoiceId) await this.deps.invoices.markPaid(tx, organizationId, checkout.invoiceId);
      return { kind: 'succeeded', checkout: view, organizationId, transaction };
    });
  }
}
