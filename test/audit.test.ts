/**
 * The audit log (SPEC §9): lifecycle events with actor, target, request id and address; the
 * organization and system read APIs (isolation, order, cursor pagination, filters, reads audited);
 * the hash chain and its integrity check; refused attempts; and no secret at rest anywhere.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../src/auth/context.js';
import type { AuditEvent } from '../src/audit/events.js';
import {
  createOrgKey,
  createOrgWithKey,
  createSystemKey,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type OrgWithKey,
  type TestApp,
} from './harness.js';

/** The API's event shape, as the server defines it. */
type Event = AuditEvent;

const requestId = (label: string) => `${label}-${randomBytes(6).toString('hex')}`;

/** Every event of a list endpoint matching the query, following the cursor to the end. */
async function allEvents(t: TestApp, path: string, token: string, query: Record<string, string> = {}): Promise<Event[]> {
  const out: Event[] = [];
  let startingAfter: string | undefined;
  for (;;) {
    const qs = new URLSearchParams({ limit: '100', ...query, ...(startingAfter ? { startingAfter } : {}) });
    const page = await t.request('GET', `${path}?${qs}`, { token });
    expectStatus(page, 200);
    out.push(...(page.body.data as Event[]));
    if (!page.body.hasMore) return out;
    startingAfter = out.at(-1)!.id;
  }
}

const orgEvents = (t: TestApp, org: OrgWithKey, query: Record<string, string> = {}) => allEvents(t, '/v1/audit-events', org.token, query);

/** Polls until the predicate holds (events recorded after the response, such as refusal bursts). */
async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A dedicated connection that may change audit rows: the owner's (Paygate's own role holds no such
 * privilege), with the table's triggers, which otherwise forbid it, switched off.
 */
