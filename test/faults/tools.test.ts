/**
 * The fault-injection tools, tested for real: the proxy between pg clients and a PostgreSQL this file
 * owns (plus a plain echo server for byte-level cases), and the owned PostgreSQL stopped, crashed
 * and killed. The run's shared PostgreSQL is never used.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import net from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startOwnedPostgres, type OwnedPostgres } from './owned-postgres.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/** How long "does not complete" is watched for: long against a local round trip (well under 1 ms). */
const QUIET_MS = 500;

type Outcome<T> = { settled: false } | { settled: true; value?: T; error?: unknown };

/** What a promise did within `ms`, without consuming its rejection later. */
async function within<T>(promise: Promise<T>, ms: number): Promise<Outcome<T>> {
  const watched = promise.then(
    (value): Outcome<T> => ({ settled: true, value }),
    (error: unknown): Outcome<T> => ({ settled: true, error }),
  );
  const timeout = new Promise<Outcome<T>>((resolve) => setTimeout(() => resolve({ settled: false }), ms));
  return Promise.race([watched, timeout]);
}

/** A pg client that records its connection errors instead of crashing the process. */
function client(url: string): pg.Client & { errors: Error[]; ended: boolean } {
  const c = Object.assign(new pg.Client({ connectionString: url }), { errors: [] as Error[], ended: false });
  c.on('error', (error) => c.errors.push(error));
  c.on('end', () => (c.ended = true));
  return c;
}

let db: OwnedPostgres;
const clients: pg.Client[] = [];
const track = <T extends pg.Client>(c: T): T => (clients.push(c), c);

beforeAll(async () => {
  db = await startOwnedPostgres();
});

