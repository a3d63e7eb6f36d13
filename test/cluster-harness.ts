/**
 * Multi-node harness: N real Paygate server processes (`node --import tsx src/main.ts`) on one fresh
 * PostgreSQL database, as a cluster is deployed (same secrets, PAYGATE_NODE_ID each, own port each),
 * spoken to over HTTP with fetch. Nodes run as the run's restricted runtime role (DATABASE_URL) and
 * migrate as the owner (PAYGATE_MIGRATION_DATABASE_URL), as docs/operations.md describes. A test
 * PostgreSQL client on the same database, as the owner, lets tests look at `paygate_nodes` and cut a
 * node's listening connection.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { expect } from 'vitest';
import { TEST_SECRETS, createTestDatabase, type HttpResult, type RequestOptions, type TestDatabase } from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

export interface ClusterNode {
  /** PAYGATE_NODE_ID, e.g. "node-a". */
  id: string;
  url: string;
  port: number;
  child: ChildProcessWithoutNullStreams;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Whether the process has exited. */
  readonly done: boolean;
  stdout(): string;
  stderr(): string;
}

export interface ProvisionedOrg {
  organizationId: string;
  keyId: string;
  /** The initial key's whole token. */
  token: string;
}

export interface Cluster {
  nodes: ClusterNode[];
  database: TestDatabase;
  /** A client of the test itself on the cluster's database. */
  pg: pg.Client;
  admin: { email: string; password: string };
  request<T = any>(node: ClusterNode, method: string, path: string, options?: RequestOptions): Promise<HttpResult<T>>;
  /** Signs in on `node` (the global admin by default) and returns the session JWT. */
  login(node: ClusterNode, email?: string, password?: string): Promise<string>;
  /** POST /v1/system/organizations through `node` with a global-admin session; an initial key with these scopes. */
  provisionOrg(node: ClusterNode, adminToken: string, scopes?: string[]): Promise<ProvisionedOrg>;
  /** Polls GET /readyz until it answers 200. */
  waitReady(node: ClusterNode, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then waits for the exit (SIGKILL after a timeout). */
  stopNode(node: ClusterNode): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Starts one more node process with the cluster's environment plus `env` (without waiting for it to
   * be ready: a node that must refuse to start is started this way too). It joins `nodes`.
   */
  addNode(id: string, env?: Record<string, string>): Promise<ClusterNode>;
  /** Stops every node still running, closes the test client and drops the database. Safe to call twice. */
  stop(): Promise<void>;
}

/** Children still running, killed if the test worker exits without stopping them. */
const live = new Set<ChildProcessWithoutNullStreams>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** The environment of a child: nothing of the run's own configuration, only what the cluster gives. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'PORT', 'HOST', 'LOG_LEVEL'].includes(name)) delete env[name];
  }
  return { ...env, ...extra };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tail(text: string, max = 4000): string {
  return text.length > max ? `...${text.slice(-max)}` : text;
}

function spawnNode(id: string, port: number, env: Record<string, string>): ClusterNode {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: childEnv({ ...env, PORT: String(port), PAYGATE_NODE_ID: id }) });
  live.add(child);
  let out = '';
  let err = '';
  let done = false;
  child.stdout.on('data', (chunk) => (out += chunk));
  child.stderr.on('data', (chunk) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    exited,
    get done() {
      return done;
    },
    stdout: () => out,
    stderr: () => err,
  };
}

export async function request<T = any>(node: ClusterNode, method: string, path: string, opts: RequestOptions = {}): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookies) headers.cookie = Object.entries(opts.cookies).map(([k, v]) => `${k}=${v}`).join('; ');
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${node.url}${path}`, { method, headers, body, redirect: 'manual' });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

async function waitReady(node: ClusterNode, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (node.done) throw new Error(`${node.id} exited before it was ready\nstdout: ${tail(node.stdout())}\nstderr: ${tail(node.stderr())}`);
    try {
      const response = await fetch(`${node.url}/readyz`);
      last = `${response.status} ${await response.text()}`;
      if (response.status === 200) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${node.id} not ready after ${timeoutMs} ms (last: ${last})\nstdout: ${tail(node.stdout())}\nstderr: ${tail(node.stderr())}`);
}

