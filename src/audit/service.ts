/**
 * Reading the audit log (filtered, cursor-paginated, itself audited), checking the hash chain, and
 * recording refused attempts outside any business transaction.
 */
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import { notFound, validationError } from '../errors.js';
import { isId } from '../ids.js';
import { AUDIT_ACTIONS, type AuditAction, type AuditEvent, type AuditInput, type ActorType } from './events.js';
import type { AuditChain } from './record.js';
import { GENESIS_HASH, findCheckpoint, latestCheckpoint, type AuditCheckpointService } from './checkpoints.js';
import type { RequestContext } from '../auth/context.js';
import { addressBucket } from '../auth/throttle.js';
import { AuditBursts } from './bursts.js';

export interface AuditFilter {
  organizationId?: string | null;
  action?: string;
  actorType?: string;
  actorId?: string;
  /** The target's id (`target.id`), whatever its type. */
  targetId?: string;
  from?: string;
  to?: string;
  limit: number;
  startingAfter?: string | null;
}

interface Row {
  seq: number;
  id: string;
  at: Date;
  action: AuditAction;
  actor_type: ActorType;
  actor_id: string | null;
  organization_id: string | null;
  target: { type: string; id: string } | null;
  ip: string | null;
  request_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

function toEvent(r: Row): AuditEvent {
  return {
    id: r.id,
    object: 'audit_event',
    at: r.at.toISOString(),
    action: r.action,
    actor: { type: r.actor_type, id: r.actor_id },
    organizationId: r.organization_id,
    target: r.target,
    ip: r.ip,
    requestId: r.request_id,
    outcome: r.outcome,
    details: r.details,
  };
}

export interface IntegrityReport {
  ok: boolean;
  checked: number;
  headMatches: boolean;
  /** The first event whose hash or link does not verify. */
  firstBrokenEventId: string | null;
  reason: string | null;
  /** The checkpoint the chain was checked against: the one asked for, else the newest; null when there is none. */
  checkpoint: CheckpointCheck | null;
}

export interface CheckpointCheck {
  id: string;
  seq: number | null;
  hash: string | null;
  at: string | null;
  /** Whether the checkpoint is recorded (one named in the log but gone from the database was removed). */
  found: boolean;
  /** Whether its signature verifies with the audit signing key's public key. */
  signatureValid: boolean;
  /** Whether the chain holds, at the checkpoint's seq, the event with the signed hash. */
  matches: boolean;
}

const ACTIONS = new Set<string>(AUDIT_ACTIONS);

export class AuditService {
  /**
   * Events that a caller can repeat at any rate, aggregated per key and minute (audit/bursts.ts):
   * invalid API keys per source, refusals per principal, audit reads per reader, password-reset
   * requests for unknown addresses per source.
   */
  readonly bursts: AuditBursts;

  constructor(
    private readonly deps: {
      db: Database;
      work: Work;
      chain: AuditChain;
      checkpoints: Pick<AuditCheckpointService, 'verifySignature'>;
      log: { error(obj: object, msg: string): void };
      /** Options of the burst aggregator (tests shorten the window). */
      bursts?: { windowMs?: number; tickMs?: number; maxTracked?: number; now?: () => number };
    },
  ) {
    this.bursts = new AuditBursts({
      ...deps.bursts,
      write: async (inputs) => {
        try {
          await this.deps.work.run(async (tx) => {
            for (const input of inputs) tx.audit(input);
          });
        } catch (error) {
          this.deps.log.error({ err: error }, 'could not record aggregated audit events');
        }
      },
    });
  }

  /** Starts the timer that writes ended burst windows. */
  start(): void {
    this.bursts.start();
  }

  /** Writes every pending burst count. */
  async stop(): Promise<void> {
    await this.bursts.stop();
  }

