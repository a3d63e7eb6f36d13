/** The OpenAPI tags of the payment and portal operations, registered with the document. */
import { addTag } from '../http/openapi.js';

export const PAYMENT_TAGS = {
  clients: 'Clients',
  invoices: 'Invoices',
  recurring: 'Recurring schedules',
  checkouts: 'Checkouts',
  transactions: 'Transactions',
  dataIo: 'Data import and export',
  portal: 'Portal',
} as const;

addTag(PAYMENT_TAGS.clients, 'Clients (customers) of the organization: the people invoices and checkouts are for.');
addTag(PAYMENT_TAGS.invoices, 'Invoices: lines with quantity and unit amount, draft -> open (finalize) -> paid | void. Amounts are integer minor units.');
addTag(PAYMENT_TAGS.recurring, 'Recurring schedules issue an open invoice every interval, exactly once per run (invoice:* scopes).');
addTag(PAYMENT_TAGS.checkouts, "Checkouts: an amount to collect, paid by the payer on Paygate's hosted page `/pay/{id}`.");
addTag(PAYMENT_TAGS.transactions, 'Transactions (every payment attempt) and their refunds.');
addTag(PAYMENT_TAGS.dataIo, 'Background exports (CSV, JSON) and client imports (CSV), with their jobs and downloads.');
addTag(PAYMENT_TAGS.portal, 'Customer portal magic links: a single-use sign-in link for one client.');
