/**
 * Recurring schedules (SPEC §10; invoice:* scopes, §3): the calendar, the API, and "exactly once"
 * under concurrency: manual runs racing each other and the schedulers of two Paygate nodes on one
 * PostgreSQL.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createOrgKey,
  createOrgWithKey,
  createTestDatabase,
  expectProblem,
  expectStatus,
  startPaygate,
  type OrgWithKey,
  type TestApp,
  type TestDatabase,
} from './harness.js';
import { systemContext } from '../src/auth/context.js';
import { addInterval, addMonths, occurrence, periodStartAt, planRun, runAfter } from '../src/payments/recurring/calendar.js';

const d = (iso: string) => new Date(iso);
const line = (quantity: number, unitAmount: number, description = 'Subscription') => ({ description, quantity, unitAmount });
const TEMPLATE = { currency: 'EUR', lines: [line(1, 4900), line(3, 100, 'Extra seats')] };
/** A whole-second instant `ms` from now (ISO strings round-trip exactly). */
const at = (ms: number) => new Date(Math.floor((Date.now() + ms) / 1000) * 1000);

describe('the schedule calendar (pure, UTC)', () => {
  it('adding a month clamps to the end of a shorter month: Jan 31 + 1 month = Feb 28, or Feb 29 in a leap year', () => {
    expect(addMonths(d('2025-01-31T10:30:00Z'), 1).toISOString()).toBe('2025-02-28T10:30:00.000Z');
    expect(addMonths(d('2024-01-31T10:30:00Z'), 1).toISOString()).toBe('2024-02-29T10:30:00.000Z');
    expect(addMonths(d('2025-03-31T00:00:00Z'), 1).toISOString()).toBe('2025-04-30T00:00:00.000Z');
    expect(addMonths(d('2025-12-31T23:59:59.999Z'), 2).toISOString()).toBe('2026-02-28T23:59:59.999Z');
    expect(addMonths(d('2025-05-15T08:00:00Z'), -6).toISOString()).toBe('2024-11-15T08:00:00.000Z');
    expect(addInterval(d('2024-02-29T00:00:00Z'), { interval: 'year', intervalCount: 1 }).toISOString()).toBe('2025-02-28T00:00:00.000Z');
    expect(addInterval(d('2025-01-31T00:00:00Z'), { interval: 'month', intervalCount: 1 }).toISOString()).toBe('2025-02-28T00:00:00.000Z');
  });

  it('runs are counted from the anchor, so the day of month never drifts after a short month', () => {
    const monthly = { interval: 'month', intervalCount: 1 } as const;
    const runs = [1, 2, 3, 4].map((k) => occurrence(d('2024-01-31T09:00:00Z'), monthly, k).toISOString().slice(0, 10));
    expect(runs).toEqual(['2024-02-29', '2024-03-31', '2024-04-30', '2024-05-31']);
    expect(runAfter(d('2024-01-31T09:00:00Z'), monthly, d('2024-02-29T09:00:00Z')).toISOString()).toBe('2024-03-31T09:00:00.000Z');
    const yearly = { interval: 'year', intervalCount: 1 } as const;
    expect(occurrence(d('2024-02-29T00:00:00Z'), yearly, 4).toISOString()).toBe('2028-02-29T00:00:00.000Z');
    const quarterly = { interval: 'month', intervalCount: 3 } as const;
    expect(occurrence(d('2025-11-30T00:00:00Z'), quarterly, 1).toISOString()).toBe('2026-02-28T00:00:00.000Z');
  });

  it('days and weeks are fixed lengths in UTC', () => {
    expect(addInterval(d('2025-03-29T12:00:00Z'), { interval: 'day', intervalCount: 2 }).toISOString()).toBe('2025-03-31T12:00:00.000Z');
    expect(addInterval(d('2025-12-29T00:00:00Z'), { interval: 'week', intervalCount: 1 }).toISOString()).toBe('2026-01-05T00:00:00.000Z');
    expect(periodStartAt(d('2025-01-01T00:00:00Z'), { interval: 'week', intervalCount: 2 }, d('2025-01-20T00:00:00Z')).toISOString()).toBe(
      '2025-01-15T00:00:00.000Z',
    );
  });

  it('a schedule far behind plans one run for the current period, then the next run after it', () => {
    const monthly = { interval: 'month', intervalCount: 1 } as const;
    const anchor = d('2025-01-31T09:00:00Z');
    // Paused since February, resumed on July 10: one invoice for the period that began June 30.
    expect(planRun(anchor, monthly, d('2025-02-28T09:00:00Z'), d('2025-07-10T00:00:00Z'))).toEqual({
      periodStart: d('2025-06-30T09:00:00Z'),
      nextRunAt: d('2025-07-31T09:00:00Z'),
    });
    // Exactly on a run: that run's period.
    expect(planRun(anchor, monthly, d('2025-03-31T09:00:00Z'), d('2025-03-31T09:00:00Z')).periodStart).toEqual(d('2025-03-31T09:00:00Z'));
    // Not due yet (a manual run ahead of time): the next run's period, early.
    expect(planRun(anchor, monthly, d('2025-03-31T09:00:00Z'), d('2025-03-01T00:00:00Z'))).toEqual({
      periodStart: d('2025-03-31T09:00:00Z'),
      nextRunAt: d('2025-04-30T09:00:00Z'),
    });
  });
});