  async list(ctx: RequestContext, filter: AuditFilter, scope: 'organization' | 'system') {
    const errors = [];
    if (filter.action !== undefined && !ACTIONS.has(filter.action)) errors.push({ path: '/action', message: `unknown action "${filter.action}"` });
    if (filter.actorType !== undefined && !['user', 'api_key', 'system'].includes(filter.actorType)) {
      errors.push({ path: '/actorType', message: 'must be user, api_key or system' });
    }
    const from = filter.from ? new Date(filter.from) : null;
    const to = filter.to ? new Date(filter.to) : null;
    if (from && Number.isNaN(from.getTime())) errors.push({ path: '/from', message: 'must be an ISO 8601 date-time' });
    if (to && Number.isNaN(to.getTime())) errors.push({ path: '/to', message: 'must be an ISO 8601 date-time' });
    if (errors.length > 0) throw validationError(errors);

    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (scope === 'organization') add('organization_id = ?', filter.organizationId);
    if (filter.action) add('action = ?', filter.action);
    if (filter.actorType) add('actor_type = ?', filter.actorType);
    if (filter.actorId) add('actor_id = ?', filter.actorId);
    // The expression of the index audit_events_target_idx (migration 18): a key's trail without a scan.
    if (filter.targetId) add("target->>'id' = ?", filter.targetId);
    if (from) add('at >= ?', from);
    if (to) add('at < ?', to);
    if (filter.startingAfter) {
      const cursor = isId('event', filter.startingAfter)
        ? await this.deps.db.query<{ seq: number; organization_id: string | null }>('SELECT seq, organization_id FROM audit_events WHERE id = $1', [filter.startingAfter])
        : [];
      if (!cursor[0] || (scope === 'organization' && cursor[0].organization_id !== filter.organizationId)) throw notFound('audit event');
      add('seq < ?', cursor[0].seq);
    }
    params.push(filter.limit + 1);
    const rows = await this.deps.db.query<Row>(
      `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`,
      params,
    );
    // Reading the audit log is itself an audited action: the first read of each reader in a minute
    // is written before the answer (a read that cannot be recorded fails); further reads in that
    // minute are one event with their count and every distinct filter they used (SPEC §9; a
    // follower polling every second must not write a row per poll under the chain lock).
    const organizationId = scope === 'organization' ? (filter.organizationId ?? null) : null;
    const used = Object.fromEntries(Object.entries({ ...filter, organizationId: undefined }).filter(([, v]) => v !== undefined && v !== null));
    const input: AuditInput = { action: 'audit.read', actor: ctx.actor, organizationId, ip: ctx.ip, requestId: ctx.requestId, details: { scope, filter: used } };
    const now = this.bursts.note(`audit.read|${ctx.actor.type}:${ctx.actor.id}|${scope}|${organizationId}`, input, { recordAt: 1, sample: { field: 'filters', value: used } });
    if (now) await this.deps.work.run(async (tx) => tx.audit(now));
    return { object: 'list' as const, data: rows.slice(0, filter.limit).map(toEvent), hasMore: rows.length > filter.limit };
  }

