/** Registers every payment domain's routes and the portal's. */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { registerClientRoutes } from './clients/routes.js';
import { registerInvoiceRoutes } from './invoices/routes.js';
import { registerRecurringRoutes } from './recurring/routes.js';
import { registerCheckoutRoutes } from './checkouts/routes.js';
import { registerTransactionRoutes } from './transactions/routes.js';
import { registerDataIoRoutes } from './data-io/routes.js';
import { registerPortalRoutes } from '../portal/routes.js';

export function registerPaymentRoutes(app: FastifyInstance, services: Services): void {
  registerClientRoutes(app, services);
  registerInvoiceRoutes(app, services);
  registerRecurringRoutes(app, services);
  registerCheckoutRoutes(app, services);
  registerTransactionRoutes(app, services);
  registerDataIoRoutes(app, services);
  registerPortalRoutes(app, services);
}
