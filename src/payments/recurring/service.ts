/**
 * Recurring schedules (invoice:* scopes): issue an open invoice every interval, exactly once per run,
 * however many Paygate nodes share the database.
 *
 * Exactly once, in three layers:
 * 1. Every run (scheduler or manual) locks the schedule row and issues the invoice and advances
 *    next_run_at in that one transaction, so a run is all or nothing.
 * 2. The scheduler selects due rows with FOR UPDATE SKIP LOCKED: nodes split the due schedules
 *    between them instead of queueing on the same rows; a row another node just advanced is
 *    re-checked against `next_run_at <= now()` after its lock and is no longer due.
 * 3. invoices has UNIQUE (recurring_schedule_id, recurring_period_start), and the period start is
 *    the run's scheduled instant, not the clock: even a logic error elsewhere cannot bill one
 *    period twice (the insert does nothing and the schedule moves on).
 *
 * A manual run targets the period that was next when the request arrived (read before the lock).
 * If, once it holds the lock, the schedule has moved past that period, a concurrent run (another
 * request or a scheduler) issued it: the request answers with that invoice (200) instead of
 * issuing the following period. So a manual run racing another run or the scheduler issues one
 * invoice, while two runs one after the other issue two consecutive periods.
 *
 * Catch-up rule (see calendar.ts planRun): a schedule that fell behind (paused for months, then
 * resumed; nodes down) issues ONE invoice, for the period the present falls in, then continues
 * from the next run after it. Missed periods are not billed retroactively.
 *
 * Nobody to bill: the scheduler never picks a schedule of a deleted organization (the due query
 * skips them; each pass also pauses those that fell due, so they leave the due index instead of
 * being stepped over on every pass; deletion is final). A schedule whose client was deleted is
 * paused at its next due run and issues nothing; it cannot be resumed or run (`409 conflict`).
 */
import { listNewestFirst } from '../../db/pages.js';
import type { Database, Queryable } from '../../db/database.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import type { Logger } from '../../services.js';
import { AppError, notFound } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import type { ClientService } from '../clients/service.js';
import { requireTotal, type InvoiceLine, type InvoiceService, type InvoiceView } from '../invoices/service.js';
import { normalizeLines } from '../invoices/lines.js';
import { planRun, type Interval } from './calendar.js';

export interface ScheduleTemplate {
  currency: string;
  lines: InvoiceLine[];
}

export type ScheduleStatus = 'active' | 'paused';

