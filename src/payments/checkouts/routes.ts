/** HTTP for checkouts (SPEC §3: checkout:create/read) and the hosted pay page /pay/{id}. */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

export function registerCheckoutRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the checkouts work.
}
