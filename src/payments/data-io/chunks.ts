/**
 * Job inputs and outputs live in `data_io_chunks` as numbered pieces of about CHUNK_BYTES, so any
 * node can run or serve a job and no node ever holds a whole file in memory.
 */
import { Readable } from 'node:stream';
import type { Queryable } from '../../db/database.js';

/** 256 KiB: large enough that a 100k-row export is a few hundred rows, small enough to stream. */
export const CHUNK_BYTES = 256 * 1024;

export type ChunkPart = 'input' | 'output';

/**
 * Collects text or bytes and stores them in order, one row per CHUNK_BYTES. Pieces are kept as a
 * list and joined once per chunk, so writing is linear in the output size.
 */
export class ChunkWriter {
  private pieces: Buffer[] = [];
  private size = 0;
  private seq = 0;
  /** Bytes stored or pending. */
  bytes = 0;

  constructor(
    private readonly db: Queryable,
    private readonly jobId: string,
    private readonly part: ChunkPart,
    private readonly onChunk: (bytes: number) => Promise<void> = async () => undefined,
  ) {}

  /** Chunks stored so far. */
  get chunks(): number {
    return this.seq;
  }

  /** Appends; stores a chunk once CHUNK_BYTES have gathered. */
  async write(data: string | Buffer): Promise<void> {
    const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.pieces.push(buffer);
    this.size += buffer.length;
    this.bytes += buffer.length;
    if (this.size >= CHUNK_BYTES) await this.flush();
  }

  /** Stores whatever is pending (call once at the end). */
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = Buffer.concat(this.pieces, this.size);
    this.pieces = [];
    this.size = 0;
    await this.db.query('INSERT INTO data_io_chunks (job_id, part, seq, data) VALUES ($1, $2, $3, $4)', [this.jobId, this.part, this.seq++, data]);
    await this.onChunk(this.bytes);
  }
}

/** Size and count of a job's stored part, read without loading the data. */
export async function chunkStats(db: Queryable, jobId: string, part: ChunkPart): Promise<{ chunks: number; bytes: number }> {
  const [row] = await db.query<{ chunks: number; bytes: number }>(
    `SELECT count(*)::int AS chunks, coalesce(sum(octet_length(data)), 0)::bigint AS bytes
       FROM data_io_chunks WHERE job_id = $1 AND part = $2`,
    [jobId, part],
  );
  return { chunks: row?.chunks ?? 0, bytes: row?.bytes ?? 0 };
}

/**
 * The stored part (`chunks` pieces, from chunkStats) as a stream, fetching one chunk at a time,
 * only when the consumer wants more. It ends right after the last chunk rather than after one more
 * query, so a response is finished the moment its last byte is written. `onChunk` hears the bytes
 * read so far (progress of an import).
 */
export function readChunks(
  db: Queryable,
  jobId: string,
  part: ChunkPart,
  chunks: number,
  onChunk?: (bytesRead: number) => Promise<void>,
): Readable {
  async function* read() {
    let bytesRead = 0;
    for (let seq = 0; seq < chunks; seq++) {
      const [row] = await db.query<{ data: Buffer }>('SELECT data FROM data_io_chunks WHERE job_id = $1 AND part = $2 AND seq = $3', [jobId, part, seq]);
      if (!row) throw new Error(`data_io_chunks: ${jobId}/${part} lacks chunk ${seq}`);
      bytesRead += row.data.length;
      if (onChunk) await onChunk(bytesRead);
      yield row.data;
    }
  }
  // highWaterMark 1: at most one chunk read ahead of the consumer.
  return Readable.from(read(), { objectMode: false, highWaterMark: 1 });
}
