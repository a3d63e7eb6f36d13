/**
 * Data import/export jobs (SPEC §10): created by the API, run in the background by whichever node
 * claims them first, results streamed back from stored chunks.
 *
 * Claiming: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)` hands each queued job
 * to exactly one node, however many poll at once. The claim carries a token; every later write of
 * the job checks it, so a node that lost its claim can change nothing. A running job's heartbeat
 * is refreshed every HEARTBEAT_MS; a job whose node stopped beating for STALE_AFTER_S (the node
 * died) is claimed again, at most MAX_ATTEMPTS times in all. An export restarts from scratch; an
 * import is one transaction, so a dead node left nothing of it behind.
 *
 * Stored files are bounded: an import's uploaded file is deleted once the import completed or
 * failed; an export's file is kept EXPORT_TTL_MS after it completed (then its download is `404`, and
 * the hourly purge deletes it); and an organization's stored files together may hold at most
 * STORAGE_QUOTA_BYTES (`429 rate_limited` for a new job past it, and a running export that would
 * pass it fails).
 */
import { listNewestFirst, type PageRequest } from '../../db/pages.js';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Database, Queryable } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';
import type { RequestContext } from '../../auth/context.js';
import type { Logger } from '../../services.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import { AppError, notFound, validationError } from '../../errors.js';
import { isId, newId } from '../../ids.js';
import type { ClientService } from '../clients/service.js';
import { ChunkWriter, chunkStats, readChunks } from './chunks.js';
import { CONTENT_TYPES, type ExportFormat, type ExportResource } from './exporters.js';
import { JobFailed, runExport, runImport, type ClaimedJob, type JobError, type JobReporter } from './run-job.js';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed';

export interface DataIoJobView {
  id: string;
  object: 'data_io_job';
  kind: 'export' | 'import';
  resource: ExportResource;
  format: ExportFormat;
  status: JobStatus;
  /** 0..100; 100 only once completed. */
  progress: number;
  /** Rows written (export) or clients imported (import); a failed import imported none. */
  rowCount: number;
  /** Why it failed: `[{ line, message }]` for bad import lines (the first 100), `[{ message }]` otherwise. */
  errors: JobError[];
  createdAt: string;
  /** When it completed or failed; null while queued or running. */
  completedAt: string | null;
}

interface JobRow extends ClaimedJob {
  status: JobStatus;
  progress: number;
  row_count: number;
  errors: JobError[];
  attempts: number;
  created_at: Date;
  completed_at: Date | null;
}

const toView = (r: JobRow): DataIoJobView => ({
  id: r.id,
  object: 'data_io_job',
  kind: r.kind,
  resource: r.resource,
  format: r.format,
  status: r.status,
  progress: r.progress,
  rowCount: r.row_count,
  errors: r.errors,
  createdAt: r.created_at.toISOString(),
  completedAt: r.completed_at ? r.completed_at.toISOString() : null,
});

/** Largest accepted import file (documented in docs and the route). */
export const MAX_IMPORT_BYTES = 50 * 1024 * 1024;

/**
 * Bounds of import uploads, so that slow or stalled uploaders cannot take the imports of other
 * tenants: an organization has at most `perOrganization` uploads in progress across the cluster
 * (counted in PostgreSQL: live `uploading` jobs), a node receives at most `perNode` at once (each
 * buffers up to one chunk), an upload that sends nothing for `idleMs` fails, and one may take
 * `maxMs` in all (a trickle of a byte now and then is not idle, but ends there). An uploading job
 * shows it is alive every `heartbeatMs`; one silent for `aliveMs` (its node died) no longer counts.
 * Tests shorten them through `DataIoService.uploadLimits`.
 */
export const UPLOAD_LIMITS = {
  perOrganization: 2,
  perNode: 16,
  idleMs: 30_000,
  maxMs: 15 * 60_000,
  heartbeatMs: 5_000,
  aliveMs: 20_000,
};
/**
 * Jobs an organization may have queued or running at once. Each node runs one job at a time, oldest
 * first: without a cap, one tenant queuing hundreds of large exports would hold every other
 * tenant's jobs behind them. Past it, `429 rate_limited`.
 */
export const MAX_PENDING_JOBS_PER_ORGANIZATION = 20;
/** How long an export's file stays downloadable after the export completed. */
export const EXPORT_TTL_MS = 7 * 24 * 3600_000;
/**
 * Bytes of stored job files (import uploads not yet run, export results) one organization may hold.
 * Checked when a job starts and as it writes; two uploads at once may pass it by at most one file.
 */
