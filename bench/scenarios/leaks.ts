/**
 * Leak containment between two nodes on one PostgreSQL database (SPEC §13, issue 12 §3).
 *
 * Two Paygate processes (A and B) in server mode on one database (a scratch database on the
 * DATABASE_URL server, or an embedded PostgreSQL the bench starts), as in scenarios/revocation.ts.
 * Each trial: create a key (client:create, client:read) on A; let B verify it (cached there); then, at
 * the same moment, report the token on A (`POST /v1/leaked-keys`, plain format, from an address of
 * its own through A's trusted proxy setting: the endpoint allows 60 reports an hour per source) and,
 * on two keep-alive connections to B, one request after another, probe B with the key
 * (`GET /v1/auth/whoami`, cheap: it times containment) and ask B to create clients with it
 * (`POST /v1/clients`, the money-moving request).
 *
 * Recorded per trial: receipt-to-containment, from just before the report is written to A to the
 * end of B's first refused probe (an upper bound: it includes a round trip to B); the report's own
 * latency on A (held to at least its response floor, src/leaks/service.ts); and the client creates
 * B accepted that were sent after A's report response had returned (must be 0). Creates B accepted
 * while the report was still in flight raced it and are counted apart.
 */
import { checkInterrupted } from '../lib/cleanup.js';
import { fmt, log, ms, quantiles, sleep, type Section, type Target } from '../lib/common.js';
import type { PaygateNode } from '../lib/children.js';
import { startTwoNodeCluster } from '../lib/cluster.js';
import { createKey, createOrganization, expectStatus, HttpClient, login } from '../lib/http.js';

/** A trial gives up polling B after this long (then counts as not contained). */
const POLL_TIMEOUT_MS = 5_000;

export interface LeaksContext {
  databaseUrl: string | null;
  baseEnv: NodeJS.ProcessEnv;
  trials: number;
}

interface Trial {
  containmentMs: number;
  reportMs: number;
  acceptedAfterResponse: number;
  acceptedDuringReport: number;
  polls: number;
  refusal: string;
}

export async function runLeaks(ctx: LeaksContext): Promise<Section> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const { a, b, email, password, databaseNote } = await startTwoNodeCluster(
      {
        databaseUrl: ctx.databaseUrl,
        baseEnv: ctx.baseEnv,
        databasePrefix: 'paygate_bench_leaks',
        adminEmail: 'bench-leaks-admin@example.com',
        // Each trial reports from an address of its own (X-Forwarded-For from the bench on 127.0.0.1).
        env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1', LOG_LEVEL: 'error' },
        embeddedDetail: 'temporary directory, removed afterwards',
        nodes: [{ name: 'Paygate node A' }, { name: 'Paygate node B' }],
      },
      cleanups,
    );
    const trials = await runTrials(ctx, a, b, email, password);
    return report(ctx, trials, databaseNote);
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch((e) => log(`leaks cleanup failed: ${String(e)}`));
  }
}

async function runTrials(ctx: LeaksContext, a: PaygateNode, b: PaygateNode, email: string, password: string): Promise<Trial[]> {
  const setupA = new HttpClient(a.baseUrl, 1);
  const reportA = new HttpClient(a.baseUrl, 1);
  const probeB = new HttpClient(b.baseUrl, 1);
  const moneyB = new HttpClient(b.baseUrl, 1);
  try {
    const session = await login(setupA, email, password);
    const org = await createOrganization(setupA, session, 'Bench leaks', { name: 'leaks admin', scopes: ['api_key:*', 'client:*'] });
    const adminKey = org.initialKey!.secret;
    const out: Trial[] = [];
    log(`leaks: ${ctx.trials} trials (create on A, warm on B, report on A while B is probed and asked to create clients)`);
    for (let i = 0; i < ctx.trials; i++) {
      checkInterrupted();
      const key = await createKey(setupA, adminKey, `leak ${i}`, ['client:create', 'client:read']);
      await sleep(5);
      expectStatus(await probeB.get('/v1/auth/whoami', key.secret), 200, 'whoami on B (warm-up)');
      expectStatus(await moneyB.get('/v1/clients?limit=1', key.secret), 200, 'list on B (warm-up, cached)');

      const source = `10.${100 + Math.floor(i / 62_500)}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`;
      const started = process.hrtime.bigint();
      let answeredAt: bigint | null = null;
      const reported = reportA.request('POST', '/v1/leaked-keys', { body: { tokens: [key.secret], source: 'bench' }, headers: { 'x-forwarded-for': source } }).then((r) => {
        answeredAt = process.hrtime.bigint();
        return r;
      });
      const sinceStart = () => Number(process.hrtime.bigint() - started) / 1e6;

      // Containment as B sees it: cheap probes (whoami) one after another until B refuses the key.
      const probing = (async () => {
        let polls = 0;
        for (;;) {
          const r = await probeB.get('/v1/auth/whoami', key.secret);
          polls++;
          const elapsed = sinceStart();
          if (r.status === 401 || r.status === 403) return { containmentMs: elapsed, refusal: String(r.body?.code ?? r.status), polls };
          if (r.status !== 200) throw new Error(`B answered whoami ${r.status} ${JSON.stringify(r.body)}`);
          if (elapsed > POLL_TIMEOUT_MS) return { containmentMs: NaN, refusal: 'none within timeout', polls };
        }
      })();
      // Money-moving requests on their own connection, until B refuses one after A has answered.
      const moving = (async () => {
        let acceptedAfterResponse = 0;
        let acceptedDuringReport = 0;
        for (let n = 0; ; n++) {
          const answeredBeforeSend = answeredAt !== null;
          const r = await moneyB.post('/v1/clients', { name: `leak ${i}.${n}`, email: `leak${i}@example.com` }, key.secret);
          if (r.status === 201) {
            if (answeredBeforeSend) acceptedAfterResponse++;
            else acceptedDuringReport++;
          } else if (r.status !== 401 && r.status !== 403) throw new Error(`B answered a client create ${r.status} ${JSON.stringify(r.body)}`);
          else if (answeredBeforeSend) return { acceptedAfterResponse, acceptedDuringReport };
          if (sinceStart() > POLL_TIMEOUT_MS) return { acceptedAfterResponse, acceptedDuringReport };
        }
      })();
      const [answer, probe, money] = await Promise.all([reported, probing, moving]);
      expectStatus(answer, 202, 'leak report on A');
      out.push({ containmentMs: probe.containmentMs, reportMs: answer.ms, ...money, polls: probe.polls, refusal: probe.refusal });
    }
    return out;
  } finally {
    setupA.close();
    reportA.close();
    probeB.close();
    moneyB.close();
  }
}

