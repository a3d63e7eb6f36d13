/**
 * The floor for `npm run bench`: the least a Fastify server can do for Paygate's request paths, so
 * that Paygate's throughput can be read against what this machine achieves with the same framework.
 *
 * Runs as a child process of bench/run.ts (`node --import tsx bench/floor/app.ts`, started by
 * bench/floor/floor.ts) with the project's own `fastify` and `pg`:
 *   GET /healthz          bare route: {"status":"ok"}, like Paygate's
 *   GET /v1/auth/whoami   one onRequest hook: parse `Authorization: Bearer sk_<id>.<secret>` (parseToken
 *                         of src/keys/token.ts), SHA-256 of the token once, the id in a Map, digests
 *                         compared with timingSafeEqual, one scope checked; a whoami-shaped body.
 *                         Unknown id, wrong secret or malformed token: 401 problem+json.
 *   GET /v1/clients/:id   the same hook, then Paygate's single-row query with a pg.Pool (max 10, like
 *                         Paygate's) on Paygate's own database; a client-shaped body, 404 when absent.
 * Responses have schemas, so Fastify serialises them with compiled functions, as Paygate's do.
 *
 * Environment: FLOOR_PORT, FLOOR_KEYS (JSON array of { token, keyId, organizationId, scopes }: the keys
 * the bench made in Paygate), FLOOR_DATABASE_URL (optional: without it /v1/clients/:id answers 503).
 * Prints one line `FLOOR_READY {"port":...}` when listening. Logging off.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import pg from 'pg';
import { parseToken } from '../../src/keys/token.js';

interface FloorKey {
  token: string;
  keyId: string;
  organizationId: string;
  scopes: string[];
}

interface KnownKey {
  digest: Buffer;
  keyId: string;
  organizationId: string;
  scopes: string[];
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`floor: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('FLOOR_PORT'));
const databaseUrl = process.env.FLOOR_DATABASE_URL || null;
const known = new Map<string, KnownKey>();
for (const key of JSON.parse(required('FLOOR_KEYS')) as FloorKey[]) {
  const parsed = parseToken(key.token);
  if (!parsed.ok) throw new Error(`floor: key ${key.keyId} does not parse (${parsed.reason})`);
  known.set(parsed.token.id, { digest: hash('sha256', key.token, 'buffer'), keyId: key.keyId, organizationId: key.organizationId, scopes: key.scopes });
}

/** The scope the floor checks on every authenticated route: what Paygate's client read needs. */
const FLOOR_SCOPE = 'client:read';

declare module 'fastify' {
  interface FastifyRequest {
    floorKey: KnownKey | null;
  }
}

/** A problem+json body of Paygate's shape (SPEC §8), small and fixed. */
function problem(request: FastifyRequest, reply: FastifyReply, status: number, code: string, title: string) {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (status === 401) headers['www-authenticate'] = 'Bearer error="invalid_token"';
  return reply
    .code(status)
    .headers(headers)
    .send(JSON.stringify({ type: `https://paygate.dev/errors/${code}`, title, status, detail: title, code, requestId: request.id }));
}

async function verifyKey(request: FastifyRequest, reply: FastifyReply) {
  const header = request.headers.authorization;
  const token = header && header.startsWith('Bearer ') ? header.slice(7) : '';
  const parsed = parseToken(token);
  const entry = parsed.ok ? known.get(parsed.token.id) : undefined;
  if (!entry) return problem(request, reply, 401, 'invalid_api_key', 'The API key is not valid');
  const digest = hash('sha256', token, 'buffer');
  if (!timingSafeEqual(digest, entry.digest)) return problem(request, reply, 401, 'invalid_api_key', 'The API key is not valid');
  if (!entry.scopes.includes(FLOOR_SCOPE)) return problem(request, reply, 403, 'insufficient_scope', 'The API key lacks a scope');
  request.floorKey = entry;
}

const Whoami = {
  type: 'object',
  properties: {
    type: { type: 'string' },
    keyId: { type: ['string', 'null'] },
    tier: { type: ['string', 'null'] },
    organizationId: { type: ['string', 'null'] },
    scopes: { type: 'array', items: { type: 'string' } },
    status: { type: 'string' },
  },
} as const;

const Client = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    object: { type: 'string' },
    name: { type: 'string' },
    email: { type: ['string', 'null'] },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;

interface ClientRow {
  id: string;
  name: string;
  email: string | null;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date;
}

async function main(): Promise<void> {
  const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 10, idleTimeoutMillis: 30_000 }) : null;
  pool?.on('error', () => undefined);

  const app = Fastify({ logger: false });
  app.decorateRequest('floorKey', null);
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/v1/auth/whoami', { onRequest: verifyKey, schema: { response: { 200: Whoami } } }, async (request) => {
    const key = request.floorKey!;
    return { type: 'api_key', keyId: key.keyId, tier: 'organization', organizationId: key.organizationId, scopes: key.scopes, status: 'active' };
  });
  app.get<{ Params: { id: string } }>('/v1/clients/:id', { onRequest: verifyKey, schema: { response: { 200: Client } } }, async (request, reply) => {
    if (!pool) return problem(request, reply, 503, 'service_unavailable', 'No database');
    const { rows } = await pool.query<ClientRow>('SELECT * FROM clients WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL', [
      request.params.id,
      request.floorKey!.organizationId,
    ]);
    const row = rows[0];
    if (!row) return problem(request, reply, 404, 'not_found', 'No such client');
    return { id: row.id, object: 'client', name: row.name, email: row.email, metadata: row.metadata, createdAt: row.created_at.toISOString(), updatedAt: row.updated_at.toISOString() };
  });
  await app.listen({ port, host: '127.0.0.1' });

  const shutdown = async () => {
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());

  process.stdout.write(`FLOOR_READY ${JSON.stringify({ port })}\n`);
}

main().catch((error) => {
  console.error('floor: failed:', error instanceof Error ? error.message : String(error));
  process.exit(1);
});
