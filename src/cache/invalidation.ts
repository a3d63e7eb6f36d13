/**
 * Cluster-wide cache invalidation over PostgreSQL LISTEN/NOTIFY, with a bound: once the response to
 * a change returns, no node serves a cached credential older than that change.
 *
 * How:
 * 1. A change runs in `bus.transaction`; it calls `tx.publish([...])`, which inserts numbered rows into
 *    `invalidations` and NOTIFYs, in the change's transaction. Publishing transactions take an advisory
 *    lock first, so sequence numbers are assigned in commit order and "seq > last seen" is an exact
 *    catch-up query.
 * 2. After commit the node applies the invalidations to its own caches, then waits until every live
 *    peer (a row in `paygate_nodes` with a recent heartbeat) has acknowledged the sequence number, or
 *    until `ackTimeoutMs` has passed.
 * 3. Every node listens on a dedicated connection (never pooled). On a notification it drops the entry
 *    and acknowledges with a NOTIFY of its own. A heartbeat on that connection every `heartbeatMs`
 *    records the node's presence and replays every invalidation past the last sequence number it saw.
 * 4. A node trusts its caches only while its last confirmed heartbeat is younger than
 *    `trustWindowMs` (< ackTimeoutMs). So a peer that did not acknowledge a change has, by the time
 *    the change's response leaves, either applied it or stopped trusting its cache: it reads from the
 *    database until a heartbeat succeeds again, and that heartbeat replays what it missed.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Database, Queryable } from '../db/database.js';

export type InvalidationKind = 'api_key' | 'organization' | 'session' | 'user' | 'settings';

export interface Invalidation {
  kind: InvalidationKind;
  subject: string;
}

/** A transaction that can publish invalidations; they take effect when it commits. */
export interface ChangeTx extends Queryable {
  publish(invalidations: Invalidation[]): Promise<void>;
}

export const INVALIDATION_CHANNEL = 'paygate_invalidation';
export const ACK_CHANNEL = 'paygate_invalidation_ack';
// Arbitrary constant: serialises publishing transactions so sequence order is commit order.
const PUBLISH_LOCK = 7_412_903_003;
const CATCH_UP_BATCH = 1000;

export interface InvalidationLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BusOptions {
  heartbeatMs?: number;
  nodeId?: string;
}

interface AckWaiter {
  seq: number;
  pending: Set<string>;
  resolve: () => void;
}

export class InvalidationBus {
  readonly nodeId: string;
  readonly heartbeatMs: number;
  readonly trustWindowMs: number;
  readonly ackTimeoutMs: number;
  private handlers: Array<(invalidation: Invalidation) => void> = [];
  private flushHandlers: Array<() => void> = [];
  private client: pg.Client | null = null;
  private live = false;
  private confirmedAt = -Infinity;
  private stopped = true;
  private lastSeq = 0;
  private ackedSeq = 0;
  private ackScheduled = false;
  private waiters = new Set<AckWaiter>();
  /** The highest sequence number each peer has acknowledged (one entry per peer node). */
  private peerAcks = new Map<string, number>();
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  /** Bumped on every invalidation or flush: a loader that saw it change must not cache what it read. */
  generation = 0;
  /** Channel events, for metrics and tests. */
  readonly stats = { received: 0, flushes: 0, reconnects: 0, ackTimeouts: 0, caughtUp: 0 };

  constructor(
    private readonly db: Database,
    private readonly log: InvalidationLog,
    options: BusOptions = {},
  ) {
    this.nodeId = options.nodeId ?? `node_${randomBytes(6).toString('hex')}`;
    this.heartbeatMs = options.heartbeatMs ?? 500;
    // Three missed heartbeats end trust; acknowledgements are awaited a little longer than that.
    this.trustWindowMs = this.heartbeatMs * 3;
    this.ackTimeoutMs = this.trustWindowMs + 500;
  }

  /** Whether cached credentials may be served now. */
  get trusted(): boolean {
    return this.live && performance.now() - this.confirmedAt < this.trustWindowMs;
  }

  /** Whether the LISTEN connection is up (for /readyz and metrics). */
  get channelLive(): boolean {
    return this.live;
  }

  onInvalidate(handler: (invalidation: Invalidation) => void): void {
    this.handlers.push(handler);
  }

  onFlush(handler: () => void): void {
    this.flushHandlers.push(handler);
  }

