/**
 * Memory under a flood of forged tokens: BENCH_FLOOD_REQUESTS (1,000,000) whoami requests, each with
 * a well-formed token and a fresh random id, while the Paygate process's resident size (VmRSS of
 * /proc/<pid>/status) is sampled every second. A verifier that remembered refused ids (a negative
 * cache, a per-id counter, an audit queue) would grow with the count; a flat RSS shows it does not.
 */
import type autocannon from 'autocannon';
import { runState } from '../lib/cleanup.js';
import { fmt, log, mib, rssBytes, sleep, type Section, type Target } from '../lib/common.js';
import type { PaygateNode } from '../lib/children.js';
import { systemHealth, type HttpClient } from '../lib/http.js';
import { forgedRequest, runLoad } from '../lib/load.js';

/** "Flat": the end no more than this above the start, and the peak no more than PEAK above it. */
const END_GROWTH_LIMIT = 32 * 2 ** 20;
const PEAK_GROWTH_LIMIT = 64 * 2 ** 20;

export interface FloodContext {
  node: PaygateNode;
  client: HttpClient;
  sessionToken: string;
  requests: number;
  connections: number;
}

export async function runFlood(ctx: FloodContext): Promise<Section> {
  const pid = ctx.node.pid;
  const samples: Array<{ t: number; rss: number }> = [];
  const t0 = Date.now();
  const sample = async () => {
    const rss = await rssBytes(pid);
    if (Number.isFinite(rss)) samples.push({ t: (Date.now() - t0) / 1000, rss });
  };
  const healthBefore = await systemHealth(ctx.client, ctx.sessionToken);
  await sample();
  const start = samples[0]?.rss ?? NaN;
  log(`flood: ${fmt(ctx.requests)} forged-token requests, ${ctx.connections} connections; Paygate RSS at start ${mib(start)} MiB`);
  const timer = setInterval(() => void sample(), 1000);
  let instance: autocannon.Instance | null = null;
  const stopOnSignal = setInterval(() => {
    if (runState.interrupted) instance?.stop();
  }, 200);
  let output;
  try {
    output = await runLoad(
      { url: ctx.node.baseUrl, connections: ctx.connections, pipelining: 1, timeout: 10, requests: [forgedRequest('/v1/auth/whoami')] },
      { amount: ctx.requests },
      (i) => (instance = i),
    );
  } finally {
    clearInterval(timer);
    clearInterval(stopOnSignal);
  }
  const seconds = (Date.now() - t0) / 1000;
  await sample();
  const end = samples[samples.length - 1]!.rss;
  // Growth over the second half of the flood, per request: a per-request leak shows as a steady slope.
  const mid = samples.reduce((best, s) => (Math.abs(s.t - seconds / 2) < Math.abs(best.t - seconds / 2) ? s : best), samples[0]!);
  const secondHalf = end - mid.rss;
  const perRequest = secondHalf / Math.max(1, (output.result.requests.total * (seconds - mid.t)) / seconds);
  await sleep(3000);
  await sample();
  const settled = samples[samples.length - 1]!.rss;
  const healthAfter = await systemHealth(ctx.client, ctx.sessionToken);
  const peak = Math.max(...samples.map((s) => s.rss));
  const statuses = Object.fromEntries(Object.entries(output.result.statusCodeStats ?? {}).map(([k, v]) => [k, v.count ?? 0]));
  const refused = statuses['401'] ?? 0;
  const lookups = healthAfter.misses - healthBefore.misses;
  const met = end - start <= END_GROWTH_LIMIT && peak - start <= PEAK_GROWTH_LIMIT;
  const value =
    `RSS start ${mib(start)} MiB, max ${mib(peak)} MiB (+${mib(peak - start)}), end ${mib(end)} MiB (${end >= start ? '+' : ''}${mib(end - start)}), 3 s later ${mib(settled)} MiB; ` +
    `${fmt(output.result.requests.total)} requests in ${seconds.toFixed(1)} s`;
  const targets: Target[] = [
    {
      name: `${fmt(ctx.requests)} forged tokens keep resident size flat (end <= start + ${END_GROWTH_LIMIT / 2 ** 20} MiB, max <= start + ${PEAK_GROWTH_LIMIT / 2 ** 20} MiB)`,
      value,
      met: output.result.requests.total >= ctx.requests && refused === output.result.requests.total ? met : false,
    },
  ];
  // A compact series: one sample every ~5 s.
  const every = Math.max(1, Math.round(samples.length / 12));
  const series = samples.filter((_, i) => i % every === 0 || i === samples.length - 1).map((s) => `${s.t.toFixed(0)} s: ${mib(s.rss)}`);
  const md = [
    `${fmt(ctx.requests)} requests to \`GET /v1/auth/whoami\`, each with a forged well-formed token (valid CRC32, fresh random id), ${ctx.connections} connections, after the throughput rounds (so the heap had already grown to its working size).`,
    '',
    '| | |',
    '|---|---|',
    `| requests | ${fmt(output.result.requests.total)} in ${seconds.toFixed(1)} s (${fmt(output.result.requests.total / seconds)} req/s); statuses ${JSON.stringify(statuses)}; errors ${output.result.errors} |`,
    `| RSS at start | ${mib(start)} MiB |`,
    `| RSS max | ${mib(peak)} MiB (+${mib(peak - start)} MiB) |`,
    `| RSS at end | ${mib(end)} MiB (${end >= start ? '+' : ''}${mib(end - start)} MiB); 3 s later ${mib(settled)} MiB |`,
    `| growth in the second half (from ${mid.t.toFixed(0)} s to the end) | ${secondHalf >= 0 ? '+' : ''}${mib(secondHalf)} MiB = ${perRequest.toFixed(1)} bytes per request |`,
    `| verifier key lookups during the flood | ${lookups} |`,
    `| RSS samples (s since start: MiB) | ${series.join(', ')} |`,
    '',
  ];
  return {
    title: 'Memory under a 1M forged-token flood',
    markdown: md,
    targets,
    console: [`flood: ${value}; second half ${mib(secondHalf)} MiB (${perRequest.toFixed(1)} B/request); statuses ${JSON.stringify(statuses)}; key lookups ${lookups}`],
  };
}
