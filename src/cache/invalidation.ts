/**
 * Cluster-wide cache invalidation over PostgreSQL LISTEN/NOTIFY, with a bound: once the response to
 * a change returns, no node serves a cached credential older than that change.
 *
 * How:
 * 1. A change runs as a unit of work (src/unit-of-work.ts). At its commit, `publishWithin` inserts
 *    numbered rows into `invalidations` and NOTIFYs, in the change's transaction, under an advisory
 *    lock, so sequence numbers are assigned in commit order and "seq > last seen" is an exact
 *    catch-up query.
 * 2. After commit the node applies the invalidations to its own caches (`settle`), then waits until
 *    every live peer (a row in `paygate_nodes` with a recent heartbeat) has acknowledged the sequence
 *    number, or until that peer's acknowledgement timeout has passed.
 * 3. Every node listens on a dedicated connection (never pooled). On a notification it drops the entry
 *    and acknowledges with a NOTIFY of its own. A heartbeat on that connection every `heartbeatMs`
 *    records the node's presence and replays every invalidation past the last sequence number it saw.
 * 4. A node trusts its caches only while its last confirmed heartbeat is younger than
 *    `trustWindowMs` (< its ack timeout). So a peer that did not acknowledge a change has, by the time
 *    the change's response leaves, either applied it or stopped trusting its cache: it reads from the
 *    database until a heartbeat succeeds again, and that heartbeat replays what it missed.
 *
 * The bound rests on two things configuration could break, so neither is left to configuration:
 * - Timing: every node advertises its heartbeat period in `paygate_nodes`; a node whose period differs
 *   from a live peer's refuses to start, and a publisher waits for each peer by that peer's own
 *   window (so even two nodes that raced each other at start cannot break the bound).
 * - Identity: acknowledgements are counted per node id. A node whose id is live elsewhere (another
 *   process still heartbeating under it) refuses to start.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Database, DedicatedConnection, Queryable } from '../db/database.js';

export type InvalidationKind = 'api_key' | 'organization' | 'session' | 'user' | 'settings';

const KINDS = new Set<string>(['api_key', 'organization', 'session', 'user', 'settings']);

export interface Invalidation {
  kind: InvalidationKind;
  subject: string;
}

export const INVALIDATION_CHANNEL = 'paygate_invalidation';
export const ACK_CHANNEL = 'paygate_invalidation_ack';
// Arbitrary constants: PUBLISH_LOCK serialises publishing transactions so sequence order is commit
// order; REGISTER_LOCK serialises the start-up checks of nodes started together.
const PUBLISH_LOCK = 7_412_903_003;
const REGISTER_LOCK = 7_412_903_004;
const CATCH_UP_BATCH = 1000;

/** A node that would break the revocation bound if it ran (SPEC §11): it must not start. */
export class ClusterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterConfigError';
  }
}

export interface InvalidationLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface BusOptions {
  heartbeatMs?: number;
  nodeId?: string;
  /**
   * 'node' (a server: caches, so it registers, heartbeats and acknowledges) or 'publisher' (the CLI:
   * caches nothing, so no peer waits for it; it only listens for the acknowledgements of its own
   * changes).
   */
  role?: 'node' | 'publisher';
}

interface AckWaiter {
  seq: number;
  pending: Set<string>;
  resolve: () => void;
}

/** Nodes whose heartbeat is inside their own trust window (three of their own periods). */
const LIVE_NODES = `SELECT id, instance, heartbeat_ms, heartbeat_at::text AS beat FROM paygate_nodes
  WHERE heartbeat_at > now() - make_interval(secs => heartbeat_ms * 3 / 1000.0)`;

interface LiveNodeRow {
  id: string;
  instance: string | null;
  heartbeat_ms: number;
  /** The heartbeat's timestamp as text: compared, never parsed. */
  beat: string;
}

/** How long a publisher waits for a peer that heartbeats every `heartbeatMs`. */
const ackTimeoutFor = (heartbeatMs: number) => heartbeatMs * 3 + 500;

