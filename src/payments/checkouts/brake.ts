/**
 * The card-testing brake. A card tester drives a public pay page with stolen numbers and keeps the
 * ones that are not declined; the brake caps how many declines any one thing may collect:
 *
 *   subject        limit   window   what it stops
 *   checkout          10   24 h     one payment link hammered (a checkout lives at most 24 h)
 *   invoice           10   24 h     new links for one invoice (the portal's Pay button, the API)
 *   client            20   24 h     one customer's invoices, one after another
 *   source            20    1 h     one address (IPv4, or an IPv6 /64) across checkouts and merchants
 *   organization     100    1 h     a distributed run against one merchant
 *
 * Sized like a careful processor's defaults (Stripe's card-testing defences slow a merchant, an
 * address or a customer once declines pile up, and let the legitimate few retries through): a
 * payer whose card is declined has a handful of tries per invoice, a tester gets nowhere. Only
 * declines count (`card_declined`, `insufficient_funds`, `invalid_number`); a processor outage
 * (`processing_error`) is not the payer's doing.
 *
 * Counting holds across nodes: every decline is a row of `card_failures` in PostgreSQL, written
 * in the attempt's transaction; each limit is a count over a sliding window, read through an
 * index of its own and capped at the limit (an attack of a million rows costs no more to count).
 * The window slides: an attempt is allowed again once enough of the oldest declines have aged out,
 * which is what Retry-After says. Rows older than the longest window are purged.
 *
 * Exactness under concurrency: an attempt holds its invoice and checkout rows (pay() locks them)
 * and, taken here, transaction-level advisory locks on its client and its source, always in that
 * order; simultaneous attempts on one of those therefore count each other's declines. The
 * organization count is not serialised (that would queue every payment of a merchant): a burst of
 * simultaneous attempts from many addresses may pass it by at most the attempts in flight at once.
 */
import { normalizeCidr, parseAddress } from '../../net/cidr.js';
import type { Queryable } from '../../db/database.js';

export type BrakeSubject = 'checkout' | 'invoice' | 'client' | 'source' | 'organization';

export interface BrakeRule {
  subject: BrakeSubject;
  /** Declines allowed in the window; the next attempt is refused. */
  limit: number;
  windowSeconds: number;
}

const DAY = 86_400;
const HOUR = 3_600;

export const CARD_BRAKES: readonly BrakeRule[] = [
  { subject: 'checkout', limit: 10, windowSeconds: DAY },
  { subject: 'invoice', limit: 10, windowSeconds: DAY },
  { subject: 'client', limit: 20, windowSeconds: DAY },
  { subject: 'source', limit: 20, windowSeconds: HOUR },
  { subject: 'organization', limit: 100, windowSeconds: HOUR },
];

/** Failure codes that count: the payer's card was refused. */
const COUNTED_FAILURES = new Set(['card_declined', 'insufficient_funds', 'invalid_number']);

export const countsAsDecline = (failureCode: string): boolean => COUNTED_FAILURES.has(failureCode);

/** What one attempt is about; a null subject is not checked (a checkout without invoice or client). */
export interface AttemptSubjects {
  checkoutId: string | null;
  invoiceId: string | null;
  clientId: string | null;
  organizationId: string;
  /** From sourceOf(); null when the address is unknown. */
  source: string | null;
}

export interface BrakeTrip {
  subject: BrakeSubject;
  limit: number;
  windowSeconds: number;
  /** Seconds until one more attempt would be allowed (at least 1). */
  retryAfterSeconds: number;
}

const COLUMNS: Record<BrakeSubject, string> = {
  checkout: 'checkout_id',
  invoice: 'invoice_id',
  client: 'client_id',
  source: 'source',
  organization: 'organization_id',
};

const valueOf = (s: AttemptSubjects, subject: BrakeSubject): string | null =>
  ({ checkout: s.checkoutId, invoice: s.invoiceId, client: s.clientId, source: s.source, organization: s.organizationId })[subject];

/** Advisory lock class of the brake (two-int4 keyspace: no clash with the single-bigint locks elsewhere). */
const LOCK_CLASS = 0x63617264; // 'card'

/**
 * The source an attempt is counted under: an IPv4 address, or the /64 of an IPv6 address (one
 * subscriber line gets a whole /64, so counting single IPv6 addresses would count nothing).
 */
export function sourceOf(ip: string | null | undefined): string | null {
  if (!ip) return null;
  const address = parseAddress(ip);
  if (!address) return null;
  return address.kind() === 'ipv4' ? address.toString() : normalizeCidr(`${address.toString()}/64`);
}

