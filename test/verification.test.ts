/** Verification outcomes in SPEC §4's order, their headers, and what each costs the database. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeKeyRow, createOrgKey, createOrgWithKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { checksum, formatToken, newKeyId } from '../src/keys/token.js';
import { BASE62 } from '../src/ids.js';

function randomBase62(n: number): string {
  return Array.from(randomBytes(n), (b) => BASE62[b % 62]).join('');
}

/** A token of the right shape and checksum with a random id Paygate never minted. */
function forgedToken(): string {
  const body = `sk_${randomBase62(20)}.${randomBase62(43)}`;
  return body + checksum(body);
}

describe('API key verification', () => {
  let t: TestApp;
  let org: OrgWithKey;
  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['client:read', 'api_key:*']);
  });
  afterAll(async () => t?.close());

  const whoami = (authorization: string | undefined) =>
    t.request('GET', '/v1/auth/whoami', { headers: authorization === undefined ? {} : { authorization } });

  it('no credential is 401 missing_credentials with WWW-Authenticate', async () => {
    const result = await whoami(undefined);
    expectProblem(result, 401, 'missing_credentials');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('the Bearer scheme name is case-insensitive', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) expectStatus(await whoami(`${scheme} ${org.token}`), 200);
  });

  it.each([
    ['another scheme', (tok: string) => `Basic ${tok}`],
    ['no value', () => 'Bearer'],
    ['empty value', () => 'Bearer '],
    ['truncated token', (tok: string) => `Bearer ${tok.slice(0, -1)}`],
    ['token with a trailing character', (tok: string) => `Bearer ${tok}x`],
    ['garbage', () => 'Bearer hello'],
    ['a bad checksum', (tok: string) => `Bearer ${tok.slice(0, -6)}000000`],
    ['a changed secret character', (tok: string) => `Bearer ${tok.slice(0, 30)}${tok[30] === 'A' ? 'B' : 'A'}${tok.slice(31)}`],
    ['a forged id with a valid checksum', () => `Bearer ${forgedToken()}`],
  ])('%s is 401 invalid_api_key with WWW-Authenticate', async (_name, make) => {
    const result = await whoami(make(org.token));
    expectProblem(result, 401, 'invalid_api_key');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('a minted id with a wrong secret is invalid_api_key, not a hint that the id exists', async () => {
    const other = formatToken(org.keyId); // right id, fresh (wrong) secret, valid checksum
    expectProblem(await whoami(`Bearer ${other}`), 401, 'invalid_api_key');
  });

  it('a JWT-shaped bearer that fails verification is 401 invalid_session', async () => {
    expectProblem(await whoami('Bearer eyJhbGciOiJIUzI1NiJ9.eyJzaWQiOiJ4In0.c2lnbmF0dXJl'), 401, 'invalid_session');
  });

  it('malformed tokens, bad checksums and forged ids cost no database query', async () => {
    await whoami(`Bearer ${org.token}`); // warm
    const before = t.db.stats.queries;
    const lookupsBefore = t.services.verifier.stats.databaseLookups;
    for (let i = 0; i < 50; i++) {
      await whoami(`Bearer ${forgedToken()}`);
      await whoami('Bearer sk_tooshort');
      await whoami(`Bearer ${org.token.slice(0, -6)}zzzzzz`);
    }
    expect(t.services.verifier.stats.databaseLookups).toBe(lookupsBefore);
    // Bursts of invalid keys write one aggregated audit event per source (a few statements), never one per request.
    expect(t.db.stats.queries - before).toBeLessThan(20);
  });

  it('a minted but unknown id is looked up once, then served from the negative cache', async () => {
    const unknown = formatToken(newKeyId(t.services.peppers.idTagKey));
    const before = t.services.verifier.stats.databaseLookups;
    for (let i = 0; i < 10; i++) expectProblem(await whoami(`Bearer ${unknown}`), 401, 'invalid_api_key');
    expect(t.services.verifier.stats.databaseLookups - before).toBe(1);
  });

  it('a valid key is verified from the cache after its first use', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    const before = t.services.verifier.stats.databaseLookups;
    for (let i = 0; i < 10; i++) expectStatus(await whoami(`Bearer ${key.secret}`), 200);
    expect(t.services.verifier.stats.databaseLookups - before).toBe(1);
  });

  it('HEAD of a protected route is authorized like its GET, once per request', async () => {
    // The auth hook is bound to each route as Fastify adds it, and Fastify adds the HEAD twin of every GET.
    expect((await t.request('HEAD', '/v1/auth/whoami')).status).toBe(401);
    const token = (await createOrgKey(t, org.organizationId, ['client:read'])).secret!;
    expectStatus(await whoami(`Bearer ${token}`), 200);
    const hits = t.services.verifier.stats.cacheHits;
    const head = await t.request('HEAD', '/v1/auth/whoami', { headers: { authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
    expect(t.services.verifier.stats.cacheHits - hits).toBe(1);
  });

  it('needs no promise when no I/O is needed: malformed, forged, and cached keys are decided at once; a first use reads', async () => {
    const token = (await createOrgKey(t, org.organizationId, ['client:read'])).secret!;
    const verifier = t.services.verifier;
    const first = verifier.verify(token, '127.0.0.1');
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toMatchObject({ ok: true });
    const cached = verifier.verify(token, '127.0.0.1');
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ ok: true, secret: 'current' });
    const forged = formatToken('A'.repeat(20));
    const wrongBody = `${token.slice(0, 24)}${'x'.repeat(43)}`;
    const wrongSecret = wrongBody + checksum(wrongBody);
    for (const token of ['sk_short', forged, wrongSecret]) {
      const outcome = verifier.verify(token, '127.0.0.1');
      expect(outcome).not.toBeInstanceOf(Promise);
      expect(outcome).toMatchObject({ ok: false, code: 'invalid_api_key' });
    }
  });

  it("a node's own change is applied once: the echo of its NOTIFY does not invalidate again", async () => {
    // Regression: every change was applied twice on the node that made it, by settle and again by
    // its NOTIFY's echo, and an echo arriving after the change returned made an overlapping first
    // use uncacheable (a second database lookup for an unchanged key). An echo may still overtake
    // settle (then it is applied too, both before the change returns; on a loaded machine that is
    // half of them): 1 or 2 per change, and 1 for some. Before the fix it was 2 for every one.
    const bus = t.services.bus;
    // Waits until this node has taken in every change committed so far. Counting notifications
    // instead raced: the echo of an earlier test's change, still in flight, was counted as this one's.
    const allSeen = async () => {
      const [row] = await t.db.query<{ max: number }>('SELECT coalesce(max(seq), 0)::int AS max FROM invalidations');
      const max = row!.max;
      const deadline = Date.now() + 5_000;
      while (bus.seenSeq < max && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(bus.seenSeq).toBeGreaterThanOrEqual(max);
    };
    await allSeen();
    const applied = new Map<string, number>();
    bus.onInvalidate((inv) => applied.set(inv.subject, (applied.get(inv.subject) ?? 0) + 1));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push((await createOrgKey(t, org.organizationId, ['client:read'])).id);
      await allSeen();
    }
    const counts = ids.map((id) => applied.get(id) ?? 0);
    for (const count of counts) expect([1, 2]).toContain(count);
    expect(counts.filter((c) => c === 1).length).toBeGreaterThan(0);
  });

  it('a change this node committed but never settled (its COMMIT answer lost) still invalidates through its echo', async () => {
    // The echo is skipped only for what settle applied: a node that never learnt its commit went
    // through must not keep serving the key it changed from its cache.
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    expectStatus(await whoami(`Bearer ${key.secret}`), 200); // cached now
    const bus = t.services.bus;
    const received = bus.stats.received;
    // Published and committed, as the unit of work does, but settle never runs.
    await t.db.transaction((tx) => bus.publishWithin(tx, [{ kind: 'api_key', subject: key.id }]));
    const deadline = Date.now() + 5_000;
    while (bus.stats.received === received && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const before = t.services.verifier.stats.databaseLookups;
    expectStatus(await whoami(`Bearer ${key.secret}`), 200);
    expect(t.services.verifier.stats.databaseLookups - before).toBe(1);
  });

  it('concurrent first uses of one key cost a single database lookup', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    const before = t.services.verifier.stats.databaseLookups;
    // Twenty verifications started in the same tick, as when a hot key's cache entry expires under load.
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => t.services.verifier.verify(key.secret!, '127.0.0.1')));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(t.services.verifier.stats.databaseLookups - before).toBe(1);
  });

  it('a verification that starts after an invalidation never joins a read that began before it', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    const before = t.services.verifier.stats.databaseLookups;
    const early = t.services.verifier.verify(key.secret!, '127.0.0.1'); // its read is in flight
    t.services.bus.generation++; // an invalidation arrives now (e.g. a revocation on another node)
    const late = t.services.verifier.verify(key.secret!, '127.0.0.1');
    await Promise.all([early, late]);
    // The late one read the database itself instead of taking the early read's (possibly stale) result.
    expect(t.services.verifier.stats.databaseLookups - before).toBe(2);
  });

  it('while the invalidation channel is down, the cache is not trusted', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    await whoami(`Bearer ${key.secret}`);
    t.services.bus.distrust('test: simulated lost channel');
    expect(t.services.bus.trusted).toBe(false);
    // A change made behind the node's back (no invalidation delivered) is still seen at once.
    await t.db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [key.id]);
    expectProblem(await whoami(`Bearer ${key.secret}`), 401, 'api_key_revoked');
    // The channel comes back by itself.
    for (let i = 0; i < 100 && !t.services.bus.trusted; i++) await new Promise((r) => setTimeout(r, 50));
    expect(t.services.bus.trusted).toBe(true);
  });

  it('order: a revoked key with the wrong secret is invalid_api_key; with the right one api_key_revoked', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    await t.request('POST', `/v1/api-keys/${key.id}/revoke`, { token: org.token });
    expectProblem(await whoami(`Bearer ${formatToken(key.id)}`), 401, 'invalid_api_key');
    expectProblem(await whoami(`Bearer ${key.secret}`), 401, 'api_key_revoked');
  });

  it('order: a revoked and expired key is api_key_revoked; an expired key outside its IPs is api_key_expired', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { allowedIps: ['10.9.9.9'] });
    await changeKeyRow(t, "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1", key.id);
    expectProblem(await whoami(`Bearer ${key.secret}`), 401, 'api_key_expired');
    await changeKeyRow(t, 'UPDATE api_keys SET revoked_at = now() WHERE id = $1', key.id);
    expectProblem(await whoami(`Bearer ${key.secret}`), 401, 'api_key_revoked');
  });

  it('a client address outside allowedIps is 403 ip_not_allowed; inside it passes (IPv4 and IPv6)', async () => {
    const outside = await createOrgKey(t, org.organizationId, ['client:read'], { allowedIps: ['10.0.0.0/8', '2001:db8::/32'] });
    expectProblem(await whoami(`Bearer ${outside.secret}`), 403, 'ip_not_allowed');
    const inside = await createOrgKey(t, org.organizationId, ['client:read'], { allowedIps: ['127.0.0.0/8', '::1'] });
    expectStatus(await whoami(`Bearer ${inside.secret}`), 200);
  });

  it('X-Forwarded-For is ignored unless the proxy is trusted', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { allowedIps: ['203.0.113.7'] });
    const spoofed = await t.request('GET', '/v1/auth/whoami', { token: key.secret, headers: { 'x-forwarded-for': '203.0.113.7' } });
    expectProblem(spoofed, 403, 'ip_not_allowed');
    const behindProxy = await startPaygate({ env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
    try {
      const org2 = await createOrgWithKey(behindProxy, ['client:read']);
      const key2 = await createOrgKey(behindProxy, org2.organizationId, ['client:read'], { allowedIps: ['203.0.113.7'] });
      const forwarded = await behindProxy.request('GET', '/v1/auth/whoami', { token: key2.secret, headers: { 'x-forwarded-for': '203.0.113.7' } });
      expectStatus(forwarded, 200);
    } finally {
      await behindProxy.close();
    }
  });

  it('a key over its rate limit gets 429 rate_limited with Retry-After', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { rateLimit: { requests: 3, windowSeconds: 60 } });
    for (let i = 0; i < 3; i++) expectStatus(await whoami(`Bearer ${key.secret}`), 200);
    const limited = await whoami(`Bearer ${key.secret}`);
    expectProblem(limited, 429, 'rate_limited');
    const retry = Number(limited.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
  });

  it('a missing scope is 403 insufficient_scope naming it, with the RFC 6750 header', async () => {
    const key = await createOrgKey(t, org.organizationId, ['client:read']);
    const result = await t.request('GET', '/v1/audit-events', { token: key.secret });
    expectProblem(result, 403, 'insufficient_scope');
    expect(result.body.requiredScope).toBe('audit:read');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope", scope="audit:read"');
  });
});
