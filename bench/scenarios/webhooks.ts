/**
 * Webhook delivery with two nodes on one PostgreSQL database (SPEC §16, docs/webhooks.md).
 *
 * Two Paygate processes (A and B, PAYGATE_WEBHOOK_ALLOW_PRIVATE=true) on a scratch database on the
 * DATABASE_URL server, or on an embedded PostgreSQL the bench starts for this; a receiver in this
 * process on 127.0.0.1 answering 204 at once. The change that emits is an invoice's finalization
 * (`POST /v1/invoices/{id}/finalize`, event `invoice.finalized`: one row update, no audit, no cache
 * invalidation, so the change measured is mostly the event's own cost), of drafts made in bulk
 * beforehand, sent to A and B alternately; the event carries the invoice's id, which ties each
 * delivery to the request that caused it.
 *
 * (a) throughput: a burst of N finalizations (16 at a time) in an organization whose endpoint subscribes;
 *     events per second from the first request to the receiver's last first-delivery, and the drain
 *     after the last commit.
 * (b) latency: finalizations started at a steady rate (200/s by default, open loop, at most 64 in
 *     flight) for ~20 s; per event, the receiver's arrival minus the change's response (the commit
 *     is before it, so this is at most the commit-to-delivery time) and minus the request's start
 *     (at least it): p50 / p99 of both.
 * (c) request-path cost: the same finalization in an organization with no endpoint and in one whose
 *     endpoint subscribes, interleaved on the same 4 connections, so the deliveries running meanwhile
 *     weigh on both alike: mean and p50 latency of each; the ratio must be at most 1.10. Every
 *     finalization writes its event to the outbox, subscribed or not (one INSERT in the change's
 *     transaction; fan-out and delivery run after the commit, on the worker).
 * (c') the same in alternating phases (each subscribed phase's deliveries drained before the next):
 *     its ratio adds the fan-out and delivery work sharing the nodes, database and cores (info).
 * Every loop is bounded in count and time; all traffic goes to 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { checkInterrupted, defer } from '../lib/cleanup.js';
import { fmt, log, ms, quantiles, sleep, type Section, type Target } from '../lib/common.js';
import type { PaygateNode } from '../lib/children.js';
import { startTwoNodeCluster } from '../lib/cluster.js';
import { createOrganization, expectStatus, HttpClient, login } from '../lib/http.js';
import { newId } from '../../src/ids.js';

const COST_TARGET = 1.1;
const MAX_IN_FLIGHT = 64;
/** The deliveries of a phase must all arrive within this long after its last commit. */
const DRAIN_TIMEOUT_MS = 60_000;

export interface WebhooksContext {
  databaseUrl: string | null;
  baseEnv: NodeJS.ProcessEnv;
  burst: number;
  rate: number;
  seconds: number;
  costRequests: number;
  rounds: number;
  /** BENCH_CPU_PROF: node A runs with --cpu-prof into this directory. */
  cpuProfDir: string | null;
}

