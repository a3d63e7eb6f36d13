/**
 * The delivery worker: every node runs one. It fans committed events out to the endpoints that
 * subscribe to them, claims due deliveries, POSTs them and records each attempt.
 *
 * At least once, from any node:
 * - Fan-out takes unprocessed outbox rows `FOR UPDATE SKIP LOCKED`, inserts one delivery per
 *   (event, enabled subscribed endpoint that existed when the event was written), unique on that
 *   pair, and marks the rows done, in one transaction: an event is fanned out exactly once.
 * - A claim takes due deliveries `FOR UPDATE SKIP LOCKED` and stamps each with a fresh attempt id
 *   and a claim that expires after `claimSeconds`; the attempt row is written in the same
 *   statement (one round trip; a success is recorded in one statement too). However many nodes
 *   claim at once, one delivery is attempted by one node at a time.
 * - The HTTP call runs with no transaction open. Its outcome is recorded in a unit of work that
 *   changes the delivery only while the claim is still this attempt's. A node that dies mid-attempt
 *   leaves its attempt `unknown`; once the claim expires another node attempts again under a new
 *   attempt id (`Paygate-Attempt-Id`), so a receiver may see an event twice (at least once) but
 *   never one attempt twice. Receivers deduplicate on `Paygate-Event-Id`.
 *
 * Retries: a non-2xx answer, a timeout (10 s), a connection error or a refused target is retried
 * with exponential backoff and jitter (retryDelaySeconds: 30-60 s first, doubling, at most 6-12 h)
 * for up to 3 days from the delivery's creation, the last attempt at the 3-day mark; then it fails.
 * An endpoint whose every attempt has failed for 3 days (`failing_since`) is disabled, audited
 * (`webhook_endpoint.updated` by the system actor) and its organization's owners are mailed (logged
 * when SMTP is not configured). Database time (`now()`) decides every deadline, so nodes agree.
 */
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import type { Logger } from '../services.js';
import type { Metrics } from '../http/metrics.js';
import type { Mailer } from '../mail/mailer.js';
import { SYSTEM_ACTOR } from '../audit/events.js';
import { newId } from '../ids.js';
import type { Sealer } from '../sealing.js';
import { attemptDelivery, type AttemptOutcome } from './deliver.js';
import { signatureHeader } from './signing.js';
import type { Resolver } from './ssrf.js';
import { secretAad, toEndpointView, type EndpointView } from './service.js';
import { ownerEmails, type EndpointRow } from './store.js';
import { endpointDisabledMail } from './mail.js';

/** The bounds of delivery. Tests shorten some of them through `WebhookWorker.limits`. */
export const DELIVERY_LIMITS = {
  /** One attempt, DNS to the last byte read (SPEC §16). */
  timeoutMs: 10_000,
  /** A claim outlives the longest attempt by a wide margin; an expired claim is taken over. */
  claimSeconds: 60,
  /** Attempts in flight on one node at once. */
  maxInFlight: 8,
  /** Idle poll for work other nodes committed (this node's own commits start the worker at once). */
  pollMs: 1_000,
  /** How long a delivery is retried, and how long an endpoint may fail before it is disabled. */
  retryWindowSeconds: 3 * 24 * 3600,
};

const FANOUT_BATCH = 100;
/** Retry delays: 30 s doubling per attempt, at most 6 h, before jitter. */
const FIRST_RETRY_SECONDS = 30;
const MAX_RETRY_SECONDS = 6 * 3600;
/** Events whose deliveries are all over are kept this long, then purged. */
const EVENT_RETENTION_DAYS = 30;
const PURGE_EVERY_MS = 3_600_000;
const MAX_POLL_BACKOFF_MS = 30_000;

/**
 * Seconds until the next attempt after `attempts` failed ones: 30 s * 2^(attempts-1), at most 6 h,
 * times a jitter factor in [1, 2) so a fleet of failing deliveries does not retry in step. The first
 * retry is within 60 seconds (SPEC §16).
 */
export function retryDelaySeconds(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** Math.max(0, attempts - 1));
  return base * (1 + random());
}