/** A Retry-After in words a payer can plan with: "a minute", "about 40 minutes", "about 3 hours". */
export function waitInWords(seconds: number): string {
  if (seconds < 90) return 'a minute';
  if (seconds < 90 * 60) return `about ${Math.round(seconds / 60)} minutes`;
  const hours = Math.round(seconds / 3600);
  return hours === 1 ? 'about an hour' : `about ${hours} hours`;
}

export class CardBrake {
  /** The longest window: how long a decline is kept. */
  readonly retentionSeconds: number;

  constructor(readonly rules: readonly BrakeRule[] = CARD_BRAKES) {
    this.retentionSeconds = Math.max(...rules.map((r) => r.windowSeconds));
  }

  /**
   * Serialises attempts of one client and of one source (see the file comment). Call in the
   * attempt's transaction, after its invoice and checkout row locks.
   */
  async lock(tx: Queryable, subjects: AttemptSubjects): Promise<void> {
    for (const subject of ['client', 'source'] as const) {
      const value = valueOf(subjects, subject);
      if (value !== null) await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [LOCK_CLASS, `${subject}:${value}`]);
    }
  }

  /**
   * The limit an attempt would break, or null. `only` restricts the subjects looked at. Of several
   * broken limits, the one that lasts longest; the checkout's own only when it is the only one (a
   * payer told to ask for a new link must not find that link braked too).
   */
  async check(q: Queryable, subjects: AttemptSubjects, only?: readonly BrakeSubject[]): Promise<BrakeTrip | null> {
    const rules = this.rules.filter((r) => valueOf(subjects, r.subject) !== null && (!only || only.includes(r.subject)));
    if (rules.length === 0) return null;
    const params: unknown[] = [];
    const param = (value: unknown) => `$${params.push(value)}`;
    // One round trip; each count walks its own index and stops at the limit.
    const counts = rules.map(
      (r, i) =>
        `(SELECT count(*) FROM (SELECT 1 FROM card_failures WHERE ${COLUMNS[r.subject]} = ${param(valueOf(subjects, r.subject))}
            AND created_at > now() - make_interval(secs => ${param(r.windowSeconds)}) LIMIT ${param(r.limit)}) s)::int AS c${i}`,
    );
    const [row] = await q.query<Record<string, number>>(`SELECT ${counts.join(', ')}`, params);
    const tripped = rules.filter((r, i) => row![`c${i}`]! >= r.limit);
    if (tripped.length === 0) return null;
    const trips: BrakeTrip[] = [];
    for (const r of tripped) trips.push({ ...r, retryAfterSeconds: await this.retryAfter(q, r, valueOf(subjects, r.subject)!) });
    const others = trips.filter((t) => t.subject !== 'checkout').sort((a, b) => b.retryAfterSeconds - a.retryAfterSeconds);
    return others[0] ?? trips[0]!;
  }

  /**
   * Seconds until the count drops below the limit: when the limit-th newest decline leaves the
   * window (every older one has left before it).
   */
  private async retryAfter(q: Queryable, rule: BrakeRule, value: string): Promise<number> {
    const [row] = await q.query<{ s: number }>(
      `SELECT ceil(extract(epoch FROM created_at + make_interval(secs => $2) - now()))::int AS s
         FROM card_failures WHERE ${COLUMNS[rule.subject]} = $1 AND created_at > now() - make_interval(secs => $2)
        ORDER BY created_at DESC OFFSET $3 LIMIT 1`,
      [value, rule.windowSeconds, rule.limit - 1],
    );
    return Math.max(1, row?.s ?? 1);
  }

  /** Records a decline, in the attempt's transaction. */
  async recordDecline(tx: Queryable, subjects: AttemptSubjects & { checkoutId: string }): Promise<void> {
    await tx.query('INSERT INTO card_failures (organization_id, checkout_id, invoice_id, client_id, source) VALUES ($1, $2, $3, $4, $5)', [
      subjects.organizationId,
      subjects.checkoutId,
      subjects.invoiceId,
      subjects.clientId,
      subjects.source,
    ]);
  }

  /** Deletes declines older than every window, in batches (each statement stays short). */
  async purge(db: Queryable): Promise<number> {
    let deleted = 0;
    for (;;) {
      const rows = await db.query(
        `DELETE FROM card_failures WHERE id IN (
           SELECT id FROM card_failures WHERE created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT 10000)
         RETURNING 1`,
        [this.retentionSeconds],
      );
      deleted += rows.length;
      if (rows.length < 10000) return deleted;
    }
  }
}
