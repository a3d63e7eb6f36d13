/**
 * The credential report (SPEC §14): one row per API key (deleted keys are gone, so excluded), with
 * the columns below in this order, as CSV or JSON, streamed.
 *
 * Streaming: keys are read in keyset pages of PAGE_ROWS rows, each page one pool query (no
 * transaction is held while the client reads, so a slow reader holds no connection and meets no
 * idle-in-transaction bound), and written as they come. The next page is read while one is written
 * out, and no further (the stream pulls only once what it holds has been sent: backpressure), so
 * memory holds two pages whatever the key count.
 * An organization's report walks its index (organization_id, created_at, id); the system report,
 * every key, walks the primary key. A key created during the walk may or may not be in it.
 *
 * CSV: RFC 4180 (CRLF, quoted when needed) and formula-safe (a cell starting with = + - @ TAB or
 * CR gets a leading '), by the writer of the data exports (payments/data-io/csv.ts). Lists (scopes,
 * allowedIps, flags) are space-separated in one cell; `createdBy` is `type:id`; `rateLimit` is
 * `<requests>/<windowSeconds>s`; booleans are `true`/`false`; null is an empty cell.
 */
import { Readable } from 'node:stream';
import type { Queryable } from '../db/database.js';
import { csvLine } from '../payments/data-io/csv.js';
import { CREATOR_IS_MEMBER_SQL, keyFlags, secretAgeDays, unusedDays, type HygieneThresholds, type KeyFlag } from '../keys/flags.js';
import { keyFromRow, type ApiKeyRecord, type RateLimit } from '../keys/store.js';
import { keyStatus } from '../keys/service.js';

/** The report's columns, in order (SPEC §14). */
export const REPORT_COLUMNS = [
  'id',
  'tier',
  'organizationId',
  'name',
  'status',
  'scopes',
  'createdAt',
  'createdBy',
  'creatorIsMember',
  'secretAgeDays',
  'rotatedAt',
  'expiresAt',
  'lastUsedAt',
  'lastUsedIp',
  'unusedDays',
  'allowedIps',
  'rateLimit',
  'flags',
] as const;

export interface ReportRow {
  id: string;
  tier: 'organization' | 'system';
  organizationId: string | null;
  name: string;
  status: string;
  scopes: string[];
  createdAt: string;
  createdBy: { type: string; id: string | null };
  /** null: the creator was not a user (an API key, Paygate itself). */
  creatorIsMember: boolean | null;
  secretAgeDays: number;
  rotatedAt: string | null;
  expiresAt: string | null;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
  unusedDays: number;
  allowedIps: string[] | null;
  rateLimit: RateLimit | null;
  flags: KeyFlag[];
}

export type ReportFormat = 'csv' | 'json';

/** Whose keys: one organization's, or every key of the instance (both tiers). */
export type ReportScope = { kind: 'organization'; organizationId: string } | { kind: 'system' };

/** Rows per page read from PostgreSQL: memory holds one page. */
export const PAGE_ROWS = 1000;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function reportRow(key: ApiKeyRecord, thresholds: HygieneThresholds, now: Date): ReportRow {
  return {
    id: key.id,
    tier: key.tier,
    organizationId: key.organizationId,
    name: key.name,
    status: keyStatus(key, now),
    scopes: key.scopes,
    createdAt: key.createdAt.toISOString(),
    createdBy: key.createdBy,
    creatorIsMember: key.creatorIsMember ?? null,
    secretAgeDays: secretAgeDays(key, now),
    rotatedAt: iso(key.rotatedAt),
    expiresAt: iso(key.expiresAt),
    lastUsedAt: iso(key.lastUsedAt),
    lastUsedIp: key.secretUse?.currentLastIp ?? null,
    unusedDays: unusedDays(key, now),
    allowedIps: key.allowedIps,
    rateLimit: key.rateLimit,
    flags: keyFlags(key, thresholds, now),
  };
}

/**
 * The columns the report reads (status, flags, its own columns), not `*`: parsing the rest (secret
 * hashes, per-secret usage) cost about a third of the walk. The records built from them hold
 * these fields only: they serve the report and the evidence bundle, nothing else.
 */
const REPORT_COLUMNS_SQL = [
  'id', 'tier', 'organization_id', 'name', 'scopes', 'created_at', 'created_by', 'last_used_at', 'expires_at', 'revoked_at', 'rotated_at',
  'allowed_ips', 'rate_limit_requests', 'rate_limit_window_seconds', 'leaked_at', 'quarantined_at', 'last_used_ip',
].map((c) => `api_keys.${c}`).join(', ');

