/**
 * The storage seam's contract under real faults (src/db/database.ts): through a pausable TCP proxy to
 * a real PostgreSQL, every wait is bounded (a query on an established connection, a transaction cut
 * off half-way, a connection that cannot open), a connection lost inside a transaction fails that
 * transaction only, and the pool recovers by itself when the link returns.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, DATABASE_BOUNDS, DatabaseUnavailableError, isDatabaseUnavailable, type Database } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase } from '../harness.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** A bound plus what a loaded machine adds. */
const within = (boundMs: number) => boundMs + 750;

async function elapsed(fn: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const t0 = performance.now();
  try {
    await fn();
    return { ms: performance.now() - t0, error: null };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

describe('the database seam under faults', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let db: Database;
  let observer: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url);
    proxy = await startTcpProxy({ targetHost: target.hostname, targetPort: Number(target.port || 5432) });
    observer = new pg.Client(database.url);
    await observer.connect();
  });
  afterEach(async () => {
    proxy.resume();
    await db?.close().catch(() => undefined);
  });
  afterAll(async () => {
    await observer?.end();
    await proxy?.close();
    await database?.drop();
  });

  const open = (max = 2) => (db = createDatabase(proxy.rewrite(database.runtimeUrl ?? database.url), { max, applicationName: 'paygate-seam-test' }));

  it('a query on an established connection whose link goes dark fails with DatabaseUnavailableError within its bound', { timeout: 20_000 }, async () => {
    open(1);
    await db.query('SELECT 1');
    proxy.pause();
    const { ms, error } = await elapsed(() => db.query('SELECT 1'));
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect(ms).toBeLessThan(within(DATABASE_BOUNDS.operationMs));
    proxy.resume();
    // The dead connection was thrown away: the pool opens a new one.
    await expect(db.query<{ one: number }>('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
  });

  it('a transaction whose link goes dark half-way fails within its deadline, and the server rolls it back', { timeout: 20_000 }, async () => {
    open(1);
    // Made by the owner: the runtime role may not create tables.
    await observer.query('CREATE TABLE IF NOT EXISTS seam_test (id int); GRANT ALL ON seam_test TO PUBLIC');
    const { ms, error } = await elapsed(() =>
      db.transaction(async (tx) => {
        await tx.query('INSERT INTO seam_test (id) VALUES (42)');
        proxy.pause();
        await tx.query('SELECT 1');
      }),
    );
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(ms).toBeLessThan(within(DATABASE_BOUNDS.operationMs));
    proxy.resume();
    // The server ends a session idle in a transaction, so nothing half-done survives.
    const deadline = performance.now() + within(DATABASE_BOUNDS.idleInTransactionMs) + 2_000;
    let open_ = 1;
    while (performance.now() < deadline && open_ > 0) {
      open_ = Number((await observer.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'paygate-seam-test' AND state LIKE 'idle in transaction%'")).rows[0].n);
      if (open_ > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(open_).toBe(0);
    expect((await observer.query('SELECT count(*)::int AS n FROM seam_test WHERE id = 42')).rows[0].n).toBe(0);
  });

  it('a connection that cannot open fails within the acquire bound', { timeout: 20_000 }, async () => {
    open(1);
    proxy.pause();
    const { ms, error } = await elapsed(() => db.query('SELECT 1'));
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(ms).toBeLessThan(within(DATABASE_BOUNDS.acquireMs));
  });

  it('a connection terminated between two statements of a transaction fails that transaction only; the process and the pool carry on', { timeout: 20_000 }, async () => {
    open(2);
    const unhandled: unknown[] = [];
    const onUncaught = (error: unknown) => unhandled.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const failed = db.transaction(async (tx) => {
        const [{ pid }] = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
        await observer.query('SELECT pg_terminate_backend($1)', [pid]);
        // The termination arrives while no statement runs on this connection.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await tx.query('SELECT 1');
      });
      await expect(failed).rejects.toSatisfy(isDatabaseUnavailable);
      await expect(db.query<{ one: number }>('SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('classifies what means "unavailable" (503) apart from what is a bug (500)', () => {
    const withCode = (code: string) => Object.assign(new Error('x'), { code });
    for (const code of ['57014', '55P03', '25P03', '57P01', '08006', '53300', '40P01', 'ECONNREFUSED', 'ECONNRESET']) {
      expect(isDatabaseUnavailable(withCode(code)), code).toBe(true);
    }
    for (const code of ['23505', '42P01', '22P02']) expect(isDatabaseUnavailable(withCode(code)), code).toBe(false);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable(new TypeError('x is undefined'))).toBe(false);
  });
});
