/**
 * What usage counting (SPEC §12, src/usage/) costs, in one run (BENCH_SCENARIOS=usage):
 *
 *   cost   two Paygate processes on one database, identical but for PAYGATE_USAGE_COUNTING: node ON
 *          counts every verification, node OFF keeps only the batched lastUsedAt (as before §12).
 *          Alternating rounds of BENCH_USAGE_ROUND_REQUESTS (20,000) `GET /v1/auth/whoami` with one
 *          key each; the CPU seconds each process used in its rounds (/proc/<pid>/stat, user+system)
 *          per request. Target: ON costs at most 3 % more than OFF.
 *   flood  BENCH_USAGE_FLOOD (1,000,000) whoami requests spread over BENCH_USAGE_KEYS (100,000) real
 *          keys (written straight into PostgreSQL with their HMACs, as the server would), to node ON,
 *          its resident size sampled every second; then every key's count is checked in the database.
 *          The same flood then goes to node OFF: the target is ON's growth beyond OFF's (both fill their
 *          verifier cache of 50,000 keys); the aggregator itself holds at most 100,000 entries (~40 MiB).
 *
 * The database: a scratch database on the DATABASE_URL server, else an embedded PostgreSQL the bench
 * starts for this scenario.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type autocannon from 'autocannon';
import pg from 'pg';
import { checkInterrupted } from '../lib/cleanup.js';
import { fmt, intEnv, log, mib, processCpuSeconds, ROOT, rssBytes, sleep, type Section, type Target } from '../lib/common.js';
import { pinGenerator, pinning, pinToServerCpu, unpinGenerator, unpinProcessTree, type PaygateNode } from '../lib/children.js';
import { startTwoNodeCluster } from '../lib/cluster.js';
import { createKey, createOrganization, HttpClient, login } from '../lib/http.js';
import { runLoad } from '../lib/load.js';
import { hashToken, makePeppers } from '../../src/keys/hash.js';
import { formatToken, newKeyId, tokenHint } from '../../src/keys/token.js';
import { UsageAggregator } from '../../src/usage/aggregator.js';

const COST_TARGET = 1.03;
const ROUND_REQUESTS = intEnv('BENCH_USAGE_ROUND_REQUESTS', 20_000, 1_000, 1_000_000);
const ROUNDS = intEnv('BENCH_USAGE_ROUNDS', 9, 1, 50);
/**
 * BENCH_USAGE_CONTROL=1: node ON counts nothing either, so the cost ratio shows what the two
 * processes differ by without counting (the first node, the machine's drift): the control for 1.03.
 */
const CONTROL = process.env.BENCH_USAGE_CONTROL === '1';
const FLOOD = intEnv('BENCH_USAGE_FLOOD', 1_000_000, 10_000, 5_000_000);
const KEYS = intEnv('BENCH_USAGE_KEYS', 100_000, 1_000, 1_000_000);
/**
 * Counting's share of the flood's memory: what ON's heap retains after a full GC beyond what OFF's
 * retains under the same flood (both fill their verifier cache of 50,000 keys, which is its design,
 * not counting's). RSS is reported too, but it also holds the GC's headroom, which V8 sizes from the
 * allocation rate and returns late: the retained heap is the memory counting holds.
 */
const LIVE_GROWTH_LIMIT = 64 * 2 ** 20;
const HEAP_PROBE = pathToFileURL(path.join(ROOT, 'bench', 'lib', 'heap-probe.mjs')).href;

/** The node's heap after two full GCs (bench/lib/heap-probe.mjs, asked with SIGUSR2). */
async function liveHeap(node: PaygateNode, file: string): Promise<number> {
  const read = () => {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as { seq: number; heapUsed: number; external: number; arrayBuffers: number };
    } catch {
      return null;
    }
  };
  const before = read()?.seq ?? 0;
  process.kill(node.pid, 'SIGUSR2');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const now = read();
    if (now && now.seq > before) return now.heapUsed + now.external;
    await sleep(50);
  }
  throw new Error(`${node.name} did not answer the heap probe`);
}

export interface UsageBenchContext {
  databaseUrl: string | null;
  baseEnv: NodeJS.ProcessEnv;
  connections: number;
}

