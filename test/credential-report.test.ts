/**
 * The credential report and the compliance evidence (SPEC §14) on a real server: the columns, CSV
 * that is RFC 4180 and formula-safe, JSON, paging past one page, who may read which report, the
 * `audit.read` it records, and the evidence bundle's signature checked with the published key by
 * this test's own Ed25519 verification.
 */
import { createPublicKey, verify } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/canonical-json.js';
import {
  changeKeyRow,
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

const COLUMNS = [
  'id', 'tier', 'organizationId', 'name', 'status', 'scopes', 'createdAt', 'createdBy', 'creatorIsMember', 'secretAgeDays',
  'rotatedAt', 'expiresAt', 'lastUsedAt', 'lastUsedIp', 'unusedDays', 'allowedIps', 'rateLimit', 'flags',
];

/** An RFC 4180 reader of our own: CRLF records, quoted fields with doubled quotes. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
      i++;
    } else field += c;
  }
  expect(field, 'the file ends with CRLF').toBe('');
  expect(record).toEqual([]);
  return records;
}

function csvObjects(text: string): Array<Record<string, string>> {
  const [header, ...rows] = parseCsv(text);
  expect(header).toEqual(COLUMNS);
  return rows.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i]!])));
}

/** Keys inserted directly (fast): `count` organization keys of `organizationId`. */
async function insertKeys(ownerUrl: string, organizationId: string, count: number, prefix: string): Promise<void> {
  const client = new pg.Client(ownerUrl);
  await client.connect();
  try {
    const ids = `'${prefix}' || substr(md5($1 || g::text), 1, ${20 - prefix.length})`;
    await client.query(`INSERT INTO api_key_ids (id) SELECT ${ids} FROM generate_series(1, $2) g`, [organizationId, count]);
    await client.query(
      `INSERT INTO api_keys (id, tier, organization_id, name, scopes, secret_hash, pepper_version, hint, created_by, created_at, updated_at)
       SELECT ${ids}, 'organization', $1, 'bulk ' || g, ARRAY['client:read'], '\\x00'::bytea, 1, 'abcd',
              '{"type": "system", "id": null}'::jsonb, now() - make_interval(mins => g), now()
         FROM generate_series(1, $2) g`,
      [organizationId, count],
    );
  } finally {
    await client.end();
  }
}

describe('the credential report', () => {
  let t: TestApp;
  let a: OrgWithKey;
  let b: OrgWithKey;
  let system: { token: string; keyId: string };
  let adminToken: string;
  const tricky = ['=HYPERLINK("http://evil")', '+1 tricky', '-2 tricky', '@SUM(A1)', '\tTAB', '\rCR', 'comma, "quote"\nnewline'];
  const trickyIds: string[] = [];

  beforeAll(async () => {
    t = await startPaygate();
    a = await createOrgWithKey(t, ['api_key:*', 'audit:read']);
    b = await createOrgWithKey(t, ['api_key:*']);
    for (const name of tricky) trickyIds.push((await createOrgKey(t, a.organizationId, ['client:read'], { name })).id);
    system = await createSystemKey(t, ['audit:read', 'audit:create']);
    const admin = await createUser(t, { globalAdmin: true });
    adminToken = (await login(t, admin.email, admin.password)).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('has one row per key of the organization, exactly the columns of the contract, formula-safe and RFC 4180 quoted', async () => {
    const deleted = await createOrgKey(t, a.organizationId, ['client:read'], { name: 'deleted later' });
    expectStatus(await t.request('DELETE', `/v1/api-keys/${deleted.id}`, { token: a.token }), 204);
    const result = await t.request('GET', '/v1/api-keys/report?format=csv', { token: a.token });
    expectStatus(result, 200);
    expect(result.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(result.headers.get('content-disposition')).toMatch(/^attachment; filename="credential-report-.*\.csv"$/);
    const rows = csvObjects(result.text);
    // The initial key and the tricky ones; the deleted key is not there, nor any key of B.
    expect(rows.map((r) => r.id).sort()).toEqual([a.keyId, ...trickyIds].sort());
    const byId = new Map(rows.map((r) => [r.id, r]));
    // Each trigger character gets a leading quote; the value is otherwise kept, quoted when needed.
    expect(trickyIds.map((id) => byId.get(id)!.name)).toEqual(["'=HYPERLINK(\"http://evil\")", "'+1 tricky", "'-2 tricky", "'@SUM(A1)", "'\tTAB", "'\rCR", 'comma, "quote"\nnewline']);
    const initial = byId.get(a.keyId)!;
    expect(initial).toMatchObject({ tier: 'organization', organizationId: a.organizationId, status: 'active', scopes: 'api_key:* audit:read', createdBy: 'system', creatorIsMember: '', secretAgeDays: '0', unusedDays: '0' });
    expect(initial.flags!.split(' ')).toEqual(['no_expiry', 'broad_scopes']);
  });

  it('answers JSON with the same columns and typed values', async () => {
    await changeKeyRow(t, `UPDATE api_keys SET created_at = now() - interval '40 days', rotated_at = now() - interval '12 days', last_used_at = now() - interval '3 days', last_used_ip = '10.1.2.3',
      allowed_ips = ARRAY['10.0.0.0/8'], rate_limit_requests = 100, rate_limit_window_seconds = 60 WHERE id = $1`, trickyIds[0]!);
    const result = await t.request('GET', `/v1/organizations/${a.organizationId}/api-keys/report?format=json`, { token: a.token });
    expectStatus(result, 200);
    expect(result.headers.get('content-type')).toMatch(/^application\/json/);
    expect(result.body).toMatchObject({ object: 'credential_report', scope: 'organization', organizationId: a.organizationId });
    const rows = result.body.data as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(1 + tricky.length);
    for (const row of rows) expect(Object.keys(row)).toEqual(COLUMNS);
    const row = rows.find((r) => r.id === trickyIds[0])!;
    expect(row).toMatchObject({ name: tricky[0], secretAgeDays: 12, unusedDays: 3, lastUsedIp: '10.1.2.3', allowedIps: ['10.0.0.0/8'], rateLimit: { requests: 100, windowSeconds: 60 }, scopes: ['client:read'], flags: ['no_expiry'] });
  });

  it('streams past one page of keys (2,500 keys read in pages of 1,000)', async () => {
    const big = await createOrgWithKey(t, ['api_key:read']);
    await insertKeys(t.ownerUrl, big.organizationId, 2_500, 'p');
    const csv = await t.request('GET', '/v1/api-keys/report', { token: big.token });
    expectStatus(csv, 200);
    const rows = csvObjects(csv.text);
    expect(rows).toHaveLength(2_501);
    expect(new Set(rows.map((r) => r.id)).size).toBe(2_501);
    const json = await t.request('GET', '/v1/api-keys/report?format=json', { token: big.token });
    expect(json.body.data).toHaveLength(2_501);
  });

  it('takes only csv or json', async () => {
    expectProblem(await t.request('GET', '/v1/api-keys/report?format=xlsx', { token: a.token }), 400, 'validation_error');
  });

  it('needs api_key:read in the organization; the system report needs a system audit:read key or a global admin', async () => {
    const reader = await createOrgKey(t, a.organizationId, ['client:read']);
    expectProblem(await t.request('GET', '/v1/api-keys/report', { token: reader.secret! }), 403, 'insufficient_scope');
    expectProblem(await t.request('GET', `/v1/organizations/${b.organizationId}/api-keys/report`, { token: a.token }), 403, 'organization_mismatch');
    expectProblem(await t.request('GET', '/v1/api-keys/report', { token: system.token }), 403, 'wrong_key_tier');
    expectProblem(await t.request('GET', '/v1/system/credential-report', { token: a.token }), 403, 'wrong_key_tier');
    const noAudit = await createSystemKey(t, ['health:read']);
    expectProblem(await t.request('GET', '/v1/system/credential-report', { token: noAudit.token }), 403, 'insufficient_scope');
    expectProblem(await t.request('GET', '/v1/system/compliance-evidence', { token: noAudit.token }), 403, 'insufficient_scope');
    expectProblem(await t.request('GET', '/v1/system/credential-report'), 401, 'missing_credentials');
    const member = await createUser(t, { organizationId: a.organizationId, role: 'owner' });
    const memberToken = (await login(t, member.email, member.password)).token;
    expectProblem(await t.request('GET', '/v1/system/credential-report', { token: memberToken }), 403, 'forbidden');
    // A member reads the organization's report through the organization in the path.
    expectStatus(await t.request('GET', `/v1/organizations/${a.organizationId}/api-keys/report`, { token: memberToken }), 200);
    // A viewer's role holds no api_key:read.
    const viewer = await createUser(t, { organizationId: a.organizationId, role: 'viewer' });
    const viewerToken = (await login(t, viewer.email, viewer.password)).token;
    expectProblem(await t.request('GET', `/v1/organizations/${a.organizationId}/api-keys/report`, { token: viewerToken }), 403, 'insufficient_scope');
  });

  it('the system report has every key of every organization and the system keys, for a system key and a global admin alike', async () => {
    for (const token of [system.token, adminToken]) {
      const result = await t.request('GET', '/v1/system/credential-report?format=json', { token });
      expectStatus(result, 200);
      expect(result.body).toMatchObject({ scope: 'system', organizationId: null });
      const ids = new Set((result.body.data as Array<{ id: string }>).map((r) => r.id));
      for (const id of [a.keyId, b.keyId, system.keyId, ...trickyIds]) expect(ids.has(id), id).toBe(true);
      const [{ n }] = (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys')) as [{ n: number }];
      expect(ids.size).toBe(n);
    }
    const csv = await t.request('GET', '/v1/system/credential-report', { token: system.token });
    expectStatus(csv, 200);
    const systemRow = csvObjects(csv.text).find((r) => r.id === system.keyId)!;
    expect(systemRow).toMatchObject({ tier: 'system', organizationId: '', scopes: 'audit:create audit:read' });
  });

  it('is audited as audit.read', async () => {
    const org = await createOrgWithKey(t, ['api_key:read', 'audit:read']);
    expectStatus(await t.request('GET', '/v1/api-keys/report?format=json', { token: org.token }), 200);
    const events = await t.request('GET', '/v1/audit-events?action=audit.read', { token: org.token });
    expectStatus(events, 200);
    const report = (events.body.data as Array<{ actor: { id: string }; details: Record<string, unknown> }>).filter((e) => e.details.report === 'credential_report');
    expect(report).toHaveLength(1);
    expect(report[0]).toMatchObject({ actor: { type: 'api_key', id: org.keyId }, details: { report: 'credential_report', scope: 'organization', format: 'json' } });

    expectStatus(await t.request('GET', '/v1/system/credential-report', { token: system.token }), 200);
    expectStatus(await t.request('GET', '/v1/system/compliance-evidence', { token: system.token }), 200);
    const all = await t.request('GET', `/v1/system/audit-events?action=audit.read&actorId=${system.keyId}`, { token: system.token });
    const reports = (all.body.data as Array<{ details: Record<string, unknown> }>).map((e) => e.details.report).filter(Boolean);
    expect(reports.sort()).toEqual(['compliance_evidence', 'credential_report']);
  });
});

describe('the compliance evidence', () => {
  let t: TestApp;
  let system: { token: string; keyId: string };

  beforeAll(async () => {
    t = await startPaygate();
    system = await createSystemKey(t, ['audit:read', 'audit:create', 'system_settings:*']);
    const org = await createOrgWithKey(t, ['api_key:*']);
    const revoked = await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString() });
    await createOrgKey(t, org.organizationId, ['client:read'], { expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString() });
    expectStatus(await t.request('POST', `/v1/api-keys/${revoked.id}/revoke`, { token: org.token }), 200);
    expectStatus(await t.request('PATCH', '/v1/system/settings', { token: system.token, body: { apiKeyExpiryWarningDays: 7 } }), 200);
    expectStatus(await t.request('POST', '/v1/system/audit-checkpoints', { token: system.token }), 201);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is signed with the audit checkpoint key, over the canonical JSON of the bundle without its signature', async () => {
    const result = await t.request('GET', '/v1/system/compliance-evidence', { token: system.token });
    expectStatus(result, 200);
    const bundle = result.body as Record<string, any>;
    expect(Object.keys(bundle).sort()).toEqual(['audit', 'generatedAt', 'keys', 'object', 'settings', 'signature']);
    expect(bundle).toMatchObject({
      object: 'compliance_evidence',
      settings: { apiKeyExpiryWarningDays: 7, apiKeyRotationGraceMinutes: 1440 },
      // The system key, the organization's initial key, and two more (one revoked, one expiring);
    // broad: the system key (system_settings:*) and the initial key (api_key:*).
      keys: { total: 4, byStatus: { active: 3, revoked: 1, expired: 0, quarantined: 0 } },
      audit: { chainVerified: true },
    });
    expect(bundle.keys.byFlag).toEqual({ rotation_due: 0, inactive: 0, expiring_soon: 1, no_expiry: 2, broad_scopes: 2, creator_removed: 0, leaked: 0 });
    expect(bundle.audit.events).toBeGreaterThan(3);
    expect(bundle.audit.checkpoint).toMatchObject({ object: 'audit_checkpoint' });
    expect(typeof bundle.audit.oldestEventAt).toBe('string');

    const pem = await t.request('GET', '/v1/system/audit-checkpoints/public-key', { token: system.token });
    expectStatus(pem, 200);
    const publicKey = createPublicKey(pem.text);
    const { signature, ...unsigned } = bundle;
    const signatureBytes = Buffer.from(signature as string, 'base64');
    expect(verify(null, Buffer.from(canonicalJson(unsigned), 'utf8'), publicKey, signatureBytes)).toBe(true);
    // Any change breaks it.
    const altered = { ...unsigned, keys: { ...unsigned.keys, total: unsigned.keys.total - 1 } };
    expect(verify(null, Buffer.from(canonicalJson(altered), 'utf8'), publicKey, signatureBytes)).toBe(false);
  });

  it('reports a broken chain as not verified', async () => {
    const client = new pg.Client(t.ownerUrl);
    await client.connect();
    try {
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
      await client.query(`UPDATE audit_events SET details = '{"tampered": true}' WHERE seq = (SELECT min(seq) FROM audit_events)`);
      await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
    } finally {
      await client.end();
    }
    const result = await t.request('GET', '/v1/system/compliance-evidence', { token: system.token });
    expectStatus(result, 200);
    expect(result.body.audit.chainVerified).toBe(false);
  });
});
