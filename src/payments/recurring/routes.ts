/** HTTP for recurring schedules (SPEC §3: invoice:* scopes). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

export function registerRecurringRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the recurring schedules work.
}