/** `count` real keys of one organization, inserted in SQL with the hashes the server computes. */
async function insertKeys(db: pg.Client, pepper: string, organizationId: string, count: number): Promise<string[]> {
  const peppers = makePeppers([pepper]);
  const tokens: string[] = [];
  const batch = 10_000;
  for (let from = 0; from < count; from += batch) {
    const ids: string[] = [];
    const hashes: Buffer[] = [];
    const hints: string[] = [];
    for (let i = from; i < Math.min(count, from + batch); i++) {
      const id = newKeyId(peppers.idTagKey);
      const token = formatToken(id);
      ids.push(id);
      hashes.push(hashToken(peppers.current, token));
      hints.push(tokenHint(token));
      tokens.push(token);
    }
    await db.query('INSERT INTO api_key_ids (id) SELECT unnest($1::text[])', [ids]);
    await db.query(
      `INSERT INTO api_keys (id, tier, organization_id, name, scopes, secret_hash, pepper_version, hint, created_by)
       SELECT u.id, 'organization', $4, 'flood key', ARRAY['client:read'], u.hash, 1, u.hint, '{"type":"system","id":null}'::jsonb
         FROM unnest($1::text[], $2::bytea[], $3::text[]) AS u(id, hash, hint)`,
      [ids, hashes, hints, organizationId],
    );
  }
  await db.query('ANALYZE api_keys');
  return tokens;
}

function whoami(token: string): autocannon.Request {
  return { method: 'GET', path: '/v1/auth/whoami', headers: { authorization: `Bearer ${token}` } };
}

/** One request per token, spread over them at random (so about half hit the verifier's 50k cache). */
function spreadRequest(tokens: string[]): autocannon.Request {
  return {
    method: 'GET',
    path: '/v1/auth/whoami',
    setupRequest: (request) => {
      request.headers = { ...request.headers, authorization: `Bearer ${tokens[Math.floor(Math.random() * tokens.length)]}` };
      return request;
    },
  };
}

/**
 * CPU cost of UsageAggregator.record in this process (ns per call): one hot key (whoami's case) and
 * 100k keys with early flushes (the flood's case, allocation included).
 */
function recordCost(): { hotNs: number; spreadNs: number } {
  const ids = Array.from({ length: 100_000 }, () => newKeyId(randomBytes(32)));
  const time = (pick: (i: number) => string, n: number) => {
    const aggregator: UsageAggregator = new UsageAggregator({ onFull: () => void aggregator.drain() });
    const now = Date.now();
    const t = process.cpuUsage();
    for (let i = 0; i < n; i++) aggregator.record(pick(i), 0, 'current', 'ok', '127.0.0.1', 'autocannon', now);
    const used = process.cpuUsage(t);
    return ((used.user + used.system) * 1000) / n;
  };
  time((i) => ids[i % 100_000]!, 200_000); // warm-up
  return { hotNs: time(() => ids[0]!, 2_000_000), spreadNs: time((i) => ids[(i * 7919) % 100_000]!, 1_000_000) };
}

async function cpuRound(node: PaygateNode, token: string, connections: number): Promise<{ cpu: number; requests: number; ok: number }> {
  const before = await processCpuSeconds(node.pid);
  const output = await runLoad({ url: node.baseUrl, connections, pipelining: 1, timeout: 10, requests: [whoami(token)] }, { amount: ROUND_REQUESTS });
  const after = await processCpuSeconds(node.pid);
  return { cpu: after - before, requests: output.result.requests.total, ok: output.result['2xx'] };
}

