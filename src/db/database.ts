/**
 * The storage seam: { query, transaction, listen, close } over one `pg` pool.
 * The embedded PostgreSQL and a PostgreSQL server look the same from here.
 *
 * Every wait on the database is bounded, on both sides (SPEC §11 "Faults"):
 * - client side: each query and each transaction has a deadline (acquiring the connection
 *   included); past it the connection is destroyed and the caller gets DatabaseUnavailableError,
 *   which the HTTP layer answers 503 service_unavailable. A black-holed link cannot hold a request.
 * - server side, for Paygate's own sessions: statement_timeout, lock_timeout and
 *   idle_in_transaction_session_timeout. The last one is what bounds how long a node that stalls
 *   (or is cut off) in the middle of a transaction can keep its locks from the other nodes: the
 *   server ends its session and rolls it back.
 * A connection lost in the middle of a transaction fails that transaction only; the pool replaces
 * the connection by itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

// bigint (int8) columns come back as JS numbers: our counters stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number(value));

/** The bounds, in milliseconds. docs/operations.md states them; keep the two in step. */
export const DATABASE_BOUNDS = {
  /** Client deadline of one pool query, or of one request transaction (acquiring the connection included). */
  operationMs: 4_500,
  /** Waiting for a pooled connection (or opening one). */
  acquireMs: 2_000,
  /** Server side: one statement. */
  statementMs: 4_000,
  /** Server side: waiting for a lock. Longer than the idle bound, so a stalled holder is ended first. */
  lockMs: 4_000,
  /** Server side: a session idle inside a transaction (a stalled or cut-off node) is ended. */
  idleInTransactionMs: 3_000,
  /** ROLLBACK after a failed transaction. */
  rollbackMs: 1_000,
} as const;

/** Background work on a dedicated connection (exports, imports): statements may take longer. */
const BACKGROUND_BOUNDS = { statementMs: 120_000, lockMs: 10_000, idleInTransactionMs: 30_000 } as const;
/** Beyond the server's own statement bound, how long the client waits before it gives the link up. */
const CLIENT_MARGIN_MS = 500;

export interface QueryOptions {
  /** Client-side bound of this query (acquiring a connection included). */
  timeoutMs?: number;
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]>;
}

/**
 * - 'request' (default): a pooled connection; the whole transaction, acquiring included, within
 *   DATABASE_BOUNDS.operationMs.
 * - 'long': a pooled connection; no bound on the whole, each statement within the statement bound
 *   (an integrity check walking the whole audit chain in batches).
 * - 'background': a connection of its own, with longer server-side bounds, for background work that
 *   also writes through the pool meanwhile (an export reads one snapshot while it stores chunks).
 * - 'migration': a connection of its own and no bounds at all: a node started beside a migration
 *   waits for it.
 */
export type TransactionKind = 'request' | 'long' | 'background' | 'migration';

export interface TransactionOptions {
  kind?: TransactionKind;
}

/** A connection of the seam's own (the invalidation listener): queries and close, nothing of the driver. */
export interface DedicatedConnection extends Queryable {
  /** The backend's process id (tests terminate it to cut the connection). */
  readonly pid: number | null;
  /** Ends the connection; never waits longer than a second (the link may be gone). */
  close(): Promise<void>;
}

export interface ListenHandlers {
  onNotification(channel: string, payload: string): void;
  /** Called when the connection is lost; no notification can be trusted to arrive until the next listen. */
  onDisconnect(error: Error | null): void;
}

export interface Database extends Queryable {
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** A dedicated (never pooled) connection that LISTENs on the channels and reports its loss. */
  listen(channels: string[], handlers: ListenHandlers, applicationName?: string): Promise<DedicatedConnection>;
  close(): Promise<void>;
  /** Number of statements sent so far; tests use it to prove a path costs no database query. */
  readonly stats: { queries: number };
  readonly connectionString: string;
}

/** The database could not be reached, or did not answer, within the bound: answered 503. */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * SQLSTATEs that mean "the database is unavailable or overloaded right now, try again", not "the
 * request is wrong": connection exceptions (08), operator intervention (57: shutdown, cancel by
 * statement_timeout, idle-in-transaction timeout is 25P03), lock_not_available (lock_timeout),
 * too_many_connections, serialization failure and deadlock (transient by definition).
 */
