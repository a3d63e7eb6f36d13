/** API key lifecycle (SPEC §4), as behaviour sentences, over HTTP on a real database. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeKeyRow, createOrgWithKey, expectProblem, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';
import { TOKEN_REGEX } from '../src/keys/token.js';

const ADMIN = ['api_key:*', 'client:*', 'invoice:read', 'organization:read'];

describe('API key lifecycle', () => {
  let t: TestApp;
  let org: OrgWithKey;
  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ADMIN);
  });
  afterAll(async () => t?.close());

  const create = (body: Record<string, unknown>, token = org.token) => t.request('POST', '/v1/api-keys', { token, body });
  const whoami = (token: string) => t.request('GET', '/v1/auth/whoami', { token });

  it('creating a key shows its whole secret once, and never again', async () => {
    const created = await create({ name: 'checkout bot', scopes: ['client:read', 'client:read', 'client:create'], description: 'makes links' });
    expectStatus(created, 201);
    expect(created.body.secret).toMatch(TOKEN_REGEX);
    expect(created.body).toMatchObject({
      object: 'api_key',
      tier: 'organization',
      organizationId: org.organizationId,
      name: 'checkout bot',
      description: 'makes links',
      scopes: ['client:create', 'client:read'],
      status: 'active',
      createdBy: { type: 'api_key', id: org.keyId },
      hint: created.body.secret.slice(-4),
      lastUsedAt: null,
      expiresAt: null,
      revokedAt: null,
      rotatedAt: null,
      previousSecretExpiresAt: null,
      allowedIps: null,
      rateLimit: null,
    });
    expect(created.body.id).toBe(created.body.secret.slice(3, 23));
    const fetched = await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expectStatus(fetched, 200);
    expect(fetched.body.secret).toBeUndefined();
    expect(fetched.text).not.toContain(created.body.secret.slice(24));
    const listed = await t.request('GET', '/v1/api-keys', { token: org.token });
    expect(listed.text).not.toContain(created.body.secret.slice(24));
  });

  it('the new key authenticates with exactly its scopes', async () => {
    const created = await create({ name: 'reader', scopes: ['client:read'] });
    const who = await whoami(created.body.secret);
    expectStatus(who, 200);
    expect(who.body).toEqual({ type: 'api_key', keyId: created.body.id, tier: 'organization', organizationId: org.organizationId, scopes: ['client:read'], status: 'active' });
    expectProblem(await t.request('GET', '/v1/api-keys', { token: created.body.secret }), 403, 'insufficient_scope');
  });

  it('a key can grant only scopes it holds', async () => {
    const refused = await create({ name: 'escalate', scopes: ['transaction:execute'] });
    expectProblem(refused, 403, 'insufficient_scope');
    expect(refused.body.requiredScope).toBe('transaction:execute');
    const wildcard = await create({ name: 'escalate', scopes: ['invoice:*'] });
    expectProblem(wildcard, 403, 'insufficient_scope');
    const held = await create({ name: 'ok', scopes: ['invoice:read'] });
    expectStatus(held, 201);
  });

  it('a key cannot widen another key beyond its own scopes, nor take over a broader key', async () => {
    const limited = await create({ name: 'limited manager', scopes: ['api_key:*', 'client:read'] });
    const target = await create({ name: 'target', scopes: ['client:read'] });
    const widen = await t.request('PATCH', `/v1/api-keys/${target.body.id}`, { token: limited.body.secret, body: { scopes: ['client:*'] } });
    expectProblem(widen, 403, 'insufficient_scope');
    const broad = await create({ name: 'broad', scopes: ['client:*'] });
    const takeOver = await t.request('POST', `/v1/api-keys/${broad.body.id}/rotate`, { token: limited.body.secret, body: {} });
    expectProblem(takeOver, 403, 'insufficient_scope');
  });

  it('invalid scopes are refused naming each bad scope, and nothing is created', async () => {
    const before = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
    const bad = await create({ name: 'bad', scopes: ['client:read', 'recurring:read', 'client:fly', '*:*', 'nope'] });
    expectProblem(bad, 400, 'validation_error');
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toEqual(['/scopes/1', '/scopes/2', '/scopes/3', '/scopes/4']);
    const after = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
    expect(after[0]!.n).toBe(before[0]!.n);
  });

  it('unknown fields are refused: a caller can never set organizationId, tier, id or status', async () => {
    for (const field of ['organizationId', 'tier', 'id', 'status', 'secret', 'createdAt', 'hint']) {
      const result = await create({ name: 'sneaky', scopes: ['client:read'], [field]: 'x' });
      expectProblem(result, 400, 'validation_error');
      expect(result.body.errors[0].path).toBe(`/${field}`);
    }
  });

  it('update changes name, description, scopes, expiry, IPs and rate limit, and takes effect at once', async () => {
    const created = await create({ name: 'before', scopes: ['client:read', 'client:create'] });
    expectStatus(await whoami(created.body.secret), 200);
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const updated = await t.request('PATCH', `/v1/api-keys/${created.body.id}`, {
      token: org.token,
      body: { name: 'after', description: 'd', scopes: ['client:read'], expiresAt, allowedIps: ['127.0.0.1', '10.0.0.0/8'], rateLimit: { requests: 100, windowSeconds: 60 } },
    });
    expectStatus(updated, 200);
    expect(updated.body).toMatchObject({ name: 'after', description: 'd', scopes: ['client:read'], expiresAt, allowedIps: ['127.0.0.1/32', '10.0.0.0/8'], rateLimit: { requests: 100, windowSeconds: 60 } });
    const who = await whoami(created.body.secret);
    expect(who.body.scopes).toEqual(['client:read']);
  });

  it('an empty update and a past expiry are refused', async () => {
    const created = await create({ name: 'x', scopes: ['client:read'] });
    expectProblem(await t.request('PATCH', `/v1/api-keys/${created.body.id}`, { token: org.token, body: {} }), 400, 'validation_error');
    expectProblem(
      await t.request('PATCH', `/v1/api-keys/${created.body.id}`, { token: org.token, body: { expiresAt: '2001-01-01T00:00:00Z' } }),
      400,
      'validation_error',
    );
  });

  it('a rotated key keeps its id and its previous secret works until the grace ends', async () => {
    const created = await create({ name: 'rotating', scopes: ['client:read'] });
    const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expectStatus(rotated, 200);
    expect(rotated.body.id).toBe(created.body.id);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect(rotated.body.rotatedAt).not.toBeNull();
    const graceEnds = new Date(rotated.body.previousSecretExpiresAt).getTime();
    expect(Math.abs(graceEnds - (Date.now() + 3_600_000))).toBeLessThan(60_000);
    expectStatus(await whoami(created.body.secret), 200);
    expectStatus(await whoami(rotated.body.secret), 200);
  });

  it('a rotation with grace 0 ends the previous secret at once', async () => {
    const created = await create({ name: 'rotating-now', scopes: ['client:read'] });
    expectStatus(await whoami(created.body.secret), 200); // now cached
    const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 0 } });
    expectStatus(rotated, 200);
    expect(rotated.body.previousSecretExpiresAt).toBeNull();
    expectProblem(await whoami(created.body.secret), 401, 'invalid_api_key');
    expectStatus(await whoami(rotated.body.secret), 200);
  });

  it('rotating again ends the older previous secret at once: at most two secrets are valid', async () => {
    const first = await create({ name: 'twice', scopes: ['client:read'] });
    const second = await t.request('POST', `/v1/api-keys/${first.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    const third = await t.request('POST', `/v1/api-keys/${first.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expectProblem(await whoami(first.body.secret), 401, 'invalid_api_key');
    expectStatus(await whoami(second.body.secret), 200);
    expectStatus(await whoami(third.body.secret), 200);
  });

  it('the rotation grace defaults to the system setting apiKeyRotationGraceMinutes', async () => {
    const created = await create({ name: 'default grace', scopes: ['client:read'] });
    const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token });
    expectStatus(rotated, 200);
    const grace = new Date(rotated.body.previousSecretExpiresAt).getTime() - Date.now();
    expect(Math.abs(grace - 1440 * 60_000)).toBeLessThan(60_000);
  });

  it('a grace period outside 0..10080 minutes is refused', async () => {
    const created = await create({ name: 'bad grace', scopes: ['client:read'] });
    for (const gracePeriodMinutes of [-1, 10081, 1.5, '5']) {
      const result = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes } });
      expectProblem(result, 400, 'validation_error');
    }
  });

  it('concurrent rotations of one key serialise and leave at most two valid secrets', async () => {
    const created = await create({ name: 'concurrent', scopes: ['client:read'] });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 30 } })),
    );
    for (const r of results) expectStatus(r, 200);
    const secrets = [created.body.secret, ...results.map((r) => r.body.secret)];
    const valid = [];
    for (const secret of secrets) if ((await whoami(secret)).status === 200) valid.push(secret);
    expect(valid.length).toBe(2);
    const [row] = await t.db.query<{ rotations: number }>(
      "SELECT count(*)::int AS rotations FROM audit_events WHERE action = 'api_key.rotated' AND target->>'id' = $1",
      [created.body.id],
    );
    expect(row!.rotations).toBe(8);
  });

  it('revoking is irreversible: both secrets stop working at once, and the key cannot be changed', async () => {
    const created = await create({ name: 'to revoke', scopes: ['client:read'] });
    const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
    expectStatus(await whoami(rotated.body.secret), 200);
    const revoked = await t.request('POST', `/v1/api-keys/${created.body.id}/revoke`, { token: org.token });
    expectStatus(revoked, 200);
    expect(revoked.body.status).toBe('revoked');
    expect(revoked.body.revokedAt).not.toBeNull();
    expectProblem(await whoami(rotated.body.secret), 401, 'api_key_revoked');
    expectProblem(await whoami(created.body.secret), 401, 'invalid_api_key');
    expectProblem(await t.request('PATCH', `/v1/api-keys/${created.body.id}`, { token: org.token, body: { name: 'again' } }), 409, 'conflict');
    expectProblem(await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: {} }), 409, 'conflict');
    const again = await t.request('POST', `/v1/api-keys/${created.body.id}/revoke`, { token: org.token });
    expectStatus(again, 200);
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
  });

  it('deleting a key makes it gone (404), invalid, and its id is never reused', async () => {
    const created = await create({ name: 'to delete', scopes: ['client:read'] });
    expectStatus(await whoami(created.body.secret), 200);
    const deleted = await t.request('DELETE', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expectStatus(deleted, 204);
    expectProblem(await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token }), 404, 'not_found');
    expectProblem(await t.request('DELETE', `/v1/api-keys/${created.body.id}`, { token: org.token }), 404, 'not_found');
    expectProblem(await whoami(created.body.secret), 401, 'invalid_api_key');
    const reserved = await t.db.query('SELECT 1 FROM api_key_ids WHERE id = $1', [created.body.id]);
    expect(reserved).toHaveLength(1);
    const events = await t.db.query("SELECT action FROM audit_events WHERE target->>'id' = $1 ORDER BY seq", [created.body.id]);
    expect(events.map((e: any) => e.action)).toEqual(['api_key.created', 'api_key.deleted']);
  });

  it('lists keys newest first with cursor pagination', async () => {
    const own = await createOrgWithKey(t, ['api_key:*']);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await create({ name: `k${i}`, scopes: [] }, own.token)).body.id);
    const page1 = await t.request('GET', '/v1/api-keys?limit=2', { token: own.token });
    expectStatus(page1, 200);
    expect(page1.body).toMatchObject({ object: 'list', hasMore: true });
    expect(page1.body.data.map((k: any) => k.id)).toEqual([ids[4], ids[3]]);
    const page2 = await t.request('GET', `/v1/api-keys?limit=2&startingAfter=${ids[3]}`, { token: own.token });
    expect(page2.body.data.map((k: any) => k.id)).toEqual([ids[2], ids[1]]);
    const page3 = await t.request('GET', `/v1/api-keys?limit=2&startingAfter=${ids[1]}`, { token: own.token });
    expect(page3.body.data.map((k: any) => k.id)).toEqual([ids[0], own.keyId]);
    expect(page3.body.hasMore).toBe(false);
    for (const bad of ['limit=0', 'limit=101', 'limit=abc', 'startingAfter=nope']) {
      const result = await t.request('GET', `/v1/api-keys?${bad}`, { token: own.token });
      expect([400, 404]).toContain(result.status);
    }
  });

  it('lastUsedAt is recorded in batches, without a write per request', async () => {
    const created = await create({ name: 'used', scopes: ['client:read'] });
    await whoami(created.body.secret);
    await whoami(created.body.secret);
    const before = await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expect(before.body.lastUsedAt).toBeNull();
    await t.services.verifier.flushUsage();
    const after = await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expect(after.body.lastUsedAt).not.toBeNull();
  });

  it('expiresAt in the past or garbage is refused; a key past its expiry gets api_key_expired', async () => {
    expectProblem(await create({ name: 'x', scopes: [], expiresAt: 'tomorrow' }), 400, 'validation_error');
    expectProblem(await create({ name: 'x', scopes: [], expiresAt: '2000-01-01T00:00:00Z' }), 400, 'validation_error');
    const created = await create({ name: 'short', scopes: ['client:read'], expiresAt: new Date(Date.now() + 60_000).toISOString() });
    expectStatus(created, 201);
    await changeKeyRow(t, "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", created.body.id);
    expectProblem(await whoami(created.body.secret), 401, 'api_key_expired');
    const fetched = await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expect(fetched.body.status).toBe('expired');
  });

  it('every lifecycle change is audited in the same transaction, without the secret', async () => {
    const created = await create({ name: 'audited', scopes: ['client:read'] });
    await t.request('PATCH', `/v1/api-keys/${created.body.id}`, { token: org.token, body: { name: 'audited 2' } });
    await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: {} });
    await t.request('POST', `/v1/api-keys/${created.body.id}/revoke`, { token: org.token });
    const events = await t.db.query<any>("SELECT * FROM audit_events WHERE target->>'id' = $1 ORDER BY seq", [created.body.id]);
    expect(events.map((e) => e.action)).toEqual(['api_key.created', 'api_key.updated', 'api_key.rotated', 'api_key.revoked']);
    for (const e of events) {
      expect(e.actor_type).toBe('api_key');
      expect(e.actor_id).toBe(org.keyId);
      expect(e.organization_id).toBe(org.organizationId);
      expect(JSON.stringify(e)).not.toContain(created.body.secret.slice(24));
    }
  });
});