describe('recurring schedules', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let clientId: string;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    clientId = (await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada' } })).body.id;
  });
  afterAll(async () => t?.close());

  const create = (body: Record<string, unknown>, options: { token?: string; headers?: Record<string, string> } = {}) =>
    t.request('POST', '/v1/recurring-schedules', { token: options.token ?? org.token, body, headers: options.headers });
  /** A monthly schedule whose first run is far enough ahead that no scheduler touches it. */
  const future = async (extra: Record<string, unknown> = {}) => {
    const created = await create({ clientId, interval: 'month', template: TEMPLATE, startAt: at(30 * 86_400_000).toISOString(), ...extra });
    expectStatus(created, 201);
    return created.body as { id: string; nextRunAt: string };
  };
  const run = (id: string, token = org.token, headers?: Record<string, string>) =>
    t.request('POST', `/v1/recurring-schedules/${id}/run`, { token, headers });
  const patch = (id: string, body: unknown) => t.request('PATCH', `/v1/recurring-schedules/${id}`, { token: org.token, body });
  const issued = (db: TestApp['db'], scheduleId: string) =>
    db.query<{ id: string; status: string; recurring_period_start: Date }>(
      'SELECT id, status, recurring_period_start FROM invoices WHERE recurring_schedule_id = $1 ORDER BY recurring_period_start',
      [scheduleId],
    );
  const scheduleCount = async () =>
    (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM recurring_schedules WHERE organization_id = $1', [org.organizationId]))[0]!.n;
  const paths = (result: { body: { errors?: Array<{ path: string }> } }) => [...new Set((result.body.errors ?? []).map((e) => e.path))];

  it('a new schedule is active, runs every interval from its start, and keeps its invoice template', async () => {
    const startAt = at(7 * 86_400_000).toISOString();
    const created = await create({ clientId, interval: 'week', template: TEMPLATE, startAt });
    expectStatus(created, 201);
    expect(created.body).toMatchObject({
      object: 'recurring_schedule',
      clientId,
      interval: 'week',
      intervalCount: 1,
      template: TEMPLATE,
      nextRunAt: startAt,
      status: 'active',
      lastRunAt: null,
    });
    expect(created.body.id).toMatch(/^rsc_[0-9A-Za-z]{22}$/);
    expect((await t.request('GET', `/v1/recurring-schedules/${created.body.id}`, { token: org.token })).body).toEqual(created.body);
    const everyThree = await create({ clientId, interval: 'day', intervalCount: 3, template: TEMPLATE, startAt });
    expect(everyThree.body).toMatchObject({ interval: 'day', intervalCount: 3 });
  });

  it('bad intervals, templates and dates are refused naming the field, and nothing is created', async () => {
    const before = await scheduleCount();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ interval: 'hour' }, '/interval'],
      [{ intervalCount: 0 }, '/intervalCount'],
      [{ intervalCount: 1001 }, '/intervalCount'],
      [{ intervalCount: 1.5 }, '/intervalCount'],
      [{ template: { ...TEMPLATE, currency: 'usd' } }, '/template/currency'],
      [{ template: { ...TEMPLATE, currency: 'XYZ' } }, '/template/currency'],
      [{ template: { ...TEMPLATE, lines: [] } }, '/template/lines'],
      [{ template: { ...TEMPLATE, lines: [line(1, -5)] } }, '/template/lines/0/unitAmount'],
      [{ template: { ...TEMPLATE, lines: [line(1, 0)] } }, '/template/lines'],
      [{ template: { ...TEMPLATE, lines: [line(1_000_000, 100_000_000_000)] } }, '/template/lines'],
      [{ template: { ...TEMPLATE, total: 5000 } }, '/template/total'],
      [{ startAt: 'next monday' }, '/startAt'],
      [{ status: 'paused' }, '/status'],
    ];
    for (const [change, path] of cases) {
      const refused = await create({ clientId, interval: 'month', template: TEMPLATE, ...change });
      expectProblem(refused, 400, 'validation_error');
      expect(paths(refused), JSON.stringify(change)).toEqual([path]);
    }
    expectProblem(await create({ clientId, template: TEMPLATE }), 400, 'validation_error');
    expect(await scheduleCount()).toBe(before);
  });

  it('running a schedule issues one open invoice from its template now and advances nextRunAt by one interval', async () => {
    const schedule = await future();
    const first = await run(schedule.id);
    expectStatus(first, 201);
    expect(first.body).toMatchObject({
      object: 'invoice',
      status: 'open',
      clientId,
      currency: 'EUR',
      lines: TEMPLATE.lines,
      total: 4900 + 300,
      recurringScheduleId: schedule.id,
      recurringPeriodStart: schedule.nextRunAt,
    });
    expect(Date.parse(first.body.finalizedAt)).not.toBeNaN();
    const after = (await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body;
    expect(after.nextRunAt).toBe(addMonths(new Date(schedule.nextRunAt), 1).toISOString());
    expect(after.lastRunAt).not.toBeNull();
    // Run again: the following period.
    const second = await run(schedule.id);
    expectStatus(second, 201);
    expect(second.body.recurringPeriodStart).toBe(after.nextRunAt);
    expect((await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body.nextRunAt).toBe(
      addMonths(new Date(schedule.nextRunAt), 2).toISOString(),
    );
    const open = await t.request('GET', '/v1/invoices?status=open&limit=100', { token: org.token });
    expect(open.body.data.filter((i: { recurringScheduleId: string }) => i.recurringScheduleId === schedule.id)).toHaveLength(2);
  });

  it('a monthly schedule started on Jan 31 runs on the last day of shorter months and returns to the 31st', async () => {
    const created = await create({ clientId, interval: 'month', template: TEMPLATE, startAt: '2031-01-31T09:00:00Z' });
    const runs: string[] = [];
    for (let i = 0; i < 3; i++) runs.push((await run(created.body.id)).body.recurringPeriodStart);
    expect(runs).toEqual(['2031-01-31T09:00:00.000Z', '2031-02-28T09:00:00.000Z', '2031-03-31T09:00:00.000Z']);
    expect((await t.request('GET', `/v1/recurring-schedules/${created.body.id}`, { token: org.token })).body.nextRunAt).toBe('2031-04-30T09:00:00.000Z');
  });

  it('a due schedule runs by itself, once', async () => {
    const created = await create({ clientId, interval: 'day', template: TEMPLATE });
    expectStatus(created, 201);
    const deadline = Date.now() + 10_000;
    let invoices = await issued(t.db, created.body.id);
    while (invoices.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      invoices = await issued(t.db, created.body.id);
    }
    expect(invoices).toHaveLength(1);
    expect(invoices[0]!.status).toBe('open');
    expect(invoices[0]!.recurring_period_start.toISOString()).toBe(created.body.nextRunAt);
    const after = (await t.request('GET', `/v1/recurring-schedules/${created.body.id}`, { token: org.token })).body;
    expect(after.nextRunAt).toBe(new Date(Date.parse(created.body.nextRunAt) + 86_400_000).toISOString());
    await t.services.payments.recurring.tick();
    expect(await issued(t.db, created.body.id)).toHaveLength(1);
  });

  it('a paused schedule issues nothing, cannot be run, and resumes where its calendar is', async () => {
    const schedule = await future();
    const due = at(-3_600_000).toISOString();
    const paused = await patch(schedule.id, { status: 'paused', nextRunAt: due });
    expectStatus(paused, 200);
    expect(paused.body).toMatchObject({ status: 'paused', nextRunAt: due });
    await t.services.payments.recurring.tick();
    expect(await issued(t.db, schedule.id)).toHaveLength(0);
    expectProblem(await run(schedule.id), 409, 'conflict');
    expect(await issued(t.db, schedule.id)).toHaveLength(0);
    const resumed = await patch(schedule.id, { status: 'active' });
    expect(resumed.body).toMatchObject({ status: 'active', nextRunAt: due });
    await t.services.payments.recurring.tick();
    const invoices = await issued(t.db, schedule.id);
    expect(invoices).toHaveLength(1);
    expect(invoices[0]!.recurring_period_start.toISOString()).toBe(due);
  });

  it('a schedule resumed after months issues one invoice for the current period, not a backlog', async () => {
    const schedule = await future();
    const behind = addMonths(at(-3_600_000), -5);
    await patch(schedule.id, { status: 'paused', nextRunAt: behind.toISOString() });
    await patch(schedule.id, { status: 'active' });
    await t.services.payments.recurring.tick();
    await t.services.payments.recurring.tick();
    const invoices = await issued(t.db, schedule.id);
    expect(invoices).toHaveLength(1);
    expect(invoices[0]!.recurring_period_start.toISOString()).toBe(addMonths(behind, 5).toISOString());
    const after = (await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body;
    expect(after.nextRunAt).toBe(addMonths(behind, 6).toISOString());
    expect(Date.parse(after.nextRunAt)).toBeGreaterThan(Date.now());
  });

  it('changing the interval or nextRunAt re-anchors the calendar; the template can be changed', async () => {
    const schedule = await future();
    const next = '2032-01-31T00:00:00.000Z';
    const changed = await patch(schedule.id, { interval: 'month', intervalCount: 2, nextRunAt: next, template: { currency: 'USD', lines: [line(2, 50)] } });
    expectStatus(changed, 200);
    expect(changed.body).toMatchObject({ interval: 'month', intervalCount: 2, nextRunAt: next, template: { currency: 'USD', lines: [line(2, 50)] } });
    const invoice = await run(schedule.id);
    expect(invoice.body).toMatchObject({ currency: 'USD', total: 100, recurringPeriodStart: next });
    expect((await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body.nextRunAt).toBe('2032-03-31T00:00:00.000Z');
    expectProblem(await patch(schedule.id, { clientId }), 400, 'validation_error');
    expectProblem(await patch(schedule.id, { status: 'void' }), 400, 'validation_error');
    expectProblem(await patch(schedule.id, {}), 400, 'validation_error');
  });

  it('a deleted schedule is gone and never runs again; its invoices stay', async () => {
    const schedule = await future();
    const invoice = (await run(schedule.id)).body;
    await patch(schedule.id, { nextRunAt: at(-60_000).toISOString() });
    expectStatus(await t.request('DELETE', `/v1/recurring-schedules/${schedule.id}`, { token: org.token }), 204);
    expectProblem(await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token }), 404, 'not_found');
    expectProblem(await run(schedule.id), 404, 'not_found');
    expectProblem(await patch(schedule.id, { status: 'active' }), 404, 'not_found');
    await t.services.payments.recurring.tick();
    expect((await issued(t.db, schedule.id)).map((i) => i.id)).toEqual([invoice.id]);
    expect((await t.request('GET', `/v1/invoices/${invoice.id}`, { token: org.token })).body.recurringScheduleId).toBe(schedule.id);
  });

  it("a deleted organization's schedules issue nothing: the scheduler skips them, and pauses those due", async () => {
    const gone = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    const client = (await t.request('POST', '/v1/clients', { token: gone.token, body: { name: 'Gone' } })).body.id;
    const created = await create({ clientId: client, interval: 'day', template: TEMPLATE, startAt: at(86_400_000).toISOString() }, { token: gone.token });
    expectStatus(created, 201);
    await t.services.organizations.delete(systemContext(), gone.organizationId);
    await t.db.query("UPDATE recurring_schedules SET next_run_at = now() - interval '1 minute' WHERE id = $1", [created.body.id]);
    await t.services.payments.recurring.tick();
    expect(await issued(t.db, created.body.id)).toEqual([]);
    const [row] = await t.db.query<{ status: string }>('SELECT status FROM recurring_schedules WHERE id = $1', [created.body.id]);
    expect(row!.status).toBe('paused');
    // Even a run that reaches the schedule (it was picked just before the deletion) bills nothing.
    await t.db.query("UPDATE recurring_schedules SET status = 'active' WHERE id = $1", [created.body.id]);
    await expect(t.services.work.run((tx) => t.services.payments.recurring.run(tx, gone.organizationId, created.body.id))).rejects.toMatchObject({ code: 'not_found' });
    expect(await issued(t.db, created.body.id)).toEqual([]);
  });

  it("a schedule whose client was deleted issues nothing: it is paused at its next due run and cannot be resumed or run (409)", async () => {
    const client = (await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Leaving' } })).body.id;
    const created = await create({ clientId: client, interval: 'day', template: TEMPLATE, startAt: at(86_400_000).toISOString() });
    expectStatus(created, 201);
    expectStatus(await t.request('DELETE', `/v1/clients/${client}`, { token: org.token }), 204);
    await t.db.query("UPDATE recurring_schedules SET next_run_at = now() - interval '1 minute' WHERE id = $1", [created.body.id]);
    await t.services.payments.recurring.tick();
    expect(await issued(t.db, created.body.id)).toEqual([]);
    expect((await t.request('GET', `/v1/recurring-schedules/${created.body.id}`, { token: org.token })).body.status).toBe('paused');
    expectProblem(await patch(created.body.id, { status: 'active' }), 409, 'conflict');
    expectProblem(await run(created.body.id), 409, 'conflict');
    expect(await issued(t.db, created.body.id)).toEqual([]);
  });

  it('the list is newest first, cursor-paginated, and filters by status', async () => {
    const lister = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    const client = (await t.request('POST', '/v1/clients', { token: lister.token, body: { name: 'L' } })).body.id;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await create({ clientId: client, interval: 'year', template: TEMPLATE, startAt: '2040-01-01T00:00:00Z' }, { token: lister.token })).body.id);
    }
    await t.request('PATCH', `/v1/recurring-schedules/${ids[0]}`, { token: lister.token, body: { status: 'paused' } });
    const get = (query: string) => t.request('GET', `/v1/recurring-schedules${query}`, { token: lister.token });
    const page = await get('?limit=2');
    expect(page.body).toMatchObject({ object: 'list', hasMore: true });
    expect(page.body.data.map((s: { id: string }) => s.id)).toEqual([ids[2], ids[1]]);
    expect((await get(`?startingAfter=${ids[1]}`)).body.data.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    expect((await get('?status=paused')).body.data.map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    expectProblem(await get('?status=void'), 400, 'validation_error');
  });

  it("another organization's schedule and client do not exist for a key (404), and nothing changes", async () => {
    const schedule = await future();
    const other = await createOrgWithKey(t, ['invoice:*', 'client:*']);
    const as = (method: string, path: string, body?: unknown) => t.request(method, path, { token: other.token, body });
    expectProblem(await as('GET', `/v1/recurring-schedules/${schedule.id}`), 404, 'not_found');
    expectProblem(await as('PATCH', `/v1/recurring-schedules/${schedule.id}`, { status: 'paused' }), 404, 'not_found');
    expectProblem(await as('DELETE', `/v1/recurring-schedules/${schedule.id}`), 404, 'not_found');
    expectProblem(await as('POST', `/v1/recurring-schedules/${schedule.id}/run`), 404, 'not_found');
    expectProblem(await create({ clientId, interval: 'month', template: TEMPLATE }, { token: other.token }), 404, 'not_found');
    expect((await as('GET', '/v1/recurring-schedules')).body.data).toEqual([]);
    const mine = (await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body;
    expect(mine).toMatchObject({ status: 'active', nextRunAt: schedule.nextRunAt });
    expect(await issued(t.db, schedule.id)).toHaveLength(0);
  });

  it('schedules take the invoice scopes: invoice:read reads but cannot create, change, delete or run', async () => {
    const schedule = await future();
    const reader = (await createOrgKey(t, org.organizationId, ['invoice:read'])).secret!;
    const refused = await create({ clientId, interval: 'month', template: TEMPLATE }, { token: reader });
    expectProblem(refused, 403, 'insufficient_scope');
    expect(refused.body.requiredScope).toBe('invoice:create');
    const expectations: Array<[string, string, string, unknown?]> = [
      ['PATCH', `/v1/recurring-schedules/${schedule.id}`, 'invoice:update', { status: 'paused' }],
      ['DELETE', `/v1/recurring-schedules/${schedule.id}`, 'invoice:delete'],
      ['POST', `/v1/recurring-schedules/${schedule.id}/run`, 'invoice:execute'],
    ];
    for (const [method, path, scope, body] of expectations) {
      const result = await t.request(method, path, { token: reader, body });
      expectProblem(result, 403, 'insufficient_scope');
      expect(result.body.requiredScope).toBe(scope);
    }
    expectStatus(await t.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: reader }), 200);
    expect(await issued(t.db, schedule.id)).toHaveLength(0);
    const clientsOnly = (await createOrgKey(t, org.organizationId, ['client:*'])).secret!;
    expect((await t.request('GET', '/v1/recurring-schedules', { token: clientsOnly })).body.requiredScope).toBe('invoice:read');
  });

  it('creating and running honour Idempotency-Key: a replay issues nothing new', async () => {
    const headers = { 'idempotency-key': `rsc-${Date.now()}` };
    const body = { clientId, interval: 'month', template: TEMPLATE, startAt: at(60 * 86_400_000).toISOString() };
    const first = await create(body, { headers });
    expectStatus(first, 201);
    const again = await create(body, { headers });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.body.id);
    expectProblem(await create({ ...body, interval: 'year' }, { headers }), 409, 'idempotency_conflict');

    const runKey = { 'idempotency-key': `run-${Date.now()}` };
    const ran = await run(first.body.id, org.token, runKey);
    expectStatus(ran, 201);
    const replay = await run(first.body.id, org.token, runKey);
    expectStatus(replay, 201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body.id).toBe(ran.body.id);
    expect(await issued(t.db, first.body.id)).toHaveLength(1);
    // The key names one run of one schedule: reused on another schedule it is a conflict, not a replay.
    const otherSchedule = await future();
    expectProblem(await run(otherSchedule.id, org.token, runKey), 409, 'idempotency_conflict');
    expect(await issued(t.db, otherSchedule.id)).toHaveLength(0);
  });
});

