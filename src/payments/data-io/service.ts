/** Data import/export jobs. */
import type { Database } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';
import type { ClientService } from '../clients/service.js';

export class DataIoService {
  constructor(protected readonly deps: { db: Database; bus: InvalidationBus; clients: ClientService }) {}
  start(): void {}
  async stop(): Promise<void> {}
}
