/** HTTP for transactions and refunds (SPEC §3: transaction:read/update/execute). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

export function registerTransactionRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the transactions work.
}