/** The keys of `scope`, page by page, each with whether its creator is still a member. */
export async function* keyPages(db: Queryable, scope: ReportScope, pageRows = PAGE_ROWS): AsyncGenerator<ApiKeyRecord[]> {
  // The cursor's created_at as PostgreSQL's own text: a JS Date would drop its microseconds and
  // read the page's last rows again. Not a subquery on the last id either: that key may be deleted
  // meanwhile, which would end the walk early.
  const select = `SELECT ${REPORT_COLUMNS_SQL}, api_keys.created_at::text AS cursor_at, ${CREATOR_IS_MEMBER_SQL} AS creator_is_member FROM api_keys`;
  type Row = Record<string, unknown>;
  const page = (last: Row | null): Promise<Row[]> => {
    if (scope.kind === 'system') return db.query<Row>(`${select} WHERE id > $1 ORDER BY id LIMIT $2`, [last ? last.id : '', pageRows]);
    return last
      ? db.query<Row>(`${select} WHERE organization_id = $1 AND (created_at, id) > ($2::timestamptz, $3) ORDER BY created_at, id LIMIT $4`, [scope.organizationId, last.cursor_at, last.id, pageRows])
      : db.query<Row>(`${select} WHERE organization_id = $1 ORDER BY created_at, id LIMIT $2`, [scope.organizationId, pageRows]);
  };
  // One page ahead: the next page is read while this one is written out (two pages in memory at most).
  let next: Promise<Row[]> | null = page(null);
  try {
    while (next) {
      const rows: Row[] = await next;
      next = rows.length === pageRows ? page(rows[rows.length - 1]!) : null;
      if (rows.length > 0) yield rows.map(keyFromRow);
    }
  } finally {
    // A reader that stops early (the client went away) leaves the read ahead to finish unheard.
    next?.catch(() => undefined);
  }
}

/** One CSV record of a row, the cells in REPORT_COLUMNS order. */
export function csvRecord(row: ReportRow): string {
  const bool = (b: boolean | null) => (b === null ? null : String(b));
  return csvLine([
    row.id,
    row.tier,
    row.organizationId,
    row.name,
    row.status,
    row.scopes.join(' '),
    row.createdAt,
    row.createdBy.id ? `${row.createdBy.type}:${row.createdBy.id}` : row.createdBy.type,
    bool(row.creatorIsMember),
    row.secretAgeDays,
    row.rotatedAt,
    row.expiresAt,
    row.lastUsedAt,
    row.lastUsedIp,
    row.unusedDays,
    row.allowedIps ? row.allowedIps.join(' ') : null,
    row.rateLimit ? `${row.rateLimit.requests}/${row.rateLimit.windowSeconds}s` : null,
    row.flags.join(' '),
  ]);
}

/**
 * The report as a byte stream. JSON: `{ "object": "credential_report", "generatedAt", "scope",
 * "organizationId", "data": [rows...] }`, written row by row. A failure after the first bytes
 * (the database lost mid-walk) ends the stream with an error: the client sees a cut answer, never
 * a report that looks whole.
 */
export function reportStream(options: {
  db: Queryable;
  scope: ReportScope;
  format: ReportFormat;
  thresholds: HygieneThresholds;
  now: Date;
  pageRows?: number;
}): Readable {
  const { db, scope, format, thresholds, now } = options;
  async function* chunks(): AsyncGenerator<string> {
    if (format === 'csv') {
      yield csvLine([...REPORT_COLUMNS]);
      for await (const page of keyPages(db, scope, options.pageRows)) yield page.map((key) => csvRecord(reportRow(key, thresholds, now))).join('');
      return;
    }
    const head = {
      object: 'credential_report',
      generatedAt: now.toISOString(),
      scope: scope.kind,
      organizationId: scope.kind === 'organization' ? scope.organizationId : null,
    };
    yield `${JSON.stringify(head).slice(0, -1)},"data":[`;
    let first = true;
    for await (const page of keyPages(db, scope, options.pageRows)) {
      const text = page.map((key) => JSON.stringify(reportRow(key, thresholds, now))).join(',');
      yield first ? text : `,${text}`;
      first = false;
    }
    yield ']}';
  }
  return Readable.from(chunks(), { objectMode: false });
}
