/**
 * Opening the database a Paygate process runs on: the embedded PostgreSQL (secrets generated and kept
 * in the data directory) or the server named by DATABASE_URL (secrets from the environment), migrated.
 * main.ts and the CLI share it.
 *
 * Two roles (SPEC §15, src/db/roles.ts): migrations run as the owner of the tables, requests as a
 * runtime role that cannot alter the audit log. Embedded mode creates its runtime role itself; with
 * DATABASE_URL the operator provides both (PAYGATE_MIGRATION_DATABASE_URL names the owner).
 */
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { ConfigError, type Config } from './config.js';
import { createDatabase, isDatabaseUnavailable, type Database } from './db/database.js';
import { checkEmbeddedPostgres, startEmbeddedPostgres, type EmbeddedPostgres } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { MIGRATIONS } from './db/migrations.js';
import { EMBEDDED_RUNTIME_ROLE, auditTamperingPowers, grantRuntimePrivileges } from './db/roles.js';
import { generateSigningKeyPem, parseSigningKey } from './audit/signing.js';
import type { Secrets } from './services.js';

interface StoredSecrets {
  pepper: string;
  sessionSecret: string;
  /** The embedded PostgreSQL's superuser (`paygate`) password; the runtime role's is derived from it. */
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

/**
 * The audit signing key of embedded mode, generated once and kept (mode 0600) beside secrets.json in
 * its own PEM file, so that `openssl pkey -in audit-signing-key.pem -pubout` shows its public key.
 */
async function loadOrCreateSigningKey(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'audit-signing-key.pem');
  let pem: string;
  try {
    pem = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    pem = generateSigningKeyPem();
    await fs.writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  }
  if (!parseSigningKey(pem)) throw new Error(`${file} is not an Ed25519 private key in PEM`);
  return pem;
}

/** Embedded mode's runtime role: a login role that owns nothing, created (or reset) by the superuser. */
async function ensureRuntimeRole(adminUrl: string, role: string, password: string): Promise<void> {
  const client = new pg.Client(adminUrl);
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    await client.query(
      `${exists.rowCount === 0 ? 'CREATE' : 'ALTER'} ROLE ${client.escapeIdentifier(role)} ` +
        `WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ${client.escapeLiteral(password)}`,
    );
  } finally {
    await client.end();
  }
}

function withUser(url: string, user: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
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

/** DATABASE_URL's server did not accept a connection within the wait: not configuration (exit 1). */
export class DatabaseUnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnreachableError';
  }
}

