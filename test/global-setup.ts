/**
 * One PostgreSQL for the whole run: the server named by DATABASE_URL, or an embedded PostgreSQL
 * started here. A migrated template database is made once; each test file clones it (test/harness.ts),
 * so files run in parallel on databases of their own.
 *
 * Servers under test run as a restricted runtime role of the run's own (SPEC §15, src/db/roles.ts),
 * as a deployment does: the template is migrated by the superuser (the owner) with the runtime
 * role's grants, and clones keep them, so the whole suite proves those grants are enough. Roles are
 * cluster-wide: the name is unique to the run and the role is dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { MIGRATIONS } from '../src/db/migrations.js';
import { grantRuntimePrivileges } from '../src/db/roles.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    /** The run's runtime role on the same server: pgAdminUrl with its user and password (the database is replaced per clone). */
    pgRuntimeUrl: string;
    templateDatabase: string;
    runId: string;
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedPostgres | null = null;
  let dataDir: string | null = null;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    // A data directory per run: concurrent runs on one machine must not share an embedded cluster.
    dataDir = path.resolve('.test-data', `run-${process.pid}`);
    embedded = await startEmbeddedPostgres({ dataDir, password: 'paygate-test' });
    adminUrl = embedded.connectionString;
  }
  const runId = randomBytes(4).toString('hex');
  const template = `paygate_tpl_${runId}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  const runtimeRole = `paygate_t_${runId}_runtime`;
  const runtimePassword = randomBytes(16).toString('hex');
  await admin.query(`CREATE ROLE ${runtimeRole} LOGIN PASSWORD '${runtimePassword}'`);
  try {
    await admin.query(`CREATE DATABASE ${template}`);
    const db = createDatabase(withDatabase(adminUrl, template), { max: 1 });
    try {
      await migrate(db, MIGRATIONS, (tx) => grantRuntimePrivileges(tx, runtimeRole));
    } finally {
      await db.close();
    }
  } catch (error) {
    // No teardown follows a failed setup: leave nothing behind on a shared server.
    await admin.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => undefined);
    await admin.query(`DROP ROLE IF EXISTS ${runtimeRole}`).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    throw error;
  }
  const runtimeUrl = new URL(adminUrl);
  runtimeUrl.username = runtimeRole;
  runtimeUrl.password = runtimePassword;
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgRuntimeUrl', runtimeUrl.toString());
  project.provide('templateDatabase', template);
  project.provide('runId', runId);

  return async () => {
    // Drop the template and any database a crashed test file left behind.
    const rows = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2', [template, `paygate_t_${runId}_%`]);
    for (const { datname } of rows.rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(datname)} WITH (FORCE)`).catch(() => undefined);
    }
    // After the databases holding its grants; a failure (a database of the run left elsewhere) is reported, not fatal.
    await admin.query(`DROP ROLE IF EXISTS ${runtimeRole}`).catch((error: Error) => console.warn(`could not drop the test role ${runtimeRole}: ${error.message}`));
    await admin.end();
    await embedded?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  };
}
