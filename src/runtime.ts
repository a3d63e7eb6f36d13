/**
 * Opening the database a Paygate process runs on: the embedded PostgreSQL (secrets generated and kept
 * in the data directory) or the server named by DATABASE_URL (secrets from the environment), migrated.
 * main.ts and the CLI share it.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { Config } from './config.js';
import { createDatabase, type Database } from './db/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import type { Secrets } from './services.js';

interface StoredSecrets extends Secrets {
  databasePassword: string;
}

const random = () => randomBytes(32).toString('base64url');

/** Secrets of embedded mode, generated once and kept (mode 0600) beside the database files. */
async function loadOrCreateSecrets(dataDir: string): Promise<StoredSecrets> {
  const file = path.join(dataDir, 'secrets.json');
  await fs.mkdir(dataDir, { recursive: true });
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as StoredSecrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const secrets: StoredSecrets = { pepper: random(), sessionSecret: random(), databasePassword: random() };
  await fs.writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600, flag: 'wx' });
  return secrets;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client(adminUrl);
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

export interface Runtime {
  db: Database;
  secrets: Secrets;
  embedded: EmbeddedPostgres | null;
  close(): Promise<void>;
}

/**
 * `log` receives the embedded PostgreSQL's own output; `warn` the events an operator should see (an
 * orphaned PostgreSQL stopped, a PostgreSQL that died and is restarted); both default to silence.
 */
export async function openRuntime(
  config: Config,
  log: (message: string) => void = () => undefined,
  warn: (message: string) => void = () => undefined,
): Promise<Runtime> {
  let embedded: EmbeddedPostgres | null = null;
  let connectionString: string;
  let secrets: Secrets;
  if (config.databaseUrl) {
    connectionString = config.databaseUrl;
    secrets = { pepper: config.secretPepper!, sessionSecret: config.sessionSecret! };
  } else {
    const stored = await loadOrCreateSecrets(config.dataDir);
    secrets = { pepper: config.secretPepper ?? stored.pepper, sessionSecret: config.sessionSecret ?? stored.sessionSecret };
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, password: stored.databasePassword, log, warn });
    try {
      await ensureDatabase(embedded.connectionString, 'paygate');
    } catch (error) {
      await embedded.stop();
      throw error;
    }
    connectionString = embedded.connectionString.replace(/\/postgres$/, '/paygate');
  }
  const db = createDatabase(connectionString, {
    // The node's pooled sessions carry its id, so operators can tell nodes apart in pg_stat_activity.
    applicationName: `paygate:${config.nodeId ?? 'node'}`,
    guardNestedPoolUse: config.debugChecks,
  });
  try {
    await migrate(db);
  } catch (error) {
    await db.close();
    await embedded?.stop();
    throw error;
  }
  return {
    db,
    secrets,
    embedded,
    async close() {
      await db.close();
      await embedded?.stop();
    },
  };
}