/** host:port of a postgres:// URL, for messages: never its credentials. */
function serverOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}`;
  } catch {
    return 'its server';
  }
}

/**
 * SQLSTATEs of a server that answered and refused us: the URL is wrong, not the network. Class 28 is
 * invalid authorization (28P01 a wrong password, 28000 no such role or no pg_hba.conf entry), 3D000
 * an unknown database, 42501 a role without CONNECT on the database.
 */
const REFUSED_SQLSTATE = /^(28...|3D000|42501)$/;

/**
 * Waits until the server of `url` accepts a connection and lets us in, at most until `wait.until`. A
 * server that is down, starting (57P03) or out of connections is retried with backoff, each retry a
 * warning of one line; one that refuses the credentials or the database is a configuration error at
 * once (retrying cannot fix it), as is any other refusal of the connection (TLS, options).
 *
 * Backoff: 0.5 s, 1 s, 2 s, 4 s, then every 5 s, never past the deadline, with a last attempt at it.
 */
async function waitForDatabase(
  variable: string,
  url: string,
  wait: { since: number; until: number },
  warn: (message: string) => void,
): Promise<void> {
  const server = serverOf(url);
  let delayMs = 500;
  for (;;) {
    const remaining = wait.until - Date.now();
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: Math.max(1_000, Math.min(5_000, remaining)) });
    // An error event after connect failed (the socket closing) must not crash the process.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end().catch(() => undefined);
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      const code = (error as { code?: unknown }).code;
      const reason = (error as Error).message.replace(/\s+/g, ' ');
      if (typeof code === 'string' && REFUSED_SQLSTATE.test(code)) throw new ConfigError(`${variable}: the server at ${server} refused the connection: ${reason}`);
      if (!isDatabaseUnavailable(error)) throw new ConfigError(`${variable}: cannot connect to ${server}: ${reason}`);
      const left = wait.until - Date.now();
      if (left <= 0) {
        const waited = Math.round((Date.now() - wait.since) / 1000);
        throw new DatabaseUnreachableError(`cannot reach the database of ${variable} at ${server} (waited ${waited} s): ${reason}`, { cause: error });
      }
      const pause = Math.min(delayMs, left);
      warn(`the database of ${variable} at ${server} is not reachable (${reason}); retrying in ${(pause / 1000).toFixed(1)} s, giving up in ${Math.ceil(left / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, pause));
      delayMs = Math.min(delayMs * 2, 5_000);
    }
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
  /** The owner role's URL when it differs from the runtime role's. */
  let ownerString: string | null;
  let secrets: Secrets;
  if (config.databaseUrl) {
    // A server started beside us (a container, a reboot) may come up a little later: wait for it
    // before creating anything, so that a start either finds it or says so in one line (SPEC §11).
    const wait = { since: Date.now(), until: Date.now() + config.databaseWaitMs };
    await waitForDatabase('DATABASE_URL', config.databaseUrl, wait, warn);
    if (config.migrationDatabaseUrl) await waitForDatabase('PAYGATE_MIGRATION_DATABASE_URL', config.migrationDatabaseUrl, wait, warn);
    connectionString = config.databaseUrl;
    ownerString = config.migrationDatabaseUrl;
    secrets = { pepper: config.secretPepper!, sessionSecret: config.sessionSecret!, auditSigningKey: config.auditSigningKey! };
  } else {
    // Nothing is written into the data directory where the embedded PostgreSQL could not run (as root: SPEC §11).
    await checkEmbeddedPostgres(config.dataDir);
    const stored = await loadOrCreateSecrets(config.dataDir);
    secrets = {
      pepper: config.secretPepper ?? stored.pepper,
      sessionSecret: config.sessionSecret ?? stored.sessionSecret,
      auditSigningKey: config.auditSigningKey ?? (await loadOrCreateSigningKey(config.dataDir)),
    };
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, password: stored.databasePassword, log, warn });
    // Derived, not stored: secrets.json of earlier versions stays as it is. The superuser `paygate`
    // owns the tables and runs the migrations; requests run as the runtime role.
    const runtimePassword = createHmac('sha256', stored.databasePassword).update('paygate runtime role').digest('base64url');
    try {
      await ensureDatabase(embedded.connectionString, 'paygate');
      await ensureRuntimeRole(embedded.connectionString, EMBEDDED_RUNTIME_ROLE, runtimePassword);
    } catch (error) {
      await embedded.stop();
      throw error;
    }
    ownerString = embedded.connectionString.replace(/\/postgres$/, '/paygate');
    connectionString = withUser(ownerString, EMBEDDED_RUNTIME_ROLE, runtimePassword);
  }
  const db = createDatabase(connectionString, {
    // The node's pooled sessions carry its id, so operators can tell nodes apart in pg_stat_activity.
    applicationName: `paygate:${config.nodeId ?? 'node'}`,
    guardNestedPoolUse: config.debugChecks,
  });
  let powers: string[];
  try {
    if (ownerString) {
      // Unbounded like the migrations themselves: a start waits for a slow database.
      const runtimeSide = await db.transaction(
        async (tx) => (await tx.query<{ role: string; database: string }>('SELECT current_user AS role, current_database() AS database'))[0]!,
        { kind: 'migration' },
      );
      const owner = createDatabase(ownerString, { max: 1, applicationName: `paygate-migrate:${config.nodeId ?? 'node'}` });
      try {
        await migrate(owner, MIGRATIONS, async (tx) => {
          // Checked before COMMIT: migrations applied to another database than the one served roll back.
          const [{ database }] = (await tx.query<{ database: string }>('SELECT current_database() AS database')) as [{ database: string }];
          if (database !== runtimeSide.database) {
            throw new ConfigError(`PAYGATE_MIGRATION_DATABASE_URL names the database "${database}" but DATABASE_URL names "${runtimeSide.database}": they must name the same one`);
          }
          await grantRuntimePrivileges(tx, runtimeSide.role);
        });
      } finally {
        await owner.close();
      }
    } else {
      await migrate(db);
    }
    powers = await db.transaction((tx) => auditTamperingPowers(tx), { kind: 'migration' });
  } catch (error) {
    await db.close();
    await embedded?.stop();
    throw error;
  }
  for (const power of powers) {
    warn(
      `${power}: its requests could alter the audit log. Run them as a restricted role: DATABASE_URL for it, ` +
        'PAYGATE_MIGRATION_DATABASE_URL for the owner (docs/operations.md, "Database roles")',
    );
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
