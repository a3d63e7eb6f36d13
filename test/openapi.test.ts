/**
 * The API description is the code's own (SPEC §17): /openapi.json, fetched from a running server,
 * validates (@apidevtools/swagger-parser), lints clean with Redocly's recommended rules (the CLI,
 * on a temporary file), and describes every operation completely: a unique operationId, tags, a
 * 2xx response schema, problem+json errors, its security, `x-required-scope` where an API key can
 * call it, the CSRF and Idempotency-Key headers where they apply. Failures list what is missing by
 * operation, so they say where to look.
 *
 * It also checks that the response schemas are what the server sends: they serialise (a field a
 * schema lacks is dropped, so a hash could never leave through a view), and the token format is
 * written so that Swagger UI shows it literally.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, createSystemKey, expectStatus, startPaygate, type TestApp } from './harness.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REDOCLY = path.join(ROOT, 'node_modules/@redocly/cli/bin/cli.js');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

interface Operation {
  operationId?: string;
  tags?: string[];
  summary?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string; required?: boolean }>;
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
  'x-required-scope'?: string | null;
}
type Document = {
  openapi: string;
  servers?: Array<{ url: string }>;
  info: { description?: string };
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, Record<string, unknown>>;
    securitySchemes: Record<string, Record<string, unknown>>;
    responses?: Record<string, unknown>;
    examples?: Record<string, unknown>;
  };
};

function operations(doc: Document): Array<{ key: string; path: string; method: string; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([p, item]) =>
    METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${p}`, path: p, method: m, op: item[m]! })),
  );
}

function resolve<T>(doc: Document, value: T): T {
  const ref = (value as { $ref?: string }).$ref;
  if (!ref) return value;
  const target = ref.replace(/^#\//, '').split('/').reduce<unknown>((node, key) => (node as Record<string, unknown>)?.[key], doc);
  return target as T;
}

/** What an operation's description lacks, by operation (empty when complete). */
function missingByOperation(doc: Document): Record<string, string[]> {
  const missing: Record<string, string[]> = {};
  const seen = new Map<string, string>();
  const organizationScopes = new Set((doc.components.schemas.OrganizationScope?.enum as string[] | undefined) ?? []);
  const systemScopes = new Set((doc.components.schemas.SystemScope?.enum as string[] | undefined) ?? []);
  for (const { key, method, path: p, op } of operations(doc)) {
    const lacks: string[] = [];
    if (!op.operationId) lacks.push('operationId');
    else if (seen.has(op.operationId)) lacks.push(`operationId ${op.operationId} also used by ${seen.get(op.operationId)}`);
    else seen.set(op.operationId, key);
    if (op.operationId && !/^[a-z][A-Za-z0-9]*$/.test(op.operationId)) lacks.push(`camelCase operationId (${op.operationId})`);
    if (!op.tags?.length) lacks.push('tags');
    if (!op.summary) lacks.push('summary');
    if (!op.security) lacks.push('security');
    // Problem responses are shared components ($ref); the operation's own are inline.
    const responses = Object.entries(op.responses ?? {}).map(([status, response]) => [status, resolve(doc, response)] as const);
    const success = responses.filter(([status]) => /^2\d\d$/.test(status));
    if (success.length === 0) lacks.push('a 2xx response');
    for (const [status, response] of success) {
      if (status !== '204' && !Object.values(response.content ?? {}).some((media) => media.schema)) lacks.push(`a schema for ${status}`);
    }
    if (!responses.some(([status]) => /^4\d\d$/.test(status))) lacks.push('a 4xx problem response');
    for (const [status, response] of responses) {
      // The probes answer their 503 in their own JSON shape (load balancers read it); every other error is a problem.
      const probe = p === '/healthz' || p === '/readyz';
      if (/^[45]\d\d$/.test(status) && !(probe && status === '503') && !response.content?.['application/problem+json']) {
        lacks.push(`application/problem+json for ${status}`);
      }
    }
    const apiKey = op.security?.some((s) => 'apiKey' in s) ?? false;
    const scope = op['x-required-scope'];
    // null where an API key needs no scope at all (whoami); absent only where no API key may call.
    if (apiKey && scope === undefined) lacks.push('x-required-scope');
    if (scope && !organizationScopes.has(scope) && !systemScopes.has(scope)) lacks.push(`x-required-scope ${scope} in the scope enums`);
    const cookie = op.security?.some((s) => 'sessionCookie' in s) ?? false;
    if (cookie && method !== 'get' && !op.parameters?.some((q) => q.in === 'header' && q.name === 'X-CSRF-Token')) lacks.push('the X-CSRF-Token header');
    if (lacks.length > 0) missing[key] = lacks;
  }
  return missing;
}

