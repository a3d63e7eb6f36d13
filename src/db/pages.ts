/**
 * Cursor pagination (SPEC §11) over one organization's rows, newest first, by keyset on
 * (created_at, id): `?limit=` rows after the object named by `?startingAfter=`. Every list endpoint of
 * an organization-owned resource goes through here.
 */
import { notFound } from '../errors.js';
import type { Queryable } from './database.js';

export interface PageRequest {
  limit: number;
  startingAfter: string | null;
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  hasMore: boolean;
}

export interface ListQuery<R, T> {
  /** The table holding the rows; it has organization_id, created_at and id. */
  table: string;
  /** The select list and source, when more than `SELECT * FROM <table>` is needed. */
  select?: string;
  organizationId: string;
  /** Fixed conditions, e.g. "deleted_at IS NULL". */
  conditions?: string[];
  /** Equality filters: [SQL expression, value]; an undefined value is no filter. */
  filters?: Array<[string, unknown]>;
  page: PageRequest;
  /** Names the resource in the 404 for a cursor that is not one of this organization's rows. */
  what: string;
  map: (row: R) => T;
}

export async function listNewestFirst<R, T>(db: Queryable, query: ListQuery<R, T>): Promise<ListPage<T>> {
  const params: unknown[] = [query.organizationId, query.page.limit + 1];
  const where = ['organization_id = $1', ...(query.conditions ?? [])];
  for (const [expression, value] of query.filters ?? []) {
    if (value === undefined || value === null || value === '') continue;
    params.push(value);
    where.push(`${expression} = $${params.length}`);
  }
  if (query.page.startingAfter) {
    // A cursor from another organization (or garbage) is "not found", like the object itself.
    const cursor = await db.query(`SELECT 1 FROM ${query.table} WHERE id = $1 AND organization_id = $2`, [query.page.startingAfter, query.organizationId]);
    if (cursor.length === 0) throw notFound(query.what);
    params.push(query.page.startingAfter);
    where.push(`(created_at, id) < (SELECT created_at, id FROM ${query.table} WHERE id = $${params.length})`);
  }
  const rows = await db.query<R>(
    `${query.select ?? `SELECT * FROM ${query.table}`} WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $2`,
    params,
  );
  return { object: 'list', data: rows.slice(0, query.page.limit).map(query.map), hasMore: rows.length > query.page.limit };
}
