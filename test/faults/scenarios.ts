/**
 * Fault scenarios on real processes, shared by the suite (test/faults/cluster-faults.test.ts, which
 * asserts their outcomes) and the fault report (`npm run faults`, which runs them more often and
 * writes the figures). Each takes a running cluster whose node B reaches PostgreSQL through a
 * pausable TCP proxy, makes the fault real, and returns what happened: statuses, latencies, and
 * every request a revoked key got accepted after its revocation's response.
 */
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { HttpResult } from '../harness.js';
import { request, type ClusterNode } from '../cluster-harness.js';
import type { TcpProxy } from './tcp-proxy.js';

export interface Org {
  organizationId: string;
  token: string;
}

export interface Timed<T = any> {
  result: HttpResult<T>;
  ms: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function timed<T = any>(fn: () => Promise<HttpResult<T>>): Promise<Timed<T>> {
  const t0 = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - t0 };
}

/** A new key of `org`, created through `on`. */
export async function createKey(on: ClusterNode, org: Org, scopes: string[] = ['client:read']): Promise<{ id: string; token: string }> {
  const result = await request(on, 'POST', '/v1/api-keys', { token: org.token, body: { name: `f-${randomBytes(3).toString('hex')}`, scopes } });
  if (result.status !== 201) throw new Error(`creating a key on ${on.id}: ${result.status} ${result.text}`);
  return { id: result.body.id, token: result.body.secret };
}

const whoami = (on: ClusterNode, token: string) => request(on, 'GET', '/v1/auth/whoami', { token });

/** Whether a response is the 503 of SPEC §8: problem+json, service_unavailable, Retry-After. */
export function isUnavailable(result: HttpResult): boolean {
  return (
    result.status === 503 &&
    /^application\/problem\+json/.test(result.headers.get('content-type') ?? '') &&
    result.body?.code === 'service_unavailable' &&
    /^\d+$/.test(result.headers.get('retry-after') ?? '')
  );
}

export interface BlackHoleResult {
  /** Every probe of B with a never-revoked key while its link was black-holed. */
  probes: Array<{ status: number; ms: number; unavailable: boolean }>;
  /** From the start of the black hole to B's first 503. */
  firstUnavailableAfterMs: number | null;
  readyz: { status: number; ms: number; body: any };
  health: { status: number; ms: number };
  /** The revocation of a key B had cached, made on healthy node A during the black hole. */
  revoke: { status: number; ms: number };
  /** Requests with the revoked key answered 2xx after the revoke's response (must be 0). */
  acceptedAfterRevoke: number;
  revokedKeyOnB: number[];
  /** From the end of the black hole until B serves a never-revoked key again. */
  recoveryMs: number | null;
  /** The revoked key on B once recovered (401 api_key_revoked). */
  revokedAfterRecovery: { status: number; code: string | undefined };
}

/**
 * B's database link becomes a black hole (both directions; every socket stays open). B answers
 * from its caches while it can trust them, then 503 within the request bound; /readyz says not
 * ready within a second; a revocation on A holds on B; when the link returns, B recovers by itself.
 */
export async function blackHole(A: ClusterNode, B: ClusterNode, proxy: TcpProxy, org: Org, adminToken: string): Promise<BlackHoleResult> {
  const probe = await createKey(A, org);
  const victim = await createKey(A, org);
  for (const token of [probe.token, victim.token]) {
    const warm = await whoami(B, token);
    if (warm.status !== 200) throw new Error(`warming B: ${warm.status} ${warm.text}`);
  }

  proxy.pause('both');
  const pausedAt = performance.now();
  const probes: BlackHoleResult['probes'] = [];
  let firstUnavailableAfterMs: number | null = null;
  // Probe until two 503s have been seen (the cache-trust window, then the database bound), at most 20 s.
  while (performance.now() - pausedAt < 20_000 && probes.filter((p) => p.unavailable).length < 2) {
    const { result, ms } = await timed(() => whoami(B, probe.token));
    const unavailable = isUnavailable(result);
    probes.push({ status: result.status, ms, unavailable });
    if (unavailable && firstUnavailableAfterMs === null) firstUnavailableAfterMs = performance.now() - pausedAt;
  }
  const ready = await timed(() => request(B, 'GET', '/readyz'));
  const health = await timed(() => request(B, 'GET', '/v1/system/health', { token: adminToken }));

  const revoke = await timed(() => request(A, 'POST', `/v1/api-keys/${victim.id}/revoke`, { token: org.token }));
  const revokedKeyOnB = (await Promise.all([1, 2, 3].map(() => whoami(B, victim.token)))).map((r) => r.status);
  let acceptedAfterRevoke = revokedKeyOnB.filter((s) => s >= 200 && s < 300).length;

  proxy.resume();
  const resumedAt = performance.now();
  let recoveryMs: number | null = null;
  while (performance.now() - resumedAt < 30_000) {
    const again = await whoami(B, probe.token);
    if (again.status === 200) {
      recoveryMs = performance.now() - resumedAt;
      break;
    }
    await sleep(50);
  }
  const after = await whoami(B, victim.token);
  if (after.status >= 200 && after.status < 300) acceptedAfterRevoke++;
  return {
    probes,
    firstUnavailableAfterMs,
    readyz: { status: ready.result.status, ms: ready.ms, body: ready.result.body },
    health: { status: health.result.status, ms: health.ms },
    revoke: { status: revoke.result.status, ms: revoke.ms },
    acceptedAfterRevoke,
    revokedKeyOnB,
    recoveryMs,
    revokedAfterRecovery: { status: after.status, code: after.body?.code },
  };
}

