/**
 * Paygate's lists are cursor-paginated: `?limit=` (1..100, default 20) and `?startingAfter=<id>`
 * (the last id of the previous page), answering `{ object: "list", data, hasMore }`.
 *
 * `Paginated` is what a resource's `list()` returns: `await` it for one page, or iterate it with
 * `for await` for every element of every page, the next page fetched only when the previous one is
 * used up (so breaking out of the loop early stops fetching).
 */
import type { ItemOf } from './types.js';

export interface ListPage {
  object: 'list';
  data: ReadonlyArray<unknown>;
  hasMore: boolean;
}

function assertListPage(page: unknown): asserts page is { data: ReadonlyArray<{ id?: unknown }>; hasMore: boolean } {
  const candidate = page as { data?: unknown; hasMore?: unknown } | null;
  if (!candidate || !Array.isArray(candidate.data) || typeof candidate.hasMore !== 'boolean') {
    throw new TypeError('@paygate/client: the answer is not a list page ({ object: "list", data, hasMore })');
  }
}

export class Paginated<Page> implements AsyncIterable<ItemOf<Page>>, PromiseLike<Page> {
  /** `fetchPage(startingAfter)`: one page, after that id (or the first page). */
  constructor(
    private readonly fetchPage: (startingAfter: string | undefined) => Promise<Page>,
    private readonly startingAfter?: string,
  ) {}

  /** The first page (with the `limit` and `startingAfter` given to `list()`). */
  then<A = Page, B = never>(onFulfilled?: ((page: Page) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.fetchPage(this.startingAfter).then(onFulfilled, onRejected);
  }

  /** Every page in turn, from the first, following `hasMore` and the last element's `id`. */
  async *pages(): AsyncGenerator<Page, void, undefined> {
    let after = this.startingAfter;
    for (;;) {
      const page = await this.fetchPage(after);
      assertListPage(page);
      yield page;
      const last = page.data[page.data.length - 1];
      if (!page.hasMore || last === undefined) return;
      if (typeof last.id !== 'string') throw new TypeError('@paygate/client: a list element has no string id to continue after');
      after = last.id;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ItemOf<Page>, void, undefined> {
    for await (const page of this.pages()) yield* (page as { data: ReadonlyArray<ItemOf<Page>> }).data;
  }

  /** Every element, in order; at most `max` of them (fetching no page beyond what that needs). */
  async toArray(max = Number.POSITIVE_INFINITY): Promise<Array<ItemOf<Page>>> {
    const all: Array<ItemOf<Page>> = [];
    if (max <= 0) return all;
    for await (const item of this) {
      all.push(item);
      if (all.length >= max) break;
    }
    return all;
  }
}
