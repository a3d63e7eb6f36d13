/**
 * Throughput in alternating rounds (so drift hits all scenarios equally), each a warm-up then a
 * measured autocannon run, ratios to GET /healthz of the same run:
 *   healthz    GET /healthz (baseline)
 *   whoami     GET /v1/auth/whoami with a valid organization key
 *   forged     whoami with well-formed tokens (valid CRC32) and a new random id per request
 *   malformed  whoami with `Bearer sk_short`
 *   org        GET /v1/organization with a key holding organization:read (a resource read)
 *   keys       GET /v1/api-keys?limit=10 with a key holding api_key:read (a resource read)
 *   client     GET /v1/clients/{id} with a key holding client:read (a single-row read)
 *   peer       the Better Auth peer: GET /whoami -> auth.api.verifyApiKey per request
 *   floor-*    the same requests to the floor app (bench/floor/app.ts: bare Fastify, one hook, one
 *              query), each right after its Paygate scenario in every round: floor-healthz,
 *              floor-whoami, floor-forged, floor-malformed, floor-client ("Against the floor")
 * Database work per request: PostgreSQL's transaction counter (pg_stat_database) of the server's own
 * database around every measured window, the verifier's key-lookup counter (GET /v1/system/health)
 * around every Paygate window, and the audit rows written.
 */
import os from 'node:os';
import type autocannon from 'autocannon';
import { checkInterrupted } from '../lib/cleanup.js';
import { fmt, log, machineBusySeconds, median, percentile, processCpuSeconds, sleep, type Section, type Target } from '../lib/common.js';
import type { DbObserver } from '../lib/db.js';
import { expectStatus, HttpClient, systemHealth, type CreatedKey } from '../lib/http.js';
import { forgedRequest, forgedToken, runLoad } from '../lib/load.js';
import type { PaygateNode, Pinning } from '../lib/children.js';
import type { Peer } from '../peer/peer.js';
import type { Floor } from '../floor/floor.js';
import { checksum, parseToken } from '../../src/keys/token.js';

export type PaygateScenario = 'healthz' | 'whoami' | 'forged' | 'malformed' | 'org' | 'keys' | 'client' | 'peer';
export type FloorScenario = 'floor-healthz' | 'floor-whoami' | 'floor-forged' | 'floor-malformed' | 'floor-client';
export type ScenarioName = PaygateScenario | FloorScenario;
/** Round order: every floor scenario right after the Paygate scenario it is the floor of. */
export const THROUGHPUT_SCENARIOS: ScenarioName[] = [
  'healthz', 'floor-healthz', 'whoami', 'floor-whoami', 'forged', 'floor-forged', 'malformed', 'floor-malformed', 'org', 'keys', 'client', 'floor-client', 'peer',
];
/** The Paygate scenario each floor scenario is the floor of. */
export const FLOOR_OF: Record<FloorScenario, PaygateScenario> = {
  'floor-healthz': 'healthz',
  'floor-whoami': 'whoami',
  'floor-forged': 'forged',
  'floor-malformed': 'malformed',
  'floor-client': 'client',
};
export const isFloorScenario = (s: ScenarioName): s is FloorScenario => s.startsWith('floor-');

const EXPECTED_STATUS: Record<ScenarioName, number> = {
  healthz: 200, whoami: 200, forged: 401, malformed: 401, org: 200, keys: 200, client: 200, peer: 200,
  'floor-healthz': 200, 'floor-whoami': 200, 'floor-forged': 401, 'floor-malformed': 401, 'floor-client': 200,
};
export const LABEL: Record<ScenarioName, string> = {
  healthz: 'GET /healthz (baseline)',
  whoami: 'GET /v1/auth/whoami, valid org key',
  forged: 'whoami, forged well-formed token (new random id)',
  malformed: 'whoami, malformed token (sk_short)',
  org: 'resource read: GET /v1/organization (organization:read key)',
  keys: 'resource read: GET /v1/api-keys?limit=10 (api_key:read key)',
  client: 'resource read: GET /v1/clients/{id} (client:read key)',
  peer: 'peer: Better Auth verifyApiKey (GET /whoami)',
  'floor-healthz': 'floor: GET /healthz (bare route)',
  'floor-whoami': 'floor: GET /v1/auth/whoami, valid key',
  'floor-forged': 'floor: whoami, forged well-formed token',
  'floor-malformed': 'floor: whoami, malformed token (sk_short)',
  'floor-client': 'floor: GET /v1/clients/{id} (one pg query)',
};
const TARGETS = { whoami: 0.9, forged: 0.85 } as const;
/** Paygate's req/s as a share of the floor's, same rounds (issue 13); null: informational. */
const FLOOR_PAIRS: { paygate: PaygateScenario; floor: FloorScenario; label: string; target: number | null }[] = [
  { paygate: 'healthz', floor: 'floor-healthz', label: 'healthz / floor bare route', target: 0.9 },
  { paygate: 'whoami', floor: 'floor-whoami', label: 'whoami / floor authenticated route', target: 0.85 },
  { paygate: 'forged', floor: 'floor-forged', label: 'forged / floor authenticated route', target: 0.8 },
  // The issue's target compares a malformed token with the bare route (a refusal at parse should cost
  // no more than answering); the floor's own refusal at parse is shown beside it.
  { paygate: 'malformed', floor: 'floor-healthz', label: 'malformed / floor bare route', target: 0.9 },
  { paygate: 'malformed', floor: 'floor-malformed', label: "malformed / floor's refusal at parse", target: null },
  { paygate: 'client', floor: 'floor-client', label: 'client read / floor client route', target: null },
];
export const FLOOR_TARGET_NAMES = FLOOR_PAIRS.map((p) => floorTargetName(p));
function floorTargetName(p: (typeof FLOOR_PAIRS)[number]): string {
  return p.target === null ? `${p.label} (no numeric target)` : `${p.label} >= ${p.target.toFixed(2)} (req/s ratio, side by side)`;
}