export interface StallResult {
  /** Whether B's backend was seen idle in a transaction holding the cluster-wide locks. */
  stalledHoldingLocks: boolean;
  /** A revocation on healthy node A while B stalls mid-commit. */
  revoke: { status: number; ms: number };
  /** A sign-in on A meanwhile. */
  login: { status: number; ms: number };
  /** The revoked key on A right after the response, and on B (which is cut off). */
  revokedOnA: number;
  revokedOnB: number[];
  acceptedAfterRevoke: number;
  /** What B's own stalled change answered, and whether it rolled back (the key it revoked still works). */
  stalledChange: { status: number; rolledBack: boolean };
}

/**
 * B is cut off in the middle of committing a change: its last statement took the audit chain's
 * and the publish lock, and then its link went dark, so its session sits idle in transaction
 * holding them. A's changes wait for the server to end that session (its idle-in-transaction
 * bound), not for the network: they are delayed by seconds, never hung.
 */
export async function stallMidCommit(
  A: ClusterNode,
  B: ClusterNode,
  proxy: TcpProxy,
  org: Org,
  admin: { email: string; password: string },
  observer: pg.Client,
): Promise<StallResult> {
  const onB = await createKey(A, org);
  const onA = await createKey(A, org);
  for (const token of [onB.token, onA.token]) {
    await whoami(A, token);
    await whoami(B, token);
  }
  // The publish statement is the last one before COMMIT and takes the publish lock; the chain head's
  // row lock was taken just before it.
  const frozen = proxy.pauseWhen('pg_advisory_xact_lock', 'both');
  const stalledChange = request(B, 'POST', `/v1/api-keys/${onB.id}/revoke`, { token: org.token });
  await frozen;
  await sleep(100);
  const [{ n }] = (
    await observer.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity a
        WHERE a.state = 'idle in transaction' AND a.application_name = 'paygate:node-b'
          AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)`,
    )
  ).rows;

  const [revoke, login] = await Promise.all([
    timed(() => request(A, 'POST', `/v1/api-keys/${onA.id}/revoke`, { token: org.token })),
    timed(() => request(A, 'POST', '/v1/auth/login', { body: { email: admin.email, password: admin.password } })),
  ]);
  const revokedOnA = (await whoami(A, onA.token)).status;
  const revokedOnB = (await Promise.all([1, 2].map(() => whoami(B, onA.token)))).map((r) => r.status);
  const stalled = await stalledChange;
  proxy.resume();
  // The stalled change never committed: the key it was revoking still works (on A, which is healthy).
  const stillWorks = (await whoami(A, onB.token)).status === 200;
  const accepted = [revokedOnA, ...revokedOnB].filter((s) => s >= 200 && s < 300).length;
  return {
    stalledHoldingLocks: n > 0,
    revoke: { status: revoke.result.status, ms: revoke.ms },
    login: { status: login.result.status, ms: login.ms },
    revokedOnA,
    revokedOnB,
    acceptedAfterRevoke: accepted,
    stalledChange: { status: stalled.status, rolledBack: stillWorks },
  };
}

export interface WritesUnderFaultResult {
  statuses: Record<number, number>;
  /** Responses that were neither a success nor the 503 of SPEC §8. */
  unexpected: string[];
  /** Whether the node's process was still running afterwards. */
  alive: boolean;
  /** From the end of the fault until a write succeeds again. */
  recoveryMs: number | null;
}

/**
 * Key creations in flight on `node` while `fault` runs (terminating its backends, restarting the
 * database): each either succeeds or fails with 503; the process lives on and recovers by itself.
 */
export async function writesUnderFault(node: ClusterNode, org: Org, fault: () => Promise<void>, options: { rounds?: number; writes?: number } = {}): Promise<WritesUnderFaultResult> {
  const statuses: Record<number, number> = {};
  const unexpected: string[] = [];
  const write = () => request(node, 'POST', '/v1/api-keys', { token: org.token, body: { name: `w-${randomBytes(3).toString('hex')}`, scopes: ['client:read'] } });
  for (let round = 0; round < (options.rounds ?? 5); round++) {
    const inFlight = Array.from({ length: options.writes ?? 20 }, () => write().catch((error: Error) => ({ status: 0, text: error.message }) as HttpResult));
    await sleep(3);
    await fault();
    for (const result of await Promise.all(inFlight)) {
      statuses[result.status] = (statuses[result.status] ?? 0) + 1;
      if (result.status !== 201 && !isUnavailable(result)) unexpected.push(`${result.status} ${result.text}`);
    }
  }
  const faultEnded = performance.now();
  let recoveryMs: number | null = null;
  while (performance.now() - faultEnded < 30_000 && !node.done) {
    const result = await write().catch(() => null);
    if (result?.status === 201) {
      recoveryMs = performance.now() - faultEnded;
      break;
    }
    await sleep(50);
  }
  return { statuses, unexpected, alive: !node.done, recoveryMs };
}