async function stopNode(node: ClusterNode) {
  if (!node.done) {
    node.child.kill('SIGTERM');
    const timer = setTimeout(() => node.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const result = await node.exited;
    clearTimeout(timer);
    return result;
  }
  return node.exited;
}

export interface ClusterOptions {
  /** Node ids; defaults to node-a, node-b, node-c. */
  ids?: string[];
  /** Extra environment for every node. */
  env?: Record<string, string>;
  /** Extra environment per node id, over `env` (e.g. a DATABASE_URL through a fault proxy). */
  nodeEnv?: Record<string, Record<string, string>>;
  /** The database to run on (a PostgreSQL the test owns); default a fresh clone of the template. */
  database?: TestDatabase;
}

/** Starts the nodes on a fresh database and waits until every one answers /readyz with 200. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const ids = options.ids ?? ['node-a', 'node-b', 'node-c'];
  const database = options.database ?? (await createTestDatabase());
  const admin = { email: `admin-${randomBytes(3).toString('hex')}@example.com`, password: `pw-${randomBytes(12).toString('hex')}` };
  const nodes: ClusterNode[] = [];
  const client = new pg.Client({ connectionString: database.url, application_name: 'paygate-cluster-test' });
  // A fault test restarts or cuts the database under this client too: an error must not crash the worker.
  client.on('error', () => undefined);
  let stopped = false;
  const env: Record<string, string> = {
    DATABASE_URL: database.runtimeUrl ?? database.url,
    ...(database.runtimeUrl ? { PAYGATE_MIGRATION_DATABASE_URL: database.url } : {}),
    PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
    PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
    PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
    PAYGATE_ADMIN_EMAIL: admin.email,
    PAYGATE_ADMIN_PASSWORD: admin.password,
    LOG_LEVEL: 'warn',
    // The development check of tests: a pool query inside an open transaction throws.
    PAYGATE_DEBUG_CHECKS: '1',
    ...(process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {}),
    ...options.env,
  };

  const cluster: Cluster = {
    nodes,
    database,
    pg: client,
    admin,
    request,
    async login(node, email = admin.email, password = admin.password) {
      const result = await request(node, 'POST', '/v1/auth/login', { body: { email, password } });
      expect(result.status, `login on ${node.id}: ${result.text}`).toBe(200);
      return result.body.token as string;
    },
    async provisionOrg(node, adminToken, scopes = ['api_key:*']) {
      const result = await request(node, 'POST', '/v1/system/organizations', {
        token: adminToken,
        body: { name: `Org ${randomBytes(3).toString('hex')}`, initialApiKey: { name: 'manager', scopes } },
      });
      expect(result.status, `provision on ${node.id}: ${result.text}`).toBe(201);
      return { organizationId: result.body.id, keyId: result.body.initialApiKey.id, token: result.body.initialApiKey.secret };
    },
    waitReady,
    stopNode,
    async addNode(id, extra = {}) {
      const node = spawnNode(id, await freePort(), { ...env, ...extra });
      nodes.push(node);
      return node;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((node) => stopNode(node)));
      await client.end().catch(() => undefined);
      await database.drop();
    },
  };

  try {
    await client.connect();
    // All together, as a deployment does: migration and the first admin are serialised by advisory locks.
    for (const id of ids) nodes.push(spawnNode(id, await freePort(), { ...env, ...options.nodeEnv?.[id] }));
    await Promise.all(nodes.map((node) => waitReady(node)));
  } catch (error) {
    await cluster.stop().catch(() => undefined);
    throw error;
  }
  return cluster;
}

/** Nearest-rank percentile of a sample, in its own unit. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