/**
 * One side-by-side window: Paygate and the floor loaded at the same time, both on the server CPU, each
 * by its own autocannon instance with the same connections. Both then run under the same conditions
 * of the machine (other tenants, frequency, the kernel's state), which on a shared machine change
 * within seconds: two runs one after the other differed by up to 1.8x for identical code. The core
 * is shared fairly between two busy processes, so the ratio of their req/s is the ratio of their
 * costs per request.
 */
interface SideBySide {
  paygate: PaygateScenario;
  floor: FloorScenario;
  round: number;
  paygateRps: number;
  floorRps: number;
  paygateUs: number;
  floorUs: number;
  unexpected: number;
}
/** A measured window with more transactions than this delays the next one on its database... */
const HEAVY_WINDOW_TX = 200;
/** ...until this long after it ended (PostgreSQL's idle statistics flush is 10 s). */
const STATS_DELAY_MS = 11_000;

export interface ThroughputContext {
  node: PaygateNode;
  client: HttpClient;
  sessionToken: string;
  organizationId: string;
  keys: { whoami: CreatedKey; org: CreatedKey; keys: CreatedKey; client: CreatedKey };
  /** The client that `client` and `floor-client` read (made over HTTP in set-up). */
  clientId: string;
  observer: DbObserver;
  peer: { peer: Peer; observer: DbObserver } | null;
  /** The floor app; required when a floor-* scenario is selected. */
  floor: Floor | null;
  /**
   * Starts a fresh Paygate node (the main node's configuration and database, a port of its own) and a
   * fresh floor app, for one round of side-by-side windows; null runs them on the main node and floor.
   */
  freshPair: (() => Promise<{ node: PaygateNode; floor: Floor }>) | null;
  /** CPU pinning of this run (bench/lib/children.ts), for the report. */
  pinning: Pinning | null;
  scenarios: ScenarioName[];
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
}

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
  /** PostgreSQL transactions of the server's database in the measured window, minus the observer's own one. */
  dbTransactions: number;
  /** Verifier DB key lookups (keyCache misses) during warm-up + measured run (Paygate only). */
  keyLookups?: number;
  /** auth.invalid_api_key audit rows written during warm-up + measured run (Paygate only). */
  auditRows?: number;
  /** CPU used during the measured run, in cores: the load generator (this process) and the server process. */
  generatorCpu: number;
  serverCpu: number;
  /** Everything else busy on the machine meanwhile, in cores: PostgreSQL, the kernel, other processes. */
  otherCpu: number;
  /** Server process CPU time per request, in microseconds: a cost measure that other load barely skews. */
  serverUsPerRequest: number;
}

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
  cpuRatio: number;
}

function requestOptions(scenario: ScenarioName, ctx: ThroughputContext): autocannon.Options {
  const base = { url: ctx.node.baseUrl, connections: ctx.connections, pipelining: 1, timeout: 10 } as const;
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  switch (scenario) {
    case 'healthz':
      return { ...base, requests: [{ method: 'GET', path: '/healthz' }] };
    case 'whoami':
      return { ...base, requests: [{ method: 'GET', path: '/v1/auth/whoami', headers: auth(ctx.keys.whoami.secret) }] };
    case 'malformed':
      return { ...base, requests: [{ method: 'GET', path: '/v1/auth/whoami', headers: { authorization: 'Bearer sk_short' } }] };
    case 'forged':
      return { ...base, requests: [forgedRequest('/v1/auth/whoami')] };
    case 'org':
      return { ...base, requests: [{ method: 'GET', path: '/v1/organization', headers: auth(ctx.keys.org.secret) }] };
    case 'keys':
      return { ...base, requests: [{ method: 'GET', path: '/v1/api-keys?limit=10', headers: auth(ctx.keys.keys.secret) }] };
    case 'client':
      return { ...base, requests: [{ method: 'GET', path: `/v1/clients/${ctx.clientId}`, headers: auth(ctx.keys.client.secret) }] };
    case 'peer':
      return { ...base, url: ctx.peer!.peer.baseUrl, requests: [{ method: 'GET', path: '/whoami', headers: auth(ctx.peer!.peer.key) }] };
    default:
      // The floor answers the same requests on the same paths.
      return { ...requestOptions(FLOOR_OF[scenario], ctx), url: ctx.floor!.baseUrl };
  }
}

