/** Checkouts and the hosted pay page. */
import type { Database, Queryable } from '../../db/database.js';
import type { InvalidationBus } from '../../cache/invalidation.js';
import type { Config } from '../../config.js';
import type { ClientService } from '../clients/service.js';
import type { InvoiceService } from '../invoices/service.js';
import type { PaymentProcessor } from '../processor/processor.js';
import type { TransactionService } from '../transactions/service.js';

export interface CheckoutView {
  id: string;
  object: 'checkout';
  status: 'open' | 'completed' | 'expired';
  amount: number;
  currency: string;
  clientId: string | null;
  invoiceId: string | null;
  url: string;
  successUrl: string | null;
  cancelUrl: string | null;
  transactionId: string | null;
  expiresAt: string;
  createdAt: string;
}

export class CheckoutService {
  constructor(
    protected readonly deps: {
      config: Config;
      db: Database;
      bus: InvalidationBus;
      clients: ClientService;
      invoices: InvoiceService;
      processor: PaymentProcessor;
      transactions: TransactionService;
    },
  ) {}

  /** The portal's "pay" button: a checkout for an open invoice of this organization. */
  async createForInvoice(
    _tx: Queryable,
    _organizationId: string,
    _invoiceId: string,
    _options: { successUrl?: string | null; cancelUrl?: string | null },
  ): Promise<CheckoutView> {
    throw new Error('not implemented yet');
  }
}
