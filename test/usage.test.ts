/**
 * Usage per key and per secret, and rotation that completes on evidence (SPEC §12), on a real
 * server and database: counts by outcome and secret, the key object's evidence fields, the usage
 * routes and their bad inputs, end-grace, and the grace sweep (idle and expired) at a given time.
 * Cluster behaviour (node A counts, node B reads; end-grace on A refused on B; idle retirement across
 * nodes) is in usage-cluster.test.ts; the aggregator's memory bound and retention in usage-units.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatToken } from '../src/keys/token.js';
import { USAGE_OUTCOMES } from '../src/usage/aggregator.js';
import { changeKeyRow, createOrgKey, createOrgWithKey, createSystemKey, createUser, expectProblem, expectStatus, login, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

const UA = 'usage-test/1.0';

describe('usage per key and per secret (SPEC §12)', () => {
  let t: TestApp;
  let org: OrgWithKey;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
  });
  afterAll(async () => t?.close());

  const get = (path: string, token = org.token, headers: Record<string, string> = { 'user-agent': UA }) => t.request('GET', path, { token, headers });

  it('every verification of a known key is counted by outcome and by secret, with the last address and user agent per secret', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const token = key.secret!;
    expectStatus(await get('/v1/api-keys', token), 200); // ok, current secret
    expectStatus(await get('/v1/api-keys', token), 200);
    expectProblem(await get('/v1/clients', token), 403, 'insufficient_scope'); // secret matched, scope missing
    // A wrong secret for this existing id: a well-formed token of the same id.
    expectProblem(await get('/v1/api-keys', formatToken(key.id)), 401, 'invalid_api_key');
    // Rotation with a grace period: the old token is now the previous secret.
    const rotated = await t.request('POST', `/v1/api-keys/${key.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expectStatus(rotated, 200);
    expectStatus(await get('/v1/api-keys', token, { 'user-agent': 'old-client/2' }), 200); // ok, previous secret
    expectStatus(await get('/v1/api-keys', rotated.body.secret), 200); // ok, the new current secret
    await t.services.usage.flush();

    const usage = await get(`/v1/api-keys/${key.id}/usage?granularity=minute`);
    expectStatus(usage, 200);
    expect(usage.body).toMatchObject({ object: 'api_key_usage', keyId: key.id, granularity: 'minute' });
    expect(Object.keys(usage.body.totals.outcomes).sort()).toEqual([...USAGE_OUTCOMES].sort());
    expect(usage.body.totals).toEqual({
      total: 6,
      outcomes: { ok: 4, invalid_api_key: 1, api_key_revoked: 0, api_key_expired: 0, ip_not_allowed: 0, rate_limited: 0, insufficient_scope: 1, api_key_quarantined: 0 },
      bySecret: { current: 4, previous: 1 },
    });
    // Every bucket of the range is listed (a day of minutes), each with every outcome.
    expect(usage.body.buckets.length).toBeGreaterThanOrEqual(1440);
    for (const bucket of usage.body.buckets) expect(Object.keys(bucket.outcomes)).toHaveLength(USAGE_OUTCOMES.length);
    expect(usage.body.buckets.reduce((n: number, b: { total: number }) => n + b.total, 0)).toBe(6);

    const view = await get(`/v1/api-keys/${key.id}`);
    expectStatus(view, 200);
    expect(view.body).toMatchObject({ lastUsedIp: '127.0.0.1', lastUserAgent: UA, previousSecretLastUsedIp: '127.0.0.1', previousSecretLastUserAgent: 'old-client/2' });
    expect(view.body.lastUsedAt).not.toBeNull();
    expect(Date.parse(view.body.previousSecretLastUsedAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('refusals are counted: revoked, expired, outside the allowlist, rate limited, quarantined', async () => {
    const revoked = await createOrgKey(t, org.organizationId, ['api_key:read']);
    expectStatus(await t.request('POST', `/v1/api-keys/${revoked.id}/revoke`, { token: org.token }), 200);
    expectProblem(await get('/v1/api-keys', revoked.secret!), 401, 'api_key_revoked');
    const expired = await createOrgKey(t, org.organizationId, ['api_key:read']);
    await changeKeyRow(t, "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1", expired.id);
    expectProblem(await get('/v1/api-keys', expired.secret!), 401, 'api_key_expired');
    const fenced = await createOrgKey(t, org.organizationId, ['api_key:read'], { allowedIps: ['10.0.0.0/8'] });
    expectProblem(await get('/v1/api-keys', fenced.secret!), 403, 'ip_not_allowed');
    const limited = await createOrgKey(t, org.organizationId, ['api_key:read'], { rateLimit: { requests: 1, windowSeconds: 3600 } });
    expectStatus(await get('/v1/api-keys', limited.secret!), 200);
    expectProblem(await get('/v1/api-keys', limited.secret!), 429, 'rate_limited');
    // Quarantined (SPEC §13): reads pass, anything else is refused after the scope check.
    const quarantined = await createOrgKey(t, org.organizationId, ['api_key:*']);
    await changeKeyRow(t, 'UPDATE api_keys SET leaked_at = now(), quarantined_at = now() WHERE id = $1', quarantined.id);
    expectStatus(await get('/v1/api-keys', quarantined.secret!), 200);
    expectProblem(await t.request('POST', `/v1/api-keys/${quarantined.id}/rotate`, { token: quarantined.secret!, body: {} }), 403, 'api_key_quarantined');
    await t.services.usage.flush();

    const outcomesOf = async (id: string) => (await get(`/v1/api-keys/${id}/usage?granularity=hour`)).body.totals.outcomes;
    expect(await outcomesOf(revoked.id)).toMatchObject({ api_key_revoked: 1, ok: 0 });
    expect(await outcomesOf(expired.id)).toMatchObject({ api_key_expired: 1, ok: 0 });
    expect(await outcomesOf(fenced.id)).toMatchObject({ ip_not_allowed: 1, ok: 0 });
    expect(await outcomesOf(limited.id)).toMatchObject({ rate_limited: 1, ok: 1 });
    expect(await outcomesOf(quarantined.id)).toMatchObject({ api_key_quarantined: 1, ok: 1 });
  });

  it('tokens of unknown keys are not counted against anyone; a key\'s figures are written once per bucket and granularity', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    for (let i = 0; i < 20; i++) expectStatus(await get('/v1/api-keys', key.secret!), 200);
    expectProblem(await get('/v1/api-keys', formatToken('0'.repeat(20))), 401, 'invalid_api_key');
    await t.services.usage.flush();
    const rows = await t.db.query<{ granularity: string; rows: number; total: string }>(
      'SELECT granularity, count(*)::int AS rows, sum(total) AS total FROM api_key_usage WHERE key_id = $1 GROUP BY granularity ORDER BY granularity',
      [key.id],
    );
    // Every granularity (rolled up at write time) holds the 20, in one row per bucket the requests
    // fell in: one, or two when they straddled a minute (or hour, day) boundary on a loaded machine.
    expect(rows.map((r) => [r.granularity, Number(r.total)])).toEqual([
      ['day', 20],
      ['hour', 20],
      ['minute', 20],
    ]);
    for (const r of rows) expect(r.rows, r.granularity).toBeLessThanOrEqual(2);
    const strangers = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM api_key_usage WHERE key_id = '00000000000000000000'");
    expect(strangers[0]!.n).toBe(0);
  });

  it('GET /v1/usage lists the keys by requests with totals, at both mounts, and only the organization\'s own', async () => {
    const other = await createOrgWithKey(t, ['api_key:*']);
    const busy = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const quiet = await createOrgKey(t, org.organizationId, ['api_key:read']);
    for (let i = 0; i < 5; i++) expectStatus(await get('/v1/api-keys', busy.secret!), 200);
    expectStatus(await get('/v1/api-keys', quiet.secret!), 200);
    expectStatus(await get('/v1/api-keys', other.token), 200);
    await t.services.usage.flush();

    for (const path of ['/v1/usage', `/v1/organizations/${org.organizationId}/usage`]) {
      const list = await get(path);
      expectStatus(list, 200);
      expect(list.body).toMatchObject({ object: 'usage', organizationId: org.organizationId });
      const ids = list.body.data.map((k: { keyId: string }) => k.keyId);
      expect(ids.indexOf(busy.id)).toBeLessThan(ids.indexOf(quiet.id));
      expect(ids).not.toContain(other.keyId);
      const totals = list.body.data.map((k: { total: number }) => k.total);
      expect(totals).toEqual([...totals].sort((a: number, b: number) => b - a));
      expect(list.body.totals.total).toBe(totals.reduce((a: number, b: number) => a + b, 0));
      expect(list.body.data.find((k: { keyId: string }) => k.keyId === busy.id)).toMatchObject({ total: 5, outcomes: { ok: 5 } });
    }
    // Another organization's key: not found, never its figures.
    expectProblem(await get(`/v1/api-keys/${other.keyId}/usage`), 404, 'not_found');
  });

  it('bad query parameters are 400 validation_error', async () => {
    const base = `/v1/api-keys/${org.keyId}/usage`;
    expectProblem(await get(`${base}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z`), 400, 'validation_error');
    expectProblem(await get(`${base}?granularity=week`), 400, 'validation_error');
    expectProblem(await get(`${base}?granularity=minute&from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z`), 400, 'validation_error');
    expectProblem(await get(`${base}?from=yesterday`), 400, 'validation_error');
    expectProblem(await get('/v1/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z'), 400, 'validation_error');
    // Defaults: the last 24 hours by hour.
    const defaults = await get(base);
    expectStatus(defaults, 200);
    expect(defaults.body.granularity).toBe('hour');
    expect(defaults.body.buckets.length).toBeGreaterThanOrEqual(24);
    expect(defaults.body.buckets.length).toBeLessThanOrEqual(25);
  });

  it('system keys: their usage and end-grace for global admins at /v1/system/...', async () => {
    const admin = await createUser(t, { globalAdmin: true });
    const session = await login(t, admin.email, admin.password);
    const system = await createSystemKey(t, ['health:read']);
    expectStatus(await t.request('GET', '/v1/system/health', { token: system.token }), 200);
    await t.services.usage.flush();
    const usage = await t.request('GET', `/v1/system/api-keys/${system.keyId}/usage`, { token: session.token });
    expectStatus(usage, 200);
    expect(usage.body.totals).toMatchObject({ total: 1, outcomes: { ok: 1 } });
    const list = await t.request('GET', '/v1/system/usage', { token: session.token });
    expectStatus(list, 200);
    expect(list.body).toMatchObject({ object: 'usage', organizationId: null });
    expect(list.body.data.map((k: { keyId: string }) => k.keyId)).toContain(system.keyId);
    expectProblem(await t.request('POST', `/v1/system/api-keys/${system.keyId}/end-grace`, { token: session.token, headers: {} }), 409, 'conflict');
    // An organization key cannot read a system key's figures, nor a system key its own.
    expectProblem(await get(`/v1/system/api-keys/${system.keyId}/usage`), 403, 'wrong_key_tier');
    expectProblem(await get(`/v1/api-keys/${system.keyId}/usage`), 404, 'not_found');
  });

  it('a key without api_key:read cannot read usage', async () => {
    const reader = await createOrgKey(t, org.organizationId, ['client:read']);
    expectProblem(await get(`/v1/api-keys/${org.keyId}/usage`, reader.secret!), 403, 'insufficient_scope');
    expectProblem(await get('/v1/usage', reader.secret!), 403, 'insufficient_scope');
  });
});

describe('rotation that completes on evidence (SPEC §12)', () => {
  let t: TestApp;
  let org: OrgWithKey;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*']);
  });
  afterAll(async () => t?.close());

  const graceEnds = async (keyId: string) =>
    (await t.db.query<{ reason: string; actor: string }>(
      "SELECT details->>'graceEnded' AS reason, actor_type AS actor FROM audit_events WHERE target->>'id' = $1 AND details ? 'graceEnded' ORDER BY seq",
      [keyId],
    )).map((r) => `${r.reason} (${r.actor})`);

  const rotate = async (keyId: string, body: Record<string, unknown>) => {
    const result = await t.request('POST', `/v1/api-keys/${keyId}/rotate`, { token: org.token, body });
    expectStatus(result, 200);
    return result.body as { secret: string; previousSecretExpiresAt: string | null };
  };

  it('end-grace ends the previous secret now, audited "by request"; 409 without a previous secret', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    expectProblem(await t.request('POST', `/v1/api-keys/${key.id}/end-grace`, { token: org.token }), 409, 'conflict');
    const next = await rotate(key.id, { gracePeriodMinutes: 60 });
    expectStatus(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 200); // the previous secret works
    const ended = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys/${key.id}/end-grace`, { token: org.token });
    expectStatus(ended, 200);
    expect(ended.body).toMatchObject({ id: key.id, previousSecretExpiresAt: null, previousSecretLastUsedAt: null, previousSecretLastUsedIp: null });
    expectProblem(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 401, 'invalid_api_key');
    expectStatus(await t.request('GET', '/v1/api-keys', { token: next.secret }), 200);
    expectProblem(await t.request('POST', `/v1/api-keys/${key.id}/end-grace`, { token: org.token }), 409, 'conflict');
    expect(await graceEnds(key.id)).toEqual(['by request (api_key)']);
  });

  it('end-grace needs api_key:update and stays within the organization', async () => {
    const reader = await createOrgKey(t, org.organizationId, ['api_key:read']);
    expectProblem(await t.request('POST', `/v1/api-keys/${org.keyId}/end-grace`, { token: reader.secret! }), 403, 'insufficient_scope');
    const other = await createOrgWithKey(t, ['api_key:*']);
    await t.request('POST', `/v1/api-keys/${other.keyId}/rotate`, { token: other.token, body: { gracePeriodMinutes: 600 } });
    expectProblem(await t.request('POST', `/v1/api-keys/${other.keyId}/end-grace`, { token: org.token }), 404, 'not_found');
  });

  it('rotate refuses retireWhenIdleMinutes outside 1..1440', async () => {
    for (const value of [0, 1441, 1.5]) {
      expectProblem(await t.request('POST', `/v1/api-keys/${org.keyId}/rotate`, { token: org.token, body: { retireWhenIdleMinutes: value } }), 400, 'validation_error');
    }
  });

  it('retireWhenIdleMinutes: the grace ends once the previous secret is idle that long after the new secret\'s first use, audited "idle", once', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const next = await rotate(key.id, { gracePeriodMinutes: 600, retireWhenIdleMinutes: 1 });
    // The new secret unused: however long the previous one idles, the grace runs (until it expires).
    expect(await t.services.usage.sweepGraces(new Date(Date.now() + 300 * 60_000))).toEqual({ idle: 0, expired: 0 });
    expectStatus(await t.request('GET', '/v1/api-keys', { token: next.secret }), 200);
    expectStatus(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 200); // still in use
    await t.services.usage.flush();
    const seen = (await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body;
    const lastOld = Date.parse(seen.previousSecretLastUsedAt);
    expect(lastOld).toBeGreaterThan(Date.now() - 60_000);
    // Not idle for a minute yet: nothing ends.
    expect(await t.services.usage.sweepGraces(new Date(lastOld + 59_000))).toEqual({ idle: 0, expired: 0 });
    expectStatus(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 200);
    await t.services.usage.flush();
    const lastOld2 = Date.parse((await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body.previousSecretLastUsedAt);
    // Idle a minute after its last use: it ends, once, whoever sweeps again.
    expect(await t.services.usage.sweepGraces(new Date(lastOld2 + 61_000))).toEqual({ idle: 1, expired: 0 });
    expect(await t.services.usage.sweepGraces(new Date(lastOld2 + 62_000))).toEqual({ idle: 0, expired: 0 });
    expectProblem(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 401, 'invalid_api_key');
    expectStatus(await t.request('GET', '/v1/api-keys', { token: next.secret }), 200);
    expect(await graceEnds(key.id)).toEqual(['idle (system)']);
    const view = (await t.request('GET', `/v1/api-keys/${key.id}`, { token: org.token })).body;
    expect(view).toMatchObject({ previousSecretExpiresAt: null, previousSecretLastUsedAt: null });
  });

  it('a grace that runs out is audited "expired" by the sweep', async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const next = await rotate(key.id, { gracePeriodMinutes: 1, retireWhenIdleMinutes: 1440 });
    const expiresAt = Date.parse(next.previousSecretExpiresAt!);
    expect(await t.services.usage.sweepGraces(new Date(expiresAt - 1_000))).toEqual({ idle: 0, expired: 0 });
    expect(await t.services.usage.sweepGraces(new Date(expiresAt + 1_000))).toEqual({ idle: 0, expired: 1 });
    expect(await graceEnds(key.id)).toEqual(['expired (system)']);
  });
});