  /**
   * Walks the whole chain in order, recomputing every hash, and checks it against a signed checkpoint
   * (the one named, else the newest): the chain must hold, at the checkpoint's seq, the event whose
   * hash was signed. The walk alone finds altered, removed or reordered events and a head that no
   * longer names the last event; the checkpoint also finds the newest events removed (or all of
   * them) with the head reset to match, and a replaced chain. One snapshot (REPEATABLE READ) for the
   * walk, the head and the checkpoint: events appended meanwhile are neither half-seen nor mistaken
   * for a removed tail, and a checkpoint taken meanwhile is not seen either.
   */
  async verifyChain(checkpointId?: string): Promise<IntegrityReport> {
    if (checkpointId !== undefined && !isId('auditCheckpoint', checkpointId)) {
      throw validationError([{ path: '/checkpoint', message: 'must be an audit checkpoint id (acp_...)' }]);
    }
    return this.deps.db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const recorded = checkpointId !== undefined ? await findCheckpoint(tx, checkpointId) : await latestCheckpoint(tx);
      const checkpoint: CheckpointCheck | null =
        recorded !== null
          ? { id: recorded.id, seq: recorded.seq, hash: recorded.hash, at: recorded.at, found: true, signatureValid: this.deps.checkpoints.verifySignature(recorded), matches: false }
          : checkpointId !== undefined
            ? { id: checkpointId, seq: null, hash: null, at: null, found: false, signatureValid: false, matches: false }
            : null;
      // Whether the walk has met the checkpoint's position: null not yet, then whether the event there matched.
      let reached: boolean | null = recorded === null ? null : recorded.seq === 0 ? recorded.hash === GENESIS_HASH : null;
      let prev = GENESIS_HASH;
      let checked = 0;
      let lastSeq = 0;
      const batch = 1000;
      const broken = (row: Row, reason: string): IntegrityReport => {
        if (checkpoint) checkpoint.matches = reached === true;
        return { ok: false, checked, headMatches: false, firstBrokenEventId: row.id, reason, checkpoint };
      };
      for (;;) {
        const rows = await tx.query<Row>('SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2', [lastSeq, batch]);
        for (const row of rows) {
          if (row.prev_hash !== prev) return broken(row, 'link to the previous event is broken (an event was removed or reordered)');
          if (this.deps.chain.hash(prev, toEvent(row)) !== row.hash) return broken(row, 'event content does not match its hash (the event was altered)');
          if (recorded !== null && reached === null && row.seq >= recorded.seq) reached = row.seq === recorded.seq && row.hash === recorded.hash;
          prev = row.hash;
          lastSeq = row.seq;
          checked++;
        }
        if (rows.length < batch) break;
      }
      const [head] = await tx.query<{ hash: string }>('SELECT hash FROM audit_chain_head WHERE id = 1');
      const headMatches = head!.hash === prev;
      if (checkpoint) checkpoint.matches = reached === true;
      let reason: string | null = null;
      if (checkpoint && !checkpoint.found) {
        reason = `checkpoint ${checkpoint.id} is not recorded (it was removed from the database, or never taken here)`;
      } else if (checkpoint && !checkpoint.signatureValid) {
        reason = `the signature of checkpoint ${checkpoint.id} does not verify with the audit signing key (the checkpoint was forged or altered, or signed with another key)`;
      } else if (checkpoint && !checkpoint.matches) {
        reason = reached === null
          ? `the chain ends at seq ${lastSeq}, before checkpoint ${checkpoint.id} at seq ${checkpoint.seq}: the newest events were removed and the chain head reset`
          : `the chain does not hold the event of checkpoint ${checkpoint.id} (seq ${checkpoint.seq}) with its signed hash: events were removed, or the chain was replaced`;
      } else if (!headMatches) {
        reason = 'the newest events were removed (the chain head does not match)';
      }
      return { ok: reason === null, checked, headMatches, firstBrokenEventId: null, reason, checkpoint };
    }, { kind: 'long' });
  }

  /** Records a refused attempt in its own transaction; failures are logged, never thrown at the caller. */
  async recordRefusal(input: AuditInput): Promise<void> {
    try {
      await this.deps.work.run(async (tx) => tx.audit({ outcome: 'denied', ...input }));
    } catch (error) {
      this.deps.log.error({ err: error }, 'could not record refused attempt');
    }
  }

  /**
   * A refusal that the same caller can repeat in a loop (SPEC §9 refusals, auth/plugin.ts): the first
   * per `key` and minute is recorded before the answer, the rest of that minute in one event with
   * their count and the samples seen (audit/bursts.ts). `key` names who was refused what, where.
   */
  async noteRefusal(key: string, input: AuditInput, sample?: { field: string; value: unknown }): Promise<void> {
    const now = this.bursts.note(`refusal|${key}`, { outcome: 'denied', ...input }, { recordAt: 1, ...(sample ? { sample } : {}) });
    if (now) await this.recordRefusal(now);
  }

  /**
   * Counts invalid_api_key refusals per source (an IPv4 address, an IPv6 /64: the sign-in
   * throttle's buckets); the 5th within a minute is recorded, then one event per source and minute
   * carrying the count since the last one. No request waits for it.
   */
  noteInvalidApiKey(ip: string, requestId: string): void {
    const key = invalidKeyBurstKey(ip);
    if (this.bursts.count(key, ip, requestId)) return;
    const source = addressBucket(ip);
    const now = this.bursts.note(
      key,
      { action: 'auth.invalid_api_key', actor: { type: 'api_key', id: null }, organizationId: null, ip, requestId, outcome: 'denied', details: { source } },
      { recordAt: INVALID_KEY_BURST },
    );
    if (now) void this.recordRefusal(now);
  }
}

/**
 * The burst key of a client address (its source's, SPEC §9), the same string each time and found with
 * one lookup: a key built anew per refusal would be flattened and hashed again for every lookup,
 * which is most of counting one (a forged-token flood).
 */
const invalidKeyBurstKeys = new Map<string, string>();
function invalidKeyBurstKey(ip: string): string {
  let key = invalidKeyBurstKeys.get(ip);
  if (key === undefined) {
    if (invalidKeyBurstKeys.size >= 10_000) invalidKeyBurstKeys.clear();
    invalidKeyBurstKeys.set(ip, (key = `invalid_api_key|${addressBucket(ip)}`));
  }
  return key;
}

/** Invalid API keys from one source within a minute before they are recorded: a mistyped key or two is no attack. */
export const INVALID_KEY_BURST = 5;
