/** HTTP helpers shared by the payment routes. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ChangeTx } from '../cache/invalidation.js';
import { organizationOf } from '../http/routes.js';
import type { IdempotencyService } from './idempotency.js';

/**
 * Creates through the Idempotency-Key machinery and sends the (possibly replayed) response.
 * Replays carry `Idempotent-Replayed: true`.
 */
export async function sendIdempotent<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  idempotency: IdempotencyService,
  create: (tx: ChangeTx) => Promise<{ status: number; body: T }>,
): Promise<FastifyReply> {
  const header = request.headers['idempotency-key'];
  const result = await idempotency.run(
    {
      organizationId: organizationOf(request),
      key: typeof header === 'string' ? header : undefined,
      method: request.method,
      // Both mounts of a route are one endpoint.
      path: (request.routeOptions.url ?? request.url).replace('/v1/organizations/:orgId', '/v1'),
      body: request.body,
    },
    create,
  );
  if (result.replayed) reply.header('Idempotent-Replayed', 'true');
  return reply.code(result.status).send(result.body);
}
