/** Liveness, readiness, metrics (unauthenticated, secret-free) and the detailed system health route. */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { Type } from 'typebox';
import { route } from './routes.js';
import { component, problemResponses } from './openapi.js';
import { RedisRateLimiter } from '../rate-limit/redis.js';

const Liveness = Type.Object(
  { status: Type.String({ enum: ['ok', 'failed'] }), reason: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
const Readiness = Type.Object(
  {
    status: Type.String({ enum: ['ready', 'not_ready'] }),
    checks: Type.Object({ database: Type.Boolean(), invalidationChannel: Type.Boolean() }, { additionalProperties: false }),
    starting: Type.Optional(Type.Boolean({ description: 'Present while the node is still starting' })),
  },
  { additionalProperties: false },
);
const SystemHealthRef = component(
  'SystemHealth',
  Type.Object(
    {
      status: Type.String({ enum: ['ok', 'degraded'] }),
      uptimeSeconds: Type.Integer(),
      mode: Type.String({ enum: ['server', 'embedded'] }),
      database: Type.Object({ ok: Type.Boolean(), version: Type.Union([Type.String(), Type.Null()]), latencyMs: Type.Number() }, { additionalProperties: false }),
      invalidationChannel: Type.Object(
        {
          live: Type.Boolean(),
          received: Type.Integer(),
          flushes: Type.Integer(),
          reconnects: Type.Integer(),
          ackTimeouts: Type.Integer(),
          caughtUp: Type.Integer(),
        },
        { additionalProperties: false, description: 'Whether the cache invalidation channel is live, with its counters' },
      ),
      keyCache: Type.Object({ entries: Type.Integer(), hits: Type.Integer(), misses: Type.Integer(), negativeHits: Type.Integer() }, { additionalProperties: false }),
      rateLimiter: Type.Object(
        { kind: Type.String(), reachable: Type.Optional(Type.Boolean()), failures: Type.Optional(Type.Integer()) },
        { additionalProperties: false },
      ),
      counts: Type.Union([Type.Object({ organizations: Type.Integer(), keys: Type.Integer(), users: Type.Integer() }, { additionalProperties: false }), Type.Null()]),
      memory: Type.Object({ rssBytes: Type.Integer() }, { additionalProperties: false }),
    },
    { additionalProperties: false, description: "This node's health, in detail; no secrets" },
  ),
);

/** An unauthenticated probe, documented (outside /v1, so not through route()). */
function probeSchema(operationId: string, summary: string, description: string, ok: object, failed: object) {
  return {
    operationId,
    summary,
    description,
    tags: ['Health'],
    security: [],
    response: { ...problemResponses(['validation_error']), 200: ok, 503: failed },
  };
}

/** The database check of /readyz and /v1/system/health; below the 1 s readiness bound. */
const READINESS_TIMEOUT_MS = 800;

export function registerHealthRoutes(
  app: FastifyInstance,
  services: Services,
  liveness: () => boolean = () => true,
  readiness: () => boolean = () => true,
): void {
  const started = Date.now();
  const probe = { schema: { hide: true } } as const;
  const alive = probeSchema('getLiveness', 'Liveness probe', 'Whether this process can serve; no credential needed, no secrets.', { ...Liveness, description: 'Alive' }, { ...Liveness, description: 'This process can no longer serve' });
  const ready = probeSchema('getReadiness', 'Readiness probe', 'Database reachable and invalidation channel live; answers within 1 second. No credential needed.', { ...Readiness, description: 'Ready for traffic' }, { ...Readiness, description: 'Not ready: send no traffic here' });

  // Alive unless this process can no longer serve (its embedded PostgreSQL is gone for good); a
  // PostgreSQL being restarted still counts as alive: /readyz says whether to route traffic here.
  app.get('/healthz', { schema: alive }, async (_request, reply) =>
    liveness() ? { status: 'ok' } : reply.code(503).send({ status: 'failed', reason: 'the embedded PostgreSQL is gone' }),
  );

  // Answers within a second whatever the database does (SPEC §11): a load balancer's probe must not hang.
  app.get('/readyz', { schema: ready }, async (_request, reply) => {
    const database = await services.db
      .query('SELECT 1', [], { timeoutMs: READINESS_TIMEOUT_MS })
      .then(() => true)
      .catch(() => false);
    const invalidationChannel = services.bus.trusted;
    // Still starting (the first admin is being created): not yet a node to send traffic to.
    const starting = !readiness();
    const ready = database && invalidationChannel && !starting;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: { database, invalidationChannel }, ...(starting ? { starting } : {}) });
  });

  app.get('/metrics', probe, async (_request, reply) => {
    reply.type(services.metrics.registry.contentType);
    return services.metrics.registry.metrics();
  });

  route(app, {
    method: 'GET', path: '/system/health', operationId: 'getSystemHealth', auth: { kind: 'system', scope: 'health:read' }, summary: 'Detailed health of this node', tags: ['Health'],
    schema: { response: { 200: SystemHealthRef } },
    handler: async () => {
      const t0 = process.hrtime.bigint();
      const database = await services.db.query<{ version: string }>('SELECT version()', [], { timeoutMs: READINESS_TIMEOUT_MS }).then((r) => ({ ok: true, version: r[0]!.version })).catch(() => ({ ok: false, version: null }));
      const latencyMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const [counts] = await services.db
        .query<{ organizations: number; keys: number; users: number }>(
          "SELECT (SELECT count(*)::int FROM organizations WHERE status = 'active') AS organizations, (SELECT count(*)::int FROM api_keys WHERE revoked_at IS NULL) AS keys, (SELECT count(*)::int FROM users) AS users",
          [],
          { timeoutMs: READINESS_TIMEOUT_MS },
        )
        .catch(() => [undefined]);
      const v = services.verifier.stats;
      return {
        status: database.ok && services.bus.trusted ? 'ok' : 'degraded',
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        mode: services.config.databaseUrl ? 'server' : 'embedded',
        database: { ...database, latencyMs: Math.round(latencyMs * 100) / 100 },
        invalidationChannel: { live: services.bus.trusted, ...services.bus.stats },
        keyCache: { entries: services.verifier.cacheSize, hits: v.cacheHits, misses: v.cacheMisses, negativeHits: v.negativeHits },
        rateLimiter: { kind: services.rateLimiterKind, ...(services.rateLimiter instanceof RedisRateLimiter ? { reachable: await services.rateLimiter.ping(), failures: services.rateLimiter.failures } : {}) },
        counts: counts ?? null,
        memory: { rssBytes: process.memoryUsage().rss },
      };
    },
  });
}