async function sanityChecks(ctx: ThroughputContext): Promise<void> {
  const c = ctx.client;
  const sample = forgedToken();
  if (!parseToken(sample).ok) throw new Error(`generated forged token does not parse: ${sample}`);
  const check = (ok: boolean, what: string, body: unknown) => {
    if (!ok) throw new Error(`sanity check "${what}" failed: ${JSON.stringify(body)}`);
  };
  let body = expectStatus(await c.get('/v1/auth/whoami', ctx.keys.whoami.secret), 200, 'whoami with the org key');
  check(body?.type === 'api_key' && body?.keyId === ctx.keys.whoami.id, 'whoami with the org key', body);
  body = expectStatus(await c.get('/v1/auth/whoami', sample), 401, 'forged token');
  check(body?.code === 'invalid_api_key', 'forged token', body);
  body = expectStatus(await c.get('/v1/auth/whoami', 'sk_short'), 401, 'malformed token');
  check(body?.code === 'invalid_api_key', 'malformed token', body);
  expectStatus(await c.get('/healthz'), 200, 'GET /healthz');
  if (ctx.scenarios.includes('org')) {
    body = expectStatus(await c.get('/v1/organization', ctx.keys.org.secret), 200, 'GET /v1/organization');
    check(body?.id === ctx.organizationId, 'GET /v1/organization returns the organization', body);
  }
  if (ctx.scenarios.includes('keys')) {
    body = expectStatus(await c.get('/v1/api-keys?limit=10', ctx.keys.keys.secret), 200, 'GET /v1/api-keys?limit=10');
    check(Array.isArray(body?.data) && body.data.length > 0, 'GET /v1/api-keys lists keys', body);
  }
  if (ctx.scenarios.includes('client')) {
    body = expectStatus(await c.get(`/v1/clients/${ctx.clientId}`, ctx.keys.client.secret), 200, 'GET /v1/clients/{id}');
    check(body?.id === ctx.clientId && body?.object === 'client', 'GET /v1/clients/{id} returns the client', body);
  }
  if (ctx.scenarios.some(isFloorScenario)) await floorSanityChecks(ctx, sample, check);
  if (ctx.peer) {
    const peerClient = new HttpClient(ctx.peer.peer.baseUrl, 1);
    try {
      body = expectStatus(await peerClient.get('/whoami', ctx.peer.peer.key), 200, 'peer GET /whoami');
      check(body?.keyId === ctx.peer.peer.keyId, 'peer whoami returns its key', body);
      // Well past the plugin's default per-key limit (10 per day): rate limiting is really off.
      for (let i = 0; i < 15; i++) expectStatus(await peerClient.get('/whoami', ctx.peer.peer.key), 200, 'peer GET /whoami (repeated)');
      expectStatus(await peerClient.get('/whoami', `${ctx.peer.peer.key}x`), 401, 'peer GET /whoami with a wrong key');
    } finally {
      peerClient.close();
    }
  }
}

/** The floor answers like Paygate: same statuses, same body shapes, the same refusals. */
async function floorSanityChecks(ctx: ThroughputContext, forged: string, check: (ok: boolean, what: string, body: unknown) => void): Promise<void> {
  if (!ctx.floor) throw new Error('floor scenarios selected but no floor app');
  const f = new HttpClient(ctx.floor.baseUrl, 1);
  try {
    let body = expectStatus(await f.get('/healthz'), 200, 'floor GET /healthz');
    check(body?.status === 'ok', 'floor GET /healthz', body);
    const paygateWhoami = expectStatus(await ctx.client.get('/v1/auth/whoami', ctx.keys.whoami.secret), 200, 'whoami with the org key');
    body = expectStatus(await f.get('/v1/auth/whoami', ctx.keys.whoami.secret), 200, 'floor whoami with the org key');
    check(JSON.stringify(Object.keys(body ?? {})) === JSON.stringify(Object.keys(paygateWhoami ?? {})) && body.keyId === ctx.keys.whoami.id, "floor whoami has the shape of Paygate's", body);
    const secret = ctx.keys.whoami.secret;
    // A known id with another secret: the digest comparison, not the Map, refuses it.
    const wrongSecret = forgedWithId(secret);
    const paygateRefusal = expectStatus(await ctx.client.get('/v1/auth/whoami', forged), 401, 'forged token');
    for (const [token, what] of [[forged, 'forged token'], ['sk_short', 'malformed token'], [wrongSecret, 'known id, wrong secret']] as const) {
      const result = await f.get('/v1/auth/whoami', token);
      body = expectStatus(result, 401, `floor whoami, ${what}`);
      const sameShape = JSON.stringify(Object.keys(body ?? {})) === JSON.stringify(Object.keys(paygateRefusal ?? {}));
      check(sameShape && body?.code === 'invalid_api_key' && body?.type === paygateRefusal?.type, `floor whoami, ${what}: Paygate's problem+json`, body);
    }
    if (ctx.scenarios.includes('floor-client')) {
      body = expectStatus(await f.get(`/v1/clients/${ctx.clientId}`, ctx.keys.client.secret), 200, 'floor GET /v1/clients/{id}');
      const paygateClient = expectStatus(await ctx.client.get(`/v1/clients/${ctx.clientId}`, ctx.keys.client.secret), 200, 'GET /v1/clients/{id}');
      check(JSON.stringify(body) === JSON.stringify(paygateClient), 'floor GET /v1/clients/{id} answers what Paygate does', body);
    }
  } finally {
    f.close();
  }
}

/** A well-formed token (valid checksum) with the id of `token` and a fresh secret. */
function forgedWithId(token: string): string {
  const parsed = parseToken(token);
  if (!parsed.ok) throw new Error('a bench key does not parse');
  const other = forgedToken();
  const body = `sk_${parsed.token.id}${other.slice(3 + 20, -6)}`;
  return body + checksum(body);
}