  /**
   * Runs a change in one transaction. Invalidations it publishes are applied on this node after commit,
   * and the promise resolves only when every live peer has applied them too (or has stopped trusting
   * its cache): a response sent after it reflects the change on every node.
   */
  async transaction<T>(fn: (tx: ChangeTx) => Promise<T>): Promise<T> {
    const published: Invalidation[] = [];
    let maxSeq = 0;
    const result = await this.db.transaction(async (q) => {
      let locked = false;
      const tx: ChangeTx = {
        query: (sql, params) => q.query(sql, params),
        publish: async (invalidations) => {
          if (!locked) {
            await q.query('SELECT pg_advisory_xact_lock($1)', [PUBLISH_LOCK]);
            locked = true;
          }
          for (const inv of invalidations) {
            const [row] = await q.query<{ seq: number }>('INSERT INTO invalidations (kind, subject) VALUES ($1, $2) RETURNING seq', [inv.kind, inv.subject]);
            // Payloads stay tiny (seq, kind, subject), far below NOTIFY's 8000-byte limit.
            await q.query('SELECT pg_notify($1, $2)', [INVALIDATION_CHANNEL, `${row!.seq}|${inv.kind}|${inv.subject}`]);
            maxSeq = Math.max(maxSeq, row!.seq);
            published.push(inv);
          }
        },
      };
      return fn(tx);
    });
    if (published.length > 0) await this.settle(published, maxSeq);
    return result;
  }

