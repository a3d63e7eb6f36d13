/**
 * One PostgreSQL for the whole run: the server named by DATABASE_URL, or an embedded PostgreSQL
 * started here. A migrated template database is made once; each test file clones it (test/harness.ts),
 * so files run in parallel on databases of their own.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
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
  await admin.query(`CREATE DATABASE ${template}`);
  const db = createDatabase(withDatabase(adminUrl, template), { max: 1 });
  await migrate(db);
  await db.close();
  project.provide('pgAdminUrl', adminUrl);
  project.provide('templateDatabase', template);
  project.provide('runId', runId);

  return async () => {
    // Drop the template and any database a crashed test file left behind.
    const rows = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2', [template, `paygate_t_${runId}_%`]);
    for (const { datname } of rows.rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(datname)} WITH (FORCE)`).catch(() => undefined);
    }
    await admin.end();
    await embedded?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  };
}