/**
 * Races, made deterministic: the schedules are due but paused; one test transaction activates them
 * and so holds their row locks while the manual runs arrive (each reads the period it asks for, then
 * waits for the lock). Only then does the transaction commit, at the same moment as the scheduler
 * passes, so the runs and the schedulers all contend for the same due rows.
 */
async function waitForLockWaiters(db: TestApp['db'], count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [row] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM recurring_schedules%FOR UPDATE'`,
    );
    if (row!.n >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${row!.n} of ${count} requests reached the row lock`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function heldActivation(db: TestApp['db'], scheduleIds: string[]) {
  const locker = new pg.Client({ connectionString: db.connectionString });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query("UPDATE recurring_schedules SET status = 'active' WHERE id = ANY($1)", [scheduleIds]);
  return {
    async commit() {
      await locker.query('COMMIT');
      await locker.end();
    },
  };
}

describe('exactly one invoice per due run, under concurrency', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let org: OrgWithKey;
  let clientId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    // Two Paygate nodes on one PostgreSQL, each with its scheduler running.
    a = await startPaygate({ database });
    b = await startPaygate({ database });
    org = await createOrgWithKey(a, ['invoice:*', 'client:*']);
    clientId = (await a.request('POST', '/v1/clients', { token: org.token, body: { name: 'Race' } })).body.id;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  /** Due an hour ago, paused so that no scheduler takes it before the race begins. */
  const dueAndPaused = async (interval = 'month') => {
    const created = await a.request('POST', '/v1/recurring-schedules', {
      token: org.token,
      body: { clientId, interval, template: TEMPLATE, startAt: at(365 * 86_400_000).toISOString() },
    });
    const due = at(-3_600_000).toISOString();
    const paused = await a.request('PATCH', `/v1/recurring-schedules/${created.body.id}`, { token: org.token, body: { status: 'paused', nextRunAt: due } });
    expectStatus(paused, 200);
    return { id: created.body.id as string, due };
  };
  const invoicesOf = (scheduleId: string) =>
    a.db.query<{ id: string; recurring_period_start: Date }>('SELECT id, recurring_period_start FROM invoices WHERE recurring_schedule_id = $1', [scheduleId]);

  it('a due recurring schedule run twice concurrently issues one invoice', async () => {
    const schedule = await dueAndPaused();
    const held = await heldActivation(a.db, [schedule.id]);
    const runs = [a, b].map((node) => node.request('POST', `/v1/recurring-schedules/${schedule.id}/run`, { token: org.token }));
    await waitForLockWaiters(a.db, 2);
    await held.commit();
    const results = await Promise.all(runs);
    // One issued it (201); the other found its period already issued and answers with that invoice.
    expect(results.map((r) => r.status).sort(), results.map((r) => r.text).join('\n')).toEqual([200, 201]);
    expect(results[0]!.body.id).toBe(results[1]!.body.id);
    expect(results[0]!.body).toMatchObject({ status: 'open', recurringPeriodStart: schedule.due });
    expect(await invoicesOf(schedule.id)).toHaveLength(1);
    const after = (await a.request('GET', `/v1/recurring-schedules/${schedule.id}`, { token: org.token })).body;
    expect(after.nextRunAt).toBe(addMonths(new Date(schedule.due), 1).toISOString());
  });

  it("the schedulers of two nodes and a manual run, all at once, issue exactly one invoice for the period", async () => {
    const schedules = await Promise.all(Array.from({ length: 5 }, (_, i) => dueAndPaused(i % 2 ? 'day' : 'month')));
    const held = await heldActivation(a.db, schedules.map((s) => s.id));
    const runs = schedules.map((s) => b.request('POST', `/v1/recurring-schedules/${s.id}/run`, { token: org.token }));
    await waitForLockWaiters(a.db, schedules.length);
    const recurringA = a.services.payments.recurring;
    const recurringB = b.services.payments.recurring;
    await Promise.all([held.commit(), recurringA.tick(), recurringB.tick(), recurringA.tick(), recurringB.tick()]);
    const results = await Promise.all(runs);
    // And the background loops of both nodes get a pass or two of their own.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await Promise.all([recurringA.tick(), recurringB.tick()]);
    for (const [i, s] of schedules.entries()) {
      expect([200, 201], results[i]!.text).toContain(results[i]!.status);
      const invoices = await invoicesOf(s.id);
      expect(invoices, s.id).toHaveLength(1);
      expect(invoices[0]!.recurring_period_start.toISOString()).toBe(s.due);
      expect(results[i]!.body.id).toBe(invoices[0]!.id);
    }
  });

  it('the schedulers of two nodes alone, racing over many due schedules, issue each exactly once', async () => {
    const schedules = await Promise.all(Array.from({ length: 20 }, () => dueAndPaused('week')));
    const held = await heldActivation(a.db, schedules.map((s) => s.id));
    const recurringA = a.services.payments.recurring;
    const recurringB = b.services.payments.recurring;
    const passes = [held.commit(), recurringA.tick(), recurringB.tick(), recurringA.tick(), recurringB.tick(), recurringA.tick(), recurringB.tick()];
    await Promise.all(passes);
    await Promise.all([recurringA.tick(), recurringB.tick()]);
    const rows = await a.db.query<{ recurring_schedule_id: string; n: number }>(
      'SELECT recurring_schedule_id, count(*)::int AS n FROM invoices WHERE recurring_schedule_id = ANY($1) GROUP BY 1',
      [schedules.map((s) => s.id)],
    );
    expect(rows).toHaveLength(schedules.length);
    expect(rows.every((r) => r.n === 1)).toBe(true);
  });
});
