/**
 * The payment domains (SPEC §10) and the customer portal (SPEC §5), built once from shared deps.
 * Each domain folder owns its service, routes and SQL; cross-domain calls go through these services.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import type { Work } from '../unit-of-work.js';
import type { SettingsService } from '../settings/service.js';
import type { Logger } from '../services.js';
import type { Peppers } from '../keys/hash.js';
import { IdempotencyService } from './idempotency.js';
import { ClientService } from './clients/service.js';
import { InvoiceService } from './invoices/service.js';
import { RecurringScheduleService } from './recurring/service.js';
import { TestModeProcessor, type PaymentProcessor } from './processor/processor.js';
import { CheckoutService } from './checkouts/service.js';
import { CardBrake } from './checkouts/brake.js';
import { TransactionService } from './transactions/service.js';
import { DataIoService } from './data-io/service.js';
import { PortalService } from '../portal/service.js';

export interface PaymentDeps {
  config: Config;
  db: Database;
  bus: InvalidationBus;
  work: Work;
  settings: SettingsService;
  log: Logger;
  /** Idempotent responses that hold a secret are sealed with a key derived from the pepper. */
  peppers: Peppers;
}

export interface PaymentServices {
  idempotency: IdempotencyService;
  clients: ClientService;
  invoices: InvoiceService;
  recurring: RecurringScheduleService;
  processor: PaymentProcessor;
  /** The card-testing brake: declines counted per checkout, invoice, client, source and organization. */
  brake: CardBrake;
  checkouts: CheckoutService;
  transactions: TransactionService;
  dataIo: DataIoService;
  portal: PortalService;
  /** Background work: due recurring schedules, queued data jobs, checkout expiries, idempotency and decline purges. */
  start(): void;
  stop(): Promise<void>;
}

export function createPaymentServices(deps: PaymentDeps): PaymentServices {
  const idempotency = new IdempotencyService({ work: deps.work, peppers: deps.peppers });
  const clients = new ClientService(deps);
  const invoices = new InvoiceService({ ...deps, clients });
  const recurring = new RecurringScheduleService({ ...deps, clients, invoices });
  const processor: PaymentProcessor = new TestModeProcessor();
  const transactions = new TransactionService({ ...deps });
  const brake = new CardBrake();
  const checkouts = new CheckoutService({ ...deps, clients, invoices, processor, transactions, brake });
  const dataIo = new DataIoService({ ...deps, clients });
  const portal = new PortalService({ ...deps, clients, invoices, checkouts, brake });
  let purge: NodeJS.Timeout | null = null;
  // Checkouts whose time ran out are stored expired (and checkout.expired sent) within a minute.
  let sweep: NodeJS.Timeout | null = null;
  let sweeping: Promise<unknown> | null = null;
  return {
    idempotency, clients, invoices, recurring, processor, brake, checkouts, transactions, dataIo, portal,
    start() {
      recurring.start();
      dataIo.start();
      purge = setInterval(() => {
        void idempotency.purgeExpired(deps.db).catch(() => undefined);
        void dataIo.purgeAbandonedUploads().catch(() => undefined);
        void dataIo.purgeExpiredFiles().catch(() => undefined);
        void brake.purge(deps.db).catch(() => undefined);
      }, 3_600_000);
      purge.unref();
      sweep = setInterval(() => {
        sweeping ??= checkouts
          .expireDue()
          .catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'could not expire due checkouts; retried in a minute'))
          .finally(() => (sweeping = null));
      }, 60_000);
      sweep.unref();
    },
    async stop() {
      if (purge) clearInterval(purge);
      if (sweep) clearInterval(sweep);
      await sweeping;
      await recurring.stop();
      await dataIo.stop();
    },
  };
}
