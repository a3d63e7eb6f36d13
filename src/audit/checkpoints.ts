/**
 * Audit checkpoints (SPEC §15): the audit chain's head `{ seq, hash }`, signed with the audit signing
 * key (Ed25519), recorded, and written to the log. The hash chain alone shows an event that was
 * altered, removed from the middle or reordered; it cannot show events removed from its end, or the
 * whole chain replaced, by someone who also resets `audit_chain_head`. A checkpoint can: the chain
 * must still hold, at the checkpoint's `seq`, the event whose hash was signed.
 *
 * Signed bytes (UTF-8, every line ending in "\n", nothing else):
 *
 *   paygate-audit-checkpoint/v1
 *   id=acp_...                       the checkpoint's id
 *   seq=1234                         the newest event's position in the chain, decimal (0: empty chain)
 *   hash=9f86d0...                   that event's hash, 64 lowercase hex (64 zeros for an empty chain)
 *   at=2030-01-02T03:04:05.678Z      when the checkpoint was taken (ISO 8601, UTC, milliseconds)
 *
 * The first line separates these signatures from anything else the key signs; the id binds a
 * signature to its checkpoint. `signature` is the Ed25519 signature of those bytes, in base64.
 *
 * Schedule. Every node tries to take the checkpoint of each period (5 minutes by default) when the
 * period begins (and at start, for the current period). `period_start` is unique, so exactly one
 * checkpoint per period is recorded however many nodes try: the others' inserts do nothing.
 *
 * Continuity. A checkpoint is taken only if the chain still holds the previous checkpoint's event
 * with its signed hash: Paygate never anchors a chain that lost anchored events (a new checkpoint
 * of a truncated chain would otherwise make the default integrity check pass again).
 */
import type { Database, Queryable } from '../db/database.js';
import { AppError, notFound } from '../errors.js';
import { isId, newId } from '../ids.js';
import type { AuditSigner } from './signing.js';

export interface AuditCheckpoint {
  id: string;
  object: 'audit_checkpoint';
  seq: number;
  hash: string;
  at: string;
  signature: string;
}

/** The hash an empty chain starts from (the previous hash of the first event). */
export const GENESIS_HASH = '0'.repeat(64);

/** The exact bytes a checkpoint's signature covers; see the module comment. */
export function checkpointPayload(checkpoint: Pick<AuditCheckpoint, 'id' | 'seq' | 'hash' | 'at'>): Buffer {
  return Buffer.from(
    `paygate-audit-checkpoint/v1\nid=${checkpoint.id}\nseq=${checkpoint.seq}\nhash=${checkpoint.hash}\nat=${checkpoint.at}\n`,
    'utf8',
  );
}

interface Row {
  n: number;
  id: string;
  seq: number;
  hash: string;
  at: Date;
  signature: string;
}

const toCheckpoint = (row: Row): AuditCheckpoint => ({
  id: row.id,
  object: 'audit_checkpoint',
  seq: row.seq,
  hash: row.hash,
  at: row.at.toISOString(),
  signature: row.signature,
});

/** A recorded checkpoint by id (null when there is none), read on the caller's connection or snapshot. */
export async function findCheckpoint(q: Queryable, id: string): Promise<AuditCheckpoint | null> {
  if (!isId('auditCheckpoint', id)) return null;
  const [row] = await q.query<Row>('SELECT * FROM audit_checkpoints WHERE id = $1', [id]);
  return row ? toCheckpoint(row) : null;
}

/** The newest recorded checkpoint, or null. */
export async function latestCheckpoint(q: Queryable): Promise<AuditCheckpoint | null> {
  const [row] = await q.query<Row>('SELECT * FROM audit_checkpoints ORDER BY n DESC LIMIT 1');
  return row ? toCheckpoint(row) : null;
}

export interface CheckpointLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Retry delay of a scheduled checkpoint that failed (database unavailable), within its period. */
const RETRY_MS = 30_000;

type Outcome = { ok: true; checkpoint: AuditCheckpoint | null } | { ok: false; reason: string };