const TRANSIENT_SQLSTATE = /^(08...|57P0[1-4]|57014|55P03|53300|53400|25P03|40001|40P01)$/;
const TRANSIENT_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** Whether an error means the database is unavailable (503) rather than a bug (500). */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_ERRNO.has(code))) return true;
  // node-postgres reports a lost socket and pool timeouts with messages only.
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(error.message);
}

function unavailable(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError || !isDatabaseUnavailable(error)) return error;
  return new DatabaseUnavailableError(`the database is unavailable: ${(error as Error).message}`, { cause: error });
}

/** Destroys the socket at once: `end()` would wait for a goodbye that a black-holed link never carries. */
function destroy(client: pg.ClientBase): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Ends a connection politely, but gives it up after a second (a black-holed link never answers). */
async function endWithin(client: pg.Client, lost?: Error): Promise<void> {
  if (lost) return destroy(client);
  const timer = setTimeout(() => destroy(client), 1_000);
  await client.end().catch(() => undefined);
  clearTimeout(timer);
}

export interface DatabaseOptions {
  /** Pool size. */
  max?: number;
  /** Names this node's pooled sessions in pg_stat_activity (tests find and terminate them). */
  applicationName?: string;
  /**
   * Development check (tests turn it on): a query on the pool, or a second transaction, from inside
   * an open pooled transaction throws. Waiting for a pool connection while holding one starves the
   * pool under load (every holder waits for another); the caller must use the transaction's handle.
   */
  guardNestedPoolUse?: boolean;
}

