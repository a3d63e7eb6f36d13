/**
 * Cluster-wide cache invalidation over PostgreSQL LISTEN/NOTIFY.
 *
 * A change that narrows or ends a credential writes an `invalidations` row and a NOTIFY in the same
 * transaction (so both happen exactly when the change commits), and the node that made it applies it
 * locally right after commit. Every node listens on a dedicated connection. The node trusts its caches
 * only while that connection is live: on any doubt (error, end, missed heartbeat) it drops every
 * cached entry and serves from the database until it has listened again and caught up from the
 * monotonic `invalidations.seq`.
 */
import type pg from 'pg';
import type { Database, Queryable } from '../db/database.js';

export type InvalidationKind = 'api_key' | 'organization' | 'session' | 'user' | 'settings';

export interface Invalidation {
  kind: InvalidationKind;
  subject: string;
}

export const INVALIDATION_CHANNEL = 'paygate_invalidation';

export interface InvalidationLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class InvalidationBus {
  private handlers: Array<(invalidation: Invalidation) => void> = [];
  private flushHandlers: Array<() => void> = [];
  private client: pg.Client | null = null;
  private live = false;
  private stopped = false;
  private lastSeq = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private attempt = 0;
  /** Bumped on every invalidation or flush: a loader that saw it change must not cache what it read. */
  generation = 0;
  /** Counts of channel events, for metrics and tests. */
  readonly stats = { received: 0, flushes: 0, reconnects: 0 };

  constructor(
    private readonly db: Database,
    private readonly log: InvalidationLog,
    private readonly heartbeatMs = 2_000,
  ) {}

  /** Whether cached credentials may be served: only while the channel is live. */
  get trusted(): boolean {
    return this.live;
  }

  onInvalidate(handler: (invalidation: Invalidation) => void): void {
    this.handlers.push(handler);
  }

  onFlush(handler: () => void): void {
    this.flushHandlers.push(handler);
  }

  /** Call inside the transaction that makes the change. */
  async publish(tx: Queryable, invalidations: Invalidation[]): Promise<void> {
    for (const inv of invalidations) {
      const [row] = await tx.query<{ seq: number }>(
        'INSERT INTO invalidations (kind, subject) VALUES ($1, $2) RETURNING seq',
        [inv.kind, inv.subject],
      );
      // Payloads stay tiny (kind, subject, seq), far below NOTIFY's 8000-byte limit.
      await tx.query('SELECT pg_notify($1, $2)', [INVALIDATION_CHANNEL, `${row!.seq}|${inv.kind}|${inv.subject}`]);
    }
  }

  /** Call after the transaction commits, so this node is current before the response leaves. */
  applyLocal(invalidations: Invalidation[]): void {
    for (const inv of invalidations) this.dispatch(inv);
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
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => undefined);
  }

  /** Pretend the channel was lost (tests and operators' "flush caches" action). */
  distrust(reason: string): void {
    this.markLost(new Error(reason));
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
      const client = await this.db.listen([INVALIDATION_CHANNEL], {
        onNotification: (_channel, payload) => this.onNotification(payload),
        onDisconnect: (error) => this.markLost(error),
        onConnect: () => undefined,
      });
      this.client = client;
      // Catch up: everything committed before LISTEN took effect is covered by dropping the cache,
      // and lastSeq marks where notifications take over.
      const [row] = (await client.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM invalidations')).rows;
      this.lastSeq = Number(row!.seq);
      this.flushAll();
      this.live = true;
      this.attempt = 0;
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => void this.beat(client), this.heartbeatMs);
      this.heartbeat.unref();
      this.log.info({ seq: this.lastSeq }, 'invalidation channel live');
    } catch (error) {
      this.markLost(error as Error);
    }
  }

  private onNotification(payload: string): void {
    this.stats.received++;
    const [seqText, kind, ...rest] = payload.split('|');
    const seq = Number(seqText);
    if (seq > this.lastSeq) this.lastSeq = seq;
    this.dispatch({ kind: kind as InvalidationKind, subject: rest.join('|') });
  }

  /**
   * Heartbeat on the listening connection itself: proves it is alive, and replays any invalidation
   * whose sequence number is past the last one this node saw (a notification that never arrived).
   */
  private async beat(client: pg.Client): Promise<void> {
    if (client !== this.client || !this.live) return;
    const timeout = setTimeout(() => this.markLost(new Error('heartbeat timed out')), this.heartbeatMs);
    try {
      const rows = (
        await client.query<{ seq: string; kind: InvalidationKind; subject: string }>(
          'SELECT seq::text, kind, subject FROM invalidations WHERE seq > $1 ORDER BY seq LIMIT 1000',
          [this.lastSeq],
        )
      ).rows;
      for (const row of rows) {
        const seq = Number(row.seq);
        if (seq <= this.lastSeq) continue;
        this.lastSeq = seq;
        this.dispatch({ kind: row.kind, subject: row.subject });
      }
    } catch (error) {
      this.markLost(error as Error);
    } finally {
      clearTimeout(timeout);
    }
  }

  private markLost(error: Error | null): void {
    const wasLive = this.live;
    this.live = false;
    this.flushAll();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const client = this.client;
    this.client = null;
    if (client) void client.end().catch(() => undefined);
    if (this.stopped) return;
    if (wasLive) this.log.warn({ err: error?.message }, 'invalidation channel lost; caches bypassed until it is back');
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