export class AuditCheckpointService {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly deps: {
      db: Database;
      signer: AuditSigner;
      log: CheckpointLogger;
      /** Period of the scheduled checkpoints in milliseconds; 0 takes none (on demand only). */
      intervalMs: number;
    },
  ) {}

  get publicKeyPem(): string {
    return this.deps.signer.publicKeyPem;
  }

  /** Whether `checkpoint`'s signature is the audit signing key's signature of its fields. */
  verifySignature(checkpoint: AuditCheckpoint): boolean {
    return this.deps.signer.verify(checkpointPayload(checkpoint), checkpoint.signature);
  }

  /** POST /v1/system/audit-checkpoints: a checkpoint of the head now; 409 when the chain lost anchored events. */
  async create(): Promise<AuditCheckpoint> {
    const outcome = await this.take(null);
    if (!outcome.ok) throw new AppError('conflict', `No checkpoint taken: ${outcome.reason}. Check GET /v1/system/audit-integrity.`);
    return outcome.checkpoint!;
  }

  /**
   * The scheduled checkpoint of the period holding `now`: taken unless a node (this one or another)
   * already took it. Returns the checkpoint this call recorded, or null.
   */
  async runDue(now = Date.now()): Promise<AuditCheckpoint | null> {
    const period = this.deps.intervalMs > 0 ? this.deps.intervalMs : 300_000;
    const outcome = await this.take(new Date(Math.floor(now / period) * period));
    if (!outcome.ok) {
      this.deps.log.error({ reason: outcome.reason }, 'audit checkpoint refused: the audit chain lost events that an earlier checkpoint anchors');
      return null;
    }
    return outcome.checkpoint;
  }

  async list(page: { limit: number; startingAfter: string | null }) {
    const params: unknown[] = [page.limit + 1];
    let where = '';
    if (page.startingAfter) {
      const [cursor] = isId('auditCheckpoint', page.startingAfter)
        ? await this.deps.db.query<{ n: number }>('SELECT n FROM audit_checkpoints WHERE id = $1', [page.startingAfter])
        : [];
      if (!cursor) throw notFound('audit checkpoint');
      params.push(cursor.n);
      where = 'WHERE n < $2';
    }
    const rows = await this.deps.db.query<Row>(`SELECT * FROM audit_checkpoints ${where} ORDER BY n DESC LIMIT $1`, params);
    return { object: 'list' as const, data: rows.slice(0, page.limit).map(toCheckpoint), hasMore: rows.length > page.limit };
  }

  private async take(periodStart: Date | null): Promise<Outcome> {
    // One statement: the committed head, the previous checkpoint, and whether the chain still holds
    // that checkpoint's event (runtime roles cannot remove events; a database owner can).
    const [state] = await this.deps.db.query<{
      seq: number;
      hash: string;
      prev_id: string | null;
      prev_seq: number | null;
      prev_hash: string | null;
      event_hash: string | null;
    }>(
      `SELECT h.seq, h.hash, p.id AS prev_id, p.seq AS prev_seq, p.hash AS prev_hash,
              (SELECT e.hash FROM audit_events e WHERE e.seq = p.seq) AS event_hash
         FROM audit_chain_head h
         LEFT JOIN LATERAL (SELECT id, seq, hash FROM audit_checkpoints ORDER BY n DESC LIMIT 1) p ON true
        WHERE h.id = 1`,
    );
    if (state!.prev_id !== null) {
      const held = state!.prev_seq === 0 ? state!.prev_hash === GENESIS_HASH : state!.event_hash === state!.prev_hash;
      if (!held || state!.seq < state!.prev_seq!) {
        return { ok: false, reason: `the chain no longer holds the event of checkpoint ${state!.prev_id} (seq ${state!.prev_seq}) with its signed hash` };
      }
    }
    const fields = { id: newId('auditCheckpoint'), seq: state!.seq, hash: state!.hash, at: new Date().toISOString() };
    const signature = this.deps.signer.sign(checkpointPayload(fields));
    const [row] = await this.deps.db.query<Row>(
      `INSERT INTO audit_checkpoints (id, seq, hash, at, signature, period_start) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (period_start) DO NOTHING RETURNING *`,
      [fields.id, fields.seq, fields.hash, fields.at, signature, periodStart],
    );
    if (!row) return { ok: true, checkpoint: null }; // another node took this period's checkpoint
    const checkpoint = toCheckpoint(row);
    // The log is the copy outside the database: keep it where the database's owner cannot rewrite it.
    this.deps.log.info(
      { auditCheckpoint: { ...checkpoint, object: undefined }, trigger: periodStart ? 'schedule' : 'request', publicKey: this.deps.signer.fingerprint },
      'audit checkpoint',
    );
    return { ok: true, checkpoint };
  }

  /** Takes the current period's checkpoint now, then one at the start of every period. */
  start(): void {
    if (this.deps.intervalMs <= 0 || this.timer || this.stopped) return;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick().finally(() => (this.running = null));
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const untilNext = () => this.deps.intervalMs - (Date.now() % this.deps.intervalMs);
    try {
      await this.runDue();
      this.schedule(untilNext());
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'could not take the scheduled audit checkpoint; retrying');
      this.schedule(Math.min(RETRY_MS, untilNext()));
    }
  }
}
