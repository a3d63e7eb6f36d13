/** Customer portal: magic links (portal:create) and portal sessions. */
import type { Database } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import type { Config } from '../config.js';
import type { SettingsService } from '../settings/service.js';
import type { ClientService } from '../payments/clients/service.js';
import type { InvoiceService } from '../payments/invoices/service.js';
import type { CheckoutService } from '../payments/checkouts/service.js';

export class PortalService {
  constructor(
    protected readonly deps: {
      config: Config;
      db: Database;
      bus: InvalidationBus;
      settings: SettingsService;
      clients: ClientService;
      invoices: InvoiceService;
      checkouts: CheckoutService;
    },
  ) {}
}
