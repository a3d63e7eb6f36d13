/** Transactions (each payment attempt) and refunds. */
import type { Database } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';

export class TransactionService {
  constructor(protected readonly deps: { db: Database; bus: InvalidationBus }) {}
}