async function tamper(t: TestApp, sql: string, params: unknown[]): Promise<void> {
  const client = new pg.Client(t.ownerUrl);
  await client.connect();
  try {
    // Transactional DDL: no other session ever sees the triggers disabled.
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
    await client.query(sql, params);
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

describe('audit log', () => {
  let t: TestApp;
  let system: { token: string; keyId: string };

  beforeAll(async () => {
    t = await startPaygate();
    system = await createSystemKey(t, ['audit:read']);
  });
  afterAll(async () => t?.close());

  describe('key lifecycle events', () => {
    it('creating, updating, rotating, revoking and deleting a key each record an api_key event with actor, target, request id and address', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const ids = { created: requestId('create'), updated: requestId('update'), rotated: requestId('rotate'), revoked: requestId('revoke'), deleted: requestId('delete') };

      // Paygate's own id of each request (the X-Request-Id it answers), whatever the caller sent.
      const ours = {} as Record<keyof typeof ids, string>;
      const sent = <R extends { headers: Headers }>(verb: keyof typeof ids, result: R): R => {
        ours[verb] = result.headers.get('x-request-id')!;
        expect(ours[verb]).toMatch(/^req_/);
        return result;
      };
      const created = sent('created', await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'lifecycle', scopes: ['api_key:read'] }, headers: { 'x-request-id': ids.created } }));
      expectStatus(created, 201);
      const keyId: string = created.body.id;
      expectStatus(sent('updated', await t.request('PATCH', `/v1/api-keys/${keyId}`, { token: org.token, body: { name: 'renamed' }, headers: { 'x-request-id': ids.updated } })), 200);
      expectStatus(sent('rotated', await t.request('POST', `/v1/api-keys/${keyId}/rotate`, { token: org.token, body: { gracePeriodMinutes: 0 }, headers: { 'x-request-id': ids.rotated } })), 200);
      expectStatus(sent('revoked', await t.request('POST', `/v1/api-keys/${keyId}/revoke`, { token: org.token, headers: { 'x-request-id': ids.revoked } })), 200);
      expectStatus(sent('deleted', await t.request('DELETE', `/v1/api-keys/${keyId}`, { token: org.token, headers: { 'x-request-id': ids.deleted } })), 204);

      const events = (await orgEvents(t, org)).filter((e) => e.target?.id === keyId);
      // Newest first: the order of the calls, reversed.
      expect(events.map((e) => e.action)).toEqual(['api_key.deleted', 'api_key.revoked', 'api_key.rotated', 'api_key.updated', 'api_key.created']);
      for (const event of events) {
        const verb = event.action.split('.')[1] as keyof typeof ids;
        expect(event, JSON.stringify(event)).toMatchObject({
          object: 'audit_event',
          actor: { type: 'api_key', id: org.keyId },
          organizationId: org.organizationId,
          target: { type: 'api_key', id: keyId },
          ip: '127.0.0.1',
          // Paygate's own id; the caller's is kept apart, in details.
          requestId: ours[verb],
          outcome: 'success',
          details: expect.objectContaining({ clientRequestId: ids[verb] }),
        });
        expect(event.id).toMatch(/^evt_[0-9A-Za-z]{22}$/);
        expect(Number.isNaN(Date.parse(event.at))).toBe(false);
      }
    });

    it("a deleted key's audit events stay", async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'short-lived', scopes: ['api_key:read'] } });
      expectStatus(created, 201);
      expectStatus(await t.request('DELETE', `/v1/api-keys/${created.body.id}`, { token: org.token }), 204);
      expectProblem(await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token }), 404, 'not_found');
      const actions = (await orgEvents(t, org)).filter((e) => e.target?.id === created.body.id).map((e) => e.action);
      expect(actions).toEqual(['api_key.deleted', 'api_key.created']);
    });

    it('system key lifecycle records system_key events by the global admin, outside any organization', async () => {
      const admin = await createUser(t, { globalAdmin: true });
      const session = await login(t, admin.email, admin.password);
      const created = await t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 'ops', scopes: ['health:read'] } });
      expectStatus(created, 201);
      const keyId: string = created.body.id;
      expectStatus(await t.request('PATCH', `/v1/system/api-keys/${keyId}`, { token: session.token, body: { description: 'ops automation' } }), 200);
      expectStatus(await t.request('POST', `/v1/system/api-keys/${keyId}/rotate`, { token: session.token, body: { gracePeriodMinutes: 5 } }), 200);
      expectStatus(await t.request('POST', `/v1/system/api-keys/${keyId}/revoke`, { token: session.token }), 200);
      const rid = requestId('sysdel');
      const deleted = await t.request('DELETE', `/v1/system/api-keys/${keyId}`, { token: session.token, headers: { 'x-request-id': rid } });
      expectStatus(deleted, 204);

      const events = (await allEvents(t, '/v1/system/audit-events', system.token, { actorId: admin.id })).filter((e) => e.target?.id === keyId);
      expect(events.map((e) => e.action)).toEqual(['system_key.deleted', 'system_key.revoked', 'system_key.rotated', 'system_key.updated', 'system_key.created']);
      for (const event of events) {
        expect(event).toMatchObject({ actor: { type: 'user', id: admin.id }, organizationId: null, target: { type: 'api_key', id: keyId }, ip: '127.0.0.1' });
        expect(typeof event.requestId).toBe('string');
      }
      expect(events[0]!.requestId).toBe(deleted.headers.get('x-request-id'));
      expect(events[0]!.details.clientRequestId).toBe(rid);
    });
  });

  describe('global admins', () => {
    it('the first-start admin is audited as user.global_admin_granted, in the same unit of work', async () => {
      const fresh = await startPaygate();
      try {
        // A database of its own, with no user yet.
        expect((await fresh.db.query('SELECT 1 FROM users')).length).toBe(0);
        const first = await fresh.services.users.bootstrapFirstAdmin('first@example.com', 'first-admin-passphrase-9');
        expect(first).toMatchObject({ email: 'first@example.com' });
        const rows = await fresh.db.query<{ actor_type: string; target: { id: string }; details: Record<string, unknown> }>(
          "SELECT actor_type, target, details FROM audit_events WHERE action = 'user.global_admin_granted'",
        );
        const [user] = await fresh.db.query<{ id: string }>("SELECT id FROM users WHERE email = 'first@example.com'");
        expect(rows).toEqual([{ actor_type: 'system', target: { type: 'user', id: user!.id }, details: { email: 'first@example.com', created: true, firstStart: true } }]);
      } finally {
        await fresh.close();
      }
    });
  });

  describe('GET /v1/audit-events', () => {
    it("returns only the caller's organization's events", async () => {
      const a = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const b = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const inB = await t.request('POST', '/v1/api-keys', { token: b.token, body: { name: 'b only', scopes: ['api_key:read'] } });
      expectStatus(inB, 201);
      expectStatus(await t.request('POST', '/v1/api-keys', { token: a.token, body: { name: 'a only', scopes: ['api_key:read'] } }), 201);

      const events = await orgEvents(t, a);
      expect(events.length).toBeGreaterThan(0);
      expect(events.every((e) => e.organizationId === a.organizationId), JSON.stringify(events)).toBe(true);
      expect(JSON.stringify(events)).not.toContain(b.keyId);
      expect(JSON.stringify(events)).not.toContain(inB.body.id);
      // The same list with the organization in the path.
      const viaPath = await t.request('GET', `/v1/organizations/${a.organizationId}/audit-events?limit=100`, { token: a.token });
      expectStatus(viaPath, 200);
      expect(viaPath.body.data.every((e: Event) => e.organizationId === a.organizationId)).toBe(true);
    });

    it("refuses another organization's event as a cursor", async () => {
      const a = await createOrgWithKey(t, ['audit:read']);
      const b = await createOrgWithKey(t, ['audit:read']);
      const [foreign] = await orgEvents(t, b);
      expectProblem(await t.request('GET', `/v1/audit-events?startingAfter=${foreign!.id}`, { token: a.token }), 404, 'not_found');
    });

    it('lists newest first and pages with limit, startingAfter and hasMore', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const made: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `page ${i}`, scopes: ['api_key:read'] } });
        expectStatus(r, 201);
        made.push(r.body.id);
      }
      const full = await t.request('GET', '/v1/audit-events?action=api_key.created&limit=100', { token: org.token });
      expectStatus(full, 200);
      expect(full.body).toMatchObject({ object: 'list', hasMore: false });
      const all = full.body.data as Event[];
      // The initial key of provisioning, then the five made here, newest first.
      expect(all.map((e) => e.target!.id)).toEqual([...made].reverse().concat(org.keyId));
      const times = all.map((e) => Date.parse(e.at));
      expect(times).toEqual([...times].sort((x, y) => y - x));

      const pages: Event[][] = [];
      let cursor: string | undefined;
      for (;;) {
        const r = await t.request('GET', `/v1/audit-events?action=api_key.created&limit=2${cursor ? `&startingAfter=${cursor}` : ''}`, { token: org.token });
        expectStatus(r, 200);
        pages.push(r.body.data);
        if (!r.body.hasMore) break;
        expect(r.body.data).toHaveLength(2);
        cursor = r.body.data.at(-1).id;
      }
      expect(pages.map((p) => p.length)).toEqual([2, 2, 2]);
      expect(pages.flat().map((e) => e.id)).toEqual(all.map((e) => e.id));
    });

    it('refuses a limit outside 1..100', async () => {
      const org = await createOrgWithKey(t, ['audit:read']);
      expectProblem(await t.request('GET', '/v1/audit-events?limit=0', { token: org.token }), 400, 'validation_error');
      expectProblem(await t.request('GET', '/v1/audit-events?limit=101', { token: org.token }), 400, 'validation_error');
    });

    it('filters by action, and an unknown action is a validation_error', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'x', scopes: ['api_key:read'] } });
      expectStatus(created, 201);
      expectStatus(await t.request('POST', `/v1/api-keys/${created.body.id}/revoke`, { token: org.token }), 200);

      const revoked = await orgEvents(t, org, { action: 'api_key.revoked' });
      expect(revoked.map((e) => e.target?.id)).toEqual([created.body.id]);
      const bad = await t.request('GET', '/v1/audit-events?action=api_key.exploded', { token: org.token });
      expectProblem(bad, 400, 'validation_error');
      expect(bad.body.errors).toEqual([expect.objectContaining({ path: '/action' })]);
    });

    it('filters by actor type and actor id', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'by key', scopes: ['api_key:read'] } }), 201);

      const bySystem = await orgEvents(t, org, { actorType: 'system' });
      // Provisioning acted as Paygate itself: the organization and its initial key.
      expect(bySystem.map((e) => e.action).sort()).toEqual(['api_key.created', 'organization.created']);
      const byKey = await orgEvents(t, org, { actorType: 'api_key', actorId: org.keyId });
      expect(byKey.length).toBeGreaterThan(0);
      expect(byKey.every((e) => e.actor.type === 'api_key' && e.actor.id === org.keyId)).toBe(true);
      expect(byKey.some((e) => e.action === 'api_key.created')).toBe(true);
      expect(await orgEvents(t, org, { actorId: 'sk_nobody' })).toEqual([]);
      expectProblem(await t.request('GET', '/v1/audit-events?actorType=robot', { token: org.token }), 400, 'validation_error');
    });

    it('filters by time range: from is inclusive, to is exclusive', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      for (let i = 0; i < 3; i++) {
        expectStatus(await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `t${i}`, scopes: ['api_key:read'] } }), 201);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const all = await orgEvents(t, org, { action: 'api_key.created' });
      expect(all).toHaveLength(4);
      const pivot = all[1]!.at;
      const from = await orgEvents(t, org, { action: 'api_key.created', from: pivot });
      const to = await orgEvents(t, org, { action: 'api_key.created', to: pivot });
      expect(from.every((e) => Date.parse(e.at) >= Date.parse(pivot))).toBe(true);
      expect(to.every((e) => Date.parse(e.at) < Date.parse(pivot))).toBe(true);
      expect(from.map((e) => e.id)).toContain(all[1]!.id);
      expect(to.map((e) => e.id)).not.toContain(all[1]!.id);
      expect([...from, ...to].map((e) => e.id).sort()).toEqual(all.map((e) => e.id).sort());
      const window = await orgEvents(t, org, { action: 'api_key.created', from: all[2]!.at, to: all[0]!.at });
      expect(window.map((e) => e.id)).toEqual(all.filter((e) => Date.parse(e.at) >= Date.parse(all[2]!.at) && Date.parse(e.at) < Date.parse(all[0]!.at)).map((e) => e.id));
      expectProblem(await t.request('GET', '/v1/audit-events?from=yesterday', { token: org.token }), 400, 'validation_error');
    });

    it('reading the log records an audit.read event', async () => {
      const org = await createOrgWithKey(t, ['audit:read']);
      const rid = requestId('read');
      const read = await t.request('GET', '/v1/audit-events?action=api_key.created', { token: org.token, headers: { 'x-request-id': rid } });
      expectStatus(read, 200);
      const reads = await orgEvents(t, org, { action: 'audit.read' });
      const mine = reads.find((e) => e.requestId === read.headers.get('x-request-id'));
      expect(mine, JSON.stringify(reads)).toMatchObject({
        actor: { type: 'api_key', id: org.keyId },
        organizationId: org.organizationId,
        ip: '127.0.0.1',
        details: { scope: 'organization', filter: { action: 'api_key.created' }, clientRequestId: rid },
      });
    });

    it('needs audit:read', async () => {
      const org = await createOrgWithKey(t, ['api_key:read']);
      const refused = await t.request('GET', '/v1/audit-events', { token: org.token });
      expectProblem(refused, 403, 'insufficient_scope');
      expect(refused.body.requiredScope).toBe('audit:read');
    });
  });

  describe('GET /v1/system/audit-events', () => {
    it('a system key with audit:read sees the events of every organization', async () => {
      const a = await createOrgWithKey(t, ['api_key:*']);
      const b = await createOrgWithKey(t, ['api_key:*']);
      const events = await allEvents(t, '/v1/system/audit-events', system.token, { action: 'organization.created' });
      const orgs = new Set(events.map((e) => e.organizationId));
      expect(orgs.has(a.organizationId) && orgs.has(b.organizationId)).toBe(true);
      // And its own read is audited, as a system-wide read.
      const reads = await allEvents(t, '/v1/system/audit-events', system.token, { action: 'audit.read', actorId: system.keyId });
      expect(reads.length).toBeGreaterThan(0);
      expect(reads[0]).toMatchObject({ organizationId: null, details: { scope: 'system' } });
    });

    it('is refused to organization keys and to system keys without audit:read', async () => {
      const org = await createOrgWithKey(t, ['audit:read']);
      expectProblem(await t.request('GET', '/v1/system/audit-events', { token: org.token }), 403, 'wrong_key_tier');
      const health = await createSystemKey(t, ['health:read']);
      const refused = await t.request('GET', '/v1/system/audit-events', { token: health.token });
      expectProblem(refused, 403, 'insufficient_scope');
      expect(refused.body.requiredScope).toBe('audit:read');
    });
  });

  it("a caller's own X-Request-Id is held only while its request is in flight: answered by a route, refused, or unmatched", async () => {
    // Forgotten by each route's own onResponse hook and by the 404 context's (there is no global one).
    const org = await createOrgWithKey(t, ['api_key:read']);
    const before = t.services.chain.heldClientRequestIds;
    const headers = (label: string) => ({ 'x-request-id': requestId(label) });
    expectStatus(await t.request('GET', '/v1/api-keys', { token: org.token, headers: headers('route') }), 200);
    expectStatus(await t.request('GET', '/v1/api-keys', { token: 'sk_short', headers: headers('refused') }), 401);
    expectStatus(await t.request('GET', '/v1/no-such-route', { token: org.token, headers: headers('unmatched') }), 404);
    expectStatus(await t.request('GET', '/healthz', { headers: headers('public') }), 200);
    // onResponse runs once the response is written, which the client may see first.
    for (let i = 0; i < 50 && t.services.chain.heldClientRequestIds > before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(t.services.chain.heldClientRequestIds).toBe(before);
  });

  describe('refused attempts', () => {
    it('a key lacking the scope records auth.insufficient_scope', async () => {
      const org = await createOrgWithKey(t, ['audit:read']);
      const refused = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'x', scopes: ['audit:read'] } });
      expectProblem(refused, 403, 'insufficient_scope');
      const [event] = (await orgEvents(t, org, { action: 'auth.insufficient_scope' })).filter((e) => e.requestId === refused.body.requestId);
      expect(event).toMatchObject({
        actor: { type: 'api_key', id: org.keyId },
        organizationId: org.organizationId,
        ip: '127.0.0.1',
        outcome: 'denied',
        details: { requiredScope: 'api_key:create', method: 'POST' },
      });
    });

    it('X-Organization-ID naming another organization records auth.organization_mismatch', async () => {
      const org = await createOrgWithKey(t, ['api_key:read', 'audit:read']);
      const other = await createOrgWithKey(t, ['api_key:read']);
      const refused = await t.request('GET', '/v1/api-keys', { token: org.token, headers: { 'x-organization-id': other.organizationId } });
      expectProblem(refused, 403, 'organization_mismatch');
      // Naming its own organization is harmless.
      expectStatus(await t.request('GET', '/v1/api-keys', { token: org.token, headers: { 'x-organization-id': org.organizationId } }), 200);
      const events = await orgEvents(t, org, { action: 'auth.organization_mismatch' });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ actor: { type: 'api_key', id: org.keyId }, organizationId: org.organizationId, requestId: refused.body.requestId, outcome: 'denied', details: { requestedOrganizationId: other.organizationId } });
    });

    it("a route naming another organization records auth.organization_mismatch, in the key's organization and in the probed one", async () => {
      const org = await createOrgWithKey(t, ['api_key:read', 'audit:read']);
      const other = await createOrgWithKey(t, ['api_key:read']);
      const otherReader = await createOrgKey(t, other.organizationId, ['audit:read']);
      const refused = await t.request('GET', `/v1/organizations/${other.organizationId}/api-keys`, { token: org.token });
      expectProblem(refused, 403, 'organization_mismatch');
      const rid = refused.body.requestId;
      const events = await orgEvents(t, org, { action: 'auth.organization_mismatch' });
      expect(events.find((e) => e.requestId === rid)).toMatchObject({ organizationId: org.organizationId, details: { requestedOrganizationId: other.organizationId } });
      // The probed organization's owners see who knocked (SPEC §2's attempt, from their side).
      const probed = (await allEvents(t, '/v1/audit-events', otherReader.secret!, { action: 'auth.organization_mismatch' })).filter((e) => e.requestId === rid);
      expect(probed).toEqual([
        expect.objectContaining({ actor: { type: 'api_key', id: org.keyId }, organizationId: other.organizationId, outcome: 'denied', details: expect.objectContaining({ keyOrganizationId: org.organizationId, probed: true }) }),
      ]);
      // The caller learns nothing: an organization that does not exist gets the same answer, and no record.
      const ghost = 'org_' + 'Z'.repeat(22);
      const unknown = await t.request('GET', `/v1/organizations/${ghost}/api-keys`, { token: org.token });
      expectProblem(unknown, 403, 'organization_mismatch');
      expect(unknown.body.detail).toBe(refused.body.detail);
      expect(await t.db.query("SELECT 1 FROM audit_events WHERE organization_id = $1", [ghost])).toHaveLength(0);
    });

    it('a route naming an organization id with a NUL byte is still audited', async () => {
      const org = await createOrgWithKey(t, ['api_key:read', 'audit:read']);
      const refused = await t.request('GET', '/v1/organizations/org_%00evil/api-keys', { token: org.token });
      expectProblem(refused, 403, 'organization_mismatch');
      const events = await orgEvents(t, org, { action: 'auth.organization_mismatch' });
      expect(events.map((e) => e.requestId)).toContain(refused.body.requestId);
    });

    it('a burst of invalid API keys from one address records auth.invalid_api_key', async () => {
      // A node of its own: the burst counter is per address and per node, and no other test here counts.
      const node = await startPaygate({ env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
      try {
        const sys = await createSystemKey(node, ['audit:read']);
        const address = '203.0.113.77';
        const bad = ['not-a-key', `sk_${'a'.repeat(20)}.${'b'.repeat(49)}`, 'sk_short', 'Zm9v', `sk_${'A'.repeat(20)}.${'0'.repeat(49)}`, 'nope'];
        for (const token of bad) {
          expectProblem(await node.request('GET', '/v1/auth/whoami', { token, headers: { 'x-forwarded-for': address } }), 401, 'invalid_api_key');
        }
        const event = await eventually(async () => {
          const events = await allEvents(node, '/v1/system/audit-events', sys.token, { action: 'auth.invalid_api_key' });
          return events.find((e) => e.ip === address);
        });
        expect(event).toMatchObject({ actor: { type: 'api_key', id: null }, organizationId: null, outcome: 'denied', details: { attempts: 5 } });
        // No presented token is recorded.
        for (const token of bad) expect(JSON.stringify(event)).not.toContain(token);
        // A single bad token from another address records nothing.
        expectProblem(await node.request('GET', '/v1/auth/whoami', { token: 'nope', headers: { 'x-forwarded-for': '203.0.113.78' } }), 401, 'invalid_api_key');
        await new Promise((resolve) => setTimeout(resolve, 200));
        const events = await allEvents(node, '/v1/system/audit-events', sys.token, { action: 'auth.invalid_api_key' });
        expect(events.map((e) => e.ip)).toEqual([address]);
      } finally {
        await node.close();
      }
    });
  });

  describe('hash chain', () => {
    it('the audit table refuses UPDATE and DELETE', async () => {
      const [row] = await t.db.query<{ id: string }>('SELECT id FROM audit_events ORDER BY seq LIMIT 1');
      // Paygate's own role holds no such privilege; the table's owner is stopped by its triggers.
      await expect(t.db.query("UPDATE audit_events SET outcome = 'x' WHERE id = $1", [row!.id])).rejects.toThrow(/permission denied/);
      const owner = new pg.Client(t.ownerUrl);
      await owner.connect();
      try {
        await expect(owner.query("UPDATE audit_events SET outcome = 'x' WHERE id = $1", [row!.id])).rejects.toThrow(/append-only/);
        await expect(owner.query('DELETE FROM audit_events WHERE id = $1', [row!.id])).rejects.toThrow(/append-only/);
        await expect(owner.query('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
      } finally {
        await owner.end();
      }
    });

    it('20 parallel key creations keep the chain valid', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `parallel ${i}`, scopes: ['api_key:read'] } })),
      );
      for (const r of results) expectStatus(r, 201);
      const created = await orgEvents(t, org, { action: 'api_key.created' });
      expect(created).toHaveLength(21);
      // Newest first by position in the chain is newest first by time as well.
      const times = created.map((e) => Date.parse(e.at));
      expect(times).toEqual([...times].sort((x, y) => y - x));
      const integrity = await t.request('GET', '/v1/system/audit-integrity', { token: system.token });
      expectStatus(integrity, 200);
      expect(integrity.body, integrity.text).toMatchObject({ ok: true, headMatches: true, firstBrokenEventId: null });
    });

    it('an integrity check running while events are written reports an intact chain', async () => {
      const org = await createOrgWithKey(t, ['api_key:*']);
      const writes = Array.from({ length: 30 }, (_, i) => t.request('POST', '/v1/api-keys', { token: org.token, body: { name: `w${i}`, scopes: ['api_key:read'] } }));
      const checks = Array.from({ length: 10 }, () => t.request('GET', '/v1/system/audit-integrity', { token: system.token }));
      const [written, checked] = await Promise.all([Promise.all(writes), Promise.all(checks)]);
      for (const r of written) expectStatus(r, 201);
      for (const r of checked) expect(r.body, r.text).toMatchObject({ ok: true });
    });

    it('details holding a Date, undefined, a NUL character or a lone surrogate still verify', async () => {
      await t.services.work.run(async (tx) =>
        tx.audit({
          action: 'system_settings.updated',
          actor: systemContext().actor,
          organizationId: null,
          details: { when: new Date('2030-01-02T03:04:05.678Z'), gone: undefined, list: [1, undefined], text: 'a\u0000b', half: 'x\uD800y', ['k\u0000']: 1 },
        }),
      );
      expect(await t.services.audit.verifyChain()).toMatchObject({ ok: true });
    });

    it('reports ok on an untouched log and needs a system key with audit:read', async () => {
      const integrity = await t.request('GET', '/v1/system/audit-integrity', { token: system.token });
      expectStatus(integrity, 200);
      expect(integrity.body).toMatchObject({ ok: true, headMatches: true, firstBrokenEventId: null, reason: null });
      expect(integrity.body.checked).toBeGreaterThan(0);
      const org = await createOrgWithKey(t, ['audit:read']);
      expectProblem(await t.request('GET', '/v1/system/audit-integrity', { token: org.token }), 403, 'wrong_key_tier');
    });
  });

  describe('tampering', () => {
    // Each case breaks the chain for good, so each gets a database of its own.
    let node: TestApp;
    let sys: { token: string; keyId: string };
    let org: OrgWithKey;
    let events: Array<{ id: string; seq: number }>;

    beforeAll(async () => {
      node = await startPaygate();
      sys = await createSystemKey(node, ['audit:read']);
    });
    afterAll(async () => node?.close());

    async function freshChain() {
      // The test database is cloned from a template; wipe the chain and start it again.
      const client = new pg.Client(node.ownerUrl);
      await client.connect();
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
      await client.query('DELETE FROM audit_events');
      await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
      await client.query("UPDATE audit_chain_head SET seq = 0, hash = repeat('0', 64)");
      await client.query('COMMIT');
      await client.end();
      org = await createOrgWithKey(node, ['api_key:*']);
      for (let i = 0; i < 4; i++) expectStatus(await node.request('POST', '/v1/api-keys', { token: org.token, body: { name: `k${i}`, scopes: ['api_key:read'] } }), 201);
      events = await node.db.query<{ id: string; seq: number }>('SELECT id, seq FROM audit_events ORDER BY seq');
      expect(events.length).toBeGreaterThanOrEqual(6);
      const intact = await node.request('GET', '/v1/system/audit-integrity', { token: sys.token });
      expect(intact.body, intact.text).toMatchObject({ ok: true, checked: events.length });
    }

    const check = async () => {
      const r = await node.request('GET', '/v1/system/audit-integrity', { token: sys.token });
      expectStatus(r, 200);
      return r.body as { ok: boolean; firstBrokenEventId: string | null; headMatches: boolean; reason: string | null };
    };

    it('an altered event is reported as the first broken one', async () => {
      await freshChain();
      const victim = events[2]!;
      await tamper(node, `UPDATE audit_events SET details = '{"name":"innocent"}'::jsonb WHERE id = $1`, [victim.id]);
      expect(await check()).toMatchObject({ ok: false, firstBrokenEventId: victim.id });
    });

    it('an altered actor is detected', async () => {
      await freshChain();
      const victim = events[3]!;
      await tamper(node, `UPDATE audit_events SET actor_id = 'someone-else' WHERE id = $1`, [victim.id]);
      expect(await check()).toMatchObject({ ok: false, firstBrokenEventId: victim.id });
    });

    it('a deleted event breaks the link of the event after it', async () => {
      await freshChain();
      await tamper(node, 'DELETE FROM audit_events WHERE id = $1', [events[2]!.id]);
      expect(await check()).toMatchObject({ ok: false, firstBrokenEventId: events[3]!.id });
    });

    it('a deleted newest event is detected by the chain head', async () => {
      await freshChain();
      await tamper(node, 'DELETE FROM audit_events WHERE id = $1', [events.at(-1)!.id]);
      expect(await check()).toMatchObject({ ok: false, headMatches: false });
    });

    it('an event rewritten with a recomputed hash still breaks the next link', async () => {
      await freshChain();
      const victim = events[1]!;
      const [row] = await node.db.query<{ prev_hash: string }>('SELECT prev_hash FROM audit_events WHERE id = $1', [victim.id]);
      // Rewrite the event and give it a hash that matches its new content.
      const [before] = (await node.db.query<Record<string, any>>('SELECT * FROM audit_events WHERE id = $1', [victim.id]));
      const forged = {
        id: before!.id, object: 'audit_event' as const, at: before!.at.toISOString(), action: before!.action,
        actor: { type: before!.actor_type, id: before!.actor_id }, organizationId: before!.organization_id, target: before!.target,
        ip: '198.51.100.1', requestId: before!.request_id, outcome: before!.outcome, details: before!.details,
      };
      await tamper(node, 'UPDATE audit_events SET ip = $2, hash = $3 WHERE id = $1', [victim.id, forged.ip, node.services.chain.hash(row!.prev_hash, forged)]);
      expect(await check()).toMatchObject({ ok: false, firstBrokenEventId: events[2]!.id });
    });

    it('without the pepper-derived key, even a whole rewritten chain with a matching head is detected', async () => {
      await freshChain();
      const { canonicalJson } = await import('../src/canonical-json.js');
      const { createHash } = await import('node:crypto');
      const victim = events[1]!;
      // An attacker with write access to the database but not the pepper: rewrites the event and
      // recomputes every later hash and the chain head with plain SHA-256.
      const rows = await node.db.query<Record<string, any>>('SELECT * FROM audit_events WHERE seq >= (SELECT seq FROM audit_events WHERE id = $1) ORDER BY seq', [victim.id]);
      let prev = rows[0]!.prev_hash as string;
      for (const row of rows) {
        const ip = row.id === victim.id ? '198.51.100.1' : row.ip;
        const fields = {
          id: row.id, at: row.at.toISOString(), action: row.action, actor: { type: row.actor_type, id: row.actor_id },
          organizationId: row.organization_id, target: row.target, ip, requestId: row.request_id, outcome: row.outcome, details: row.details,
        };
        const hash = createHash('sha256').update(prev).update('\n').update(canonicalJson(fields)).digest('hex');
        await tamper(node, 'UPDATE audit_events SET ip = $2, prev_hash = $3, hash = $4 WHERE id = $1', [row.id, ip, prev, hash]);
        prev = hash;
      }
      await tamper(node, 'UPDATE audit_chain_head SET hash = $1 WHERE id = 1', [prev]);
      expect(await check()).toMatchObject({ ok: false, firstBrokenEventId: victim.id });
    });
  });

  describe('secrets at rest', () => {
    it('no table holds a token or a secret, and api_keys holds only 32-byte hashes', async () => {
      const org = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
      const tokens = [org.token];
      const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'at rest', scopes: ['api_key:read'], description: 'kept' } });
      expectStatus(created, 201);
      tokens.push(created.body.secret);
      const rotated = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
      expectStatus(rotated, 200);
      tokens.push(rotated.body.secret);
      const rotatedAgain = await t.request('POST', `/v1/api-keys/${created.body.id}/rotate`, { token: org.token, body: { gracePeriodMinutes: 60 } });
      expectStatus(rotatedAgain, 200);
      tokens.push(rotatedAgain.body.secret);
      // Use them, so usage tracking and the verification cache have had their chance to store something.
      for (const token of tokens) await t.request('GET', '/v1/auth/whoami', { token });
      const admin = await createUser(t, { globalAdmin: true });
      const session = await login(t, admin.email, admin.password);
      const sysKey = await t.request('POST', '/v1/system/api-keys', { token: session.token, body: { name: 'at rest', scopes: ['health:read'] } });
      expectStatus(sysKey, 201);
      tokens.push(sysKey.body.secret, system.token);
      await t.services.verifier.flushUsage(); // batched lastUsedAt writes reach the database now
      for (const token of tokens) expect(token).toMatch(/^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/);
      const needles = [...tokens, ...tokens.map((token) => token.split('.')[1]!), session.token, admin.password];

      const columns = await t.db.query<{ table_name: string; column_name: string; data_type: string; udt_name: string }>(
        `SELECT c.table_name, c.column_name, c.data_type, c.udt_name
           FROM information_schema.columns c
           JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name AND tb.table_type = 'BASE TABLE'
          WHERE c.table_schema = 'public'
            AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'USER-DEFINED')
                 OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_bpchar', '_json', '_jsonb', '_bytea')))`,
      );
      const tables = new Set(columns.map((c) => c.table_name));
      for (const expected of ['api_keys', 'audit_events', 'sessions', 'users', 'organizations']) expect(tables).toContain(expected);
      let scanned = 0;
      for (const { table_name, column_name, data_type } of columns) {
        const rows = await t.db.query<{ v: unknown }>(`SELECT ${JSON.stringify(column_name)} AS v FROM ${JSON.stringify(table_name)}`);
        for (const { v } of rows) {
          if (v === null) continue;
          scanned++;
          const text = Buffer.isBuffer(v) ? `${v.toString('latin1')}\n${v.toString('hex')}\n${v.toString('base64')}` : typeof v === 'string' ? v : JSON.stringify(v);
          for (const needle of needles) {
            expect(text.includes(needle), `${table_name}.${column_name} (${data_type}) holds a secret`).toBe(false);
            if (Buffer.isBuffer(v)) expect(text.includes(Buffer.from(needle).toString('hex')), `${table_name}.${column_name} holds a secret in hex`).toBe(false);
          }
        }
      }
      expect(scanned).toBeGreaterThan(50);

      const keys = await t.db.query<{ id: string; secret_hash: Buffer; previous_secret_hash: Buffer | null }>('SELECT id, secret_hash, previous_secret_hash FROM api_keys');
      expect(keys.length).toBeGreaterThanOrEqual(4);
      for (const key of keys) {
        expect(key.secret_hash.length).toBe(32);
        if (key.previous_secret_hash) expect(key.previous_secret_hash.length).toBe(32);
      }
      const bytea = await t.db.query<{ column_name: string }>(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'api_keys' AND data_type = 'bytea' ORDER BY column_name",
      );
      expect(bytea.map((c) => c.column_name)).toEqual(['previous_secret_hash', 'secret_hash']);
      const [rotatedRow] = keys.filter((k) => k.id === created.body.id);
      expect(rotatedRow!.previous_secret_hash).not.toBeNull();
    });
  });
});