interface Claimed {
  id: string;
  attempt_id: string;
  attempts: number;
  organization_id: string;
  endpoint_id: string;
  event_id: string;
  url: string;
  body: string;
  secret_sealed: Buffer;
  previous_sealed: Buffer | null;
}

export interface WorkerDeps {
  db: Database;
  work: Work;
  sealer: Sealer;
  log: Logger;
  metrics: Metrics;
  mailer: Mailer | null;
  publicUrl: string;
  allowPrivate: boolean;
  resolve: Resolver;
}

export type DeliveryOutcomeLabel = 'succeeded' | 'failed' | 'timeout' | 'error' | 'refused';

export class WebhookWorker {
  /** See DELIVERY_LIMITS; per worker, so a test can shorten them on one node. */
  readonly limits = { ...DELIVERY_LIMITS };
  /** Attempts this node has made since start; tests use it across nodes. */
  readonly stats = { attempts: 0 };
  private stopped = true;
  private timer: NodeJS.Timeout | null = null;
  private pumping: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private lastPurge = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private abort = new AbortController();
  /** Slots being claimed for (a claim in progress), so two claims never overfill maxInFlight. */
  private reserved = 0;
  private refilling: Promise<void> | null = null;
  private refillAgain = false;

  constructor(private readonly deps: WorkerDeps) {}

  /** Attempts in flight on this node now. */
  get attemptsInFlight(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.kick();
  }

