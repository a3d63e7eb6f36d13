/** HTTP for portal magic links (POST /v1/portal/magic-links) and the portal pages. */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';

export function registerPortalRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the portal work.
}