  /** Applies locally, then waits for every live peer's acknowledgement of `seq` (bounded). */
  private async settle(invalidations: Invalidation[], seq: number): Promise<void> {
    const committedAt = performance.now();
    for (const inv of invalidations) this.dispatch(inv);
    let peers: string[];
    try {
      const windowSeconds = this.trustWindowMs / 1000;
      peers = (
        await this.db.query<{ id: string }>(
          `SELECT id FROM paygate_nodes WHERE id <> $1 AND acked_seq < $2 AND heartbeat_at > now() - make_interval(secs => $3)`,
          [this.nodeId, seq, windowSeconds],
        )
      ).map((r) => r.id);
    } catch {
      // Cannot tell who is out there: wait out the trust window, after which no peer trusts stale entries.
      await this.sleep(this.ackTimeoutMs - (performance.now() - committedAt));
      return;
    }
    // An acknowledgement may have arrived while we asked who the peers are.
    peers = peers.filter((peer) => (this.peerAcks.get(peer) ?? 0) < seq);
    if (peers.length === 0) return;
    const waiter: AckWaiter = { seq, pending: new Set(peers), resolve: () => undefined };
    const acked = new Promise<void>((resolve) => (waiter.resolve = resolve));
    this.waiters.add(waiter);
    const remaining = this.ackTimeoutMs - (performance.now() - committedAt);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), Math.max(0, remaining));
    });
    const outcome = await Promise.race([acked.then(() => false), timedOut]);
    clearTimeout(timer);
    this.waiters.delete(waiter);
    if (outcome) {
      this.stats.ackTimeouts++;
      this.log.warn({ seq, unacknowledged: [...waiter.pending] }, 'peers did not acknowledge an invalidation in time; they no longer trust their caches');
    }
  }

  private sleep(ms: number): Promise<void> {
    return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.live = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const waiter of this.waiters) waiter.resolve();
    const client = this.client;
    this.client = null;
    if (client) {
      // Leave the cluster first, so peers stop waiting for this node's acknowledgements.
      await client.query('DELETE FROM paygate_nodes WHERE id = $1', [this.nodeId]).catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  }

  /** Drops trust at once, as if the channel were lost; it reconnects by itself (tests, operators). */
  distrust(reason: string): void {
    this.markLost(new Error(reason));
  }

  /** The backend pid of the listening connection (tests terminate it to simulate a cut). */
  get listenerPid(): number | null {
    return (this.client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  private dispatch(inv: Invalidation): void {
    this.generation++;
    for (const handler of this.handlers) handler(inv);
  }

  private flushAll(): void {
    this.generation++;
    this.stats.flushes++;
    for (const handler of this.flushHandlers) handler();
  }

  private async connect(): Promise<void> {
    try {
      const client = await this.db.listen([INVALIDATION_CHANNEL, ACK_CHANNEL], {
        onNotification: (channel, payload) => (channel === ACK_CHANNEL ? this.onAck(payload) : this.onNotification(payload)),
        onDisconnect: (error) => this.markLost(error),
        onConnect: () => undefined,
      }, `paygate-listener:${this.nodeId}`);
      this.client = client;
      const sentAt = performance.now();
      // LISTEN is in effect: everything committed from now on is notified. What came before is
      // covered by starting with an empty cache at the current sequence number.
      await this.announce(client);
      const [row] = (await client.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM invalidations')).rows;
      // Math.max: a notification that arrived with the result (committed after its snapshot) stays seen.
      this.lastSeq = Math.max(this.lastSeq, Number(row!.seq));
      // Not marked acknowledged here: scheduleAck below NOTIFYs it, so a peer that committed a change
      // while this node was away stops waiting as soon as this node is current again.
      this.flushAll();
      this.confirmedAt = sentAt;
      this.live = true;
      this.attempt = 0;
      this.scheduleAck();
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => void this.beat(client), this.heartbeatMs);
      this.heartbeat.unref();
      this.log.info({ seq: this.lastSeq, nodeId: this.nodeId }, 'invalidation channel live');
    } catch (error) {
      this.markLost(error as Error);
    }
  }

  private onNotification(payload: string): void {
    this.stats.received++;
    const first = payload.indexOf('|');
    const second = payload.indexOf('|', first + 1);
    const seq = Number(payload.slice(0, first));
    const inv: Invalidation = { kind: payload.slice(first + 1, second) as InvalidationKind, subject: payload.slice(second + 1) };
    this.dispatch(inv);
    // Sequence order is commit order, so a notification for `seq` means everything before it is known.
    if (seq > this.lastSeq) this.lastSeq = seq;
    this.scheduleAck();
  }

  private onAck(payload: string): void {
    const bar = payload.indexOf('|');
    const node = payload.slice(0, bar);
    const seq = Number(payload.slice(bar + 1));
    if (seq > (this.peerAcks.get(node) ?? 0)) this.peerAcks.set(node, seq);
    if (this.peerAcks.size > 1000) this.peerAcks.delete(this.peerAcks.keys().next().value!);
    for (const waiter of this.waiters) {
      if (seq >= waiter.seq && waiter.pending.delete(node) && waiter.pending.size === 0) waiter.resolve();
    }
  }

  /** Acknowledges the last applied sequence number, coalescing bursts into one NOTIFY. */
  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      const client = this.client;
      if (!client || !this.live || this.lastSeq <= this.ackedSeq) return;
      const seq = this.lastSeq;
      client
        .query('SELECT pg_notify($1, $2)', [ACK_CHANNEL, `${this.nodeId}|${seq}`])
        .then(() => {
          if (seq > this.ackedSeq) this.ackedSeq = seq;
        })
        .catch((error: Error) => this.markLost(error));
    });
  }

  /**
   * Records this node's presence, committed on its own BEFORE the catch-up query runs. Every change then
   * either committed before the catch-up's snapshot (and is replayed by it) or after this presence was
   * visible (and its publisher waits for this node's acknowledgement): no change falls between the two,
   * even after a stall longer than the trust window. An upsert, not an UPDATE: a live node must stay
   * listed even if its row was deleted (e.g. by a stopping process that had the same node id).
   */
  private async announce(client: pg.Client): Promise<void> {
    await client.query(
      `INSERT INTO paygate_nodes (id, heartbeat_at, acked_seq) VALUES ($1, now(), $2)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), acked_seq = $2`,
      [this.nodeId, this.ackedSeq],
    );
  }

  /**
   * Heartbeat on the listening connection itself: records presence and the acknowledged sequence,
   * proves the connection alive, and replays any invalidation this node has not seen.
   */
  private async beat(client: pg.Client): Promise<void> {
    if (client !== this.client || !this.live) return;
    const sentAt = performance.now();
    const timeout = setTimeout(() => this.markLost(new Error('heartbeat timed out')), this.trustWindowMs);
    try {
      await this.announce(client);
      const rows = (
        await client.query<{ seq: string; kind: InvalidationKind; subject: string }>(
          `SELECT seq::text, kind, subject FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT ${CATCH_UP_BATCH}`,
          [this.lastSeq],
        )
      ).rows;
      if (client !== this.client) return;
      if (rows.length === CATCH_UP_BATCH) {
        // Too far behind to replay one by one: start over from an empty cache.
        this.flushAll();
        this.lastSeq = Number(rows[rows.length - 1]!.seq);
      } else {
        for (const row of rows) {
          const seq = Number(row.seq);
          if (seq <= this.lastSeq) continue;
          this.stats.caughtUp++;
          this.lastSeq = seq;
          this.dispatch({ kind: row.kind, subject: row.subject });
        }
      }
      this.confirmedAt = sentAt;
      this.scheduleAck();
    } catch (error) {
      this.markLost(error as Error);
    } finally {
      clearTimeout(timeout);
    }
  }

  private markLost(error: Error | null): void {
    const wasLive = this.live;
    this.live = false;
    this.confirmedAt = -Infinity;
    this.flushAll();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const client = this.client;
    this.client = null;
    if (client) void client.end().catch(() => undefined);
    if (this.stopped) return;
    if (wasLive) this.log.warn({ err: error?.message, nodeId: this.nodeId }, 'invalidation channel lost; caches bypassed until it is back');
    if (this.reconnectTimer) return;
    // Exponential backoff with jitter, capped at 5 s.
    const delay = Math.min(5_000, 100 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.stats.reconnects++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }
}