export async function runThroughput(ctx: ThroughputContext): Promise<Section[]> {
  await sanityChecks(ctx);
  const { scenarios, rounds, durationS, warmupS, connections } = ctx;
  const measurements: Measurement[] = [];
  log(`throughput: ${rounds} rounds x ${scenarios.length} scenarios x (${warmupS} s warm-up + ${durationS} s), ${connections} connections: ~${rounds * scenarios.length * (warmupS + durationS)} s`);
  // PostgreSQL publishes the statistics of a backend that went idle up to 10 s late: after a window
  // with much database work, the next window on the same database starts only once that has surfaced.
  const heavyEnded = new Map<DbObserver, number>();
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of scenarios) {
      checkInterrupted();
      const isPeer = scenario === 'peer';
      const isFloor = isFloorScenario(scenario);
      const options = requestOptions(scenario, ctx);
      // The floor works on Paygate's database: its windows are read on Paygate's observer.
      const observer = isPeer ? ctx.peer!.observer : ctx.observer;
      const pid = isPeer ? ctx.peer!.peer.child.pid : isFloor ? ctx.floor!.child.pid : ctx.node.pid;
      const settle = (heavyEnded.get(observer) ?? 0) + STATS_DELAY_MS - warmupS * 1000 - Date.now();
      if (settle > 0) await sleep(settle);
      // Key lookups and audit rows span warm-up + measured run; PostgreSQL transactions the measured run only.
      const isPaygate = !isPeer && !isFloor;
      const healthBefore = isPaygate ? await systemHealth(ctx.client, ctx.sessionToken) : null;
      const auditBefore = isPaygate ? await observer.invalidKeyAuditRows() : 0;
      if (warmupS > 0) await runLoad(options, { durationS: warmupS });
      const txWarm = await observer.transactions();
      const before = { generator: process.cpuUsage(), server: await processCpuSeconds(pid), machine: await machineBusySeconds(), at: process.hrtime.bigint() };
      const { result, latencies, count } = await runLoad(options, { durationS });
      const wall = Number(process.hrtime.bigint() - before.at) / 1e9;
      const generator = process.cpuUsage(before.generator);
      const generatorSeconds = (generator.user + generator.system) / 1e6;
      const serverCpu = (await processCpuSeconds(pid)) - before.server;
      const machineCpu = (await machineBusySeconds()) - before.machine;
      const txAfter = await observer.transactions();
      if (txAfter - txWarm > HEAVY_WINDOW_TX) heavyEnded.set(observer, Date.now());
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
        generatorCpu: generatorSeconds / wall,
        serverCpu: serverCpu / wall,
        // Clamped: /proc/stat and per-process tick accounting differ by a tick or two.
        otherCpu: Math.max(0, (machineCpu - serverCpu - generatorSeconds) / wall),
        serverUsPerRequest: (serverCpu * 1e6) / Math.max(1, result.requests.total),
      };
      if (healthBefore) {
        const healthAfter = await systemHealth(ctx.client, ctx.sessionToken);
        m.keyLookups = healthAfter.misses - healthBefore.misses;
        m.auditRows = (await observer.invalidKeyAuditRows()) - auditBefore;
      }
      measurements.push(m);
      log(
        `round ${round} ${scenario.padEnd(15)} ${fmt(m.rps).padStart(7)} req/s  p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  ` +
          `db tx ${m.dbTransactions}${m.keyLookups !== undefined ? `  key lookups ${m.keyLookups}  audit rows ${m.auditRows}` : ''}  ` +
          `cpu server ${m.serverCpu.toFixed(2)} (${m.serverUsPerRequest.toFixed(1)} us/req) gen ${m.generatorCpu.toFixed(2)} other ${m.otherCpu.toFixed(2)}` +
          `${Object.keys(unexpected).length ? `  UNEXPECTED ${JSON.stringify(unexpected)}` : ''}${m.errors ? `  errors ${m.errors}` : ''}`,
      );
    }
  }
  const sideBySide = ctx.scenarios.some(isFloorScenario) ? await runSideBySide(ctx) : [];
  const finalHealth = await systemHealth(ctx.client, ctx.sessionToken);
  const sections = [report(ctx, measurements, finalHealth)];
  if (ctx.scenarios.some(isFloorScenario)) sections.push(floorReport(ctx, measurements, sideBySide));
  return sections;
}

/** The floor pairs of this run, each Paygate/floor combination once. */
function chosenPairs(ctx: ThroughputContext): { paygate: PaygateScenario; floor: FloorScenario }[] {
  const seen = new Set<string>();
  return FLOOR_PAIRS.filter((p) => ctx.scenarios.includes(p.paygate) && ctx.scenarios.includes(p.floor) && !seen.has(`${p.paygate}|${p.floor}`) && seen.add(`${p.paygate}|${p.floor}`));
}

function unexpectedResponses(result: autocannon.Result, scenario: ScenarioName): number {
  let n = result.errors;
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) if (Number(status) !== EXPECTED_STATUS[scenario]) n += stat.count ?? 0;
  return n;
}

/** `ctx.rounds` side-by-side windows per floor pair (SideBySide), after the alternating rounds. */
async function runSideBySide(ctx: ThroughputContext): Promise<SideBySide[]> {
  const pairs = chosenPairs(ctx);
  const { rounds, durationS, warmupS } = ctx;
  const fresh = ctx.freshPair !== null;
  log(
    `throughput: side by side, ${rounds} rounds x ${pairs.length} pairs x (${warmupS} s warm-up + ${durationS} s): ~${rounds * pairs.length * (warmupS + durationS)} s` +
      (fresh ? ', each round on a fresh Paygate node and floor app' : ''),
  );
  const out: SideBySide[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Two processes of one build can differ by 10-25 % for as long as they run (bench/ANALYSIS.md), so
    // one pair of processes is one draw: each round draws a new pair, and the medians span them all.
    const started = ctx.freshPair ? await ctx.freshPair() : null;
    const roundCtx: ThroughputContext = started ? { ...ctx, node: started.node, floor: started.floor } : ctx;
    try {
      if (started) {
        // Both new processes serve the whole mix once before any window, as the main node has.
        for (const pair of pairs) {
          checkInterrupted();
          await Promise.all([runLoad(requestOptions(pair.paygate, roundCtx), { durationS: Math.max(1, warmupS) }), runLoad(requestOptions(pair.floor, roundCtx), { durationS: Math.max(1, warmupS) })]);
        }
        for (const scenario of (['org', 'keys'] as const).filter((s) => ctx.scenarios.includes(s))) {
          await runLoad(requestOptions(scenario, roundCtx), { durationS: Math.max(1, warmupS) });
        }
      }
      for (const pair of pairs) {
        checkInterrupted();
        out.push(await sideBySideWindow(roundCtx, pair, round));
      }
    } finally {
      if (started) await Promise.all([started.node.stop(), started.floor.stop()]);
    }
  }
  return out;
}

