/**
 * Two Paygate processes in server mode on one PostgreSQL database, as the multi-node scenarios
 * (revocation, leaks, webhooks, usage) start them: a scratch database on the DATABASE_URL server, or,
 * without DATABASE_URL, on an embedded PostgreSQL the bench starts for this (embedded mode itself is
 * one node by design); both nodes with the same pepper, session secret and audit signing key, and
 * the first admin given by the environment. The first node starts first: it migrates and creates the
 * first admin; the second then finds both done.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { freePort } from './common.js';
import { startPaygate, type PaygateNode } from './children.js';
import { createScratchDatabase, startOwnEmbeddedPostgres } from './db.js';

export interface ClusterNodeSpec {
  name: string;
  /** Added to the shared environment for this node only. */
  env?: NodeJS.ProcessEnv;
  /** Extra node arguments (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

export interface ClusterOptions {
  /** DATABASE_URL (server mode) or null: then an embedded PostgreSQL of the bench's own. */
  databaseUrl: string | null;
  baseEnv: NodeJS.ProcessEnv;
  /** Prefix of the scratch database's name. */
  databasePrefix: string;
  adminEmail: string;
  /** Added to the shared environment of both nodes (LOG_LEVEL, feature switches). */
  env?: NodeJS.ProcessEnv;
  /** Said in the report after "an embedded PostgreSQL started by the bench for this scenario". */
  embeddedDetail?: string;
  nodes: readonly [ClusterNodeSpec, ClusterNodeSpec];
}

export interface Cluster {
  a: PaygateNode;
  b: PaygateNode;
  /** The database both nodes use. */
  databaseUrl: string;
  /** Where the database is, for the report. */
  databaseNote: string;
  pepper: string;
  email: string;
  password: string;
}

/**
 * Starts the database and the two nodes; every resource's undo is pushed onto `cleanups` as soon as
 * it exists (the caller runs them in reverse, also when this throws part-way).
 */
export async function startTwoNodeCluster(options: ClusterOptions, cleanups: Array<() => Promise<void>>): Promise<Cluster> {
  let databaseUrl: string;
  let databaseNote: string;
  if (options.databaseUrl) {
    const db = await createScratchDatabase(options.databaseUrl, options.databasePrefix);
    cleanups.push(db.drop);
    databaseUrl = db.url;
    databaseNote = `scratch database ${db.name} on the DATABASE_URL server (dropped afterwards)`;
  } else {
    const pgServer = await startOwnEmbeddedPostgres();
    cleanups.push(pgServer.stop);
    const db = await createScratchDatabase(pgServer.adminUrl, options.databasePrefix);
    cleanups.push(db.drop);
    databaseUrl = db.url;
    const detail = options.embeddedDetail ? ` (${options.embeddedDetail})` : '';
    databaseNote = `an embedded PostgreSQL started by the bench for this scenario${detail}, database ${db.name}`;
  }
  const pepper = `bench-pepper-${randomBytes(24).toString('hex')}`;
  const email = options.adminEmail;
  const password = `bench-${randomBytes(12).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...options.baseEnv,
    DATABASE_URL: databaseUrl,
    PAYGATE_SECRET_PEPPER: pepper,
    PAYGATE_SESSION_SECRET: `bench-session-${randomBytes(24).toString('hex')}`,
    PAYGATE_AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    PAYGATE_ADMIN_EMAIL: email,
    PAYGATE_ADMIN_PASSWORD: password,
    ...options.env,
  };
  delete env.PAYGATE_DATA_DIR;
  delete env.REDIS_URL;
  const [specA, specB] = options.nodes;
  const start = async (spec: ClusterNodeSpec) => {
    const port = await freePort();
    const node = await startPaygate(spec.name, { ...env, ...spec.env, PAYGATE_PUBLIC_URL: `http://127.0.0.1:${port}` }, port, spec.nodeArgs ?? []);
    cleanups.push(node.stop);
    return node;
  };
  const a = await start(specA);
  const b = await start(specB);
  return { a, b, databaseUrl, databaseNote, pepper, email, password };
}
