/**
 * The audit list's `targetId` filter (SPEC §9) on a real server: `GET /v1/audit-events` and
 * `GET /v1/system/audit-events` list the events whose target has that id, newest first and
 * cursor-paginated, within the caller's organization; the query is served by the index of
 * migration 18 rather than a walk of the log.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, createSystemKey, expectProblem, expectStatus, startPaygate, type TestApp } from './harness.js';

interface Event {
  id: string;
  action: string;
  organizationId: string | null;
  target: { type: string; id: string } | null;
  details: Record<string, unknown>;
}

describe('audit events by target', () => {
  let t: TestApp;
  let organizationId: string;
  let manager: string;
  let reader: string;
  let systemReader: string;
  let keyA: string;
  let keyB: string;

  /** Every event of a list, `limit` at a time, newest first. */
  async function walk(path: string, token: string, limit = 100): Promise<Event[]> {
    const events: Event[] = [];
    let after: string | null = null;
    for (;;) {
      const separator = path.includes('?') ? '&' : '?';
      const page = await t.request('GET', `${path}${separator}limit=${limit}${after ? `&startingAfter=${after}` : ''}`, { token });
      expectStatus(page, 200);
      const data = page.body.data as Event[];
      if (page.body.hasMore) expect(data).toHaveLength(limit);
      events.push(...data);
      if (!page.body.hasMore) return events;
      after = data[data.length - 1]!.id;
    }
  }

  beforeAll(async () => {
    t = await startPaygate();
    const org = await createOrgWithKey(t, ['api_key:*']);
    organizationId = org.organizationId;
    manager = org.token;
    reader = (await createOrgKey(t, organizationId, ['audit:read'])).secret!;
    systemReader = (await createSystemKey(t, ['audit:read'])).token;
    const create = async (name: string) => {
      const created = await t.request('POST', '/v1/api-keys', { token: manager, body: { name, scopes: ['api_key:read'] } });
      expectStatus(created, 201);
      return created.body.id as string;
    };
    keyA = await create('A');
    keyB = await create('B');
    // Interleaved, so that A's events are not the newest run of the log.
    expectStatus(await t.request('PATCH', `/v1/api-keys/${keyA}`, { token: manager, body: { name: 'A (renamed)' } }), 200);
    expectStatus(await t.request('PATCH', `/v1/api-keys/${keyB}`, { token: manager, body: { name: 'B (renamed)' } }), 200);
    expectStatus(await t.request('POST', `/v1/api-keys/${keyA}/rotate`, { token: manager, body: { gracePeriodMinutes: 0 } }), 200);
    expectStatus(await t.request('POST', `/v1/api-keys/${keyB}/revoke`, { token: manager }), 200);
  });
  afterAll(async () => {
    await t?.close();
  });

  it("lists exactly the events that target the key, newest first, across pages", async () => {
    const all = await walk('/v1/audit-events', reader);
    const expected = all.filter((e) => e.target?.id === keyA);
    expect(expected.map((e) => e.action)).toEqual(['api_key.rotated', 'api_key.updated', 'api_key.created']);
    const listed = await walk(`/v1/audit-events?targetId=${keyA}`, reader);
    expect(listed.map((e) => e.id)).toEqual(expected.map((e) => e.id));
    // One at a time, the cursor walks the same events.
    expect((await walk(`/v1/audit-events?targetId=${keyA}`, reader, 1)).map((e) => e.id)).toEqual(expected.map((e) => e.id));
    expect((await walk(`/v1/audit-events?targetId=${keyB}`, reader)).map((e) => e.action)).toEqual(['api_key.revoked', 'api_key.updated', 'api_key.created']);
    // With the other filters: both hold.
    expect((await walk(`/v1/audit-events?targetId=${keyA}&action=api_key.updated`, reader)).map((e) => e.action)).toEqual(['api_key.updated']);
    expect(await walk(`/v1/audit-events?targetId=${keyA}&action=api_key.revoked`, reader)).toEqual([]);
    expect(await walk('/v1/audit-events?targetId=nothing-has-this-id', reader)).toEqual([]);
  });

  it("another organization's reader sees none of the key's events; the system list sees them all", async () => {
    const other = await createOrgWithKey(t, ['audit:read']);
    expect(await walk(`/v1/audit-events?targetId=${keyA}`, other.token)).toEqual([]);
    const system = await walk(`/v1/system/audit-events?targetId=${keyA}`, systemReader);
    expect(system.map((e) => e.action)).toEqual(['api_key.rotated', 'api_key.updated', 'api_key.created']);
    expect(system.every((e) => e.organizationId === organizationId && e.target?.id === keyA)).toBe(true);
    // The organization itself is a target too (its provisioning).
    const provisioned = await walk(`/v1/system/audit-events?targetId=${other.organizationId}`, systemReader);
    expect(provisioned.map((e) => e.action)).toContain('organization.created');
  });

  it('the twin route /v1/organizations/{orgId}/audit-events takes it too', async () => {
    const listed = await walk(`/v1/organizations/${organizationId}/audit-events?targetId=${keyB}`, reader);
    expect(listed.map((e) => e.action)).toEqual(['api_key.revoked', 'api_key.updated', 'api_key.created']);
  });

  it('a bad targetId is 400 validation_error', async () => {
    expectProblem(await t.request('GET', '/v1/audit-events?targetId=', { token: reader }), 400, 'validation_error');
    expectProblem(await t.request('GET', `/v1/audit-events?targetId=${'x'.repeat(65)}`, { token: reader }), 400, 'validation_error');
    expectProblem(await t.request('GET', `/v1/system/audit-events?targetId=${'x'.repeat(65)}`, { token: systemReader }), 400, 'validation_error');
  });

  it('the read is audited with the filter it used', async () => {
    const fresh = (await createOrgKey(t, organizationId, ['audit:read'])).secret!;
    await walk(`/v1/audit-events?targetId=${keyA}`, fresh);
    const reads = await walk('/v1/audit-events?action=audit.read', reader);
    expect(reads.some((e) => (e.details.filter as Record<string, unknown> | undefined)?.targetId === keyA)).toBe(true);
  });

  it("the filter's query is served by audit_events_target_idx (migration 18), in both scopes", async () => {
    const client = new pg.Client(t.ownerUrl);
    await client.connect();
    try {
      await client.query('BEGIN');
      // Seq scans off: the question is whether the index can serve the filter's expression at all.
      await client.query('SET LOCAL enable_seqscan = off');
      const plan = async (sql: string, params: unknown[]) => (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
      // The statements of src/audit/service.ts list(), as it builds them for these filters.
      expect(await plan("SELECT * FROM audit_events WHERE organization_id = $1 AND target->>'id' = $2 ORDER BY seq DESC LIMIT $3", [organizationId, keyA, 21])).toContain('audit_events_target_idx');
      expect(await plan("SELECT * FROM audit_events WHERE target->>'id' = $1 ORDER BY seq DESC LIMIT $2", [keyA, 21])).toContain('audit_events_target_idx');
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
  });
});