export function createDatabase(connectionString: string, options: DatabaseOptions = {}): Database {
  const applicationName = options.applicationName ?? 'paygate';
  const sessionBounds = (bounds: { statementMs: number; lockMs: number; idleInTransactionMs: number }) => ({
    statement_timeout: bounds.statementMs,
    lock_timeout: bounds.lockMs,
    idle_in_transaction_session_timeout: bounds.idleInTransactionMs,
  });
  const clientConfig = {
    connectionString,
    application_name: applicationName,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5_000,
    connectionTimeoutMillis: DATABASE_BOUNDS.acquireMs,
  };
  const pool = new pg.Pool({ ...clientConfig, ...sessionBounds(DATABASE_BOUNDS), max: options.max ?? 10, idleTimeoutMillis: 30_000 });
  // An idle client that errors (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const stats = { queries: 0 };
  const inTransaction = options.guardNestedPoolUse ? new AsyncLocalStorage<'pooled' | 'dedicated'>() : null;

  const assertNotNested = (what: string) => {
    if (inTransaction?.getStore() === 'pooled') {
      throw new Error(`${what} from inside an open transaction would wait for a second pool connection while holding one; use the transaction's handle`);
    }
  };

  /**
   * Runs `sql` on `client`, destroying the connection if it does not answer before `deadline` (and
   * `statementBoundMs` from now, when given).
   */
  const run = async <T>(
    client: pg.ClientBase,
    sql: string,
    params: readonly unknown[] | undefined,
    deadline: number | null,
    statementBoundMs: number | null = null,
  ): Promise<T[]> => {
    stats.queries++;
    const pending = client.query(sql, params as unknown[] | undefined);
    const now = performance.now();
    const limit = Math.min(deadline ?? Infinity, statementBoundMs === null ? Infinity : now + statementBoundMs);
    if (limit === Infinity) return (await pending).rows as T[];
    const remaining = limit - now;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        destroy(client);
        reject(new DatabaseUnavailableError('the database did not answer in time'));
      }, Math.max(0, remaining));
    });
    try {
      return (await Promise.race([pending, timedOut])).rows as T[];
    } catch (error) {
      throw unavailable(error);
    } finally {
      clearTimeout(timer);
    }
  };

  /** A pooled connection, within the deadline; one that arrives late goes straight back. */
  const acquire = async (deadline: number | null): Promise<pg.PoolClient> => {
    const connecting = pool.connect();
    if (deadline === null) return connecting.catch((error: unknown) => Promise.reject(unavailable(error)));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DatabaseUnavailableError('no database connection in time')), Math.max(0, deadline - performance.now()));
    });
    try {
      return await Promise.race([connecting, timedOut]);
    } catch (error) {
      connecting.then((client) => client.release(), () => undefined);
      throw unavailable(error);
    } finally {
      clearTimeout(timer);
    }
  };

  /** A connection of its own: the longer bounds of background work, or none for migrations. */
  const connectDedicated = async (kind: 'background' | 'migration'): Promise<pg.Client> => {
    const bounds = kind === 'background' ? BACKGROUND_BOUNDS : { statementMs: 0, lockMs: 0, idleInTransactionMs: 0 };
    const client = new pg.Client({ ...clientConfig, ...sessionBounds(bounds) });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw unavailable(error);
    }
    return client;
  };


  return {
    stats,
    connectionString,

    async query<T>(sql: string, params?: readonly unknown[], queryOptions?: QueryOptions): Promise<T[]> {
      assertNotNested('A pool query');
      const deadline = performance.now() + (queryOptions?.timeoutMs ?? DATABASE_BOUNDS.operationMs);
      const client = await acquire(deadline);
      let lost: Error | undefined;
      const onError = (error: Error) => (lost = error);
      client.on('error', onError);
      try {
        return await run<T>(client, sql, params, deadline);
      } catch (error) {
        lost ??= isDatabaseUnavailable(error) ? (error as Error) : undefined;
        throw error;
      } finally {
        client.off('error', onError);
        // Released with the error, the pool destroys the connection instead of handing it out again.
        client.release(lost);
      }
    },

    async transaction<T>(fn: (tx: Queryable) => Promise<T>, txOptions: TransactionOptions = {}): Promise<T> {
      assertNotNested('A nested transaction');
      const kind = txOptions.kind ?? 'request';
      const dedicated = kind === 'background' || kind === 'migration';
      const deadline = kind === 'request' ? performance.now() + DATABASE_BOUNDS.operationMs : null;
      const statementBound =
        kind === 'migration' ? null : (kind === 'background' ? BACKGROUND_BOUNDS.statementMs : DATABASE_BOUNDS.statementMs) + CLIENT_MARGIN_MS;
      const client = dedicated ? await connectDedicated(kind) : await acquire(performance.now() + DATABASE_BOUNDS.acquireMs);
      // Security of the process: a connection that dies while checked out emits 'error'; without a
      // listener that is an uncaught exception and the whole node exits. Here it fails this
      // transaction only (its pending query rejects) and the connection is thrown away.
      let lost: Error | undefined;
      const onError = (error: Error) => (lost = error);
      client.on('error', onError);
      const tx: Queryable = {
        query: <R>(sql: string, params?: readonly unknown[]) => run<R>(client, sql, params, deadline, statementBound),
      };
      try {
        await run(client, 'BEGIN', undefined, deadline, statementBound);
        const body = () => fn(tx);
        const result = inTransaction ? await inTransaction.run(dedicated ? 'dedicated' : 'pooled', body) : await body();
        await run(client, 'COMMIT', undefined, deadline, statementBound);
        return result;
      } catch (error) {
        if (isDatabaseUnavailable(error)) lost ??= error as Error;
        if (!lost) {
          await run(client, 'ROLLBACK', undefined, performance.now() + DATABASE_BOUNDS.rollbackMs).catch((rollbackError: Error) => {
            lost = rollbackError;
          });
        }
        throw error;
      } finally {
        client.off('error', onError);
        if (dedicated) {
          void endWithin(client as pg.Client, lost);
        } else {
          (client as pg.PoolClient).release(lost);
        }
      }
    },

    async listen(channels, handlers, listenerName) {
      // Named, so operators (and tests) can find a node's listening backend in pg_stat_activity.
      const client = new pg.Client({ ...clientConfig, application_name: listenerName ?? `${applicationName}-listener` });
      let ended = false;
      client.on('notification', (msg) => handlers.onNotification(msg.channel, msg.payload ?? ''));
      const lostConnection = (error: Error | null) => {
        if (ended) return;
        ended = true;
        handlers.onDisconnect(error);
      };
      client.on('error', (error) => lostConnection(error));
      client.on('end', () => lostConnection(null));
      const deadline = performance.now() + DATABASE_BOUNDS.operationMs;
      try {
        await client.connect();
        for (const channel of channels) await run(client, `LISTEN ${client.escapeIdentifier(channel)}`, undefined, deadline);
      } catch (error) {
        ended = true;
        destroy(client);
        throw unavailable(error);
      }
      return {
        get pid() {
          return (client as unknown as { processID?: number }).processID ?? null;
        },
        query: <R>(sql: string, params?: readonly unknown[], queryOptions?: QueryOptions) =>
          run<R>(client, sql, params, performance.now() + (queryOptions?.timeoutMs ?? DATABASE_BOUNDS.operationMs)),
        async close() {
          ended = true;
          await endWithin(client);
        },
      };
    },

    async close() {
      await pool.end();
    },
  };
}