function report(ctx: LeaksContext, trials: Trial[], databaseNote: string): Section {
  const contained = trials.filter((t) => Number.isFinite(t.containmentMs));
  const containment = quantiles(contained.map((t) => t.containmentMs));
  const reportLatency = quantiles(trials.map((t) => t.reportMs));
  const notContained = trials.length - contained.length;
  const after = trials.reduce((s, t) => s + t.acceptedAfterResponse, 0);
  const during = trials.reduce((s, t) => s + t.acceptedDuringReport, 0);
  const duringQ = quantiles(trials.map((t) => t.acceptedDuringReport));
  const polls = quantiles(trials.map((t) => t.polls));
  const codes: Record<string, number> = {};
  for (const t of trials) codes[t.refusal] = (codes[t.refusal] ?? 0) + 1;
  const targets: Target[] = [
    {
      name: "leak receipt-to-containment on a second node (p99 over the trials; the bound is the report's response)",
      value: `p50 ${ms(containment.p50)} ms, p99 ${ms(containment.p99)} ms, max ${ms(containment.max)} ms over ${contained.length} trials${notContained ? `; ${notContained} trials NOT contained within ${POLL_TIMEOUT_MS} ms` : ''}; report response on A p50 ${ms(reportLatency.p50)} / p99 ${ms(reportLatency.p99)} ms`,
      // Informational unless a trial was not contained at all: the bound itself is the next target.
      met: notContained > 0 ? false : null,
    },
    {
      name: "money-moving requests accepted on B after the report's response",
      value: `${after} in ${trials.length} trials (${during} accepted while the report was still in flight)`,
      met: after === 0,
    },
  ];
  const md = [
    `Two Paygate processes (node A, node B) in server mode on one database: ${databaseNote}. ${ctx.trials} trials, each: ` +
      'create a key on A, verify it on B (cached there), then report its token on A (`POST /v1/leaked-keys`, plain format, action `revoke`, a source address of its own) while, on two keep-alive connections to B, one request after another, B is probed with the key (`GET /v1/auth/whoami`) and asked to create clients with it (`POST /v1/clients`). ' +
      "Receipt-to-containment = from just before the report is written to A to the end of B's first refused probe (so it includes a round trip to B). Acceptances after the response = 201s from B to client creates sent after A's report response had returned; those sent while the report was in flight raced it and are counted apart.",
    '',
    '| measure | p50 | p99 | max |',
    '|---|---:|---:|---:|',
    `| receipt-to-containment on B, ms | ${ms(containment.p50)} | ${ms(containment.p99)} | ${ms(containment.max)} |`,
    `| report latency on A (held to at least its 100 ms floor), ms | ${ms(reportLatency.p50)} | ${ms(reportLatency.p99)} | ${ms(reportLatency.max)} |`,
    `| clients created on B while the report was in flight, per trial | ${duringQ.p50} | ${duringQ.p99} | ${duringQ.max} |`,
    `| whoami probes of B per trial (incl. the refusal) | ${polls.p50} | ${polls.p99} | ${polls.max} |`,
    '',
    `- Money-moving requests accepted on B after the report's response, all trials: **${after}**.`,
    `- Trials contained within ${POLL_TIMEOUT_MS} ms: ${contained.length} of ${trials.length}. First refusal codes on B: ${JSON.stringify(codes)}.`,
    '',
  ];
  return {
    title: 'Leak containment between two nodes',
    markdown: md,
    targets,
    console: [
      `leaks: receipt-to-containment on B p50 ${ms(containment.p50)} p99 ${ms(containment.p99)} max ${ms(containment.max)} ms; report on A p50 ${ms(reportLatency.p50)} p99 ${ms(reportLatency.p99)} ms; ` +
        `accepted on B after the response ${after}, during the report ${during}; not contained ${notContained}; refusals ${JSON.stringify(codes)} (${fmt(trials.length)} trials)`,
    ],
  };
}
