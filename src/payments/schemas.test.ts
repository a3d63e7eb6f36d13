/**
 * The payment response schemas serialise each view whole: Fastify's serialiser drops a field its
 * schema lacks and throws on a missing required one, so a view sent through its schema must come
 * back equal, with every optional part filled and with every nullable part null.
 * (schemas.ts checks the same at compile time against the view types.)
 */
import Fastify from 'fastify';
import type { TSchema } from 'typebox';
import { describe, expect, it } from 'vitest';
import { registerComponents } from '../http/openapi.js';
import { ClientListRef, ClientRef, CheckoutRef, DataIoJobRef, InvoiceRef, RecurringScheduleRef, RefundRef, TransactionRef } from './schemas.js';
import { PortalLinkRef } from '../portal/schemas.js';
import type { ClientView } from './clients/service.js';
import type { InvoiceView } from './invoices/service.js';
import type { RecurringScheduleView } from './recurring/service.js';
import type { CheckoutView } from './checkouts/service.js';
import type { RefundView, TransactionView } from './transactions/service.js';
import type { DataIoJobView } from './data-io/service.js';
import type { MagicLinkView } from '../portal/service.js';
import type { ListPage } from '../db/pages.js';

const at = '2026-12-03T14:15:13.000Z';
const client: ClientView = { id: 'cli_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'client', name: 'Ada', email: 'ada@example.com', metadata: { crm: '1' }, createdAt: at, updatedAt: at };
const lines = [{ description: 'Hosting', quantity: 2, unitAmount: 4900 }];
const invoice: InvoiceView = {
  id: 'inv_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'invoice', clientId: client.id, status: 'paid', currency: 'EUR', lines, total: 9800, dueAt: at,
  recurringScheduleId: 'rsc_4Fh7Qm2ZkX9bP1sLr8TnWv', recurringPeriodStart: at, finalizedAt: at, paidAt: at, voidedAt: at, createdAt: at, updatedAt: at,
};
const schedule: RecurringScheduleView = {
  id: 'rsc_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'recurring_schedule', clientId: client.id, interval: 'month', intervalCount: 3,
  template: { currency: 'EUR', lines }, nextRunAt: at, status: 'active', lastRunAt: at, createdAt: at, updatedAt: at,
};
const checkout: CheckoutView = {
  id: 'chk_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'checkout', status: 'completed', amount: 9800, currency: 'EUR', clientId: client.id, invoiceId: invoice.id,
  url: 'http://127.0.0.1/pay/chk_4Fh7Qm2ZkX9bP1sLr8TnWv', successUrl: 'https://shop.example/ok', cancelUrl: 'https://shop.example/no',
  transactionId: 'txn_4Fh7Qm2ZkX9bP1sLr8TnWv', expiresAt: at, completedAt: at, createdAt: at,
};
const transaction: TransactionView = {
  id: 'txn_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'transaction', status: 'succeeded', amount: 9800, amountRefunded: 100, currency: 'EUR',
  checkoutId: checkout.id, clientId: client.id, invoiceId: invoice.id, failureCode: 'card_declined', card: { brand: 'visa', last4: '4242' },
  metadata: { order: '7' }, createdAt: at, updatedAt: at,
};
const refund: RefundView = { id: 'ref_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'refund', transactionId: transaction.id, amount: 100, currency: 'EUR', createdAt: at };
const job: DataIoJobView = {
  id: 'job_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'data_io_job', kind: 'import', resource: 'clients', format: 'csv', status: 'failed', progress: 40, rowCount: 0,
  errors: [{ line: 3, message: 'bad e-mail' }, { message: 'stopped' }], createdAt: at, completedAt: at,
};
const link: MagicLinkView = { id: 'pln_4Fh7Qm2ZkX9bP1sLr8TnWv', object: 'portal_link', clientId: client.id, url: 'http://127.0.0.1/portal/login?token=x', expiresAt: at, ttlMinutes: 15 };
const list: ListPage<ClientView> = { object: 'list', data: [client, { ...client, email: null, metadata: {} }], hasMore: true };

/** Every nullable field of the view set to null. */
const nulled = <T extends object>(view: T, keys: Array<keyof T>): T => ({ ...view, ...Object.fromEntries(keys.map((k) => [k, null])) });

const cases: Array<[string, TSchema, object]> = [
  ['Client', ClientRef, client],
  ['Client, null e-mail', ClientRef, nulled(client, ['email'])],
  ['ClientList', ClientListRef, list],
  ['Invoice', InvoiceRef, invoice],
  ['Invoice, nulls', InvoiceRef, nulled(invoice, ['dueAt', 'recurringScheduleId', 'recurringPeriodStart', 'finalizedAt', 'paidAt', 'voidedAt'])],
  ['RecurringSchedule', RecurringScheduleRef, schedule],
  ['RecurringSchedule, nulls', RecurringScheduleRef, nulled(schedule, ['lastRunAt'])],
  ['Checkout', CheckoutRef, checkout],
  ['Checkout, nulls', CheckoutRef, nulled(checkout, ['clientId', 'invoiceId', 'successUrl', 'cancelUrl', 'transactionId', 'completedAt'])],
  ['Transaction', TransactionRef, transaction],
  ['Transaction, card without brand', TransactionRef, { ...transaction, card: { brand: null, last4: '0002' } }],
  ['Transaction, nulls', TransactionRef, nulled(transaction, ['checkoutId', 'clientId', 'invoiceId', 'failureCode', 'card'])],
  ['Refund', RefundRef, refund],
  ['DataIoJob', DataIoJobRef, job],
  ['DataIoJob, nulls', DataIoJobRef, nulled({ ...job, errors: [] }, ['completedAt'])],
  ['PortalLink', PortalLinkRef, link],
];

describe('payment response schemas', () => {
  it.each(cases)('%s goes through its response schema unchanged', async (_name, schema, view) => {
    const app = Fastify();
    registerComponents(app, []);
    app.get('/', { schema: { response: { 200: schema } } }, async () => view);
    const response = await app.inject({ method: 'GET', url: '/' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual(view);
    await app.close();
  });

  it('a field the schema does not name never leaves (the schema is an allowlist)', async () => {
    const app = Fastify();
    registerComponents(app, []);
    app.get('/', { schema: { response: { 200: ClientRef } } }, async () => ({ ...client, organizationId: 'org_x', deletedAt: at }));
    const response = await app.inject({ method: 'GET', url: '/' });
    expect(response.json()).toEqual(client);
    await app.close();
  });
});
