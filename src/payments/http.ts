/** HTTP helpers shared by the payment routes. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UnitOfWork } from '../unit-of-work.js';
import { organizationOf } from '../http/routes.js';
import type { IdempotencyOptions, IdempotencyService } from './idempotency.js';

/**
 * Creates through the Idempotency-Key machinery and sends the (possibly replayed) response.
 * Replays carry `Idempotent-Replayed: true`. `options.sealed`: the response holds a secret (idempotency.ts).
 */
export async function sendIdempotent<T>(
  request: FastifyRequest,
  reply: FastifyReply,
  idempotency: IdempotencyService,
  create: (tx: UnitOfWork) => Promise<{ status: number; body: T }>,
  options: IdempotencyOptions = {},
): Promise<FastifyReply> {
  const header = request.headers['idempotency-key'];
  const result = await idempotency.run(
    {
      organizationId: organizationOf(request),
      key: typeof header === 'string' ? header : undefined,
      method: request.method,
      // The concrete path (a refund of transaction A is not one of B), both mounts counting as one.
      path: request.url.split('?')[0]!.replace(/^\/v1\/organizations\/[^/]+/, '/v1'),
      body: request.body,
    },
    create,
    options,
  );
  if (result.replayed) reply.header('Idempotent-Replayed', 'true');
  return reply.code(result.status).send(result.body);
}
