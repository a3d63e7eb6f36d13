/** Recurring schedules (invoice:* scopes): issue invoices on an interval, exactly once per run. */
import type { Database } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';
import type { ClientService } from '../clients/service.js';
import type { InvoiceService } from '../invoices/service.js';

export class RecurringScheduleService {
  constructor(protected readonly deps: { db: Database; bus: InvalidationBus; clients: ClientService; invoices: InvoiceService }) {}
  start(): void {}
  async stop(): Promise<void> {}
}
