/**
 * The storage seam: { query, transaction, listen, close } over one `pg` pool.
 * The embedded PostgreSQL and a PostgreSQL server look the same from here.
 */
import pg from 'pg';

// bigint (int8) columns come back as JS numbers: our counters stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number(value));

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Listener {
  /** Ends the dedicated connection (UNLISTEN happens with it). */
  close(): Promise<void>;
}

export interface ListenHandlers {
  onNotification(channel: string, payload: string): void;
  /** Called when the connection is lost; no notification can be trusted to arrive until onConnect. */
  onDisconnect(error: Error | null): void;
  /** Called on every (re)connection, after LISTEN has taken effect. */
  onConnect(client: pg.Client): void;
}

export interface Database extends Queryable {
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** A dedicated (never pooled) connection that LISTENs on the channels and reports its state. */
  listen(channels: string[], handlers: ListenHandlers, applicationName?: string): Promise<pg.Client>;
  close(): Promise<void>;
  /** Number of statements sent so far; tests use it to prove a path costs no database query. */
  readonly stats: { queries: number };
  readonly connectionString: string;
}

export function createDatabase(connectionString: string, options: { max?: number } = {}): Database {
  const pool = new pg.Pool({ connectionString, max: options.max ?? 10, idleTimeoutMillis: 30_000 });
  // An idle client that errors (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const stats = { queries: 0 };

  const wrap = (client: pg.Pool | pg.PoolClient): Queryable => ({
    async query<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
      stats.queries++;
      const result = await client.query(sql, params as unknown[] | undefined);
      return result.rows as T[];
    },
  });
  const root = wrap(pool);

  return {
    stats,
    connectionString,
    query: root.query,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        stats.queries++;
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        stats.queries++;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    async listen(channels, handlers, applicationName) {
      // Named, so operators (and tests) can find a node's listening backend in pg_stat_activity.
      const client = new pg.Client({ connectionString, keepAlive: true, application_name: applicationName ?? 'paygate-listener' });
      let ended = false;
      client.on('notification', (msg) => handlers.onNotification(msg.channel, msg.payload ?? ''));
      const lost = (error: Error | null) => {
        if (ended) return;
        ended = true;
        handlers.onDisconnect(error);
      };
      client.on('error', (error) => lost(error));
      client.on('end', () => lost(null));
      await client.connect();
      for (const channel of channels) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
      handlers.onConnect(client);
      return client;
    },
    async close() {
      await pool.end();
    },
  };
}