export async function runUsage(ctx: UsageBenchContext): Promise<Section> {
  const cleanups: Array<() => Promise<void>> = [];
  const probeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paygate-bench-heap-'));
  cleanups.push(async () => fs.rmSync(probeDir, { recursive: true, force: true }));
  const probeOn = path.join(probeDir, 'on.json');
  const probeOff = path.join(probeDir, 'off.json');
  const probeArgs = ['--expose-gc', '--import', HEAP_PROBE];
  try {
    const { a: on, b: off, email, password, pepper, databaseNote, databaseUrl: url } = await startTwoNodeCluster(
      {
        databaseUrl: ctx.databaseUrl,
        baseEnv: ctx.baseEnv,
        databasePrefix: 'paygate_bench_usage',
        adminEmail: 'bench-usage-admin@example.com',
        env: { LOG_LEVEL: 'warn' },
        nodes: [
          { name: 'Paygate usage ON', env: { PAYGATE_USAGE_COUNTING: CONTROL ? 'off' : 'on', PAYGATE_NODE_ID: 'usage-on', BENCH_HEAP_PROBE_FILE: probeOn }, nodeArgs: probeArgs },
          { name: 'Paygate usage OFF', env: { PAYGATE_USAGE_COUNTING: 'off', PAYGATE_NODE_ID: 'usage-off', BENCH_HEAP_PROBE_FILE: probeOff }, nodeArgs: probeArgs },
        ],
      },
      cleanups,
    );

    const client = new HttpClient(on.baseUrl, 4);
    cleanups.push(async () => client.close());
    const session = await login(client, email, password);
    const org = await createOrganization(client, session, `Usage bench ${randomBytes(3).toString('hex')}`, { name: 'bench admin key', scopes: ['api_key:*', 'client:read'] });
    const adminKey = org.initialKey!.secret;
    const keyOn = await createKey(client, adminKey, 'whoami on', ['client:read']);
    const keyOff = await createKey(client, adminKey, 'whoami off', ['client:read']);

    // --- cost: alternating rounds, warm-up first. With pinning (BENCH_PIN), both nodes on the server
    // CPU and the load generator on the other, as in the throughput rounds: each node measured has
    // the same core to itself, whatever else the machine runs on the other.
    if (pinning) {
      pinGenerator();
      pinToServerCpu(on.pid);
      pinToServerCpu(off.pid);
    }
    await cpuRound(on, keyOn.secret, ctx.connections);
    await cpuRound(off, keyOff.secret, ctx.connections);
    const rounds: Array<{ on: number; off: number }> = [];
    let bad = 0;
    for (let r = 0; r < ROUNDS; r++) {
      checkInterrupted();
      // Which node goes first alternates, so a drift of the machine's load favours neither.
      const first = r % 2 === 0 ? await cpuRound(on, keyOn.secret, ctx.connections) : await cpuRound(off, keyOff.secret, ctx.connections);
      const second = r % 2 === 0 ? await cpuRound(off, keyOff.secret, ctx.connections) : await cpuRound(on, keyOn.secret, ctx.connections);
      const [a, b] = r % 2 === 0 ? [first, second] : [second, first];
      bad += a.requests - a.ok + (b.requests - b.ok);
      rounds.push({ on: (a.cpu / a.requests) * 1e6, off: (b.cpu / b.requests) * 1e6 });
      log(`usage cost round ${r + 1}/${ROUNDS}: ON ${rounds[r]!.on.toFixed(1)} µs CPU/request, OFF ${rounds[r]!.off.toFixed(1)} µs`);
    }
    const sumOn = rounds.reduce((n, r) => n + r.on, 0);
    const sumOff = rounds.reduce((n, r) => n + r.off, 0);
    const ratio = sumOn / sumOff;
    const ratios = rounds.map((r) => r.on / r.off).sort((x, y) => x - y);
    const medianRatio = ratios[Math.floor(ratios.length / 2)]!;

    if (pinning) {
      unpinGenerator();
      await unpinProcessTree(on.pid);
      await unpinProcessTree(off.pid);
    }

    // --- the counting call itself, in this process: what a request pays for it
    const micro = recordCost();

    // --- flood: 1M requests over 100k keys, RSS sampled
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    cleanups.push(async () => db.end());
    log(`usage flood: inserting ${fmt(KEYS)} keys`);
    const tokens = await insertKeys(db, pepper, org.id, KEYS);
    const samples: Array<{ t: number; rss: number }> = [];
    const t0 = Date.now();
    const sample = async () => {
      const rss = await rssBytes(on.pid);
      if (Number.isFinite(rss)) samples.push({ t: (Date.now() - t0) / 1000, rss });
    };
    const liveOn = [await liveHeap(on, probeOn)];
    const liveOff = [await liveHeap(off, probeOff)];
    await sample();
    const timer = setInterval(() => void sample(), 1000);
    let flood;
    try {
      log(`usage flood: ${fmt(FLOOD)} requests over ${fmt(KEYS)} keys to node ON`);
      flood = await runLoad({ url: on.baseUrl, connections: ctx.connections, pipelining: 1, timeout: 10, requests: [spreadRequest(tokens)] }, { amount: FLOOD });
    } finally {
      clearInterval(timer);
    }
    const seconds = (Date.now() - t0) / 1000;
    await sample();
    liveOn.push(await liveHeap(on, probeOn));
    // The same flood to node OFF: what the flood costs in memory without counting (the verifier's
    // cache fills the same way), so that counting's own share shows.
    const offSamples: number[] = [await rssBytes(off.pid)];
    const offTimer = setInterval(() => void rssBytes(off.pid).then((rss) => Number.isFinite(rss) && offSamples.push(rss)), 1000);
    try {
      log(`usage flood: the same to node OFF`);
      await runLoad({ url: off.baseUrl, connections: ctx.connections, pipelining: 1, timeout: 10, requests: [spreadRequest(tokens)] }, { amount: FLOOD });
    } finally {
      clearInterval(offTimer);
    }
    offSamples.push(await rssBytes(off.pid));
    liveOff.push(await liveHeap(off, probeOff));
    const offGrowth = Math.max(...offSamples) - offSamples[0]!;
    const liveShare = liveOn[1]! - liveOn[0]! - (liveOff[1]! - liveOff[0]!);
    // Counted: every request of the flood to ON is in the rows within a few flushes (OFF counts none).
    await sleep(5_000);
    const [stored] = (await db.query<{ n: string; keys: string }>(
      "SELECT coalesce(sum(total), 0) AS n, count(DISTINCT key_id) AS keys FROM api_key_usage u JOIN api_keys k ON k.id = u.key_id WHERE k.organization_id = $1 AND k.name = 'flood key' AND u.granularity = 'day'",
      [org.id],
    )).rows;
    const start = samples[0]!.rss;
    const end = samples[samples.length - 1]!.rss;
    const peak = Math.max(...samples.map((s) => s.rss));
    const mid = samples.reduce((best, x) => (Math.abs(x.t - seconds / 2) < Math.abs(best.t - seconds / 2) ? x : best), samples[0]!);
    const secondHalfPeak = Math.max(...samples.filter((x) => x.t >= mid.t).map((x) => x.rss));
    const statuses = Object.fromEntries(Object.entries(flood.result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count ?? 0]));

    const costValue =
      `${(sumOn / ROUNDS).toFixed(1)} vs ${(sumOff / ROUNDS).toFixed(1)} µs CPU per whoami: ON/OFF = ${ratio.toFixed(3)} (median of rounds ${medianRatio.toFixed(3)}); ` +
      `the counting call ${micro.hotNs.toFixed(0)} ns hot / ${micro.spreadNs.toFixed(0)} ns spread = ${((micro.hotNs / 1000 / (sumOff / ROUNDS)) * 100).toFixed(2)} % of a request`;
    const floodValue =
      `retained after a full GC: ON +${mib(liveOn[1]! - liveOn[0]!)} MiB, OFF +${mib(liveOff[1]! - liveOff[0]!)} MiB: counting's share ${mib(liveShare)} MiB; ` +
      `RSS of ON: start ${mib(start)} MiB, max ${mib(peak)} MiB (+${mib(peak - start)}), end ${mib(end)} MiB; of OFF: +${mib(offGrowth)} MiB; ` +
      `${fmt(flood.result.requests.total)} requests in ${seconds.toFixed(1)} s; counted ${fmt(Number(stored!.n))} over ${fmt(Number(stored!.keys))} keys`;
    const targets: Target[] = [
      { name: CONTROL ? 'control (BENCH_USAGE_CONTROL=1, counting off on both nodes): whoami CPU cost of the first node / the second (median of alternating rounds)' : `whoami CPU cost with usage counting on <= ${COST_TARGET} x off (median of alternating rounds)`, value: costValue, met: CONTROL ? null : bad === 0 ? medianRatio <= COST_TARGET : false },
      {
        name: `${fmt(FLOOD)} requests over ${fmt(KEYS)} keys: counting's memory bounded (heap retained after a full GC, growth of ON minus that of OFF under the same flood <= ${LIVE_GROWTH_LIMIT / 2 ** 20} MiB), every request counted`,
        value: floodValue,
        met: liveShare <= LIVE_GROWTH_LIMIT && Number(stored!.n) === flood.result.requests.total,
      },
    ];
    const md = [
      `Database: ${databaseNote}. Two Paygate processes, identical but for \`PAYGATE_USAGE_COUNTING\` (on / off), ${ctx.connections} connections.`,
      '',
      `**Cost.** ${ROUNDS} alternating rounds of ${fmt(ROUND_REQUESTS)} \`GET /v1/auth/whoami\` per node (one key each, after a warm-up round); CPU seconds of each process (user + system) per request. ${pinning ? `Both nodes pinned to CPU ${pinning.server}, the load generator to CPU ${pinning.generator}.` : 'Not pinned (BENCH_PIN=0 or one CPU).'}`,
      '',
      '| round | ON µs/request | OFF µs/request | ON/OFF |',
      '|---|---|---|---|',
      ...rounds.map((r, i) => `| ${i + 1} | ${r.on.toFixed(1)} | ${r.off.toFixed(1)} | ${(r.on / r.off).toFixed(3)} |`),
      `| all | ${(sumOn / ROUNDS).toFixed(1)} | ${(sumOff / ROUNDS).toFixed(1)} | **${ratio.toFixed(3)}** (median of rounds ${medianRatio.toFixed(3)}) |`,
      '',
      `The counting call itself, timed in the bench process on the same machine: ${micro.hotNs.toFixed(0)} ns per verification of one hot key, ${micro.spreadNs.toFixed(0)} ns spread over 100k keys (entries allocated, early flushes drained) = ${((micro.hotNs / 1000 / (sumOff / ROUNDS)) * 100).toFixed(2)} % / ${((micro.spreadNs / 1000 / (sumOff / ROUNDS)) * 100).toFixed(2)} % of OFF's CPU per request. The two-process ratio also carries the machine's noise (load average ${os.loadavg()[0]!.toFixed(1)} now).`,
      '',
      `**Flood.** ${fmt(FLOOD)} whoami requests, each with one of ${fmt(KEYS)} real keys picked at random, to node ON; its RSS sampled every second.`,
      '',
      '| | |',
      '|---|---|',
      `| requests | ${fmt(flood.result.requests.total)} in ${seconds.toFixed(1)} s (${fmt(flood.result.requests.total / seconds)} req/s); statuses ${JSON.stringify(statuses)} |`,
      `| RSS | start ${mib(start)} MiB (verifier cache nearly empty), at ${mid.t.toFixed(0)} s ${mib(mid.rss)} MiB, max ${mib(peak)} MiB (second half ${mib(secondHalfPeak)}), end ${mib(end)} MiB |`,
      `| node OFF under the same flood | RSS ${mib(offSamples[0]!)} MiB at start, max ${mib(Math.max(...offSamples))} MiB (+${mib(offGrowth)} MiB): the verifier's cache and the heap's growth, without counting |`,
      `| heap retained after two full GCs (heapUsed + external) | ON ${mib(liveOn[0]!)} -> ${mib(liveOn[1]!)} MiB, OFF ${mib(liveOff[0]!)} -> ${mib(liveOff[1]!)} MiB: counting's share **${mib(liveShare)} MiB** |`,
      `| RSS samples of ON (s: MiB) | ${samples.filter((_, i) => i % Math.max(1, Math.round(samples.length / 12)) === 0 || i === samples.length - 1).map((x) => `${x.t.toFixed(0)}: ${mib(x.rss)}`).join(', ')} |`,
      `| counted (day rows, 5 s after the flood) | ${fmt(Number(stored!.n))} verifications over ${fmt(Number(stored!.keys))} keys |`,
      '',
      'RSS is not the memory counting holds: it includes the heap V8 keeps free for the next collections, sized by the allocation rate (the counting node allocates more per request: its entries and flush batches) and returned to the system late. The heap retained after a full collection (bench/lib/heap-probe.mjs) is what stays.',
      '',
    ];
    return { title: 'Usage counting: cost and memory', markdown: md, targets, console: [`usage: ${costValue}; ${floodValue}`] };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