/** A receiver that answers 204 at once and notes when each key's event first arrived. */
interface Receiver {
  url: string;
  /** key id -> performance.now() of the first delivery of its event. */
  arrivals: Map<string, number>;
  attemptIds: Set<string>;
  duplicateAttempts: number;
  requests: number;
  waitFor(keys: readonly string[], timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, number>();
  const attemptIds = new Set<string>();
  const state = { duplicateAttempts: 0, requests: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      state.requests++;
      const attempt = String(req.headers['paygate-attempt-id'] ?? '');
      if (attemptIds.has(attempt)) state.duplicateAttempts++;
      attemptIds.add(attempt);
      try {
        const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { object?: { id?: string } } };
        const id = event.data?.object?.id;
        if (id && !arrivals.has(id)) arrivals.set(id, at);
      } catch {
        /* not an event: counted, not timed */
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const closing = defer('close the webhook receiver', async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    arrivals,
    attemptIds,
    get duplicateAttempts() {
      return state.duplicateAttempts;
    },
    get requests() {
      return state.requests;
    },
    async waitFor(keys, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const missing = keys.filter((k) => !arrivals.has(k)).length;
        if (missing === 0) return 0;
        if (performance.now() > deadline) return missing;
        await sleep(5);
      }
    },
    close: () => closing.release(),
  };
}

interface Created {
  /** The invoice finalized: its event's data.object.id. */
  keyId: string;
  startedAt: number;
  answeredAt: number;
  ms: number;
}

interface BenchOrg {
  id: string;
  token: string;
  /** Draft invoices not finalized yet, made in bulk before a measurement. */
  drafts: string[];
}

/** One change that emits: `POST /v1/invoices/{id}/finalize` of a draft; its timings on the bench's clock. */
async function finalize(client: HttpClient, org: BenchOrg): Promise<Created> {
  const id = org.drafts.pop();
  if (!id) throw new Error('no draft invoice left');
  const startedAt = performance.now();
  const r = await client.request('POST', `/v1/invoices/${id}/finalize`, { token: org.token, body: {} });
  const answeredAt = performance.now();
  expectStatus(r, 200, 'POST /v1/invoices/{id}/finalize');
  return { keyId: id, startedAt, answeredAt, ms: r.ms };
}

export async function runWebhooks(ctx: WebhooksContext): Promise<Section> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const receiver = await startReceiver();
    cleanups.push(receiver.close);
    const prof = ctx.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.cpuProfDir}`] : [];
    const { a, b, email, password, databaseNote, databaseUrl: clusterUrl } = await startTwoNodeCluster(
      {
        databaseUrl: ctx.databaseUrl,
        baseEnv: ctx.baseEnv,
        databasePrefix: 'paygate_bench_webhooks',
        adminEmail: 'bench-webhooks-admin@example.com',
        env: { PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true', LOG_LEVEL: 'warn' },
        nodes: [{ name: 'Paygate node A (webhooks)', nodeArgs: prof }, { name: 'Paygate node B (webhooks)' }],
      },
      cleanups,
    );
    const observer = new pg.Client({ connectionString: clusterUrl });
    await observer.connect();
    cleanups.push(() => observer.end());
    return await measure(ctx, a, b, receiver, observer, email, password, databaseNote);
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch((e) => log(`webhooks cleanup failed: ${String(e)}`));
  }
}

async function measure(ctx: WebhooksContext, a: PaygateNode, b: PaygateNode, receiver: Receiver, observer: pg.Client, email: string, password: string, databaseNote: string): Promise<Section> {
  const clients = [new HttpClient(a.baseUrl, MAX_IN_FLIGHT), new HttpClient(b.baseUrl, MAX_IN_FLIGHT)] as const;
  try {
    const session = await login(clients[0], email, password);
    /** An organization with a client, `drafts` draft invoices and, when subscribed, an endpoint for invoice.finalized. */
    const org = async (name: string, subscribed: boolean, drafts: number): Promise<BenchOrg> => {
      const created = await createOrganization(clients[0], session, `${name} ${randomBytes(3).toString('hex')}`, { name: 'bench', scopes: ['invoice:*', 'client:*', 'webhook:*'] });
      const token = created.initialKey!.secret;
      if (subscribed) {
        expectStatus(await clients[0].post('/v1/webhook-endpoints', { url: `${receiver.url}/${created.id}`, events: ['invoice.finalized'] }, token), 201, 'creating an endpoint');
      }
      const customer = expectStatus(await clients[0].post('/v1/clients', { name: 'Bench customer' }, token), 201, 'creating a client');
      const template = expectStatus(
        await clients[0].post('/v1/invoices', { clientId: customer.id, currency: 'EUR', lines: [{ description: 'Bench hour', quantity: 1, unitAmount: 1000 }] }, token),
        201,
        'creating a draft invoice',
      );
      // The drafts themselves are set-up, not measured: copies of the API-made one, in one statement.
      const ids = Array.from({ length: drafts }, () => newId('invoice'));
      await observer.query(
        `INSERT INTO invoices (id, organization_id, client_id, status, currency, lines, total)
         SELECT x.id, i.organization_id, i.client_id, i.status, i.currency, i.lines, i.total FROM invoices i, unnest($1::text[]) AS x(id) WHERE i.id = $2`,
        [ids, template.id],
      );
      return { id: created.id, token, drafts: [template.id as string, ...ids] };
    };
    let n = 0;
    const client = () => clients[n++ % 2]!;

    // Warm-up: both nodes, both paths, a few deliveries.
    const warm = await org('Bench webhooks warm-up', true, 40);
    const warmKeys = await Promise.all(Array.from({ length: 40 }, () => finalize(client(), warm)));
    await receiver.waitFor(warmKeys.map((k) => k.keyId), DRAIN_TIMEOUT_MS);
    checkInterrupted();

    // (a) burst
    log(`webhooks: (a) burst of ${ctx.burst} finalizations, 16 at a time, on A and B`);
    const burstOrg = await org('Bench webhooks burst', true, ctx.burst);
    const burst: Created[] = [];
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < ctx.burst) {
          next++;
          burst.push(await finalize(client(), burstOrg));
        }
      }),
    );
    const lastCommit = Math.max(...burst.map((c) => c.answeredAt));
    const burstMissing = await receiver.waitFor(burst.map((c) => c.keyId), DRAIN_TIMEOUT_MS);
    const lastArrival = Math.max(...burst.map((c) => receiver.arrivals.get(c.keyId) ?? NaN).filter(Number.isFinite));
    const burstSeconds = (lastArrival - t0) / 1000;
    const burstCommitSeconds = (lastCommit - t0) / 1000;
    checkInterrupted();

    // (b) steady rate
    log(`webhooks: (b) ${ctx.rate} finalizations/s for ${ctx.seconds} s (open loop, at most ${MAX_IN_FLIGHT} in flight)`);
    const steadyOrg = await org('Bench webhooks steady', true, Math.round(ctx.rate * ctx.seconds));
    const steady: Created[] = [];
    let skipped = 0;
    let inFlight = 0;
    const total = Math.round(ctx.rate * ctx.seconds);
    const running: Promise<void>[] = [];
    const s0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = s0 + (i * 1000) / ctx.rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      if (inFlight >= MAX_IN_FLIGHT) {
        skipped++;
        continue;
      }
      inFlight++;
      running.push(
        finalize(client(), steadyOrg).then(
          (c) => void steady.push(c),
          (e: unknown) => {
            log(`webhooks: a steady creation failed: ${String(e)}`);
          },
        ).finally(() => inFlight--),
      );
    }
    await Promise.all(running);
    const steadySeconds = (performance.now() - s0) / 1000;
    const steadyMissing = await receiver.waitFor(steady.map((c) => c.keyId), DRAIN_TIMEOUT_MS);
    const fromResponse = steady.filter((c) => receiver.arrivals.has(c.keyId)).map((c) => receiver.arrivals.get(c.keyId)! - c.answeredAt);
    const fromStart = steady.filter((c) => receiver.arrivals.has(c.keyId)).map((c) => receiver.arrivals.get(c.keyId)! - c.startedAt);
    const steadyRequest = quantiles(steady.map((c) => c.ms));
    // Where the time goes, from the database's own timestamps: event written -> fanned out into a
    // delivery -> its first attempt started; and how long each attempt took (connect to answer).
    const [stages] = (
      await observer.query<Record<string, number | null>>(
        `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY fan) AS fan_p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY fan) AS fan_p99,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY claim) AS claim_p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY claim) AS claim_p99,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY took) AS attempt_p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY took) AS attempt_p99
           FROM (SELECT extract(epoch FROM d.created_at - ev.created_at) * 1000 AS fan,
                        extract(epoch FROM a.started_at - d.created_at) * 1000 AS claim, a.duration_ms AS took
                   FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
                   JOIN LATERAL (SELECT started_at, duration_ms FROM webhook_attempts WHERE delivery_id = d.id ORDER BY started_at LIMIT 1) a ON true
                  WHERE d.organization_id = $1) x`,
        [steadyOrg.id],
      )
    ).rows;
    checkInterrupted();

    // (c) request-path cost, alternating phases
    log(`webhooks: (c) request-path cost, ${ctx.rounds} rounds of ${ctx.costRequests} finalizations without / with a subscribed endpoint`);
    const quiet = await org('Bench webhooks unsubscribed', false, 2 * ctx.rounds * ctx.costRequests);
    const loud = await org('Bench webhooks subscribed', true, 2 * ctx.rounds * ctx.costRequests);
    const phases: { subscribed: boolean; round: number; latencies: number[]; seconds: number }[] = [];
    for (let round = 0; round < ctx.rounds; round++) {
      for (const subscribed of round % 2 === 0 ? [false, true] : [true, false]) {
        checkInterrupted();
        const target = subscribed ? loud : quiet;
        const made: Created[] = [];
        let left = ctx.costRequests;
        const p0 = performance.now();
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (left > 0) {
              left--;
              made.push(await finalize(client(), target));
            }
          }),
        );
        const seconds = (performance.now() - p0) / 1000;
        // Its deliveries end before the next phase starts, so none spills into an unsubscribed phase.
        if (subscribed) await receiver.waitFor(made.map((c) => c.keyId), DRAIN_TIMEOUT_MS);
        phases.push({ subscribed, round, latencies: made.map((c) => c.ms), seconds });
        await sleep(500);
      }
    }
    // (c) the same, interleaved: the requests alternate between the two organizations, so the
    // deliveries running meanwhile weigh on both alike and what differs is the request path itself.
    // Alternated by one shared counter, so each organization gets exactly costRequests a round (a
    // parity per connection drifted with the connections' speeds and used up one side's drafts).
    const interleaved = { quiet: [] as number[], loud: [] as number[] };
    for (let round = 0; round < ctx.rounds; round++) {
      checkInterrupted();
      const made: Created[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < 2 * ctx.costRequests) {
            const subscribed = next++ % 2 === 1;
            const c = await finalize(client(), subscribed ? loud : quiet);
            (subscribed ? interleaved.loud : interleaved.quiet).push(c.ms);
            if (subscribed) made.push(c);
          }
        }),
      );
      await receiver.waitFor(made.map((c) => c.keyId), DRAIN_TIMEOUT_MS);
      await sleep(500);
    }
    const [outbox] = (
      await observer.query<{ quiet_events: number; quiet_deliveries: number; loud_events: number; loud_deliveries: number }>(
        `SELECT (SELECT count(*)::int FROM webhook_events WHERE organization_id = $1) AS quiet_events,
                (SELECT count(*)::int FROM webhook_deliveries WHERE organization_id = $1) AS quiet_deliveries,
                (SELECT count(*)::int FROM webhook_events WHERE organization_id = $2) AS loud_events,
                (SELECT count(*)::int FROM webhook_deliveries WHERE organization_id = $2) AS loud_deliveries`,
        [quiet.id, loud.id],
      )
    ).rows;
    const attemptsByOutcome = (
      await observer.query<{ outcome: string | null; n: number }>('SELECT outcome, count(*)::int AS n FROM webhook_attempts GROUP BY outcome ORDER BY outcome')
    ).rows;

    return report({
      ctx,
      databaseNote,
      burst: { count: burst.length, seconds: burstSeconds, commitSeconds: burstCommitSeconds, drainMs: lastArrival - lastCommit, missing: burstMissing },
      steady: { made: steady.length, skipped, seconds: steadySeconds, missing: steadyMissing, fromResponse, fromStart, request: steadyRequest, stages: stages ?? {} },
      phases,
      interleaved,
      outbox: outbox!,
      receiver: { requests: receiver.requests, duplicateAttempts: receiver.duplicateAttempts },
      attemptsByOutcome,
    });
  } finally {
    clients[0].close();
    clients[1].close();
  }
}

const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / Math.max(1, values.length);

function report(r: {
  ctx: WebhooksContext;
  databaseNote: string;
  burst: { count: number; seconds: number; commitSeconds: number; drainMs: number; missing: number };
  steady: {
    made: number;
    skipped: number;
    seconds: number;
    missing: number;
    fromResponse: number[];
    fromStart: number[];
    request: ReturnType<typeof quantiles>;
    stages: Record<string, number | null>;
  };
  phases: { subscribed: boolean; round: number; latencies: number[]; seconds: number }[];
  interleaved: { quiet: number[]; loud: number[] };
  outbox: { quiet_events: number; quiet_deliveries: number; loud_events: number; loud_deliveries: number };
  receiver: { requests: number; duplicateAttempts: number };
  attemptsByOutcome: { outcome: string | null; n: number }[];
}): Section {
  const { ctx } = r;
  const eventsPerSecond = r.burst.count / r.burst.seconds;
  const commitsPerSecond = r.burst.count / r.burst.commitSeconds;
  const lower = quantiles(r.steady.fromResponse);
  const upper = quantiles(r.steady.fromStart);
  const achievedRate = r.steady.made / r.steady.seconds;
  const quiet = r.phases.filter((p) => !p.subscribed).flatMap((p) => p.latencies);
  const loud = r.phases.filter((p) => p.subscribed).flatMap((p) => p.latencies);
  const q = quantiles(quiet);
  const l = quantiles(loud);
  const meanRatio = mean(loud) / mean(quiet);
  const p50Ratio = l.p50 / q.p50;
  const perRound = Array.from({ length: ctx.rounds }, (_, round) => {
    const of = (subscribed: boolean) => mean(r.phases.find((p) => p.round === round && p.subscribed === subscribed)?.latencies ?? []);
    return of(true) / of(false);
  });
  const st = r.steady.stages;
  const iq = quantiles(r.interleaved.quiet);
  const il = quantiles(r.interleaved.loud);
  const interleavedRatio = mean(r.interleaved.loud) / mean(r.interleaved.quiet);
  const targets: Target[] = [
    {
      name: 'webhook delivery throughput, 2 nodes (events/s, commit to receiver 2xx)',
      value: `${fmt(eventsPerSecond, 0)} events/s over a burst of ${r.burst.count} (committed at ${fmt(commitsPerSecond, 0)}/s; last delivery ${ms(r.burst.drainMs)} ms after the last commit)${r.burst.missing ? `; ${r.burst.missing} NOT delivered within ${DRAIN_TIMEOUT_MS / 1000} s` : ''}`,
      met: r.burst.missing === 0 ? null : false,
    },
    {
      name: `webhook commit-to-delivery latency at a steady ${ctx.rate} events/s, 2 nodes`,
      value: `p50 ${ms(lower.p50)}-${ms(upper.p50)} ms, p99 ${ms(lower.p99)}-${ms(upper.p99)} ms (from the response / from the request start), ${fmt(achievedRate, 0)} events/s achieved over ${fmt(r.steady.seconds, 1)} s${r.steady.missing ? `; ${r.steady.missing} NOT delivered` : ''}${r.steady.skipped ? `; ${r.steady.skipped} starts skipped (${MAX_IN_FLIGHT} in flight)` : ''}`,
      met: r.steady.missing === 0 ? null : false,
    },
    {
      name: `request path of a change that emits to a subscribed endpoint <= ${COST_TARGET.toFixed(2)} x without one`,
      value: `interleaved: mean ${ms(mean(r.interleaved.loud))} vs ${ms(mean(r.interleaved.quiet))} ms = ${interleavedRatio.toFixed(3)} (p50 ${ms(il.p50)} vs ${ms(iq.p50)} ms = ${(il.p50 / iq.p50).toFixed(3)})`,
      met: interleavedRatio <= COST_TARGET,
    },
    {
      name: 'the same, in alternating phases (the subscribed phases also carry their deliveries\' work)',
      value: `mean ${ms(mean(loud))} vs ${ms(mean(quiet))} ms = ${meanRatio.toFixed(3)} (p50 ${ms(l.p50)} vs ${ms(q.p50)} ms = ${p50Ratio.toFixed(3)}; per round ${perRound.map((x) => x.toFixed(2)).join(', ')})`,
      met: null,
    },
    {
      name: 'webhook attempt ids delivered twice',
      value: `${r.receiver.duplicateAttempts} of ${r.receiver.requests} requests`,
      met: r.receiver.duplicateAttempts === 0,
    },
  ];
  const md = [
    `Two Paygate processes (node A, node B) in server mode on one database: ${r.databaseNote}; PAYGATE_WEBHOOK_ALLOW_PRIVATE=true; a receiver in the bench process on 127.0.0.1 answering 204. ` +
      'The change is an invoice finalization (`POST /v1/invoices/{id}/finalize` of a draft made in bulk beforehand, event `invoice.finalized`), sent to A and B alternately over keep-alive connections; the event names the invoice, which ties each delivery to its request. ' +
      'Times are on the bench clock; "from the response" is at most the commit-to-delivery time (the commit precedes the response), "from the request start" at least it.',
    '',
    '| measure | value |',
    '|---|---|',
    `| (a) burst | ${r.burst.count} finalizations, 16 at a time: committed in ${fmt(r.burst.commitSeconds, 2)} s (${fmt(commitsPerSecond, 0)}/s), all delivered ${fmt(r.burst.seconds, 2)} s after the first request: **${fmt(eventsPerSecond, 0)} events/s**; drain after the last commit ${ms(r.burst.drainMs)} ms |`,
    `| (b) steady | ${fmt(achievedRate, 0)} finalizations/s for ${fmt(r.steady.seconds, 1)} s (${r.steady.made} events); finalize latency p50 ${ms(r.steady.request.p50)} / p99 ${ms(r.steady.request.p99)} ms |`,
    `| (b) commit -> delivery, from the response | p50 **${ms(lower.p50)}** / p99 **${ms(lower.p99)}** / max ${ms(lower.max)} ms |`,
    `| (b) commit -> delivery, from the request start | p50 ${ms(upper.p50)} / p99 ${ms(upper.p99)} / max ${ms(upper.max)} ms |`,
    `| (b) stages (database clock) | event written -> fanned out p50 ${ms(Number(st.fan_p50))} / p99 ${ms(Number(st.fan_p99))} ms; fanned out -> first attempt started p50 ${ms(Number(st.claim_p50))} / p99 ${ms(Number(st.claim_p99))} ms; attempt (connect to answer) p50 ${ms(Number(st.attempt_p50))} / p99 ${ms(Number(st.attempt_p99))} ms |`,
    `| (c) interleaved, without an endpoint | ${r.interleaved.quiet.length} finalizations: mean ${ms(mean(r.interleaved.quiet))}, p50 ${ms(iq.p50)}, p99 ${ms(iq.p99)} ms |`,
    `| (c) interleaved, with a subscribed endpoint | ${r.interleaved.loud.length} finalizations: mean ${ms(mean(r.interleaved.loud))}, p50 ${ms(il.p50)}, p99 ${ms(il.p99)} ms |`,
    `| (c) interleaved ratio | mean **${interleavedRatio.toFixed(3)}**, p50 ${(il.p50 / iq.p50).toFixed(3)} |`,
    `| (c') phases, without an endpoint | ${quiet.length} finalizations, 4 at a time: mean ${ms(mean(quiet))}, p50 ${ms(q.p50)}, p99 ${ms(q.p99)} ms |`,
    `| (c') phases, with a subscribed endpoint | ${loud.length} finalizations, 4 at a time: mean ${ms(mean(loud))}, p50 ${ms(l.p50)}, p99 ${ms(l.p99)} ms |`,
    `| (c') phases ratio | mean ${meanRatio.toFixed(3)}, p50 ${p50Ratio.toFixed(3)}; per round (mean) ${perRound.map((x) => x.toFixed(3)).join(', ')} |`,
    `| outbox | unsubscribed organization: ${r.outbox.quiet_events} events written, ${r.outbox.quiet_deliveries} deliveries; subscribed: ${r.outbox.loud_events} events, ${r.outbox.loud_deliveries} deliveries |`,
    `| receiver | ${r.receiver.requests} requests, ${r.receiver.duplicateAttempts} with an attempt id seen before; attempts by outcome ${JSON.stringify(Object.fromEntries(r.attemptsByOutcome.map((x) => [x.outcome ?? 'in flight', x.n])))} |`,
    '',
    '- Every emitting change writes its event to the outbox whether or not an endpoint subscribes (one INSERT in its transaction), so both organizations run the same statements on the request path. (c) interleaves them on the same connections (4 at a time), so the deliveries running meanwhile weigh on both alike: the ratio is the request path\'s own. (c\') runs them in alternating phases, a subscribed phase\'s deliveries finished before the next phase: its ratio adds the fan-out and delivery work that shares the nodes, the database and the cores with the requests.',
    `- Knobs: BENCH_WEBHOOK_BURST=${ctx.burst}, BENCH_WEBHOOK_RATE=${ctx.rate}, BENCH_WEBHOOK_SECONDS=${ctx.seconds}, BENCH_WEBHOOK_COST_REQUESTS=${ctx.costRequests}, BENCH_ROUNDS=${ctx.rounds}.`,
    '',
  ];
  return {
    title: 'Webhook delivery with two nodes',
    markdown: md,
    targets,
    console: [
      `webhooks: burst ${fmt(eventsPerSecond, 0)} events/s (${r.burst.count}, committed ${fmt(commitsPerSecond, 0)}/s, drain ${ms(r.burst.drainMs)} ms); ` +
        `steady ${fmt(achievedRate, 0)}/s: commit->delivery p50 ${ms(lower.p50)}-${ms(upper.p50)} p99 ${ms(lower.p99)}-${ms(upper.p99)} ms; ` +
        `request cost ratio interleaved ${interleavedRatio.toFixed(3)}, phases ${meanRatio.toFixed(3)}; duplicate attempt ids ${r.receiver.duplicateAttempts}`,
    ],
  };
}
