/**
 * A global admin inside an organization (SPEC §3, §15): every read and every change, member or
 * not, is audited as `admin.accessed` with its method, route and organization; a change is let in
 * only once that record is written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, createUser, expectProblem, expectStatus, login, startPaygate, type HttpResult, type LoggedIn, type OrgWithKey, type TestApp } from './harness.js';

interface EventRow {
  action: string;
  actor_type: string;
  actor_id: string | null;
  organization_id: string | null;
  target: { type: string; id: string } | null;
  request_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

describe('global admins inside organizations are audited', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let adminUser: Awaited<ReturnType<typeof createUser>>;
  let admin: LoggedIn;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['client:*', 'api_key:*']);
    adminUser = await createUser(t, { globalAdmin: true });
    admin = await login(t, adminUser.email, adminUser.password);
  });
  afterAll(async () => t?.close());

  const eventsOf = async (result: HttpResult) =>
    t.db.query<EventRow>('SELECT action, actor_type, actor_id, organization_id, target, request_id, outcome, details FROM audit_events WHERE request_id = $1 ORDER BY seq', [
      result.headers.get('x-request-id'),
    ]);

  it('a read in an organization the admin is not a member of records admin.accessed: method, route, organization', async () => {
    const listed = await t.request('GET', `/v1/organizations/${org.organizationId}/clients`, { token: admin.token });
    expectStatus(listed, 200);
    const events = await eventsOf(listed);
    expect(events).toEqual([
      {
        action: 'admin.accessed',
        actor_type: 'user',
        actor_id: adminUser.id,
        organization_id: org.organizationId,
        target: { type: 'organization', id: org.organizationId },
        request_id: listed.headers.get('x-request-id'),
        outcome: 'success',
        details: { method: 'GET', route: '/v1/organizations/:orgId/clients', params: {}, membership: null },
      },
    ]);
  });

  it('a read through the selected organization (cookie session, /v1 mount) names the object it read', async () => {
    const created = await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Ada' } });
    const read = await t.request('GET', `/v1/clients/${created.body.id}`, { cookies: { ...admin.cookies, selectedOrganization: org.organizationId } });
    expectStatus(read, 200);
    const [event] = await eventsOf(read);
    expect(event).toMatchObject({ action: 'admin.accessed', organization_id: org.organizationId, details: { method: 'GET', route: '/v1/clients/:id', params: { id: created.body.id } } });
  });

  it("a change is recorded before it is let in, and the change's own event carries the same requestId", async () => {
    const created = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: admin.token, body: { name: 'by an admin', scopes: ['client:read'] } });
    expectStatus(created, 201);
    const events = await eventsOf(created);
    expect(events.map((e) => e.action)).toEqual(['admin.accessed', 'api_key.created']);
    expect(events[0]!.details).toMatchObject({ method: 'POST', route: '/v1/organizations/:orgId/api-keys' });
  });

  it('member management by a global admin is audited too', async () => {
    const members = await t.request('GET', `/v1/organizations/${org.organizationId}/members`, { token: admin.token });
    expectStatus(members, 200);
    expect((await eventsOf(members)).map((e) => e.action)).toEqual(['admin.accessed']);
  });

  it('a global admin who is also a member is audited all the same, with the role they hold there', async () => {
    const own = await createOrgWithKey(t, []);
    await t.db.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [own.organizationId, adminUser.id, 'viewer']);
    const again = await login(t, adminUser.email, adminUser.password);
    const read = await t.request('GET', `/v1/organizations/${own.organizationId}/clients`, { token: again.token });
    expectStatus(read, 200);
    const [event] = await eventsOf(read);
    expect(event).toMatchObject({ action: 'admin.accessed', organization_id: own.organizationId, details: { membership: 'viewer' } });
  });

  it('an ordinary member, an API key and a refused request record no admin.accessed', async () => {
    const owner = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const session = await login(t, owner.email, owner.password);
    const byMember = await t.request('GET', `/v1/organizations/${org.organizationId}/clients`, { token: session.token });
    expectStatus(byMember, 200);
    expect(await eventsOf(byMember)).toEqual([]);
    const byKey = await t.request('GET', '/v1/clients', { token: org.token });
    expectStatus(byKey, 200);
    expect(await eventsOf(byKey)).toEqual([]);
    // An organization that does not exist: nothing was accessed.
    const missing = await t.request('GET', '/v1/organizations/org_0000000000000000000000/clients', { token: admin.token });
    expectProblem(missing, 404, 'not_found');
    expect(await eventsOf(missing)).toEqual([]);
  });

  it('system routes are not "inside an organization": their changes carry their own events', async () => {
    const settings = await t.request('GET', '/v1/system/settings', { token: admin.token });
    expectStatus(settings, 200);
    expect(await eventsOf(settings)).toEqual([]);
  });

  it('when the record cannot be written the request fails and nothing changes (fail closed)', async () => {
    const work = t.services.work;
    const original = work.run.bind(work);
    let calls = 0;
    // The first unit of work of the request is the admin.accessed record: make exactly that one fail.
    work.run = (async (fn: Parameters<typeof original>[0], options?: Parameters<typeof original>[1]) => {
      calls++;
      if (calls === 1) throw new Error('the audit log cannot be written');
      return original(fn, options);
    }) as typeof work.run;
    let result: HttpResult;
    try {
      result = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: admin.token, body: { name: 'must not exist', scopes: [] } });
    } finally {
      work.run = original;
    }
    expectProblem(result, 500, 'internal_error');
    const keys = await t.db.query("SELECT id FROM api_keys WHERE name = 'must not exist'");
    expect(keys).toEqual([]);
  });
});