async function redoclyLint(doc: Document) {
  const dir = await mkdtemp(path.join(tmpdir(), 'paygate-openapi-'));
  try {
    const file = path.join(dir, 'openapi.json');
    await writeFile(file, JSON.stringify(doc));
    const run = await promisify(execFile)(process.execPath, [REDOCLY, 'lint', '--extends=recommended', '--format=json', file], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    return JSON.parse(run.stdout) as {
      totals: { errors: number; warnings: number };
      problems: Array<{ ruleId: string; severity: string; message: string; location: Array<{ pointer: string }> }>;
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `#/paths/~1v1~1api-keys/post/...` -> `POST /v1/api-keys` (else the pointer). */
function whereOf(pointer: string): string {
  const match = /^#\/paths\/([^/]+)\/([a-z]+)/.exec(pointer);
  if (!match) return pointer;
  return `${match[2]!.toUpperCase()} ${match[1]!.replace(/~1/g, '/').replace(/~0/g, '~')}`;
}

let t: TestApp;
let doc: Document;

beforeAll(async () => {
  t = await startPaygate();
  const response = await t.request('GET', '/openapi.json');
  expectStatus(response, 200);
  doc = response.body as Document;
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe('the OpenAPI document', () => {
  it('validates with swagger-parser', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeTruthy();
    expect(doc.openapi).toBe('3.1.0');
  });

  it("lints with Redocly's recommended rules without errors or warnings", async () => {
    const result = await redoclyLint(doc);
    const problems = result.problems.map((p) => `${p.severity} ${p.ruleId} at ${whereOf(p.location[0]?.pointer ?? '')}: ${p.message}`);
    expect(problems).toEqual([]);
    expect(result.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 120_000);

  it('describes every operation completely (listed by operation when not)', () => {
    expect(operations(doc).length).toBeGreaterThan(100);
    expect(missingByOperation(doc)).toEqual({});
  });

  it('the completeness check itself finds what an operation lacks', () => {
    const broken = structuredClone(doc);
    const create = broken.paths['/v1/api-keys']!.post!;
    delete create.operationId;
    delete create['x-required-scope'];
    create.parameters = create.parameters?.filter((p) => p.name !== 'X-CSRF-Token');
    create.responses!['404'] = { content: { 'application/json': { schema: {} } } };
    delete broken.paths['/v1/api-keys/{id}']!.get!.responses!['200'];
    const missing = missingByOperation(broken);
    expect(Object.keys(missing).sort()).toEqual(['GET /v1/api-keys/{id}', 'POST /v1/api-keys']);
    expect(missing['POST /v1/api-keys']!.sort()).toEqual(['application/problem+json for 404', 'operationId', 'the X-CSRF-Token header', 'x-required-scope']);
    expect(missing['GET /v1/api-keys/{id}']).toEqual(['a 2xx response']);
  });

  it('the organization mount of each route is the same operation with an orgId and a derived operationId', () => {
    const ops = new Map(operations(doc).map((o) => [o.key, o.op]));
    let twins = 0;
    for (const [key, op] of ops) {
      const match = /^(\w+) \/v1\/organizations\/\{orgId\}(\/.+)$/.exec(key);
      if (!match) continue;
      const short = ops.get(`${match[1]} /v1${match[2]}`);
      if (!short) continue;
      twins++;
      expect(op.operationId, key).toBe(`${short.operationId}InOrganization`);
      expect(op.parameters?.find((p) => p.in === 'path' && p.name === 'orgId')?.required, key).toBe(true);
      expect(op['x-required-scope'], key).toBe(short['x-required-scope']);
    }
    expect(twins).toBeGreaterThan(30);
  });

  it('names its components and security schemes, and its server is PAYGATE_PUBLIC_URL', () => {
    expect(doc.servers?.[0]?.url).toBe(t.services.config.publicUrl);
    for (const name of ['ApiKey', 'ApiKeyWithSecret', 'Organization', 'Problem', 'OrganizationScope', 'SystemScope', 'AuditEvent', 'WebhookEndpoint', 'SystemSettings']) {
      expect(doc.components.schemas[name], name).toBeDefined();
    }
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'sessionCookie', 'sessionToken']);
    const create = doc.paths['/v1/api-keys']!.post!;
    expect(create.operationId).toBe('createApiKey');
    expect(create['x-required-scope']).toBe('api_key:create');
    expect(doc.paths['/v1/api-keys/{id}/rotate']!.post!.operationId).toBe('rotateApiKey');
    expect(doc.paths['/v1/auth/login']!.post!.security).toEqual([]);
    expect(doc.paths['/v1/system/api-keys']!.post!.security).toEqual([{ sessionToken: [] }, { sessionCookie: [] }]);
    // The key object carries the whole of SPEC §4 and §12.
    const key = doc.components.schemas.ApiKey as { properties: Record<string, { enum?: string[]; items?: { enum?: string[] } }> };
    expect(key.properties.status!.enum).toContain('quarantined');
    for (const field of ['lastUsedIp', 'lastUserAgent', 'previousSecretLastUsedAt', 'previousSecretLastUsedIp', 'flags', 'hint', 'previousSecretExpiresAt']) {
      expect(key.properties[field], field).toBeDefined();
    }
    expect(key.properties.flags!.items!.enum).toEqual(['rotation_due', 'inactive', 'expiring_soon', 'no_expiry', 'broad_scopes', 'creator_removed', 'leaked']);
    expect(key.properties.secret).toBeUndefined();
    const settings = doc.components.schemas.SystemSettings as { properties: Record<string, { enum?: string[] }> };
    expect(settings.properties.leakedKeyAction!.enum).toEqual(['revoke', 'quarantine']);
    for (const field of ['apiKeyRotationMaxAgeDays', 'apiKeyInactiveDays', 'apiKeyExpiryWarningDays']) expect(settings.properties[field], field).toBeDefined();
  });

  it('writes the token format so that Swagger UI shows it literally (markup only inside code spans)', () => {
    const texts: string[] = [];
    const collect = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(collect);
      if (!node || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        if ((k === 'description' || k === 'summary') && typeof v === 'string') texts.push(v);
        else collect(v);
      }
    };
    collect(doc);
    expect(doc.info.description).toContain('`Authorization: Bearer sk_<id>.<secret>`');
    // Markdown (Swagger UI renders descriptions as such) would take `<id>` outside a code span for an HTML tag.
    const outsideCode = texts.map((text) => text.replace(/`[^`]*`/g, '')).filter((text) => /<[A-Za-z/]|&lt;/.test(text));
    expect(outsideCode).toEqual([]);
  });
});

describe('response schemas are what the server sends', () => {
  it('a created key answers the whole key view and its secret; a read never carries a secret or hash', async () => {
    const org = await createOrgWithKey(t, ['api_key:*']);
    const created = await t.request('POST', '/v1/api-keys', { token: org.token, body: { name: 'openapi', scopes: ['api_key:read'] } });
    expectStatus(created, 201);
    const required = (doc.components.schemas.ApiKeyWithSecret as { required: string[] }).required;
    expect(Object.keys(created.body)).toEqual(expect.arrayContaining(required));
    expect(created.body.secret).toMatch(/^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/);
    const read = await t.request('GET', `/v1/api-keys/${created.body.id}`, { token: org.token });
    expectStatus(read, 200);
    const allowed = Object.keys((doc.components.schemas.ApiKey as { properties: object }).properties);
    for (const field of Object.keys(read.body)) expect(allowed, field).toContain(field);
    expect(read.body.secret).toBeUndefined();
    expect(JSON.stringify(read.body)).not.toContain(created.body.secret.split('.')[1]);
    expect(JSON.stringify(read.body)).not.toMatch(/hash/i);
  });

  it('problems keep their extra fields (requiredScope, errors) whatever the route schema', async () => {
    const org = await createOrgWithKey(t, ['client:read']);
    const refused = await t.request('GET', '/v1/api-keys', { token: org.token });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(refused.body).toMatchObject({ code: 'insufficient_scope', requiredScope: 'api_key:read' });
    const sys = await createSystemKey(t, ['organization:*']);
    const invalid = await t.request('POST', '/v1/system/organizations', { token: sys.token, body: { name: '' } });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors).toEqual([expect.objectContaining({ path: '/name' })]);
  });
});