async function sideBySideWindow(ctx: ThroughputContext, pair: { paygate: PaygateScenario; floor: FloorScenario }, round: number): Promise<SideBySide> {
  const { durationS, warmupS } = ctx;
  const paygateOptions = requestOptions(pair.paygate, ctx);
  const floorOptions = requestOptions(pair.floor, ctx);
  if (warmupS > 0) await Promise.all([runLoad(paygateOptions, { durationS: warmupS }), runLoad(floorOptions, { durationS: warmupS })]);
  const before = await Promise.all([processCpuSeconds(ctx.node.pid), processCpuSeconds(ctx.floor!.child.pid)]);
  const [paygate, floor] = await Promise.all([runLoad(paygateOptions, { durationS }), runLoad(floorOptions, { durationS })]);
  const after = await Promise.all([processCpuSeconds(ctx.node.pid), processCpuSeconds(ctx.floor!.child.pid)]);
  const w: SideBySide = {
    ...pair,
    round,
    paygateRps: paygate.result.requests.average,
    floorRps: floor.result.requests.average,
    paygateUs: ((after[0] - before[0]) * 1e6) / Math.max(1, paygate.result.requests.total),
    floorUs: ((after[1] - before[1]) * 1e6) / Math.max(1, floor.result.requests.total),
    unexpected: unexpectedResponses(paygate.result, pair.paygate) + unexpectedResponses(floor.result, pair.floor),
  };
  log(
    `side by side ${round} ${pair.paygate}/${pair.floor}: ${fmt(w.paygateRps)} vs ${fmt(w.floorRps)} req/s = ${(w.paygateRps / w.floorRps).toFixed(3)}; ` +
      `${w.paygateUs.toFixed(1)} vs ${w.floorUs.toFixed(1)} us/req${w.unexpected ? `  UNEXPECTED ${w.unexpected}` : ''}`,
  );
  return w;
}