export const STORAGE_QUOTA_BYTES = 1024 ** 3;
/** Advisory lock class of the per-organization job and upload counts (two-int4 keyspace). */
const JOBS_LOCK_CLASS = 0x75706c64; // 'upld'
/** Idle poll for queued jobs; new jobs on this node start at once (kick). */
const POLL_MS = 1_000;
const HEARTBEAT_MS = 5_000;
/** A running job whose heartbeat is this old belongs to a dead node. */
const STALE_AFTER_S = 60;
const MAX_ATTEMPTS = 3;
const MAX_BACKOFF_MS = 30_000;
/** An uploading job without a heartbeat for this long was abandoned (its node died mid-upload). */
const UPLOAD_STALE_AFTER_S = 600;

/** The claim on a job was taken over (this node was presumed dead): stop without writing. */
class LostClaim extends Error {}

/**
 * The next piece of an upload, or a `400` once nothing arrived for `idleMs` or the whole upload
 * passed `maxMs`. The answer closes the connection: a stalled client is not waited for again.
 */
async function nextWithin(
  pieces: AsyncIterator<Buffer>,
  limits: { idleMs: number; maxMs: number },
  startedAt: number,
): Promise<IteratorResult<Buffer>> {
  const left = startedAt + limits.maxMs - Date.now();
  const idle = limits.idleMs <= left;
  const next = pieces.next();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // The read stays pending until the connection closes; its outcome no longer matters.
      next.catch(() => undefined);
      const message = idle
        ? `no data arrived for ${limits.idleMs / 1000} seconds, so the upload was abandoned; send the file again`
        : `the upload took longer than ${limits.maxMs / 60_000} minutes, so it was abandoned; send the file again`;
      reject(new AppError('validation_error', `The import ${message}`, { extra: { errors: [{ path: '/body', message }] }, headers: { Connection: 'close' } }));
    }, Math.max(0, Math.min(limits.idleMs, left)));
  });
  try {
    return await Promise.race([next, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface DataIoDeps {
  db: Database;
  bus: InvalidationBus;
  work: Work;
  clients: ClientService;
  log: Logger;
}

export class DataIoService {
  /** Jobs this node has run (claimed) since start; tests use it across nodes. */
  readonly stats = { jobsRun: 0 };
  private stopped = true;
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private again = false;
  private failures = 0;
  private uploads = 0;
  /** See UPLOAD_LIMITS; per service so a test can shorten them on one node. */
  readonly uploadLimits = { ...UPLOAD_LIMITS };
  /** See STORAGE_QUOTA_BYTES and EXPORT_TTL_MS; per service so a test can lower them. */
  readonly storage = { quotaBytes: STORAGE_QUOTA_BYTES, exportTtlMs: EXPORT_TTL_MS };

  constructor(private readonly deps: DataIoDeps) {}

  /** Import uploads being received by this node now. */
  get uploadsInFlight(): number {
    return this.uploads;
  }

  // ---- API ----------------------------------------------------------------------------------

  async createExport(ctx: RequestContext, organizationId: string, input: { resource: ExportResource; format: ExportFormat }): Promise<DataIoJobView> {
    const job = await this.deps.work.run(async (tx) => {
      await this.lockJobsOf(tx, organizationId);
      await this.refuseIfBacklogged(tx, organizationId, {});
      await this.refuseIfOverQuota(tx, organizationId, 0, {});
      const row = await this.insertJob(tx, ctx, organizationId, 'export', input.resource, input.format, 'queued');
      tx.audit({
        action: 'data_io.export_started',
        actor: ctx.actor,
        organizationId,
        target: { type: 'data_io_job', id: row.id },
        ip: ctx.ip,
        requestId: ctx.requestId,
        details: { resource: input.resource, format: input.format },
      });
      return toView(row);
    });
    this.kick();
    return job;
  }

  /**
   * Stores the uploaded CSV (streamed, at most `maxBytes`) as the job's input chunks, then queues the
   * job with its audit event in one unit of work. No transaction is held open while the client
   * sends: a slow upload must not keep a connection idle in a transaction (the server would end it)
   * nor hold locks. Until it is queued the job is `uploading`, which no reader sees and no worker
   * claims; a failed upload deletes it, and one whose node died is purged (UPLOAD_STALE_AFTER_S).
   * The bounds of UPLOAD_LIMITS apply: `429 rate_limited` past the organization's uploads, `503`
   * past the node's, `400` for an upload that stalls or takes too long (the connection is closed).
   */
  async createImport(ctx: RequestContext, organizationId: string, body: Readable, maxBytes = MAX_IMPORT_BYTES): Promise<DataIoJobView> {
    const limits = this.uploadLimits;
    if (this.uploads >= limits.perNode) {
      body.resume();
      throw new AppError('service_unavailable', 'Too many imports are being uploaded to this node; retry shortly', { headers: { 'Retry-After': '5' } });
    }
    this.uploads++;
    let stagedId: string | null = null;
    let heartbeat: NodeJS.Timeout | null = null;
    try {
      const { job: staged, storedBytes } = await this.stageUpload(ctx, organizationId);
      stagedId = staged.id;
      // What this upload may store: its own limit, and what is left of the organization's quota.
      const quotaLeft = this.storage.quotaBytes - storedBytes;
      heartbeat = setInterval(() => {
        void this.deps.db.query("UPDATE data_io_jobs SET heartbeat_at = now() WHERE id = $1 AND status = 'uploading'", [staged.id]).catch(() => undefined);
      }, limits.heartbeatMs);
      heartbeat.unref();
      const writer = new ChunkWriter(this.deps.db, staged.id, 'input');
      const pieces = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const startedAt = Date.now();
      for (;;) {
        const next = await nextWithin(pieces, limits, startedAt);
        if (next.done) break;
        const piece = next.value;
        if (writer.bytes + piece.length > maxBytes) {
          // Answered before the body ends; closing the connection afterwards stops the upload
          // rather than reading the rest of it to keep the connection alive.
          throw new AppError('payload_too_large', `An import file may hold at most ${maxBytes} bytes`, { headers: { Connection: 'close' } });
        }
        if (writer.bytes + piece.length > quotaLeft) throw this.overQuota({ Connection: 'close' });
        await writer.write(piece);
      }
      await writer.flush();
      if (writer.bytes === 0) throw validationError([{ path: '/', message: 'the CSV file is empty' }]);
      const job = await this.deps.work.run(async (tx) => {
        const [row] = await tx.query<JobRow>("UPDATE data_io_jobs SET status = 'queued' WHERE id = $1 AND status = 'uploading' RETURNING *", [staged.id]);
        if (!row) throw new AppError('conflict', 'The upload was abandoned; send the file again');
        tx.audit({
          action: 'data_io.import_started',
          actor: ctx.actor,
          organizationId,
          target: { type: 'data_io_job', id: row.id },
          ip: ctx.ip,
          requestId: ctx.requestId,
          details: { resource: 'clients', format: 'csv', bytes: writer.bytes },
        });
        return toView(row);
      });
      this.kick();
      return job;
    } catch (error) {
      // Chunks go with the job (ON DELETE CASCADE). If the database is what failed, the purge does it.
      if (stagedId) await this.deps.db.query("DELETE FROM data_io_jobs WHERE id = $1 AND status = 'uploading'", [stagedId]).catch(() => undefined);
      throw error;
    } finally {
      if (heartbeat) clearInterval(heartbeat);
      this.uploads--;
    }
  }

  /**
   * The `uploading` job of a new upload, unless the organization already has its share in progress
   * on any node. Counted and inserted under an advisory lock per organization, so two nodes cannot
   * both take the last place; only jobs whose heartbeat is recent count (a dead node's do not).
   */
  private async stageUpload(ctx: RequestContext, organizationId: string): Promise<{ job: JobRow; storedBytes: number }> {
    const limits = this.uploadLimits;
    return this.deps.db.transaction(async (tx) => {
      await this.lockJobsOf(tx, organizationId);
      // The file is not read on after a refusal: the connection closes after the answer.
      await this.refuseIfBacklogged(tx, organizationId, { Connection: 'close' });
      const storedBytes = await this.refuseIfOverQuota(tx, organizationId, 0, { Connection: 'close' });
      const [{ n }] = (await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM data_io_jobs
          WHERE organization_id = $1 AND status = 'uploading' AND heartbeat_at > now() - make_interval(secs => $2)`,
        [organizationId, limits.aliveMs / 1000],
      )) as [{ n: number }];
      if (n >= limits.perOrganization) {
        // Not read on: the connection closes after the answer instead of taking the whole file.
        throw new AppError('rate_limited', `This organization already has ${n} imports uploading; wait for one to finish`, {
          headers: { 'Retry-After': '10', Connection: 'close' },
          extra: { retryAfterSeconds: 10 },
        });
      }
      return { job: await this.insertJob(tx, ctx, organizationId, 'import', 'clients', 'csv', 'uploading'), storedBytes };
    });
  }

  /** Bytes of the organization's stored job files (inputs and outputs). */
  private async storedBytes(q: Queryable, organizationId: string): Promise<number> {
    // octet_length of a bytea reads the stored size from the value's header; no file is read.
    const [row] = await q.query<{ bytes: string }>(
      `SELECT coalesce(sum(octet_length(c.data)), 0)::bigint AS bytes
         FROM data_io_chunks c JOIN data_io_jobs j ON j.id = c.job_id WHERE j.organization_id = $1`,
      [organizationId],
    );
    return Number(row?.bytes ?? 0);
  }

  /** `429` when the organization's stored files already hold its quota; otherwise the bytes they hold. */
  private async refuseIfOverQuota(q: Queryable, organizationId: string, adding: number, headers: Record<string, string>): Promise<number> {
    const stored = await this.storedBytes(q, organizationId);
    if (stored + adding >= this.storage.quotaBytes) throw this.overQuota(headers);
    return stored;
  }

  private overQuota(headers: Record<string, string>): AppError {
    const gib = (this.storage.quotaBytes / 1024 ** 3).toFixed(this.storage.quotaBytes % 1024 ** 3 === 0 ? 0 : 3);
    // An hour: the purge runs hourly, and an export's file expires 7 days after it completed.
    return new AppError('rate_limited', `This organization's stored data I/O files hold its quota of ${gib} GiB; new files can be stored once older exports expire (7 days after they completed) or queued imports have run`, {
      headers: { 'Retry-After': '3600', ...headers },
      extra: { retryAfterSeconds: 3600, quotaBytes: this.storage.quotaBytes },
    });
  }

  /** Serialises the counts and inserts of one organization's jobs, so two nodes cannot both take a last place. */
  private async lockJobsOf(tx: Queryable, organizationId: string): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [JOBS_LOCK_CLASS, organizationId]);
  }

  /** `429` when the organization already has MAX_PENDING_JOBS_PER_ORGANIZATION jobs queued or running. */
  private async refuseIfBacklogged(tx: Queryable, organizationId: string, headers: Record<string, string>): Promise<void> {
    const [{ n }] = (await tx.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM data_io_jobs WHERE organization_id = $1 AND status IN ('queued', 'running')",
      [organizationId],
    )) as [{ n: number }];
    if (n >= MAX_PENDING_JOBS_PER_ORGANIZATION) {
      throw new AppError('rate_limited', `This organization already has ${n} data I/O jobs queued or running; start more once they finish`, {
        headers: { 'Retry-After': '30', ...headers },
        extra: { retryAfterSeconds: 30 },
      });
    }
  }

  /** Deletes uploads whose node died before it queued them (no heartbeat for UPLOAD_STALE_AFTER_S). */
  async purgeAbandonedUploads(): Promise<void> {
    await this.deps.db.query(
      "DELETE FROM data_io_jobs WHERE status = 'uploading' AND coalesce(heartbeat_at, created_at) < now() - make_interval(secs => $1)",
      [UPLOAD_STALE_AFTER_S],
    );
  }

  /**
   * Deletes stored files no job needs any more: exports' files EXPORT_TTL_MS after they completed,
   * and the input of imports that finished (deleted when they finish; this catches any left behind).
   * The jobs themselves stay, as their record.
   */
  async purgeExpiredFiles(): Promise<void> {
    await this.deps.db.query(
      `DELETE FROM data_io_chunks c USING data_io_jobs j
        WHERE c.job_id = j.id
          AND ((c.part = 'output' AND j.status = 'completed' AND j.completed_at <= now() - make_interval(secs => $1))
            OR (c.part = 'input' AND j.status IN ('completed', 'failed')))`,
      [this.storage.exportTtlMs / 1000],
    );
  }

  /** Newest first, cursor-paginated like every list (SPEC §11). */
  async list(organizationId: string, page: PageRequest) {
    return listNewestFirst(this.deps.db, {
      table: 'data_io_jobs',
      organizationId,
      conditions: ["status <> 'uploading'"],
      page,
      what: 'data I/O job',
      map: toView,
    });
  }


  /** Tenant isolation: another organization's job is "not found". */
  async get(organizationId: string, id: string): Promise<DataIoJobView> {
    return toView(await this.row(organizationId, id));
  }

  /**
   * The result of a completed export, as a stream of its stored chunks. An import has no file
   * (404); an export that has not completed is `409 conflict`.
   */
  async openDownload(organizationId: string, id: string) {
    const job = await this.row(organizationId, id);
    if (job.kind !== 'export') throw new AppError('not_found', 'Import jobs have no file to download');
    if (job.status !== 'completed') throw new AppError('conflict', `The job is ${job.status}; its file can be downloaded once it has completed`);
    // Expired whether or not the hourly purge has deleted it yet: the answer does not depend on timing.
    const expiresAt = new Date(job.completed_at!.getTime() + this.storage.exportTtlMs);
    if (expiresAt <= new Date()) {
      throw new AppError('not_found', `This export's file expired at ${expiresAt.toISOString()}, ${this.storage.exportTtlMs / 86_400_000} days after the export completed; start a new export`, {
        extra: { expiredAt: expiresAt.toISOString() },
      });
    }
    const { chunks, bytes } = await chunkStats(this.deps.db, job.id, 'output');
    return {
      contentType: CONTENT_TYPES[job.format],
      filename: `${job.resource}-${job.id}.${job.format}`,
      bytes,
      stream: readChunks(this.deps.db, job.id, 'output', chunks),
    };
  }

  private async row(organizationId: string, id: string): Promise<JobRow> {
    const rows = isId('job', id)
      ? await this.deps.db.query<JobRow>("SELECT * FROM data_io_jobs WHERE id = $1 AND organization_id = $2 AND status <> 'uploading'", [id, organizationId])
      : [];
    if (!rows[0]) throw notFound('data I/O job');
    return rows[0];
  }

  private async insertJob(
    q: Queryable,
    ctx: RequestContext,
    organizationId: string,
    kind: 'export' | 'import',
    resource: ExportResource,
    format: ExportFormat,
    status: 'queued' | 'uploading',
  ): Promise<JobRow> {
    const [row] = await q.query<JobRow>(
      `INSERT INTO data_io_jobs (id, organization_id, kind, resource, format, status, created_by, heartbeat_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $6 = 'uploading' THEN now() END) RETURNING *`,
      [newId('job'), organizationId, kind, resource, format, status, JSON.stringify(ctx.actor)],
    );
    return row!;
  }

  // ---- background worker --------------------------------------------------------------------

  /** Starts polling for queued jobs (one job at a time on this node). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.kick();
  }

  /** Stops polling and waits for the job in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.loop;
  }

  /** Looks for work now rather than at the next poll (called after a job is created here). */
  kick(): void {
    if (this.stopped) return;
    if (this.loop) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.loop = this.drain().finally(() => {
      this.loop = null;
      if (this.stopped) return;
      if (this.again) {
        this.again = false;
        this.kick();
        return;
      }
      // Backoff with jitter while the database fails, so a fleet does not retry in step.
      const delay = this.failures === 0 ? POLL_MS : Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** this.failures) * (0.5 + Math.random() / 2);
      this.timer = setTimeout(() => this.kick(), delay);
      this.timer.unref();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (!this.stopped) {
        this.again = false;
        const job = await this.claim();
        if (!job) return;
        await this.run(job);
      }
    } catch (error) {
      this.failures++;
      this.deps.log.error({ err: error }, 'data I/O worker failed; retrying');
    }
  }

  private async claim(): Promise<(JobRow & { token: string }) | null> {
    const token = `${this.deps.bus.nodeId}:${randomBytes(8).toString('hex')}`;
    const [row] = await this.deps.db.query<JobRow>(
      `UPDATE data_io_jobs
          SET status = 'running', claimed_by = $1, attempts = attempts + 1, heartbeat_at = now(),
              started_at = coalesce(started_at, now()), progress = 0, row_count = 0
        WHERE id = (SELECT id FROM data_io_jobs
                     WHERE status = 'queued'
                        OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $2))
                     ORDER BY created_at
                     FOR UPDATE SKIP LOCKED
                     LIMIT 1)
        RETURNING *`,
      [token, STALE_AFTER_S],
    );
    this.failures = 0;
    return row ? { ...row, token } : null;
  }

  private async run(job: JobRow & { token: string }): Promise<void> {
    this.stats.jobsRun++;
    const { db } = this.deps;
    let lost = false;
    const beat = setInterval(() => {
      void db
        .query('UPDATE data_io_jobs SET heartbeat_at = now() WHERE id = $1 AND claimed_by = $2 RETURNING id', [job.id, job.token])
        .then((rows) => {
          if (rows.length === 0) lost = true;
        })
        .catch(() => undefined);
    }, HEARTBEAT_MS);
    beat.unref();
    const reporter: JobReporter = {
      progress: async (progress, rowCount) => {
        const rows = await db.query(
          'UPDATE data_io_jobs SET progress = $3, row_count = $4, heartbeat_at = now() WHERE id = $1 AND claimed_by = $2 RETURNING id',
          [job.id, job.token, progress, rowCount],
        );
        if (lost || rows.length === 0) throw new LostClaim();
      },
    };
    const complete = async (tx: UnitOfWork, rowCount: number) => {
      const rows = await tx.query<JobRow>(
        `UPDATE data_io_jobs SET status = 'completed', progress = 100, row_count = $3, errors = '[]', completed_at = now()
          WHERE id = $1 AND claimed_by = $2 RETURNING *`,
        [job.id, job.token, rowCount],
      );
      if (rows.length === 0) throw new LostClaim();
      tx.emit({ type: 'data_io.job_completed', organizationId: job.organization_id, object: toView(rows[0]!) });
      // An import's uploaded file has done its work: it goes with the change that imported it.
      if (job.kind === 'import') await tx.query("DELETE FROM data_io_chunks WHERE job_id = $1 AND part = 'input'", [job.id]);
    };
    try {
      if (job.attempts > MAX_ATTEMPTS) {
        throw new JobFailed([{ message: `the job was interrupted ${MAX_ATTEMPTS} times (its node stopped); start it again` }]);
      }
      if (job.kind === 'export') {
        // The file this export may write: what is left of the organization's quota (its own
        // earlier output, from a run that died, is deleted first and does not count).
        await db.query("DELETE FROM data_io_chunks WHERE job_id = $1 AND part = 'output'", [job.id]);
        const budget = this.storage.quotaBytes - (await this.storedBytes(db, job.organization_id));
        const output = await runExport(this.deps, job, reporter, budget);
        await this.deps.work.run(async (tx) => {
          await complete(tx, output.rows);
          // A run that lost its claim (a node stalled past STALE_AFTER_S) stops at its next write,
          // but one chunk of it may land past this run's end; the file is exactly this run's chunks.
          // (One landing inside this run's range made this run's insert fail on the primary key.)
          await tx.query("DELETE FROM data_io_chunks WHERE job_id = $1 AND part = 'output' AND seq >= $2", [job.id, output.chunks]);
        });
      } else {
        await runImport(this.deps, job, reporter, complete);
      }
    } catch (error) {
      if (error instanceof LostClaim) {
        this.deps.log.warn({ jobId: job.id }, 'data I/O job was claimed by another node; abandoned here');
        return;
      }
      let errors: JobError[];
      if (error instanceof JobFailed) errors = error.errors;
      else {
        this.deps.log.error({ err: error, jobId: job.id }, 'data I/O job failed');
        errors = [{ message: 'the job failed unexpectedly; start it again' }];
      }
      await this.fail(job, errors);
    } finally {
      clearInterval(beat);
    }
  }

  private async fail(job: JobRow & { token: string }, errors: JobError[]): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const rows = await tx.query<JobRow>(
        `UPDATE data_io_jobs SET status = 'failed', row_count = 0, errors = $3, completed_at = now()
          WHERE id = $1 AND claimed_by = $2 RETURNING *`,
        [job.id, job.token, JSON.stringify(errors)],
      );
      if (rows[0]) tx.emit({ type: 'data_io.job_failed', organizationId: job.organization_id, object: toView(rows[0]) });
      // A failed job keeps no file: neither a partial export nor the import's upload (it is final).
      if (rows.length > 0) await tx.query('DELETE FROM data_io_chunks WHERE job_id = $1', [job.id]);
    });
  }
}
