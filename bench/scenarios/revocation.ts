/**
 * Revocation propagation between two nodes on one PostgreSQL database.
 *
 * Two Paygate processes (A and B) run in server mode on the same database with the same pepper and
 * session secret: a scratch database on the DATABASE_URL server, or, without DATABASE_URL, on an
 * embedded PostgreSQL the bench starts for this (embedded mode itself is one node by design).
 * Each trial: create a key on A; let B verify it (a miss, then a cache hit: warm on B); revoke it on A
 * (POST /v1/api-keys/{id}/revoke, timed); right after A's response, poll B with the key, one request
 * after another on one keep-alive connection, until B refuses it. Recorded per trial: the revoke's
 * latency on A, the lag from A's response to B's first refusal, and how many requests B still
 * accepted after A had answered (the issue's requirement: none).
 */
import { checkInterrupted } from '../lib/cleanup.js';
import { fmt, log, ms, quantiles, sleep, type Section, type Target } from '../lib/common.js';
import type { PaygateNode } from '../lib/children.js';
import { startTwoNodeCluster } from '../lib/cluster.js';
import { createKey, createOrganization, expectStatus, HttpClient, login, systemHealth } from '../lib/http.js';

const LAG_TARGET_MS = 50;
/** A trial gives up polling B after this long (then counts as not propagated). */
const POLL_TIMEOUT_MS = 2_000;

export interface RevocationContext {
  /** DATABASE_URL (server mode) or null: then an embedded PostgreSQL of the bench's own. */
  databaseUrl: string | null;
  baseEnv: NodeJS.ProcessEnv;
  trials: number;
}

interface Trial {
  revokeMs: number;
  lagMs: number;
  accepted: number;
  polls: number;
  refusal: string;
  warmOnB: boolean | null;
}

export async function runRevocation(ctx: RevocationContext): Promise<Section> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const { a, b, email, password, databaseNote } = await startTwoNodeCluster(
      {
        databaseUrl: ctx.databaseUrl,
        baseEnv: ctx.baseEnv,
        databasePrefix: 'paygate_bench_cluster',
        adminEmail: 'bench-cluster-admin@example.com',
        env: { LOG_LEVEL: 'warn' },
        embeddedDetail: 'src/db/embedded.ts, temporary directory, removed afterwards',
        nodes: [{ name: 'Paygate node A' }, { name: 'Paygate node B' }],
      },
      cleanups,
    );
    const result = await trials(ctx, a, b, email, password);
    return report(ctx, result.trials, databaseNote, result.channel);
  } finally {
    for (const undo of cleanups.reverse()) await undo().catch((e) => log(`revocation cleanup failed: ${String(e)}`));
  }
}

async function trials(ctx: RevocationContext, a: PaygateNode, b: PaygateNode, email: string, password: string) {
  const clientA = new HttpClient(a.baseUrl, 1);
  const clientB = new HttpClient(b.baseUrl, 1);
  const healthB = new HttpClient(b.baseUrl, 1);
  try {
    const session = await login(clientA, email, password);
    const org = await createOrganization(clientA, session, 'Bench cluster', { name: 'cluster admin', scopes: ['api_key:*', 'client:read'] });
    const adminKey = org.initialKey!.secret;
    const out: Trial[] = [];
    log(`revocation: ${ctx.trials} trials (create on A, warm on B, revoke on A, poll B)`);
    for (let i = 0; i < ctx.trials; i++) {
      checkInterrupted();
      const key = await createKey(clientA, adminKey, `lag ${i}`, ['client:read']);
      // Let B hear of the creation (it clears negative-cache entries) before warming, so the entry stays.
      await sleep(5);
      const before = await systemHealth(healthB, session).catch(() => null);
      expectStatus(await clientB.get('/v1/auth/whoami', key.secret), 200, 'whoami on B (warm-up)');
      expectStatus(await clientB.get('/v1/auth/whoami', key.secret), 200, 'whoami on B (warm-up, cached)');
      const after = await systemHealth(healthB, session).catch(() => null);
      const warmOnB = before && after && Number.isFinite(after.hits) ? after.misses - before.misses <= 1 && after.hits - before.hits >= 1 : null;

      const revoke = await clientA.post(`/v1/api-keys/${key.id}/revoke`, {}, adminKey);
      const answeredAt = process.hrtime.bigint();
      expectStatus(revoke, 200, 'revoke on A');
      let accepted = 0;
      let polls = 0;
      let refusal = 'none within timeout';
      let lagMs = NaN;
      for (;;) {
        const r = await clientB.get('/v1/auth/whoami', key.secret);
        polls++;
        const elapsed = Number(process.hrtime.bigint() - answeredAt) / 1e6;
        if (r.status === 200) accepted++;
        else if (r.status === 401) {
          lagMs = elapsed;
          refusal = String(r.body?.code ?? '401');
          break;
        } else throw new Error(`B answered ${r.status} ${JSON.stringify(r.body)} while polling`);
        if (elapsed > POLL_TIMEOUT_MS) break;
      }
      out.push({ revokeMs: revoke.ms, lagMs, accepted, polls, refusal, warmOnB });
    }
    const channel = await systemHealth(healthB, session).then((h) => h.raw?.invalidationChannel ?? null).catch(() => null);
    return { trials: out, channel };
  } finally {
    clientA.close();
    clientB.close();
    healthB.close();
  }
}

