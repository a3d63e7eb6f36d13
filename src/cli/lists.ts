/** List commands: one page, or with `--all` every page (following `hasMore`), printed as a table or JSON. */
import type { ListPage, Query } from './api.js';
import type { Connection } from './connection.js';
import type { PageOptions } from './options.js';
import type { Column } from './table.js';

/** Pages fetched with --all: the largest the API serves. */
const ALL_PAGE_SIZE = 100;

const idOf = (item: unknown) => String((item as { id?: unknown }).id);

/**
 * The first page (or the one after `--starting-after`), or with `--all` every page, as one list.
 * `cursorOf` names an item as `startingAfter` takes it (members: the user id or invitation id).
 */
export async function fetchList<T>(
  connection: Connection,
  path: string,
  query: Query,
  page: PageOptions,
  what: string,
  cursorOf: (item: T) => string = idOf,
): Promise<ListPage<T>> {
  const { client, output } = connection;
  if (!page.all) return client.get<ListPage<T>>(path, { ...query, limit: page.limit, startingAfter: page.startingAfter });
  const data: T[] = [];
  let startingAfter: string | undefined;
  for (let pages = 1; ; pages++) {
    const result = await client.get<ListPage<T>>(path, { ...query, limit: page.limit ?? ALL_PAGE_SIZE, startingAfter });
    data.push(...result.data);
    output.progress(`fetched ${data.length} ${what} (${pages} page${pages === 1 ? '' : 's'})...`);
    if (!result.hasMore || result.data.length === 0) break;
    startingAfter = cursorOf(result.data[result.data.length - 1]!);
  }
  output.endProgress();
  return { object: 'list', data, hasMore: false };
}

/** The list as JSON (the API's list object), or as a table with a line saying how to get more. */
export function printList<T>(connection: Connection, list: ListPage<T>, columns: Array<Column<T>>, what: string, cursorOf: (item: T) => string = idOf): void {
  const { output } = connection;
  if (output.isJson) return output.json(list);
  if (list.data.length === 0) return output.line(`no ${what}`);
  output.table(columns, list.data);
  if (list.hasMore) output.line(`(more ${what}: --all, or --starting-after ${cursorOf(list.data[list.data.length - 1]!)})`);
}