function report(ctx: ThroughputContext, measurements: Measurement[], finalHealth: Awaited<ReturnType<typeof systemHealth>>): Section {
  const of = (s: ScenarioName) => measurements.filter((m) => m.scenario === s);
  const baseline = median(of('healthz').map((m) => m.rps));
  // Background (heartbeats, lastUsedAt flushes): the median rate over the windows that should do no
  // per-request database work, robust to one window catching another's late statistics.
  const quiet = measurements.filter((m) => m.scenario === 'healthz' || m.scenario === 'whoami' || m.scenario === 'malformed');
  const backgroundTxPerSecond = median(quiet.map((m) => m.dbTransactions / m.durationS));
  const healthzUs = median(of('healthz').map((m) => m.serverUsPerRequest));
  const summaries: Summary[] = ctx.scenarios.filter((s) => !isFloorScenario(s)).map((scenario) => {
    const all = of(scenario);
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
      cpuRatio: healthzUs / median(all.map((m) => m.serverUsPerRequest)),
    };
  });
  const byName = Object.fromEntries(summaries.map((s) => [s.scenario, s])) as Partial<Record<ScenarioName, Summary>>;

  const forged = of('forged');
  const forgedRequests = forged.reduce((a, m) => a + m.requests, 0);
  const forgedTx = forged.reduce((a, m) => a + m.dbTransactions, 0);
  const forgedSeconds = forged.reduce((a, m) => a + m.durationS, 0);
  const backgroundTx = backgroundTxPerSecond * forgedSeconds;
  const excessTx = forgedTx - backgroundTx;
  const keyLookups = forged.reduce((a, m) => a + (m.keyLookups ?? 0), 0);
  const auditRows = forged.reduce((a, m) => a + (m.auditRows ?? 0), 0);

  const ratioTarget = (scenario: 'whoami' | 'forged'): Target => {
    const s = byName[scenario];
    const name = `${scenario} >= ${TARGETS[scenario]} of healthz (req/s ratio, same run)`;
    return s
      ? { name, value: `${s.ratio.toFixed(3)} (${fmt(s.medianRps)} vs ${fmt(baseline)} req/s; CPU-cost ratio ${s.cpuRatio.toFixed(3)})`, met: s.ratio >= TARGETS[scenario] }
      : { name, value: 'not run (BENCH_SCENARIOS)', met: null };
  };
  const targets: Target[] = [
    ratioTarget('whoami'),
    ratioTarget('forged'),
    forgedRequests > 0
      ? {
          name: 'zero DB queries per forged token',
          value: `${keyLookups} verifier key lookups in ${fmt(forgedRequests)} forged requests; ${(forgedTx / forgedRequests).toFixed(6)} PostgreSQL tx/request raw, ${(Math.max(0, excessTx) / forgedRequests).toFixed(6)} above background`,
          met: keyLookups === 0 && excessTx / forgedRequests < 0.001,
        }
      : { name: 'zero DB queries per forged token', value: 'not run (BENCH_SCENARIOS)', met: null },
  ];
  for (const s of ['org', 'keys', 'client'] as const) {
    const sum = byName[s];
    if (sum) targets.push({ name: `${LABEL[s]} (no numeric target)`, value: `${fmt(sum.medianRps)} req/s, ${sum.ratio.toFixed(3)} of healthz, p99 ${sum.p99.toFixed(2)} ms`, met: null });
  }
  const peer = byName.peer;
  const whoami = byName.whoami;
  if (peer) {
    targets.push({
      name: 'peer side by side: Better Auth verifyApiKey (informational)',
      value:
        `${fmt(peer.medianRps)} req/s = ${peer.ratio.toFixed(3)} of Paygate healthz` +
        (whoami ? `, ${(peer.medianRps / whoami.medianRps).toFixed(3)} of Paygate whoami (Paygate whoami is ${(whoami.medianRps / peer.medianRps).toFixed(1)}x)` : ''),
      met: null,
    });
  }

  const header = ['scenario', 'median req/s', 'p50 ms', 'p99 ms', 'ratio to healthz', 'per-round ratios', 'DB tx / request (incl. background)', 'server CPU us/req', 'CPU-cost ratio'];
  const rows = summaries.map((s) => [
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
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const anomalies = measurements.filter((m) => Object.keys(m.unexpected).length > 0 || m.errors > 0);
  const otherMedian = median(measurements.map((m) => m.otherCpu));

  const md: string[] = [];
  md.push(
    `${ctx.connections} connections, no pipelining; ${ctx.rounds} alternating rounds (${ctx.scenarios.join(', ')}); each run ${ctx.warmupS} s warm-up + ${ctx.durationS} s measured. ` +
      `Median CPU used by everything but the server and the load generator during measured runs: ${otherMedian.toFixed(2)} cores of ${os.cpus().length}` +
      `${otherMedian > 0.3 ? ' (the machine was shared with other work: absolute req/s are depressed and noisy; compare ratios and server CPU per request)' : ''}.`,
    '',
    'Median over rounds of the mean requests/s; latency percentiles over all responses of a run (any status, sub-millisecond resolution), median over rounds. ' +
      'Ratio = scenario median / healthz median; per-round ratios compare with the healthz run of the same round. ' +
      (ctx.scenarios.some(isFloorScenario) ? 'Rows of the floor app are in "Against the floor" (below); its runs are in "Every run". ' : '') +
      'Server CPU us/req = CPU time of the server process per request (Paygate, or the peer for the peer row; median over rounds); CPU-cost ratio = healthz us/req / scenario us/req, ' +
      'the throughput ratio to expect when the server alone saturates a core (less sensitive to the load generator and to other load on the machine). ' +
      "DB tx / request counts the transactions of the server's own database (the peer's for the peer row).",
    '',
  );
  md.push(`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) md.push(`| ${r.join(' | ')} |`);
  md.push('');
  if (forgedRequests > 0) {
    md.push('### Database work per forged token', '');
    md.push(
      `- ${fmt(forgedRequests)} forged requests in ${forged.length} measured windows (${fmt(forgedSeconds, 1)} s).`,
      `- Verifier key lookups (\`keyCache.misses\` of \`GET /v1/system/health\`, read around each forged warm-up + measured run): **${keyLookups}**.`,
      `- PostgreSQL transactions on Paygate's database in those windows (\`pg_stat_database.xact_commit + xact_rollback\`, the observer's own query excluded): ${forgedTx} ` +
        `= ${(forgedTx / forgedRequests).toFixed(6)} per forged request. Background (median rate of the healthz, whoami and malformed windows): ${backgroundTxPerSecond.toFixed(2)} tx/s ` +
        `(invalidation heartbeat, batched lastUsedAt flush) -> ~${backgroundTx.toFixed(1)} expected; above background: ${excessTx.toFixed(1)} ` +
        `(${(Math.max(0, excessTx) / forgedRequests).toFixed(6)} per request).`,
      `- \`auth.invalid_api_key\` audit rows written during the forged windows: ${auditRows} (by design at most one per source address per minute, not per request).`,
      '',
    );
  }
  md.push(
    `Invalidation channel at the end: ${finalHealth.channelLive ? 'live' : 'NOT live'} (reconnects ${finalHealth.reconnects}, cache flushes ${finalHealth.flushes}); ` +
      `key cache hits ${fmt(finalHealth.hits)}, misses ${finalHealth.misses}, negative hits ${finalHealth.negativeHits}.`,
    '',
  );
  if (ctx.peer) {
    const p = ctx.peer.peer;
    md.push('### The peer', '');
    md.push(
      `- Better Auth ${p.versions.betterAuth} with \`@better-auth/api-key\` ${p.versions.apiKey}, in a child process (\`bench/peer/better-auth-server.ts\`): Fastify on 127.0.0.1, ` +
        '`GET /whoami` reads `Authorization: Bearer <key>` and calls `auth.api.verifyApiKey({ body: { key } })`, answering 200 with the key id or 401 - the same "verify key, return whoami" work as Paygate\'s `GET /v1/auth/whoami`.',
      `- Database: \`${p.databaseName}\` on the same PostgreSQL server as Paygate's (created by the bench, migrated with Better Auth's \`getMigrations\` - what \`auth migrate\` runs - and dropped afterwards); a \`pg.Pool\` of 10 connections, like Paygate's.`,
      '- The key: a user made with `auth.api.signUpEmail`, its key with `auth.api.createApiKey({ body: { userId } })`, default 64-character key, stored SHA-256-hashed.',
      "- **Rate limiting disabled for fairness**: the API key plugin rate-limits each key by default (10 requests per 24 h), which would refuse all but the first ten requests; the peer runs `apiKey({ rateLimit: { enabled: false } })` (and Better Auth's router rate limiter off, which `auth.api` calls do not pass through anyway). Every other plugin option is its default: `storage: \"database\"`, `deferUpdates: false` - each verification reads the key row and writes its usage back before answering, which is what its DB tx / request shows. Paygate caches verified keys and batches lastUsedAt instead.",
      '',
    );
  }
  md.push('### Every run', '');
  md.push(
    'DB tx: PostgreSQL transactions in the measured run. Key lookups and audit rows: warm-up + measured run (Paygate only). CPU: cores used during the measured run by the server process, by the load generator, and by everything else (PostgreSQL, kernel, other processes on the machine).',
    '',
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
  md.push(
    'Notes: forged tokens are `sk_<20 random base62>.<43 random base62><6-char base62 CRC32>` (checksum from `src/keys/token.ts`), a new one per request, built in the load generator; malformed is `Authorization: Bearer sk_short`. ' +
      "DB tx counts transactions (an autocommit statement is one), not statements; PostgreSQL publishes an idle backend's statistics up to 10 s late, so after a window with more than " +
      `${HEAVY_WINDOW_TX} transactions the next measured window on the same database starts ${STATS_DELAY_MS / 1000} s after it at the earliest; the verifier's key-lookup counter is exact. ` +
      'Key lookups in whoami runs: when the cached key expires (safety-net TTL) every in-flight connection may miss at once.',
    '',
  );

  const consoleLines = [
    `throughput (${ctx.rounds} rounds, ${ctx.connections} connections, ${ctx.durationS} s each after ${ctx.warmupS} s warm-up)`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
  ];
  if (forgedRequests > 0) {
    consoleLines.push(
      `forged: ${fmt(forgedRequests)} requests, ${forgedTx} PostgreSQL transactions in their windows (background ~${backgroundTx.toFixed(1)}), ${keyLookups} verifier key lookups, ${auditRows} audit rows`,
    );
  }
  if (anomalies.length) consoleLines.push(`WARNING: unexpected statuses or errors in ${anomalies.length} runs (see RESULTS.md)`);
  return { title: 'Throughput (alternating rounds)', markdown: md, targets, console: consoleLines };
}

/** "Against the floor": each Paygate scenario's req/s and CPU per request next to the floor app's, same rounds. */
function floorReport(ctx: ThroughputContext, measurements: Measurement[], sideBySide: SideBySide[]): Section {
  const of = (s: ScenarioName) => measurements.filter((m) => m.scenario === s);
  const together = FLOOR_PAIRS.filter((p) => sideBySide.some((w) => w.paygate === p.paygate && w.floor === p.floor)).map((p) => {
    const windows = sideBySide.filter((w) => w.paygate === p.paygate && w.floor === p.floor);
    return {
      ...p,
      windows,
      paygateRps: median(windows.map((w) => w.paygateRps)),
      floorRps: median(windows.map((w) => w.floorRps)),
      // Medians of the windows' own ratios: each window compares the two under the same conditions.
      ratio: median(windows.map((w) => w.paygateRps / w.floorRps)),
      paygateUs: median(windows.map((w) => w.paygateUs)),
      floorUs: median(windows.map((w) => w.floorUs)),
      cpuRatio: median(windows.map((w) => w.floorUs / w.paygateUs)),
      unexpected: windows.reduce((a, w) => a + w.unexpected, 0),
    };
  });
  const pairs = FLOOR_PAIRS.filter((p) => ctx.scenarios.includes(p.paygate) && ctx.scenarios.includes(p.floor)).map((p) => {
    const paygate = of(p.paygate);
    const floor = of(p.floor);
    const paygateRps = median(paygate.map((m) => m.rps));
    const floorRps = median(floor.map((m) => m.rps));
    const paygateUs = median(paygate.map((m) => m.serverUsPerRequest));
    const floorUs = median(floor.map((m) => m.serverUsPerRequest));
    return {
      ...p,
      paygateRps,
      floorRps,
      ratio: paygateRps / floorRps,
      perRoundRatios: paygate.map((m) => m.rps / (floor.find((f) => f.round === m.round)?.rps ?? NaN)),
      paygateUs,
      floorUs,
      cpuRatio: floorUs / paygateUs,
      paygateP99: median(paygate.map((m) => m.p99)),
      floorP99: median(floor.map((m) => m.p99)),
    };
  });
  // Judged side by side when those windows ran (the robust measure), else on the alternating rounds.
  const targets: Target[] = pairs.map((p) => {
    const t = together.find((x) => x.label === p.label);
    const alternating = `alternating rounds ${p.ratio.toFixed(3)}, CPU-cost ratio ${p.cpuRatio.toFixed(3)}`;
    if (!t) {
      return {
        name: floorTargetName(p),
        value: `${p.ratio.toFixed(3)} (alternating rounds: ${fmt(p.paygateRps)} vs ${fmt(p.floorRps)} req/s; server CPU ${p.paygateUs.toFixed(1)} vs ${p.floorUs.toFixed(1)} us/req, CPU-cost ratio ${p.cpuRatio.toFixed(3)})`,
        met: p.target === null ? null : p.ratio >= p.target,
      };
    }
    return {
      name: floorTargetName(p),
      value:
        `${t.ratio.toFixed(3)} (side by side, median of ${t.windows.length} windows: ${fmt(t.paygateRps)} vs ${fmt(t.floorRps)} req/s; server CPU ${t.paygateUs.toFixed(1)} vs ${t.floorUs.toFixed(1)} us/req, CPU-cost ratio ${t.cpuRatio.toFixed(3)}` +
        `${t.unexpected ? `; ${t.unexpected} unexpected responses` : ''}; ${alternating})`,
      met: p.target === null ? null : t.ratio >= p.target && t.unexpected === 0,
    };
  });
  const header = ['Paygate / floor', 'Paygate req/s', 'floor req/s', 'ratio', 'target', 'per-round ratios', 'Paygate server CPU us/req', 'floor server CPU us/req', 'CPU-cost ratio', 'p99 ms Paygate / floor'];
  const rows = pairs.map((p) => [
    p.label,
    fmt(p.paygateRps),
    fmt(p.floorRps),
    p.ratio.toFixed(3),
    p.target === null ? 'info' : together.some((t) => t.label === p.label) ? `>= ${p.target.toFixed(2)}, judged side by side` : `>= ${p.target.toFixed(2)}${p.ratio >= p.target ? '' : ' (not met)'}`,
    p.perRoundRatios.map((r) => r.toFixed(2)).join(' / '),
    p.paygateUs.toFixed(1),
    p.floorUs.toFixed(1),
    p.cpuRatio.toFixed(3),
    `${p.paygateP99.toFixed(2)} / ${p.floorP99.toFixed(2)}`,
  ]);
  const pin = ctx.pinning;
  const md: string[] = [
    'The floor is the least the project\'s own Fastify does for the same requests, in a child process of its own (`bench/floor/app.ts`), measured in the same alternating rounds as Paygate (each floor run right after its Paygate run): ' +
      '`GET /healthz` a bare route; `GET /v1/auth/whoami` one `onRequest` hook that parses the token (`parseToken` of `src/keys/token.ts`), hashes it once with SHA-256, finds the id in a `Map` seeded with the keys the bench made in Paygate, compares digests with `timingSafeEqual`, checks one scope and answers a whoami-shaped body (401 problem+json for unknown ids and bad tokens); ' +
      '`GET /v1/clients/:id` the same hook and Paygate\'s single-row query with `pg` (a pool of 10) on Paygate\'s own database. Responses have schemas, as Paygate\'s do.',
    '',
    `Pinning: ${pin ? `servers under test (Paygate, the floor app${ctx.peer ? ', the peer' : ''}) on CPU ${pin.server} (\`taskset -c ${pin.server}\`), the load generator (this process) on CPU ${pin.generator}; PostgreSQL on all CPUs (${pin.all})` : 'off (BENCH_PIN=0, fewer than 2 CPUs, or no taskset)'}. ` +
      'Ratio = Paygate median req/s / floor median req/s; per-round ratios compare the two runs of one round. Server CPU us/req = CPU time of the server process per request (median over rounds); CPU-cost ratio = floor us/req / Paygate us/req, the ratio to expect when each server saturates its core.',
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 || i === 4 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ];
  if (together.length > 0) {
    md.push(
      '### Side by side',
      '',
      `After the alternating rounds, ${ctx.rounds} windows per pair with Paygate and the floor loaded at the same time, both on the server CPU, each by its own load generator instance (${ctx.connections} connections each; ${ctx.warmupS} s warm-up + ${ctx.durationS} s). ` +
        'Both then see the same machine: on a shared machine the speed of one core changes within seconds, and two runs one after the other can differ by more than Paygate and the floor do (see the per-round ratios of healthz above, whose code paths are alike). ' +
        'The core is shared between two busy processes, so the ratio of their req/s is the ratio of their costs per request. ' +
        (ctx.freshPair
          ? 'Each round ran on a fresh Paygate node (the main node\'s configuration and database) and a fresh floor app, both served the whole mix once before the round\'s first window: two processes of one build can differ by 10-25 % for their whole life (bench/ANALYSIS.md), so each round is a new draw. '
          : 'All rounds ran on the main Paygate node and floor app (one pair of processes: BENCH_SIDE_FRESH=0, or embedded mode). ') +
        'Ratios are medians of the windows\' own ratios; **the targets are judged on these**.',
      '',
      '| Paygate / floor | Paygate req/s | floor req/s | ratio | target | per-window ratios | Paygate server CPU us/req | floor server CPU us/req | CPU-cost ratio |',
      '|---|---:|---:|---:|---|---:|---:|---:|---:|',
      ...together.map(
        (t) =>
          `| ${t.label} | ${fmt(t.paygateRps)} | ${fmt(t.floorRps)} | ${t.ratio.toFixed(3)} | ${t.target === null ? 'info' : `>= ${t.target.toFixed(2)}${t.ratio >= t.target && t.unexpected === 0 ? '' : ' (not met)'}`} | ` +
          `${t.windows.map((w) => (w.paygateRps / w.floorRps).toFixed(2)).join(' / ')} | ${t.paygateUs.toFixed(1)} | ${t.floorUs.toFixed(1)} | ${t.cpuRatio.toFixed(3)} |`,
      ),
      '',
    );
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return {
    title: 'Against the floor',
    markdown: md,
    targets,
    console: ['against the floor (bare Fastify, same rounds)', '', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)],
  };
}