afterAll(async () => {
  await db?.close();
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

describe('tcp proxy in front of PostgreSQL', () => {
  let proxy: TcpProxy;
  beforeAll(async () => {
    proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: db.port });
  });
  afterEach(() => proxy.resume());
  afterAll(async () => {
    await proxy.close();
  });

  it('rewrites a URL to the proxy and forwards queries both ways', async () => {
    const url = proxy.rewrite(db.url);
    expect(new URL(url).host).toBe(`127.0.0.1:${proxy.port}`);
    expect(new URL(url).password).toBe(new URL(db.url).password);
    const c = track(client(url));
    await c.connect();
    expect((await c.query('SELECT 41 + 1 AS answer')).rows).toEqual([{ answer: 42 }]);
    expect(proxy.connections).toBe(1);
  });

  it('holds a query while paused, keeps the socket open, and completes it on resume', async () => {
    const c = track(client(proxy.rewrite(db.url)));
    await c.connect();
    proxy.pause();
    const query = c.query('SELECT 1 AS one');
    expect(await within(query, QUIET_MS)).toEqual({ settled: false });
    expect(c.errors).toEqual([]);
    expect(c.ended).toBe(false);
    expect(proxy.connections).toBe(1);
    proxy.resume();
    expect((await query).rows).toEqual([{ one: 1 }]);
  });

  it('accepts a connection made while paused but lets nothing reach the server until resume', async () => {
    const admin = track(client(db.url));
    await admin.connect();
    const backends = async () =>
      Number((await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'held-at-proxy'`)).rows[0].n);

    proxy.pause('toServer');
    const c = track(new pg.Client({ connectionString: proxy.rewrite(db.url), application_name: 'held-at-proxy' }));
    c.on('error', () => undefined);
    const connecting = c.connect();
    expect(await within(connecting, QUIET_MS)).toEqual({ settled: false });
    expect(proxy.connections).toBe(1);
    expect(await backends()).toBe(0);

    proxy.resume();
    await connecting;
    expect(await backends()).toBe(1);
    expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  });

  it('pauseWhen forwards the matching statement and freezes its session idle in transaction, holding the lock', async () => {
    const admin = track(client(db.url));
    await admin.connect();
    const node = track(client(proxy.rewrite(db.url)));
    await node.connect();
    const pid = Number((await node.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    await node.query('BEGIN');

    const frozen = proxy.pauseWhen('pg_sleep_marker');
    const locked = node.query(`SELECT pg_advisory_xact_lock(4242), 'pg_sleep_marker' AS marker`);
    await frozen;

    // The server ran the statement; its reply is held at the proxy.
    expect(await within(locked, QUIET_MS / 2)).toEqual({ settled: false });
    const session = await admin.query(`SELECT state FROM pg_stat_activity WHERE pid = $1`, [pid]);
    expect(session.rows).toEqual([{ state: 'idle in transaction' }]);
    const lock = await admin.query(`SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND pid = $1`, [pid]);
    expect(lock.rows).toEqual([{ granted: true }]);
    expect((await admin.query('SELECT pg_try_advisory_lock(4242) AS got')).rows).toEqual([{ got: false }]);

    proxy.resume();
    expect((await locked).rows).toEqual([{ pg_advisory_xact_lock: '', marker: 'pg_sleep_marker' }]);
    await node.query('ROLLBACK');
    expect((await admin.query('SELECT pg_try_advisory_lock(4242) AS got')).rows).toEqual([{ got: true }]);
  });

  it('destroyAll cuts every link: the client errors and the connection is gone', async () => {
    const c = track(client(proxy.rewrite(db.url)));
    await c.connect();
    const cut = new Promise<Error>((resolve) => c.once('error', resolve));
    proxy.destroyAll();
    expect(await cut).toMatchObject({ code: 'ECONNRESET' });
    await expect(c.query('SELECT 1')).rejects.toThrow();
    expect(proxy.connections).toBe(0);
  });

  it('reaches PostgreSQL again, through the same proxy, after the server restarted behind it', async () => {
    await db.restart({ mode: 'fast' });
    const c = track(client(proxy.rewrite(db.url)));
    await c.connect();
    expect((await c.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
  });
});

describe('tcp proxy, byte by byte (echo server)', () => {
  let echo: net.Server;
  let proxy: TcpProxy;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    echo = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: (echo.address() as net.AddressInfo).port });
  });
  afterEach(() => {
    proxy.resume();
    for (const s of sockets.splice(0)) s.destroy();
  });
  afterAll(async () => {
    await proxy.close();
    await new Promise((resolve) => echo.close(resolve));
  });

  /** A raw client whose received bytes accumulate in `received()`. */
  async function connect() {
    const socket = net.connect(proxy.port, proxy.host);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    sockets.push(socket);
    let text = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => (closed = true));
    await once(socket, 'connect');
    const until = async (expected: string) => {
      while (!text.includes(expected)) await once(socket, 'data');
    };
    return { socket, received: () => text, closed: () => closed, until };
  }

  it('delivers bytes held while paused in order on resume, and its FIN only after them', async () => {
    const c = await connect();
    await c.socket.write('0');
    await c.until('0');
    proxy.pause();
    for (const part of ['a', 'b', 'c']) c.socket.write(part);
    c.socket.end();
    expect(await within(once(c.socket, 'data'), QUIET_MS)).toEqual({ settled: false });
    expect(c.closed()).toBe(false);
    proxy.resume();
    await once(c.socket, 'end');
    expect(c.received()).toBe('0abc');
  });

  it('matches a pattern split over two chunks, forwards that chunk, and holds the reply', async () => {
    const c = await connect();
    const fired = proxy.pauseWhen(/marker-\d+/);
    c.socket.write('one pg_sleep_');
    // The first half has made the round trip: the second half is a chunk of its own.
    await c.until('one pg_sleep_');
    c.socket.write('marker-7 two');
    await fired;
    expect(await within(c.until('two'), QUIET_MS / 2)).toEqual({ settled: false });
    expect(c.closed()).toBe(false);
    proxy.resume();
    await c.until('two');
    expect(c.received()).toBe('one pg_sleep_marker-7 two');
  });

  it('does not fire on text sent before the trigger was armed', async () => {
    const c = await connect();
    c.socket.write('early-trig');
    await c.until('early-trig');
    const fired = proxy.pauseWhen('trig-late');
    c.socket.write('-late');
    // Had it fired, the echo of '-late' would be held.
    expect(await within(c.until('early-trig-late'), QUIET_MS)).toEqual({ settled: true, value: undefined });
    expect(await within(fired, 0)).toEqual({ settled: false });
    c.socket.write(' trig-late');
    await fired;
  });

  it('pauses one direction only: toClient holds replies while requests still reach the server', async () => {
    const c = await connect();
    proxy.pause('toClient');
    c.socket.write('ping');
    expect(await within(c.until('ping'), QUIET_MS / 2)).toEqual({ settled: false });
    proxy.resume();
    await c.until('ping');
  });

  it('close is idempotent and refuses new connections', async () => {
    const extra = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: (echo.address() as net.AddressInfo).port });
    await extra.close();
    await extra.close();
    const socket = net.connect(extra.port, extra.host);
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });
});

describe('owned PostgreSQL', () => {
  it('serves its superuser URL and reports the postmaster pid', async () => {
    const c = track(client(db.url));
    await c.connect();
    expect((await c.query('SELECT current_user AS who, current_setting($1) AS max', ['max_connections'])).rows).toEqual([
      { who: 'postgres', max: '200' },
    ]);
    expect(db.url).toContain(`127.0.0.1:${db.port}/postgres`);
    expect(db.dataDir).toMatch(/\/\.test-data\/owned-[^/]+\/pgdata$/);
    expect(() => process.kill(db.pid(), 0)).not.toThrow();
  });

  it('an immediate restart drops connected sessions, keeps committed data, and comes back on the same port', async () => {
    const setup = track(client(db.url));
    await setup.connect();
    await setup.query('CREATE TABLE survives (n int)');
    await setup.query('INSERT INTO survives VALUES (1)');
    const before = db.pid();

    await db.restart({ mode: 'immediate' });

    expect(db.pid()).not.toBe(before);
    await expect(setup.query('SELECT 1')).rejects.toThrow();
    expect(setup.errors.length + (setup.ended ? 1 : 0)).toBeGreaterThan(0);
    const after = track(client(db.url));
    await after.connect();
    expect((await after.query('SELECT n FROM survives')).rows).toEqual([{ n: 1 }]);
  });

  it('stays down between stopServer and startServer', async () => {
    await db.stopServer({ mode: 'fast' });
    expect(() => db.pid()).toThrow();
    const down = client(db.url);
    await expect(down.connect()).rejects.toThrow(/ECONNREFUSED/);
    await db.startServer();
    const up = track(client(db.url));
    await up.connect();
    expect((await up.query('SELECT count(*)::int AS n FROM survives')).rows).toEqual([{ n: 1 }]);
  });

  it('recovers after kill -9 of the postmaster', async () => {
    const victim = track(client(db.url));
    await victim.connect();
    const before = db.pid();
    await db.kill9();
    expect(() => process.kill(before, 0)).toThrow();
    await expect(victim.query('SELECT 1')).rejects.toThrow();

    await db.startServer();
    const c = track(client(db.url));
    await c.connect();
    expect((await c.query('SELECT n FROM survives')).rows).toEqual([{ n: 1 }]);
  });

  it('close stops the server and removes its data directory, and is idempotent', async () => {
    const other = await startOwnedPostgres({ maxConnections: 120 });
    const pid = other.pid();
    await other.close();
    await other.close();
    expect(existsSync(other.dataDir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