function report(ctx: RevocationContext, trials: Trial[], databaseNote: string, channel: unknown): Section {
  const revoke = quantiles(trials.map((t) => t.revokeMs));
  const refused = trials.filter((t) => Number.isFinite(t.lagMs));
  const lag = quantiles(refused.map((t) => t.lagMs));
  const notPropagated = trials.length - refused.length;
  const accepted = trials.reduce((a, t) => a + t.accepted, 0);
  const trialsAccepting = trials.filter((t) => t.accepted > 0).length;
  const acceptedQ = quantiles(trials.map((t) => t.accepted));
  const polls = quantiles(trials.map((t) => t.polls));
  const codes: Record<string, number> = {};
  for (const t of trials) codes[t.refusal] = (codes[t.refusal] ?? 0) + 1;
  const warmKnown = trials.filter((t) => t.warmOnB !== null);
  const warm = warmKnown.filter((t) => t.warmOnB).length;
  const lagP99 = notPropagated > 0 ? Infinity : lag.p99;
  const targets: Target[] = [
    {
      name: `revocation lag between two nodes: p99 < ${LAG_TARGET_MS} ms`,
      value: `p50 ${ms(lag.p50)} ms, p99 ${ms(lag.p99)} ms, max ${ms(lag.max)} ms over ${refused.length} trials${notPropagated ? `; ${notPropagated} trials NOT refused within ${POLL_TIMEOUT_MS} ms` : ''}; revoke on A p50 ${ms(revoke.p50)} / p99 ${ms(revoke.p99)} ms`,
      met: lagP99 < LAG_TARGET_MS,
    },
    {
      name: "no acceptance on B after A's revoke response",
      value: `${accepted} acceptances in ${trials.length} trials (${trialsAccepting} trials with any; per trial p50 ${acceptedQ.p50}, p99 ${acceptedQ.p99}, max ${acceptedQ.max})`,
      met: accepted === 0,
    },
  ];
  const md = [
    `Two Paygate processes (node A, node B) in server mode on one database: ${databaseNote}; same PAYGATE_SECRET_PEPPER and PAYGATE_SESSION_SECRET. ${ctx.trials} trials, each: ` +
      'create a key on A (`POST /v1/api-keys`), verify it twice on B (a miss, then a cache hit), revoke it on A (`POST /v1/api-keys/{id}/revoke`, timed), then poll B (`GET /v1/auth/whoami` with the key, one request after another on one keep-alive connection) until B refuses. ' +
      `Lag = from the end of A's revoke response to the end of B's first refusal (so at least one round trip to B); acceptances = 200s B gave after A had answered. A trial stops polling after ${POLL_TIMEOUT_MS} ms.`,
    '',
    '| measure | p50 | p99 | max |',
    '|---|---:|---:|---:|',
    `| (a) revoke latency on A, ms | ${ms(revoke.p50)} | ${ms(revoke.p99)} | ${ms(revoke.max)} |`,
    `| (b) lag: A's response -> B's first refusal, ms | ${ms(lag.p50)} | ${ms(lag.p99)} | ${ms(lag.max)} |`,
    `| (c) acceptances on B after A's response, per trial | ${acceptedQ.p50} | ${acceptedQ.p99} | ${acceptedQ.max} |`,
    `| polls of B per trial (incl. the refusal) | ${polls.p50} | ${polls.p99} | ${polls.max} |`,
    '',
    `- Acceptances after A's response, all trials: **${accepted}** (${trialsAccepting} of ${trials.length} trials had any).`,
    `- Trials refused within ${POLL_TIMEOUT_MS} ms: ${refused.length} of ${trials.length}. First refusal codes: ${JSON.stringify(codes)}.`,
    `- Key cached on B before the revoke (B's keyCache: one miss then a hit during the warm-up): ${warmKnown.length ? `${warm} of ${warmKnown.length} trials` : 'unknown (GET /v1/system/health gave no counters)'}.`,
    `- B's invalidation channel at the end: \`${JSON.stringify(channel)}\`.`,
    '',
  ];
  return {
    title: 'Revocation propagation between two nodes',
    markdown: md,
    targets,
    console: [
      `revocation: revoke on A p50 ${ms(revoke.p50)} p99 ${ms(revoke.p99)} ms; lag p50 ${ms(lag.p50)} p99 ${ms(lag.p99)} max ${ms(lag.max)} ms; ` +
        `acceptances after A's response ${accepted} (${trialsAccepting}/${trials.length} trials); not refused ${notPropagated}; warm on B ${warm}/${warmKnown.length}; refusals ${JSON.stringify(codes)} (${fmt(trials.length)} trials)`,
    ],
  };
}
