/**
 * The calendar of a recurring schedule: pure, in UTC, no database.
 *
 * A schedule's runs are counted from its anchor: run k is at anchor + k x (intervalCount x interval).
 * Days and weeks are fixed lengths (UTC has no DST). Months and years add calendar months and clamp
 * the day to the month's end, always from the anchor, so the day of month never drifts:
 * anchored Jan 31, monthly runs are Feb 28 (29 in a leap year), Mar 31, Apr 30, ...
 */
export type Interval = 'day' | 'week' | 'month' | 'year';

export interface Cadence {
  interval: Interval;
  intervalCount: number;
}

const DAY_MS = 86_400_000;
const FIXED_MS: Partial<Record<Interval, number>> = { day: DAY_MS, week: 7 * DAY_MS };
const MONTHS: Partial<Record<Interval, number>> = { month: 1, year: 12 };

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/** `date` plus `months` calendar months in UTC, the day clamped to the target month's last day. */
export function addMonths(date: Date, months: number): Date {
  const total = date.getUTCFullYear() * 12 + date.getUTCMonth() + months;
  const year = Math.floor(total / 12);
  const month = total - year * 12;
  const day = Math.min(date.getUTCDate(), daysInMonth(year, month));
  return new Date(Date.UTC(year, month, day, date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds()));
}

/** `date` plus one interval of the cadence (e.g. Jan 31 + 1 month = Feb 28/29). */
export function addInterval(date: Date, cadence: Cadence): Date {
  return occurrence(date, cadence, 1);
}

/** Run k of a schedule anchored at `anchor` (k = 0 is the anchor itself). */
export function occurrence(anchor: Date, cadence: Cadence, k: number): Date {
  const fixed = FIXED_MS[cadence.interval];
  if (fixed !== undefined) return new Date(anchor.getTime() + k * cadence.intervalCount * fixed);
  return addMonths(anchor, k * cadence.intervalCount * MONTHS[cadence.interval]!);
}

/** The largest k with occurrence(k) <= at (may be negative when `at` is before the anchor). */
function indexAtOrBefore(anchor: Date, cadence: Cadence, at: Date): number {
  const fixed = FIXED_MS[cadence.interval];
  if (fixed !== undefined) return Math.floor((at.getTime() - anchor.getTime()) / (cadence.intervalCount * fixed));
  const step = cadence.intervalCount * MONTHS[cadence.interval]!;
  const monthsApart = (at.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + (at.getUTCMonth() - anchor.getUTCMonth());
  // The estimate is right or one too high (when `at` falls earlier in its month than the anchor's run).
  let k = Math.floor(monthsApart / step);
  while (occurrence(anchor, cadence, k) > at) k--;
  while (occurrence(anchor, cadence, k + 1) <= at) k++;
  return k;
}

/** The latest run at or before `at`: the start of the period `at` falls in. */
export function periodStartAt(anchor: Date, cadence: Cadence, at: Date): Date {
  return occurrence(anchor, cadence, indexAtOrBefore(anchor, cadence, at));
}

/** The first run strictly after `at`. */
export function runAfter(anchor: Date, cadence: Cadence, at: Date): Date {
  return occurrence(anchor, cadence, indexAtOrBefore(anchor, cadence, at) + 1);
}

/**
 * Which period a run issues and where the schedule moves next (the catch-up rule).
 *
 * A schedule that is not yet due (a manual run ahead of time) issues its next run's period early.
 * A due schedule issues ONE invoice, for the period `now` falls in, however many runs it missed
 * (paused for months, nodes down): no backlog of invoices for periods nobody was billed in on time.
 * Either way nextRunAt becomes the first run after the issued period.
 */
export function planRun(anchor: Date, cadence: Cadence, nextRunAt: Date, now: Date): { periodStart: Date; nextRunAt: Date } {
  const periodStart = nextRunAt > now ? nextRunAt : periodStartAt(anchor, cadence, now);
  // nextRunAt is always on the anchor's grid (both are reset together), so the current period is
  // never earlier than it; max() keeps that true even if it were not.
  const start = periodStart < nextRunAt ? nextRunAt : periodStart;
  return { periodStart: start, nextRunAt: runAfter(anchor, cadence, start) };
}
