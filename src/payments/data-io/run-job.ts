/**
 * Running one claimed job: an export streams rows from a cursor into output chunks; an import
 * streams the stored CSV through the line checks and inserts every client in one transaction.
 */
import type { Database } from '../../db/database.js';
import type { UnitOfWork, Work } from '../../unit-of-work.js';
import type { ClientInput, ClientService } from '../clients/service.js';
import { ChunkWriter, chunkStats, readChunks } from './chunks.js';
import { readClientCsv } from './client-csv.js';
import { csvLine } from './csv.js';
import { EXPORT_SOURCES, MAX_METADATA_COLUMNS, type ExportFormat, type ExportResource } from './exporters.js';

export interface ClaimedJob {
  id: string;
  organization_id: string;
  kind: 'export' | 'import';
  resource: ExportResource;
  format: ExportFormat;
}

export interface JobError {
  line?: number;
  message: string;
}

/** The job failed for a reason its owner can act on; `errors` are shown on the job. */
export class JobFailed extends Error {
  constructor(readonly errors: JobError[]) {
    super(errors[0]?.message ?? 'job failed');
  }
}

/** What a running job reports through; every write checks the claim is still ours. */
export interface JobReporter {
  /** Records progress (0..99 while running) and rows so far; throws if the claim was lost. */
  progress(progress: number, rowCount: number): Promise<void>;
}

export interface RunDeps {
  db: Database;
  /** An import completes in its own unit of work: the job's completion event is written with it. */
  work: Work;
  clients: ClientService;
}

/** FETCH size: rows in memory at once. */
const FETCH_ROWS = 1000;
/** Rows per INSERT of an import. */
const INSERT_BATCH = 1000;
/** First N line errors reported on a failed import. */
export const MAX_REPORTED_ERRORS = 100;

const percent = (done: number, total: number): number => (total <= 0 ? 0 : Math.min(99, Math.floor((done * 100) / total)));

/**
 * Export: one REPEATABLE READ, READ ONLY transaction (on a connection of its own: it writes chunks
 * through the pool meanwhile, and must not hold a pooled connection while waiting for another) gives the count, the metadata columns and the
 * rows from one snapshot, read by a server-side cursor FETCH_ROWS at a time. Output is written to
 * chunks over other pooled connections as it fills, so memory stays at one fetch plus one chunk.
 * Returns the number of rows and of chunks written.
 */
export async function runExport(deps: RunDeps, job: ClaimedJob, reporter: JobReporter, maxBytes = Infinity): Promise<{ rows: number; chunks: number }> {
  const source = EXPORT_SOURCES[job.resource];
  const org = [job.organization_id];
  // A retry after a node died mid-export starts over.
  await deps.db.query("DELETE FROM data_io_chunks WHERE job_id = $1 AND part = 'output'", [job.id]);
  return deps.db.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    if (maxBytes <= 0) throw new JobFailed([{ message: "the organization's stored data I/O files hold its quota; wait for older exports to expire (7 days after they completed)" }]);
    const [{ total } = { total: 0 }] = await tx.query<{ total: number }>(`SELECT count(*)::int AS total FROM ${source.from}`, org);
    let keys: string[] = [];
    if (job.format === 'csv' && source.metadata) {
      const rows = await tx.query<{ key: string }>(
        `SELECT key FROM (SELECT DISTINCT jsonb_object_keys(metadata) AS key FROM ${source.from}) k ORDER BY key LIMIT ${MAX_METADATA_COLUMNS + 1}`,
        org,
      );
      if (rows.length > MAX_METADATA_COLUMNS) {
        throw new JobFailed([{ message: `the rows use more than ${MAX_METADATA_COLUMNS} distinct metadata keys, too many CSV columns; export as JSON` }]);
      }
      keys = rows.map((r) => r.key);
    }

    let written = 0;
    const writer = new ChunkWriter(deps.db, job.id, 'output', async (bytes) => {
      // The organization's stored files may not pass its quota (data-io/service.ts).
      if (bytes > maxBytes) throw new JobFailed([{ message: "the export's file would pass the organization's quota of stored data I/O files; wait for older exports to expire (7 days after they completed)" }]);
      await reporter.progress(percent(written, total), written);
    });
    if (job.format === 'csv') await writer.write(csvLine([...source.csvColumns, ...keys.map((k) => `metadata.${k}`)]));
    else await writer.write('[');

    await tx.query(`DECLARE export_rows NO SCROLL CURSOR FOR SELECT ${source.columns} FROM ${source.from} ORDER BY created_at, id`, org);
    for (;;) {
      const rows = await tx.query<Record<string, any>>(`FETCH ${FETCH_ROWS} FROM export_rows`);
      if (rows.length === 0) break;
      let text = '';
      for (const row of rows) {
        if (job.format === 'csv') {
          const metadata = (row.metadata ?? {}) as Record<string, string>;
          // Own keys only: a key another row uses (`constructor`, `__proto__`, `toString`) must not
          // read Object.prototype's member here and print `function Object() { [native code] }`.
          text += csvLine([...source.csvValues(row), ...keys.map((k) => (Object.hasOwn(metadata, k) ? metadata[k]! : null))]);
        } else {
          // One object per line inside the array: still valid JSON, and greppable.
          text += `${written === 0 ? '\n' : ',\n'}${JSON.stringify(source.json(row))}`;
        }
        written++;
      }
      await writer.write(text);
    }
    await tx.query('CLOSE export_rows');
    if (job.format === 'json') await writer.write(written === 0 ? ']\n' : '\n]\n');
    await writer.flush();
    return { rows: written, chunks: writer.chunks };
  }, { kind: 'background' });
}

/**
 * Import: every line is checked; clients are inserted in batches inside ONE transaction, and the
 * job is marked completed in that same transaction (`complete`). Any bad line rolls everything
 * back: a file with an error imports nothing, and the job fails naming the first
 * MAX_REPORTED_ERRORS bad lines. Returns the number of clients imported.
 */
export async function runImport(
  deps: RunDeps,
  job: ClaimedJob,
  reporter: JobReporter,
  complete: (tx: UnitOfWork, rowCount: number) => Promise<void>,
): Promise<number> {
  const { chunks, bytes: total } = await chunkStats(deps.db, job.id, 'input');
  let rows = 0;
  const input = readChunks(deps.db, job.id, 'input', chunks, (bytesRead) => reporter.progress(percent(bytesRead, total), rows));
  const errors: JobError[] = [];
  try {
    return await deps.work.run(async (tx) => {
      let batch: ClientInput[] = [];
      let imported = 0;
      for await (const item of readClientCsv(input)) {
        if ('error' in item) {
          errors.push({ line: item.line, message: item.error });
          if (errors.length >= MAX_REPORTED_ERRORS) break;
          continue;
        }
        rows++;
        // After the first bad line nothing will be kept: only keep checking.
        if (errors.length > 0) continue;
        batch.push(item.client);
        if (batch.length >= INSERT_BATCH) {
          imported += await deps.clients.insertMany(tx, job.organization_id, batch);
          batch = [];
        }
      }
      if (errors.length > 0) throw new JobFailed(errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
      imported += await deps.clients.insertMany(tx, job.organization_id, batch);
      await complete(tx, imported);
      return imported;
    }, { kind: 'background' });
  } finally {
    input.destroy();
  }
}
