/**
 * Aggregated audit events: attempts that anyone (or one looping credential) can repeat at any rate
 * are counted in memory and written as at most two rows per key and window, never one row per
 * request under the chain head's lock.
 *
 * Per key (who did what where: a source address, a principal and route, a principal and scope) a
 * window opens at the first attempt and lasts `windowMs`. The attempt that reaches `recordAt` is
 * written at once (by the caller, which decides what a failed write means); what follows in the window is written as one event
 * when the window ends (a timer sweeps every `tickMs`), carrying the count, the window's start and
 * the distinct samples seen (filters, typed addresses: at most SAMPLES_KEPT). Below `recordAt`
 * nothing is written (a single mistyped key is no attack).
 *
 * Memory is bounded without losing a count: an entry holding unreported attempts is never dropped
 * before it is written. When `maxTracked` keys are held and none has ended, a new key is not tracked;
 * its attempts are counted in one "untracked" event per action and window instead.
 *
 * Counts are per node, and a node that dies loses at most one window of counts (the first event of
 * each window is written at once, so every key that was active is on record).
 */
import type { AuditAction, AuditInput } from './events.js';

export const SAMPLES_KEPT = 20;

export interface BurstOptions {
  /** The attempt within a window that is written at once: 1 for the first, 5 for bursts of junk. */
  recordAt: number;
  /** A value to keep among the window's samples: `details[field]` of the aggregated event. */
  sample?: { field: string; value: unknown };
}

interface Burst {
  first: number;
  count: number;
  reported: number;
  recordAt: number;
  /** The event of the first attempt; the aggregated event keeps its actor, target and details. */
  input: AuditInput;
  /** The newest attempt's source address and request: the aggregated event names them. */
  lastIp: string | null;
  lastRequestId: string | null;
  samples: Map<string, Map<string, unknown>>;
  samplesDropped: boolean;
}

export interface BurstDeps {
  /** Writes events in one unit of work; failures are the writer's to log, never thrown at a request. */
  write(inputs: AuditInput[]): Promise<void>;
  windowMs?: number;
  tickMs?: number;
  maxTracked?: number;
  now?: () => number;
}

export class AuditBursts {
  private readonly entries = new Map<string, Burst>();
  private readonly untracked = new Map<AuditAction, { first: number; count: number; input: AuditInput }>();
  private readonly windowMs: number;
  private readonly tickMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private pending = new Set<Promise<void>>();

  constructor(private readonly deps: BurstDeps) {
    this.windowMs = deps.windowMs ?? 60_000;
    this.tickMs = deps.tickMs ?? 5_000;
    this.maxTracked = deps.maxTracked ?? 10_000;
    this.now = deps.now ?? Date.now;
  }

  /** Keys tracked now (tests). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Counts one attempt under `key`. Returns the event to write now when this attempt is the window's
   * `recordAt`-th (the caller writes it, with its own policy on failure), else null: the attempt is
   * in the count of the window's aggregated event.
   */
  note(key: string, input: AuditInput, options: BurstOptions): AuditInput | null {
    const now = this.now();
    let entry = this.entries.get(key);
    if (entry && now - entry.first >= this.windowMs) {
      // The window ended: its remainder is written, and this attempt opens the next.
      this.write(this.endWindow(key, entry));
      entry = undefined;
    }
    if (!entry) {
      if (this.entries.size >= this.maxTracked) this.sweep(now);
      if (this.entries.size >= this.maxTracked) {
        // Security: never drop a key holding unreported attempts to make room; count the newcomer apart.
        const untracked = this.untracked.get(input.action) ?? { first: now, count: 0, input };
        untracked.count++;
        this.untracked.set(input.action, untracked);
        return null;
      }
      entry = { first: now, count: 0, reported: 0, recordAt: options.recordAt, input, lastIp: null, lastRequestId: null, samples: new Map(), samplesDropped: false };
      this.entries.set(key, entry);
    }
    entry.count++;
    entry.lastIp = input.ip ?? null;
    entry.lastRequestId = input.requestId ?? null;
    if (options.sample) this.keepSample(entry, options.sample);
    if (entry.count !== entry.recordAt) return null;
    const immediate = this.event(entry, input, entry.recordAt > 1);
    entry.reported = entry.count;
    entry.samples.clear();
    entry.samplesDropped = false;
    return immediate;
  }