export interface RecurringScheduleView {
  id: string;
  object: 'recurring_schedule';
  clientId: string;
  interval: Interval;
  intervalCount: number;
  template: ScheduleTemplate;
  nextRunAt: string;
  status: ScheduleStatus;
  lastRunAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface ScheduleInput {
  clientId: string;
  interval: Interval;
  intervalCount?: number;
  template: ScheduleTemplate;
  /** The first run; default now. */
  startAt?: string;
}

export interface ScheduleChanges {
  interval?: Interval;
  intervalCount?: number;
  template?: ScheduleTemplate;
  status?: ScheduleStatus;
  nextRunAt?: string;
}

export interface SchedulePage {
  limit: number;
  startingAfter: string | null;
  status?: ScheduleStatus;
  clientId?: string;
}

/** A manual run's outcome: 201 when this request issued the invoice, 200 when a concurrent run had. */
export interface RunResult {
  status: 200 | 201;
  invoice: InvoiceView;
}

interface Row {
  id: string;
  organization_id: string;
  client_id: string;
  interval: Interval;
  interval_count: number;
  template: ScheduleTemplate;
  next_run_at: Date;
  anchor_at: Date;
  status: ScheduleStatus;
  last_run_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const toView = (r: Row): RecurringScheduleView => ({
  id: r.id,
  object: 'recurring_schedule',
  clientId: r.client_id,
  interval: r.interval,
  intervalCount: r.interval_count,
  template: r.template,
  nextRunAt: r.next_run_at.toISOString(),
  status: r.status,
  lastRunAt: r.last_run_at ? r.last_run_at.toISOString() : null,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const normalizeTemplate = (t: ScheduleTemplate): ScheduleTemplate => ({ currency: t.currency, lines: normalizeLines(t.lines) });

/** How often each node looks for due schedules; a due run waits at most this long. */
const TICK_MS = 2_000;
/** Runs one node issues per tick at most, so a huge backlog cannot keep a tick (and stop()) busy. */
const MAX_RUNS_PER_TICK = 500;

type Issued = { kind: 'issued'; invoice: InvoiceView; fresh: boolean } | { kind: 'client_deleted' } | { kind: 'organization_deleted' };

/** Schedules of deleted organizations that fell due, paused per pass at most (one short statement). */
const RETIRE_BATCH = 1000;

export class RecurringScheduleService {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<unknown> | null = null;
  private stopped = true;

  constructor(
    protected readonly deps: { db: Database; work: Work; clients: ClientService; invoices: InvoiceService; log: Logger },
    private readonly options: { tickMs?: number } = {},
  ) {}

  async create(tx: Queryable, organizationId: string, input: ScheduleInput): Promise<RecurringScheduleView> {
    requireTotal(input.template.lines, '/template/lines');
    await this.deps.clients.get(tx, organizationId, input.clientId);
    // The first run is also the anchor every later run is counted from (no month-end drift).
    const [row] = await tx.query<Row>(
      `INSERT INTO recurring_schedules (id, organization_id, client_id, interval, interval_count, template, next_run_at, anchor_at, status)
       VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()), coalesce($7::timestamptz, now()), 'active') RETURNING *`,
      [
        newId('recurringSchedule'),
        organizationId,
        input.clientId,
        input.interval,
        input.intervalCount ?? 1,
        JSON.stringify(normalizeTemplate(input.template)),
        input.startAt ?? null,
      ],
    );
    return toView(row!);
  }

  async list(organizationId: string, page: SchedulePage) {
    return listNewestFirst(this.deps.db, {
      table: 'recurring_schedules',
      organizationId,
      conditions: ['deleted_at IS NULL'],
      filters: [['status', page.status], ['client_id', page.clientId]],
      page,
      what: 'recurring schedule',
      map: toView,
    });
  }


  /** Tenant isolation: another organization's schedule is "not found". */
  async get(db: Queryable, organizationId: string, id: string): Promise<RecurringScheduleView> {
    return toView(await this.row(db, organizationId, id, false));
  }

  private async row(db: Queryable, organizationId: string, id: string, forUpdate: boolean): Promise<Row> {
    const rows = isId('recurringSchedule', id)
      ? await db.query<Row>(
          `SELECT * FROM recurring_schedules WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL${forUpdate ? ' FOR UPDATE' : ''}`,
          [id, organizationId],
        )
      : [];
    if (!rows[0]) throw notFound('recurring schedule');
    return rows[0];
  }

  /**
   * Pause (status paused) and resume (status active) keep the calendar: a resumed schedule that
   * fell behind issues one invoice for the current period on its next run (catch-up rule).
   * Changing interval, intervalCount or nextRunAt re-anchors the calendar at the (new) next run.
   */
  async update(organizationId: string, id: string, changes: ScheduleChanges): Promise<RecurringScheduleView> {
    if (changes.template) requireTotal(changes.template.lines, '/template/lines');
    return this.deps.work.run(async (tx) => {
      const current = await this.row(tx, organizationId, id, true);
      if (changes.status === 'active' && current.status !== 'active' && !(await this.clientExists(tx, current.client_id))) {
        throw new AppError('conflict', `The client of recurring schedule ${id} was deleted; the schedule cannot be resumed`);
      }
      const reanchor = changes.interval !== undefined || changes.intervalCount !== undefined || changes.nextRunAt !== undefined;
      const [row] = await tx.query<Row>(
        `UPDATE recurring_schedules SET
           interval = coalesce($3, interval),
           interval_count = coalesce($4, interval_count),
           template = coalesce($5, template),
           status = coalesce($6, status),
           next_run_at = coalesce($7::timestamptz, next_run_at),
           anchor_at = CASE WHEN $8 THEN coalesce($7::timestamptz, next_run_at) ELSE anchor_at END,
           updated_at = now()
         WHERE id = $1 AND organization_id = $2 RETURNING *`,
        [
          id,
          organizationId,
          changes.interval ?? null,
          changes.intervalCount ?? null,
          changes.template ? JSON.stringify(normalizeTemplate(changes.template)) : null,
          changes.status ?? null,
          changes.nextRunAt ?? null,
          reanchor,
        ],
      );
      return toView(row!);
    });
  }

  /** Soft delete: the invoices it issued keep pointing at it. */
  async delete(organizationId: string, id: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      await this.row(tx, organizationId, id, true);
      await tx.query('UPDATE recurring_schedules SET deleted_at = now(), updated_at = now() WHERE id = $1', [id]);
    });
  }

  /**
   * POST /v1/recurring-schedules/{id}/run: issues the next invoice now, in the caller's transaction
   * (the Idempotency-Key's). See the header for what a run racing another run does.
   */
  async run(tx: UnitOfWork, organizationId: string, id: string): Promise<RunResult> {
    // The period this request asks for: read before waiting for the lock.
    const seen = await this.row(tx, organizationId, id, false);
    const row = await this.row(tx, organizationId, id, true);
    if (row.next_run_at.getTime() !== seen.next_run_at.getTime()) {
      const [issued] = await tx.query<{ id: string }>(
        `SELECT id FROM invoices WHERE recurring_schedule_id = $1 AND recurring_period_start >= $2
         ORDER BY recurring_period_start LIMIT 1`,
        [id, seen.next_run_at],
      );
      if (issued) return { status: 200, invoice: await this.deps.invoices.get(tx, organizationId, issued.id) };
    }
    if (row.status !== 'active') throw new AppError('conflict', `Recurring schedule ${id} is paused; resume it to run it`);
    const outcome = await this.issue(tx, row);
    if (outcome.kind === 'client_deleted') throw new AppError('conflict', `The client of recurring schedule ${id} was deleted`);
    if (outcome.kind === 'organization_deleted') throw notFound('recurring schedule');
    return { status: outcome.fresh ? 201 : 200, invoice: outcome.invoice };
  }

  /** Issues the run's invoice and advances the schedule; `row` is locked by the caller's transaction. */
  private async issue(tx: UnitOfWork, row: Row): Promise<Issued> {
    // The database's clock, not this node's: every node must agree on which period is current.
    const [{ now }] = (await tx.query<{ now: Date }>('SELECT clock_timestamp() AS now')) as [{ now: Date }];
    // Checked under the schedule's lock, whoever runs it: a deleted organization or client is billed nothing.
    const [billable] = await tx.query<{ organization_active: boolean; client_active: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1 AND status = 'active') AS organization_active,
              EXISTS (SELECT 1 FROM clients WHERE id = $2 AND deleted_at IS NULL) AS client_active`,
      [row.organization_id, row.client_id],
    );
    if (!billable!.organization_active) return { kind: 'organization_deleted' };
    if (!billable!.client_active) return { kind: 'client_deleted' };
    const plan = planRun(row.anchor_at, { interval: row.interval, intervalCount: row.interval_count }, row.next_run_at, now);
    let invoice = await this.deps.invoices.issueRecurring(tx, row.organization_id, {
      clientId: row.client_id,
      currency: row.template.currency,
      lines: row.template.lines,
      scheduleId: row.id,
      periodStart: plan.periodStart,
    });
    const fresh = invoice !== null;
    if (!invoice) {
      // This period was billed already (nextRunAt was moved back onto it): move on, bill nothing.
      const [existing] = await tx.query<{ id: string }>(
        'SELECT id FROM invoices WHERE recurring_schedule_id = $1 AND recurring_period_start = $2',
        [row.id, plan.periodStart],
      );
      invoice = await this.deps.invoices.get(tx, row.organization_id, existing!.id);
    }
    await tx.query('UPDATE recurring_schedules SET next_run_at = $2, last_run_at = $3, updated_at = now() WHERE id = $1', [
      row.id,
      plan.nextRunAt,
      now,
    ]);
    return { kind: 'issued', invoice, fresh };
  }

  /**
   * One pass of the scheduler: issues every due schedule once, one transaction per schedule (a
   * failing schedule is logged and skipped for this pass; the others still run). Returns the number
   * of invoices issued. Safe to run on every node at once.
   */
  async tick(): Promise<number> {
    let issued = 0;
    const failed: string[] = [];
    await this.retireDeletedOrganizations();
    for (let i = 0; i < MAX_RUNS_PER_TICK && !this.stopped; i++) {
      const attempt: { scheduleId: string | null } = { scheduleId: null };
      try {
        // A unit of work: the invoice it issues emits invoice.finalized with it.
        const outcome = await this.deps.work.run(async (tx) => {
          const [row] = await tx.query<Row>(
            `SELECT * FROM recurring_schedules s
             WHERE status = 'active' AND deleted_at IS NULL AND next_run_at <= now() AND NOT (id = ANY($1::text[]))
               AND EXISTS (SELECT 1 FROM organizations o WHERE o.id = s.organization_id AND o.status = 'active')
             ORDER BY next_run_at LIMIT 1
             FOR UPDATE OF s SKIP LOCKED`,
            [failed],
          );
          if (!row) return 'idle' as const;
          attempt.scheduleId = row.id;
          const result = await this.issue(tx, row);
          // Deleted since the query above: nothing issued; the next pass retires it.
          if (result.kind === 'organization_deleted') return 'skipped' as const;
          if (result.kind === 'client_deleted') {
            // Nobody to bill: pause rather than retry every tick; visible over the API (not resumable).
            await tx.query("UPDATE recurring_schedules SET status = 'paused', updated_at = now() WHERE id = $1", [row.id]);
            this.deps.log.warn({ scheduleId: row.id }, 'recurring schedule paused: its client was deleted');
            return 'skipped' as const;
          }
          return result.fresh ? ('issued' as const) : ('skipped' as const);
        });
        if (outcome === 'idle') break;
        if (outcome === 'issued') issued++;
      } catch (error) {
        if (attempt.scheduleId === null) throw error;
        failed.push(attempt.scheduleId);
        this.deps.log.error({ err: error, scheduleId: attempt.scheduleId }, 'recurring schedule run failed; retried on the next tick');
      }
    }
    return issued;
  }

  private async clientExists(q: Queryable, clientId: string): Promise<boolean> {
    return (await q.query('SELECT 1 FROM clients WHERE id = $1 AND deleted_at IS NULL', [clientId])).length > 0;
  }

  /**
   * Pauses the due schedules of deleted organizations (deletion is final, so they would never run),
   * so the due query does not step over them on every pass. Rows another node holds are skipped.
   */
  private async retireDeletedOrganizations(): Promise<void> {
    await this.deps.db.query(
      `UPDATE recurring_schedules SET status = 'paused', updated_at = now()
        WHERE id IN (SELECT s.id FROM recurring_schedules s JOIN organizations o ON o.id = s.organization_id
                      WHERE s.status = 'active' AND s.deleted_at IS NULL AND s.next_run_at <= now() AND o.status = 'deleted'
                      LIMIT $1 FOR UPDATE OF s SKIP LOCKED)`,
      [RETIRE_BATCH],
    );
  }

  /** Starts the loop on this node (every node runs one; see the header for why that is safe). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.scheduleTick();
  }

  /** Ends the loop and waits for the pass in flight, so the database can be closed after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.inFlight = this.tick()
        .catch((error: unknown) => this.deps.log.error({ err: error }, 'recurring scheduler pass failed'))
        .finally(() => {
          this.inFlight = null;
          this.scheduleTick();
        });
    }, this.options.tickMs ?? TICK_MS);
    // The loop alone never keeps the process alive.
    this.timer.unref();
  }
}