export class InvalidationBus {
  readonly nodeId: string;
  readonly role: 'node' | 'publisher';
  readonly heartbeatMs: number;
  readonly trustWindowMs: number;
  readonly ackTimeoutMs: number;
  /** This process's registration; tells a restarted node's old row from a live twin's. */
  private readonly instance = randomBytes(8).toString('hex');
  private handlers: Array<(invalidation: Invalidation) => void> = [];
  private flushHandlers: Array<() => void> = [];
  private connection: DedicatedConnection | null = null;
  private live = false;
  private confirmedAt = -Infinity;
  private stopped = true;
  private lastSeq = 0;
  private ackedSeq = 0;
  private ackScheduled = false;
  private waiters = new Set<AckWaiter>();
  /**
   * Sequence numbers this node published and already applied in `settle`: their own NOTIFY echo then
   * only advances the sequence. Dispatching the echo again would bump the generation a second time and
   * make a read that overlaps it uncacheable for nothing. Only what settle applied is skipped, so a
   * change whose commit outcome this node never learnt still invalidates through its echo.
   */
  private appliedHere = new Set<number>();
  /** The highest sequence number each peer has acknowledged (one entry per peer node). */
  private peerAcks = new Map<string, number>();
  /** The longest ack timeout of any peer seen so far: what to wait when the peers cannot be asked. */
  private slowestPeerAckMs: number;
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
    this.role = options.role ?? 'node';
    this.heartbeatMs = options.heartbeatMs ?? 500;
    // Three missed heartbeats end trust; acknowledgements are awaited a little longer than that.
    this.trustWindowMs = this.heartbeatMs * 3;
    this.ackTimeoutMs = ackTimeoutFor(this.heartbeatMs);
    this.slowestPeerAckMs = this.ackTimeoutMs;
  }

  /** Whether cached credentials may be served now. A publisher caches nothing: never. */
  get trusted(): boolean {
    return this.live && this.role === 'node' && performance.now() - this.confirmedAt < this.trustWindowMs;
  }

  /** Whether the LISTEN connection is up (for /readyz and metrics). */
  get channelLive(): boolean {
    return this.live;
  }

  /** The highest change sequence number this node has taken in, by NOTIFY or by catch-up (tests). */
  get seenSeq(): number {
    return this.lastSeq;
  }

  onInvalidate(handler: (invalidation: Invalidation) => void): void {
    this.handlers.push(handler);
  }

  onFlush(handler: () => void): void {
    this.flushHandlers.push(handler);
  }

  /**
   * Publishes invalidations inside the caller's transaction: they reach the other nodes when it
   * commits. Returns their sequence numbers, for `settle`. Only the unit of work calls this, as the
   * last statement before COMMIT (the publish lock is then held for one round trip).
   */
  async publishWithin(tx: Queryable, invalidations: readonly Invalidation[]): Promise<number[]> {
    // One statement: the lock, the numbered rows and their NOTIFYs. The insert reads the lock's row
    // first, so every sequence number is drawn while the lock is held. Payloads stay tiny (seq, kind,
    // subject), far below NOTIFY's 8000-byte limit.
    const rows = await tx.query<{ seq: number }>(
      `WITH locked AS (SELECT pg_advisory_xact_lock($1::bigint)),
            published AS (
              INSERT INTO invalidations (kind, subject)
              SELECT item.kind, item.subject FROM locked, unnest($2::text[], $3::text[]) WITH ORDINALITY AS item(kind, subject, n)
              ORDER BY item.n
              RETURNING seq, kind, subject)
       SELECT seq, pg_notify($4, seq || '|' || kind || '|' || subject) FROM published`,
      [PUBLISH_LOCK, invalidations.map((i) => i.kind), invalidations.map((i) => i.subject), INVALIDATION_CHANNEL],
    );
    return rows.map((row) => Number(row.seq));
  }

  /**
   * After commit: applies the invalidations on this node, then waits for every live peer's
   * acknowledgement of the highest of `seqs`, each peer at most its own ack timeout.
   */
  async settle(invalidations: readonly Invalidation[], seqs: readonly number[]): Promise<void> {
    const committedAt = performance.now();
    for (const inv of invalidations) this.dispatch(inv);
    // Echoes still to come need not be applied again (one that already arrived was applied then).
    if (this.appliedHere.size > 10_000) this.appliedHere.clear();
    for (const seq of seqs) if (seq > this.lastSeq) this.appliedHere.add(seq);
    const seq = seqs.reduce((max, s) => Math.max(max, s), 0);
    let peers: Array<{ id: string; ackTimeoutMs: number }>;
    try {
      peers = (
        await this.db.query<{ id: string; heartbeat_ms: number }>(
          `SELECT id, heartbeat_ms FROM paygate_nodes
            WHERE id <> $1 AND acked_seq < $2 AND heartbeat_at > now() - make_interval(secs => heartbeat_ms * 3 / 1000.0)`,
          [this.nodeId, seq],
        )
      ).map((r) => ({ id: r.id, ackTimeoutMs: ackTimeoutFor(r.heartbeat_ms) }));
    } catch {
      // Cannot tell who is out there: wait out the longest window seen, after which no peer trusts stale entries.
      await this.sleep(this.slowestPeerAckMs - (performance.now() - committedAt));
      return;
    }
    for (const peer of peers) this.slowestPeerAckMs = Math.max(this.slowestPeerAckMs, peer.ackTimeoutMs);
    // An acknowledgement may have arrived while we asked who the peers are.
    peers = peers.filter((peer) => (this.peerAcks.get(peer.id) ?? 0) < seq);
    if (peers.length === 0) return;
    const waiter: AckWaiter = { seq, pending: new Set(peers.map((p) => p.id)), resolve: () => undefined };
    const acked = new Promise<void>((resolve) => (waiter.resolve = resolve));
    this.waiters.add(waiter);
    const longest = Math.max(...peers.map((p) => p.ackTimeoutMs));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), Math.max(0, longest - (performance.now() - committedAt)));
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

  /**
   * Joins the cluster. A node first checks that it may (ClusterConfigError otherwise, before it
   * serves anything); a publisher only starts listening for acknowledgements.
   */
  async start(): Promise<void> {
    this.stopped = false;
    if (this.role === 'node') await this.checkMembership();
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.live = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const waiter of this.waiters) waiter.resolve();
    const connection = this.connection;
    this.connection = null;
    if (connection) {
      // Leave the cluster first, so peers stop waiting for this node's acknowledgements.
      if (this.role === 'node') {
        await connection.query('DELETE FROM paygate_nodes WHERE id = $1 AND instance = $2', [this.nodeId, this.instance], { timeoutMs: 1_000 }).catch(() => undefined);
      }
      await connection.close();
    }
  }

  /** Drops trust at once, as if the channel were lost; it reconnects by itself (tests, operators). */
  distrust(reason: string): void {
    this.markLost(new Error(reason));
  }

  /** The backend pid of the listening connection (tests terminate it to simulate a cut). */
  get listenerPid(): number | null {
    return this.connection?.pid ?? null;
  }

  /**
   * Refuses to join a cluster whose live nodes use another heartbeat period, or where this node id is
   * already live in another process. Serialised by an advisory lock, so two nodes started together
   * see each other; a restarted node's own stale row (its process is gone) is not a twin: a twin is a
   * row whose heartbeat still moves.
   */
  private async checkMembership(): Promise<void> {
    const readLive = (q: Queryable) => q.query<LiveNodeRow>(LIVE_NODES);
    const live = await this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [REGISTER_LOCK]);
      const rows = await readLive(tx);
      const other = rows.find((r) => r.id !== this.nodeId && r.heartbeat_ms !== this.heartbeatMs);
      if (other) {
        throw new ClusterConfigError(
          `PAYGATE_HEARTBEAT_MS is ${this.heartbeatMs} on this node but ${other.heartbeat_ms} on the live node "${other.id}"; ` +
            'every node of a cluster must use the same value (the revocation bound depends on it)',
        );
      }
      if (!rows.some((r) => r.id === this.nodeId)) {
        // Registered inside the lock: a node starting next sees this one.
        await tx.query(
          `INSERT INTO paygate_nodes (id, heartbeat_at, acked_seq, heartbeat_ms, instance) VALUES ($1, now(), 0, $2, $3)
           ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), acked_seq = 0, heartbeat_ms = $2, instance = $3, started_at = now()`,
          [this.nodeId, this.heartbeatMs, this.instance],
        );
      }
      return rows;
    });
    const same = live.find((r) => r.id === this.nodeId && r.instance !== this.instance);
    if (!same) return;
    // A recent row under our id: a twin if its heartbeat moves within a window, else a dead predecessor.
    await this.sleep(this.trustWindowMs + 100);
    const again = (await readLive(this.db)).find((r) => r.id === this.nodeId);
    if (again && again.instance === same.instance && again.beat !== same.beat) {
      throw new ClusterConfigError(
        `PAYGATE_NODE_ID "${this.nodeId}" is in use by another live node; give every node of a cluster its own id`,
      );
    }
  }

  private dispatch(inv: Invalidation): void {
    this.generation++;
    for (const handler of this.handlers) handler(inv);
  }

  private flushAll(): void {
    this.generation++;
    this.appliedHere.clear();
    this.stats.flushes++;
    for (const handler of this.flushHandlers) handler();
  }

  private async connect(): Promise<void> {
    try {
      const channels = this.role === 'node' ? [INVALIDATION_CHANNEL, ACK_CHANNEL] : [ACK_CHANNEL];
      const connection = await this.db.listen(
        channels,
        {
          onNotification: (channel, payload) => {
            switch (channel) {
              case ACK_CHANNEL:
                return this.onAck(payload);
              case INVALIDATION_CHANNEL:
                return this.onNotification(payload);
              default:
                return undefined;
            }
          },
          onDisconnect: (error) => this.markLost(error),
        },
        `paygate-listener:${this.nodeId}`,
      );
      if (this.stopped) {
        await connection.close();
        return;
      }
      this.connection = connection;
      this.attempt = 0;
      if (this.role === 'publisher') {
        this.live = true;
        return;
      }
      const sentAt = performance.now();
      // LISTEN is in effect: everything committed from now on is notified. What came before is
      // covered by starting with an empty cache at the current sequence number.
      await this.announce(connection);
      const [row] = await connection.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM invalidations');
      // Math.max: a notification that arrived with the result (committed after its snapshot) stays seen.
      this.lastSeq = Math.max(this.lastSeq, Number(row!.seq));
      // Not marked acknowledged here: scheduleAck below NOTIFYs it, so a peer that committed a change
      // while this node was away stops waiting as soon as this node is current again.
      this.flushAll();
      this.confirmedAt = sentAt;
      this.live = true;
      this.scheduleAck();
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => void this.beat(connection), this.heartbeatMs);
      this.heartbeat.unref();
      this.log.info({ seq: this.lastSeq, nodeId: this.nodeId }, 'invalidation channel live');
    } catch (error) {
      this.markLost(error as Error);
    }
  }

  /** `<seq>|<kind>|<subject>`; anything else is ignored (a newer node's format, a stray NOTIFY). */
  private onNotification(payload: string): void {
    const first = payload.indexOf('|');
    const second = payload.indexOf('|', first + 1);
    const seq = Number(payload.slice(0, first));
    const kind = payload.slice(first + 1, second);
    if (first <= 0 || second === -1 || !Number.isSafeInteger(seq) || !KINDS.has(kind)) {
      // Not ours to read; but a change may hide behind it: stop trusting until the catch-up replays it.
      this.distrust('unreadable invalidation');
      return;
    }
    this.stats.received++;
    if (!this.appliedHere.delete(seq)) this.dispatch({ kind: kind as InvalidationKind, subject: payload.slice(second + 1) });
    // Sequence order is commit order, so a notification for `seq` means everything before it is known.
    if (seq > this.lastSeq) this.lastSeq = seq;
    this.scheduleAck();
  }

  /** `<node>|<seq>`. */
  private onAck(payload: string): void {
    const bar = payload.lastIndexOf('|');
    const node = payload.slice(0, bar);
    const seq = Number(payload.slice(bar + 1));
    if (bar <= 0 || !Number.isSafeInteger(seq)) return;
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
      const connection = this.connection;
      if (!connection || !this.live || this.lastSeq <= this.ackedSeq) return;
      const seq = this.lastSeq;
      connection
        .query('SELECT pg_notify($1, $2)', [ACK_CHANNEL, `${this.nodeId}|${seq}`], { timeoutMs: this.trustWindowMs })
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
   * listed even if its row was deleted (e.g. by an operator cleaning up).
   */
  private async announce(connection: DedicatedConnection): Promise<void> {
    await connection.query(
      `INSERT INTO paygate_nodes (id, heartbeat_at, acked_seq, heartbeat_ms, instance) VALUES ($1, now(), $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), acked_seq = $2, heartbeat_ms = $3, instance = $4`,
      [this.nodeId, this.ackedSeq, this.heartbeatMs, this.instance],
      { timeoutMs: this.trustWindowMs },
    );
  }

  /**
   * Heartbeat on the listening connection itself: records presence and the acknowledged sequence,
   * proves the connection alive, and replays any invalidation this node has not seen.
   */
  private async beat(connection: DedicatedConnection): Promise<void> {
    if (connection !== this.connection || !this.live) return;
    const sentAt = performance.now();
    try {
      await this.announce(connection);
      const rows = await connection.query<{ seq: string; kind: InvalidationKind; subject: string }>(
        `SELECT seq::text, kind, subject FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT ${CATCH_UP_BATCH}`,
        [this.lastSeq],
        { timeoutMs: this.trustWindowMs },
      );
      if (connection !== this.connection) return;
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
          if (KINDS.has(row.kind)) this.dispatch({ kind: row.kind, subject: row.subject });
          else this.flushAll();
        }
      }
      this.confirmedAt = sentAt;
      this.scheduleAck();
    } catch (error) {
      this.markLost(error as Error);
    }
  }

  private markLost(error: Error | null): void {
    const wasLive = this.live;
    this.live = false;
    this.confirmedAt = -Infinity;
    this.flushAll();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const connection = this.connection;
    this.connection = null;
    if (connection) void connection.close();
    if (this.stopped) return;
    if (wasLive) this.log.warn({ err: error?.message, nodeId: this.nodeId }, 'invalidation channel lost; caches bypassed until it is back');
    if (this.reconnectTimer) return;
    // Backoff with jitter: 100 ms doubling per failed attempt, capped at 5 s, times 0.5..1.
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
