/** HTTP for invoices (SPEC §3: invoice:read/create/update/delete/execute). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

export function registerInvoiceRoutes(_app: FastifyInstance, _services: Services): void {
  // Filled in by the invoices work.
}