  /** Stops claiming, aborts the attempts in flight (their claims are released) and waits for them. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.abort.abort();
    await this.pumping;
    await this.refilling;
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** Looks for work now rather than at the next poll. */
  kick(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.kick();
        return;
      }
      // Backoff with jitter while the database fails, so a fleet does not retry in step.
      const delay = this.failures === 0 ? this.limits.pollMs : Math.min(MAX_POLL_BACKOFF_MS, this.limits.pollMs * 2 ** this.failures) * (0.5 + Math.random() / 2);
      this.timer = setTimeout(() => this.kick(), delay);
      this.timer.unref();
    });
  }

  /** One cheap statement: is anything waiting to be fanned out, or due and unclaimed? (An idle poll costs this alone.) */
  private async peek(): Promise<{ events: boolean; due: boolean }> {
    const [row] = await this.deps.db.query<{ events: boolean; due: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM webhook_events WHERE fanned_out_at IS NULL) AS events,
              EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
                        AND (claim_expires_at IS NULL OR claim_expires_at < now())) AS due`,
    );
    return row!;
  }

  private async pump(): Promise<void> {
    try {
      do {
        this.again = false;
        const waiting = await this.peek();
        if (waiting.events) while ((await this.fanOut()) === FANOUT_BATCH && !this.stopped);
        if (this.stopped || (!waiting.events && !waiting.due)) break;
        const { asked, claimed } = await this.fill();
        if (asked === 0) break;
        // A full batch: more may be due.
        if (claimed === asked) this.again = true;
      } while (this.again && !this.stopped && this.inFlight.size < this.limits.maxInFlight);
      if (Date.now() - this.lastPurge > PURGE_EVERY_MS) {
        this.lastPurge = Date.now();
        await this.purge();
      }
      if (this.failures > 0) this.deps.log.info({ failures: this.failures }, 'webhook worker recovered');
      this.failures = 0;
    } catch (error) {
      // Logged once per outage, not once per poll.
      if (this.failures === 0) this.deps.log.error({ err: error }, 'webhook worker failed; retrying with backoff');
      this.failures++;
    }
  }

  private launch(delivery: Claimed): void {
    const attempt: Promise<void> = this.attempt(delivery)
      .catch((error: unknown) => {
        // Not recorded (the database failed): the claim expires and the delivery is attempted again.
        this.deps.log.error({ err: error, deliveryId: delivery.id }, 'webhook attempt could not be recorded; it will be attempted again');
      })
      .finally(() => {
        this.inFlight.delete(attempt);
        this.refill();
      });
    this.inFlight.add(attempt);
  }

  /** Claims for every free slot (none reserved by another claim) and launches what it got. */
  private async fill(): Promise<{ asked: number; claimed: number }> {
    const free = this.limits.maxInFlight - this.inFlight.size - this.reserved;
    if (free <= 0 || this.stopped) return { asked: 0, claimed: 0 };
    this.reserved += free;
    try {
      const claimed = await this.claim(free);
      for (const delivery of claimed) this.launch(delivery);
      return { asked: free, claimed: claimed.length };
    } finally {
      this.reserved -= free;
    }
  }

  /**
   * A slot came free: claim for it at once, without waiting for the pump's next round (its peek and
   * fan-out would keep the slot idle meanwhile). When nothing is due, the pump looks for more work.
   */
  private refill(): void {
    if (this.stopped) return;
    if (this.refilling) {
      this.refillAgain = true;
      return;
    }
    this.refilling = (async () => {
      try {
        do {
          this.refillAgain = false;
          const { asked, claimed } = await this.fill();
          if (asked > 0 && claimed < asked) {
            if (claimed === 0) this.kick();
            break;
          }
        } while (this.refillAgain && !this.stopped);
      } catch {
        // The database failed: the pump logs it once and backs off.
        this.kick();
      } finally {
        this.refilling = null;
      }
    })();
  }

  /** Fans one batch of committed events out into deliveries; returns how many events it took. */
  async fanOut(): Promise<number> {
    return this.deps.db.transaction(async (tx) => {
      const events = await tx.query<{ id: string }>(
        'SELECT id FROM webhook_events WHERE fanned_out_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED',
        [FANOUT_BATCH],
      );
      if (events.length === 0) return 0;
      const ids = events.map((e) => e.id);
      const targets = await tx.query<{ event_id: string; endpoint_id: string; organization_id: string; type: string }>(
        `SELECT ev.id AS event_id, e.id AS endpoint_id, ev.organization_id, ev.type
           FROM webhook_events ev
           JOIN webhook_endpoints e ON e.organization_id = ev.organization_id
          WHERE ev.id = ANY($1::text[]) AND e.status = 'enabled' AND e.created_at <= ev.created_at
            AND (ev.type = ANY(e.events) OR '*' = ANY(e.events))`,
        [ids],
      );
      if (targets.length > 0) {
        await tx.query(
          `INSERT INTO webhook_deliveries (id, organization_id, endpoint_id, event_id, event_type, next_attempt_at)
           SELECT id, organization_id, endpoint_id, event_id, event_type, now()
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(id, organization_id, endpoint_id, event_id, event_type)
           ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
          [
            targets.map(() => newId('webhookDelivery')),
            targets.map((t) => t.organization_id),
            targets.map((t) => t.endpoint_id),
            targets.map((t) => t.event_id),
            targets.map((t) => t.type),
          ],
        );
      }
      await tx.query('UPDATE webhook_events SET fanned_out_at = now() WHERE id = ANY($1::text[])', [ids]);
      return events.length;
    });
  }

  /**
   * Claims up to `limit` due deliveries of enabled endpoints of active organizations: locks them
   * (`FOR UPDATE SKIP LOCKED`), stamps each with a fresh attempt id and a claim, and writes their
   * attempt rows, in one statement (one round trip, atomic on its own). The attempt ids are made
   * here, `limit` of them; the claimed rows take them in turn.
   */
  async claim(limit: number): Promise<Claimed[]> {
    const attemptIds = Array.from({ length: limit }, () => newId('webhookAttempt'));
    return this.deps.db.query<Claimed>(
      `WITH due AS (
         SELECT d.id FROM webhook_deliveries d
           JOIN webhook_endpoints e ON e.id = d.endpoint_id
           JOIN organizations o ON o.id = d.organization_id
          WHERE d.status = 'pending' AND d.next_attempt_at <= now()
            AND (d.claim_expires_at IS NULL OR d.claim_expires_at < now())
            AND e.status = 'enabled' AND o.status = 'active'
          ORDER BY d.next_attempt_at
          LIMIT $1
          FOR UPDATE OF d SKIP LOCKED
       ), numbered AS (
         SELECT id, ($2::text[])[row_number() OVER ()] AS attempt_id FROM due
       ), claimed AS (
         UPDATE webhook_deliveries d
            SET claimed_by = c.attempt_id, claim_expires_at = now() + make_interval(secs => $3),
                attempts = d.attempts + 1, last_attempt_at = now(), updated_at = now()
           FROM numbered c, webhook_events ev, webhook_endpoints e
          WHERE d.id = c.id AND ev.id = d.event_id AND e.id = d.endpoint_id
          RETURNING d.id, c.attempt_id, d.attempts, d.organization_id, d.endpoint_id, d.event_id, e.url, ev.body, e.secret_sealed,
                    CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret_sealed END AS previous_sealed
       ), attempt AS (
         INSERT INTO webhook_attempts (id, delivery_id, started_at) SELECT attempt_id, id, now() FROM claimed
       )
       SELECT * FROM claimed`,
      [limit, attemptIds, this.limits.claimSeconds],
    );
  }

  private secretsOf(delivery: Claimed): string[] {
    const aad = secretAad(delivery.endpoint_id);
    return [delivery.secret_sealed, delivery.previous_sealed]
      .filter((sealed): sealed is Buffer => sealed !== null)
      .map((sealed) => this.deps.sealer.unseal(sealed, aad)?.toString('utf8'))
      .filter((secret): secret is string => secret !== undefined);
  }

  private async attempt(delivery: Claimed): Promise<void> {
    this.stats.attempts++;
    const secrets = this.secretsOf(delivery);
    let outcome: AttemptOutcome;
    if (secrets.length === 0) {
      // Sealed under a pepper this node does not hold: nothing could be signed; the operator must act.
      outcome = { kind: 'refused', error: "the endpoint's secret cannot be opened with this node's pepper; rotate the secret", durationMs: 0 };
    } else {
      const timestamp = Math.floor(Date.now() / 1000);
      outcome = await attemptDelivery({
        url: delivery.url,
        body: delivery.body,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Paygate-Webhooks/1.0',
          'paygate-event-id': delivery.event_id,
          'paygate-delivery-id': delivery.id,
          'paygate-attempt-id': delivery.attempt_id,
          'paygate-signature': signatureHeader(secrets, timestamp, delivery.body),
        },
        timeoutMs: this.limits.timeoutMs,
        allowPrivate: this.deps.allowPrivate,
        resolve: this.deps.resolve,
        signal: this.abort.signal,
      });
    }
    const label = labelOf(outcome);
    this.deps.metrics.webhookDeliveries.inc({ outcome: label });
    if (this.stopped && outcome.kind === 'error') {
      await this.release(delivery);
      return;
    }
    const notice = await this.record(delivery, outcome, label === 'succeeded');
    if (notice) this.notify(notice);
  }

  /** The node is stopping mid-attempt: the attempt's outcome is unknown, the delivery due again at once. */
  private async release(delivery: Claimed): Promise<void> {
    await this.deps.db.query(
      `UPDATE webhook_deliveries SET claimed_by = NULL, claim_expires_at = NULL, next_attempt_at = now(), updated_at = now()
        WHERE id = $1 AND claimed_by = $2`,
      [delivery.id, delivery.attempt_id],
    );
  }

  /** Records an attempt; returns what to tell the owners when it disabled the endpoint. */
  private async record(delivery: Claimed, outcome: AttemptOutcome, ok: boolean): Promise<{ endpoint: EndpointView; owners: string[] } | null> {
    const status = outcome.kind === 'answered' ? outcome.status : null;
    const error = outcome.kind === 'answered' ? (ok ? null : `HTTP ${outcome.status}`) : outcome.error;
    if (ok) {
      // A success audits nothing and disables nothing: the attempt, the delivery (only while the
      // claim is still this attempt's) and the endpoint's failure streak in one statement.
      await this.deps.db.query(
        `WITH attempt AS (
           UPDATE webhook_attempts SET duration_ms = $3, response_status = $4, response_body = $5, error = NULL, outcome = 'succeeded' WHERE id = $2
         ), delivery AS (
           UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, claimed_by = NULL, claim_expires_at = NULL,
                  last_response_status = $4, last_error = NULL, updated_at = now()
            WHERE id = $1 AND claimed_by = $2
         )
         UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $6 AND failing_since IS NOT NULL`,
        [delivery.id, delivery.attempt_id, outcome.durationMs, status, outcome.kind === 'answered' ? outcome.body : null, delivery.endpoint_id],
      );
      return null;
    }
    return this.deps.work.run(async (tx) => {
      await tx.query(
        'UPDATE webhook_attempts SET duration_ms = $2, response_status = $3, response_body = $4, error = $5, outcome = $6 WHERE id = $1',
        [delivery.attempt_id, outcome.durationMs, status, outcome.kind === 'answered' ? outcome.body : null, outcome.kind === 'answered' ? null : outcome.error, 'failed'],
      );
      const window = this.limits.retryWindowSeconds;
      const [changed] = await tx.query<{ status: string }>(
        `UPDATE webhook_deliveries SET
            status = CASE WHEN now() >= created_at + make_interval(secs => $3) THEN 'failed' ELSE 'pending' END,
            next_attempt_at = CASE WHEN now() >= created_at + make_interval(secs => $3) THEN NULL
                                   ELSE least(now() + make_interval(secs => $4), created_at + make_interval(secs => $3)) END,
            claimed_by = NULL, claim_expires_at = NULL, last_response_status = $5, last_error = $6, updated_at = now()
          WHERE id = $1 AND claimed_by = $2
          RETURNING status`,
        [delivery.id, delivery.attempt_id, window, retryDelaySeconds(delivery.attempts), status, error],
      );
      // The claim was taken over (this node stalled past it): the other attempt decides.
      if (!changed) return null;
      const [endpoint] = await tx.query<{ status: string; expired: boolean }>(
        `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now())
          WHERE id = $1 RETURNING status, failing_since <= now() - make_interval(secs => $2) AS expired`,
        [delivery.endpoint_id, window],
      );
      if (!endpoint || endpoint.status !== 'enabled' || !endpoint.expired) return null;
      const [disabled] = await tx.query<EndpointRow>(
        "UPDATE webhook_endpoints SET status = 'disabled', updated_at = now() WHERE id = $1 AND status = 'enabled' RETURNING *",
        [delivery.endpoint_id],
      );
      if (!disabled) return null;
      tx.audit({
        action: 'webhook_endpoint.updated',
        actor: SYSTEM_ACTOR,
        organizationId: disabled.organization_id,
        target: { type: 'webhook_endpoint', id: disabled.id },
        details: { fields: ['status'], status: { from: 'enabled', to: 'disabled' }, reason: `every delivery failed for ${window / 86_400} days` },
      });
      return { endpoint: toEndpointView(disabled), owners: await ownerEmails(tx, disabled.organization_id) };
    });
  }

  /** After the commit that disabled an endpoint: its organization's owners learn it. */
  private notify(notice: { endpoint: EndpointView; owners: string[] }): void {
    const { endpoint, owners } = notice;
    const { mailer } = this.deps;
    if (!mailer) {
      this.deps.log.warn({ endpointId: endpoint.id, owners: owners.length }, 'webhook endpoint disabled after 3 days of failed deliveries; SMTP is not configured, so its owners were not mailed');
      return;
    }
    this.deps.log.warn({ endpointId: endpoint.id, owners: owners.length }, 'webhook endpoint disabled after 3 days of failed deliveries; its owners are mailed');
    for (const to of owners) mailer.send(endpointDisabledMail({ to, endpoint, publicUrl: this.deps.publicUrl }), 'webhook_disabled');
  }

  /** Events past their retention whose deliveries are all over (their deliveries and attempts go with them). */
  private async purge(): Promise<void> {
    await this.deps.db.query(
      `DELETE FROM webhook_events WHERE id IN (
         SELECT ev.id FROM webhook_events ev
          WHERE ev.created_at < now() - make_interval(days => $1) AND ev.fanned_out_at IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id AND d.status = 'pending')
          LIMIT 1000)`,
      [EVENT_RETENTION_DAYS],
    );
  }
}

function labelOf(outcome: AttemptOutcome): DeliveryOutcomeLabel {
  switch (outcome.kind) {
    case 'answered':
      return outcome.status >= 200 && outcome.status < 300 ? 'succeeded' : 'failed';
    case 'refused':
      return 'refused';
    case 'timeout':
      return 'timeout';
    case 'error':
      return 'error';
  }
}