  /**
   * Counts one more attempt under `key` when that needs no event: its window is open and this attempt
   * is not the one to write. True when counted; false when the caller must `note` it (with the event
   * it then builds). Attempts that come by the thousand (forged tokens) pay no event object each.
   * For keys noted without samples (a counted attempt keeps none).
   */
  count(key: string, ip: string | null, requestId: string | null): boolean {
    const entry = this.entries.get(key);
    if (!entry || entry.count + 1 === entry.recordAt || this.now() - entry.first >= this.windowMs) return false;
    entry.count++;
    entry.lastIp = ip;
    entry.lastRequestId = requestId;
    return true;
  }

  /**
   * Writes what is due: every window that has ended (`all`: every window, ended or not, as at
   * shutdown) and the untracked counts. Entries whose window ended are dropped once written.
   */
  async flush(all = false): Promise<void> {
    const now = this.now();
    const due: AuditInput[] = [];
    for (const [key, entry] of this.entries) {
      if (now - entry.first >= this.windowMs) due.push(...this.endWindow(key, entry));
      else if (all && entry.count > entry.reported && entry.count >= entry.recordAt) {
        due.push(this.event(entry, entry.input, true));
        entry.reported = entry.count;
        entry.samples.clear();
        entry.samplesDropped = false;
      }
    }
    for (const [action, untracked] of this.untracked) {
      if (!all && now - untracked.first < this.windowMs) continue;
      this.untracked.delete(action);
      due.push({
        action,
        actor: { type: untracked.input.actor.type, id: null },
        organizationId: null,
        outcome: untracked.input.outcome,
        details: { attempts: untracked.count, windowStartedAt: new Date(untracked.first).toISOString(), aggregated: true, untracked: true },
      });
    }
    this.write(due);
    await Promise.all([...this.pending]);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush(true);
  }

  /** Drops ended windows, writing their remainders (called when the table is full). */
  private sweep(now: number): void {
    const due: AuditInput[] = [];
    for (const [key, entry] of this.entries) if (now - entry.first >= this.windowMs) due.push(...this.endWindow(key, entry));
    this.write(due);
  }

  /** Removes an ended window; the event for its unreported attempts, if they are to be reported. */
  private endWindow(key: string, entry: Burst): AuditInput[] {
    this.entries.delete(key);
    if (entry.count <= entry.reported || entry.count < entry.recordAt) return [];
    return [this.event(entry, entry.input, true)];
  }

  private event(entry: Burst, input: AuditInput, aggregated: boolean): AuditInput {
    if (!aggregated) return input;
    const samples = Object.fromEntries([...entry.samples].map(([field, values]) => [field, [...values.values()]]));
    return {
      ...input,
      ip: entry.lastIp,
      requestId: entry.lastRequestId,
      details: {
        ...(input.details ?? {}),
        ...samples,
        ...(entry.samplesDropped ? { samplesTruncated: true } : {}),
        attempts: entry.count - entry.reported,
        windowStartedAt: new Date(entry.first).toISOString(),
        ...(entry.recordAt === 1 || entry.reported > 0 ? { aggregated: true } : {}),
      },
    };
  }

  private keepSample(entry: Burst, sample: { field: string; value: unknown }): void {
    let values = entry.samples.get(sample.field);
    if (!values) entry.samples.set(sample.field, (values = new Map()));
    const id = JSON.stringify(sample.value) ?? 'null';
    if (values.has(id)) return;
    if (values.size >= SAMPLES_KEPT) entry.samplesDropped = true;
    else values.set(id, sample.value);
  }

  private write(inputs: AuditInput[]): void {
    if (inputs.length === 0) return;
    const tracked: Promise<void> = this.deps.write(inputs).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }
}
