/**
 * The payment API's JSON Schemas (TypeBox): the objects of SPEC §10 as the services' view
 * functions build them, and the request parts of every payment route.
 *
 * A response schema is also the serialiser and a field allowlist: a field a view returns but its
 * schema lacks is dropped from the response, and a `required` field the view lacks makes the
 * response fail. So each object schema is exactly its view type, and the compile-time checks at the
 * end of this file (`exact<View, Static<typeof XRef>>`) fail the typecheck when the two drift.
 * Named objects are components (`component()`, src/http/openapi.ts): `XRef` is a `$ref` to `X`.
 *
 * Request schemas keep the constraints the routes always had (same bounds, same error paths):
 * nullable fields are `type: [T, "null"]` (not `anyOf`), so a wrong value is one error naming the
 * field rather than one per branch.
 */
import { Type, type Static, type TSchema, type TUnsafe } from 'typebox';
import { ListOf, OptionalBody, PageQuery, component } from '../http/openapi.js';
import { CURRENCIES, MAX_AMOUNT } from './money.js';
import { MAX_LINES, MAX_QUANTITY } from './invoices/lines.js';
import { MAX_EXPIRY_MINUTES } from './checkouts/service.js';
import type { ClientView } from './clients/service.js';
import type { InvoiceView } from './invoices/service.js';
import type { RecurringScheduleView } from './recurring/service.js';
import type { CheckoutView } from './checkouts/service.js';
import type { RefundView, TransactionView } from './transactions/service.js';
import type { DataIoJobView } from './data-io/service.js';

// ---------------------------------------------------------------------------------------------
// Building blocks (the document's shared ones are in src/http/openapi.ts)

/** A string enum as `{ type: "string", enum }`, typed as the union of its values. */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** A nullable string as `type: ["string", "null"]`, its keywords beside it (one error per bad value, not one per branch). */
export const NullableString = (options: Record<string, unknown> = {}) => Type.Unsafe<string | null>({ type: ['string', 'null'], ...options });
export const NullableDateTime = (options: Record<string, unknown> = {}) => NullableString({ format: 'date-time', ...options });

export const DateTime = (options: Record<string, unknown> = {}) => Type.String({ format: 'date-time', ...options });

const ID_CHARS = '[0-9A-Za-z]{22}';
/** An object id with its type prefix (SPEC §10), e.g. `cli_` and 22 base62 characters. */
export const ObjectId = (prefix: string, options: Record<string, unknown> = {}) =>
  Type.String({ pattern: `^${prefix}_${ID_CHARS}$`, examples: [`${prefix}_4Fh7Qm2ZkX9bP1sLr8TnWv`], ...options });
export const NullableObjectId = (prefix: string, options: Record<string, unknown> = {}) =>
  NullableString({ pattern: `^${prefix}_${ID_CHARS}$`, ...options });

/** An id as a request names it: any short string (a malformed id is simply not found, 404). */
export const IdInput = (options: Record<string, unknown> = {}) => Type.String({ minLength: 1, maxLength: 64, ...options });

/** Money in a request: integer minor units (cents), 1 to 10^11 (money.ts). */
export const Amount = (options: Record<string, unknown> = {}) =>
  Type.Integer({ minimum: 1, maximum: MAX_AMOUNT, description: 'minor units (cents)', ...options });
/** A currency in a request: one of the runtime's ISO 4217 codes (one component: the list is long). */
const CurrencyCodeRef = component('CurrencyCode', StringEnum(CURRENCIES as readonly string[], { description: 'An ISO 4217 currency code, upper case', examples: ['EUR'] }));
export const CurrencyInput = () => CurrencyCodeRef;
/** A currency in a response (always one that was accepted as input). */
export const Currency = () => Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, upper case', examples: ['EUR'] });

/** Metadata as the API returns it: string values by key. */
export const Metadata = () =>
  Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' }, description: 'Your own key-value pairs', examples: [{ orderId: '1042' }] });
/** Metadata as a request sets it: at most 50 keys of up to 40 characters, values up to 500 characters. */
export const MetadataInput = (options: { minKeyLength?: number } = {}) =>
  Type.Unsafe<Record<string, string>>({
    type: 'object',
    maxProperties: 50,
    propertyNames: { ...(options.minKeyLength ? { minLength: options.minKeyLength } : {}), maxLength: 40 },
    additionalProperties: { type: 'string', maxLength: 500 },
    description: 'Your own key-value pairs: at most 50 keys of up to 40 characters, values up to 500 characters',
  });

/** `limit` and `startingAfter` (db/pages.ts) and a list's own filters. */
export function ListQuery<P extends Record<string, TSchema>>(filters: P) {
  return Type.Object({ ...PageQuery.properties, ...filters }, { additionalProperties: false });
}

// ---------------------------------------------------------------------------------------------
// Clients

export const ClientRef = component(
  'Client',
  Type.Object(
    {
      id: ObjectId('cli'),
      object: Type.Literal('client'),
      name: Type.String({ examples: ['Ada Lovelace'] }),
      email: NullableString({ format: 'email', examples: ['ada@example.com'] }),
      metadata: Metadata(),
      createdAt: DateTime(),
      updatedAt: DateTime(),
    },
    { additionalProperties: false, description: 'A client (customer) of the organization' },
  ),
);
export const ClientListRef = component('ClientList', ListOf(ClientRef, 'A page of clients, newest first'));

const CLIENT_FIELDS = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  email: NullableString({ format: 'email', maxLength: 254 }),
  metadata: MetadataInput(),
};
export const CreateClientBody = Type.Object(
  { name: CLIENT_FIELDS.name, email: Type.Optional(CLIENT_FIELDS.email), metadata: Type.Optional(CLIENT_FIELDS.metadata) },
  { additionalProperties: false, examples: [{ name: 'Ada Lovelace', email: 'ada@example.com', metadata: { crmId: '1042' } }] },
);
export const UpdateClientBody = Type.Object(
  { name: Type.Optional(CLIENT_FIELDS.name), email: Type.Optional(CLIENT_FIELDS.email), metadata: Type.Optional(CLIENT_FIELDS.metadata) },
  { additionalProperties: false, minProperties: 1, examples: [{ email: 'ada@example.org' }] },
);
export const ListClientsQuery = ListQuery({
  email: Type.Optional(Type.String({ maxLength: 254, description: 'Only the clients with this e-mail address (case-insensitive)' })),
});

// ---------------------------------------------------------------------------------------------
// Invoices

const INVOICE_STATUSES = ['draft', 'open', 'paid', 'void'] as const;

export const InvoiceLineRef = component(
  'InvoiceLine',
  Type.Object(
    {
      description: Type.String({ examples: ['Consulting, one hour'] }),
      quantity: Type.Integer({ minimum: 1, examples: [3] }),
      unitAmount: Type.Integer({ minimum: 0, description: 'Minor units (cents)', examples: [12000] }),
    },
    { additionalProperties: false, description: 'One line of an invoice: quantity x unitAmount' },
  ),
);

export const InvoiceRef = component(
  'Invoice',
  Type.Object(
    {
      id: ObjectId('inv'),
      object: Type.Literal('invoice'),
      clientId: ObjectId('cli'),
      status: StringEnum(INVOICE_STATUSES, { description: 'draft -> open (finalize) -> paid | void' }),
      currency: Currency(),
      lines: Type.Array(InvoiceLineRef),
      total: Type.Integer({ minimum: 1, description: 'The sum of the lines, minor units (cents)', examples: [36000] }),
      dueAt: NullableDateTime(),
      recurringScheduleId: NullableObjectId('rsc', { description: 'The recurring schedule that issued it, if one did' }),
      recurringPeriodStart: NullableDateTime({ description: 'For an invoice a recurring schedule issued: the scheduled instant of that run' }),
      finalizedAt: NullableDateTime(),
      paidAt: NullableDateTime(),
      voidedAt: NullableDateTime(),
      createdAt: DateTime(),
      updatedAt: DateTime(),
    },
    { additionalProperties: false, description: 'An invoice: lines with quantity and unit amount; Paygate computes the total' },
  ),
);
export const InvoiceListRef = component('InvoiceList', ListOf(InvoiceRef, 'A page of invoices, newest first'));

/** Request lines (lines.ts bounds): a line may be free, the invoice's total may not. */
export const LineInput = Type.Object(
  {
    description: Type.String({ minLength: 1, maxLength: 500 }),
    quantity: Type.Integer({ minimum: 1, maximum: MAX_QUANTITY }),
    // A line may be free (0); the invoice's total may not (lines.ts totalOf).
    unitAmount: Type.Integer({ minimum: 0, maximum: MAX_AMOUNT, description: 'minor units (cents)' }),
  },
  { additionalProperties: false },
);
export const LinesInput = Type.Array(LineInput, { minItems: 1, maxItems: MAX_LINES });

const INVOICE_FIELDS = {
  clientId: IdInput(),
  currency: CurrencyInput(),
  lines: LinesInput,
  dueAt: NullableDateTime(),
};
const INVOICE_EXAMPLE = { clientId: 'cli_4Fh7Qm2ZkX9bP1sLr8TnWv', currency: 'EUR', lines: [{ description: 'Consulting, one hour', quantity: 3, unitAmount: 12000 }] };
export const CreateInvoiceBody = Type.Object(
  { clientId: INVOICE_FIELDS.clientId, currency: INVOICE_FIELDS.currency, lines: INVOICE_FIELDS.lines, dueAt: Type.Optional(INVOICE_FIELDS.dueAt) },
  { additionalProperties: false, examples: [INVOICE_EXAMPLE] },
);
export const UpdateInvoiceBody = Type.Object(
  {
    clientId: Type.Optional(INVOICE_FIELDS.clientId),
    currency: Type.Optional(INVOICE_FIELDS.currency),
    lines: Type.Optional(INVOICE_FIELDS.lines),
    dueAt: Type.Optional(INVOICE_FIELDS.dueAt),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ dueAt: '2026-12-31T23:59:59Z' }] },
);
export const ListInvoicesQuery = ListQuery({
  status: Type.Optional(StringEnum(INVOICE_STATUSES)),
  clientId: Type.Optional(IdInput()),
});

// ---------------------------------------------------------------------------------------------
// Recurring schedules

const INTERVALS = ['day', 'week', 'month', 'year'] as const;
const SCHEDULE_STATUSES = ['active', 'paused'] as const;

export const RecurringTemplateRef = component(
  'RecurringTemplate',
  Type.Object({ currency: Currency(), lines: Type.Array(InvoiceLineRef) }, { additionalProperties: false, description: 'What every run of a schedule invoices' }),
);

export const RecurringScheduleRef = component(
  'RecurringSchedule',
  Type.Object(
    {
      id: ObjectId('rsc'),
      object: Type.Literal('recurring_schedule'),
      clientId: ObjectId('cli'),
      interval: StringEnum(INTERVALS),
      intervalCount: Type.Integer({ minimum: 1, description: 'Runs every intervalCount intervals' }),
      template: RecurringTemplateRef,
      nextRunAt: DateTime(),
      status: StringEnum(SCHEDULE_STATUSES),
      lastRunAt: NullableDateTime(),
      createdAt: DateTime(),
      updatedAt: DateTime(),
    },
    { additionalProperties: false, description: 'Issues an open invoice for a client every intervalCount intervals' },
  ),
);
export const RecurringScheduleListRef = component('RecurringScheduleList', ListOf(RecurringScheduleRef, 'A page of recurring schedules, newest first'));

const INTERVAL_INPUT = StringEnum(INTERVALS);
const INTERVAL_COUNT_INPUT = Type.Integer({ minimum: 1, maximum: 1000, description: 'runs every intervalCount intervals; default 1' });
const TEMPLATE_INPUT = Type.Object({ currency: CurrencyInput(), lines: LinesInput }, { additionalProperties: false });

export const CreateRecurringScheduleBody = Type.Object(
  {
    clientId: IdInput(),
    interval: INTERVAL_INPUT,
    intervalCount: Type.Optional(INTERVAL_COUNT_INPUT),
    template: TEMPLATE_INPUT,
    startAt: Type.Optional(DateTime({ description: 'the first run; default now' })),
  },
  {
    additionalProperties: false,
    examples: [{ clientId: 'cli_4Fh7Qm2ZkX9bP1sLr8TnWv', interval: 'month', template: { currency: 'EUR', lines: [{ description: 'Hosting', quantity: 1, unitAmount: 4900 }] } }],
  },
);
export const UpdateRecurringScheduleBody = Type.Object(
  {
    interval: Type.Optional(INTERVAL_INPUT),
    intervalCount: Type.Optional(INTERVAL_COUNT_INPUT),
    template: Type.Optional(TEMPLATE_INPUT),
    status: Type.Optional(StringEnum(SCHEDULE_STATUSES, { description: 'paused pauses the schedule, active resumes it' })),
    nextRunAt: Type.Optional(DateTime()),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ status: 'paused' }] },
);
export const ListRecurringSchedulesQuery = ListQuery({
  status: Type.Optional(StringEnum(SCHEDULE_STATUSES)),
  clientId: Type.Optional(IdInput()),
});

// ---------------------------------------------------------------------------------------------
// Checkouts

const CHECKOUT_STATUSES = ['open', 'completed', 'expired'] as const;

export const CheckoutRef = component(
  'Checkout',
  Type.Object(
    {
      id: ObjectId('chk'),
      object: Type.Literal('checkout'),
      status: StringEnum(CHECKOUT_STATUSES, { description: 'open -> completed (a payment succeeded) | expired (past expiresAt)' }),
      amount: Type.Integer({ minimum: 1, description: 'Minor units (cents)', examples: [1999] }),
      currency: Currency(),
      clientId: NullableObjectId('cli'),
      invoiceId: NullableObjectId('inv'),
      url: Type.String({ format: 'uri', description: "Paygate's hosted pay page `/pay/{id}`: send the payer there" }),
      successUrl: NullableString({ format: 'uri' }),
      cancelUrl: NullableString({ format: 'uri' }),
      transactionId: NullableObjectId('txn', { description: 'The successful payment, once completed' }),
      expiresAt: DateTime(),
      completedAt: NullableDateTime(),
      createdAt: DateTime(),
    },
    { additionalProperties: false, description: "An amount to collect, paid on Paygate's hosted page" },
  ),
);
export const CheckoutListRef = component('CheckoutList', ListOf(CheckoutRef, 'A page of checkouts, newest first'));

const redirectUrl = (description: string) => NullableString({ minLength: 1, maxLength: 2048, description: `Absolute http(s) URL: ${description}` });
export const CreateCheckoutBody = Type.Object(
  {
    amount: Type.Optional(Amount()),
    currency: Type.Optional(CurrencyInput()),
    clientId: Type.Optional(IdInput()),
    invoiceId: Type.Optional(IdInput({ description: 'pay an open invoice: amount, currency and client come from it' })),
    successUrl: Type.Optional(redirectUrl('where the payer goes after paying (303)')),
    cancelUrl: Type.Optional(redirectUrl('the pay page links here to cancel')),
    expiresInMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_EXPIRY_MINUTES, description: 'default 60' })),
  },
  {
    additionalProperties: false,
    description: 'Either amount and currency (and optionally clientId), or invoiceId',
    examples: [{ amount: 1999, currency: 'EUR', successUrl: 'https://shop.example.com/thanks' }],
  },
);
export const ListCheckoutsQuery = ListQuery({
  status: Type.Optional(StringEnum(CHECKOUT_STATUSES)),
  clientId: Type.Optional(IdInput()),
  invoiceId: Type.Optional(IdInput()),
});

// ---------------------------------------------------------------------------------------------
// Transactions and refunds

const TRANSACTION_STATUSES = ['succeeded', 'failed'] as const;

export const CardRef = component(
  'Card',
  Type.Object(
    {
      brand: NullableString({ description: 'visa, mastercard, ...; null when unknown', examples: ['visa'] }),
      last4: Type.String({ pattern: '^[0-9]{4}$', examples: ['4242'] }),
    },
    { additionalProperties: false, description: 'Brand and last four digits only: the full card number is never stored' },
  ),
);

export const TransactionRef = component(
  'Transaction',
  Type.Object(
    {
      id: ObjectId('txn'),
      object: Type.Literal('transaction'),
      status: StringEnum(TRANSACTION_STATUSES),
      amount: Type.Integer({ minimum: 1, description: 'Minor units (cents)', examples: [1999] }),
      amountRefunded: Type.Integer({ minimum: 0, description: 'Minor units (cents)', examples: [0] }),
      currency: Currency(),
      checkoutId: NullableObjectId('chk'),
      clientId: NullableObjectId('cli'),
      invoiceId: NullableObjectId('inv'),
      failureCode: NullableString({ description: 'Why a failed attempt failed (card_declined, insufficient_funds, invalid_number, ...); null when it succeeded' }),
      card: Type.Union([CardRef, Type.Null()], { description: 'Null when the number was invalid' }),
      metadata: Metadata(),
      createdAt: DateTime(),
      updatedAt: DateTime(),
    },
    { additionalProperties: false, description: 'One payment attempt on a checkout' },
  ),
);
export const TransactionListRef = component('TransactionList', ListOf(TransactionRef, 'A page of transactions, newest first'));

export const RefundRef = component(
  'Refund',
  Type.Object(
    {
      id: ObjectId('ref'),
      object: Type.Literal('refund'),
      transactionId: ObjectId('txn'),
      amount: Type.Integer({ minimum: 1, description: 'Minor units (cents)', examples: [500] }),
      currency: Currency(),
      createdAt: DateTime(),
    },
    { additionalProperties: false, description: 'Money given back from a succeeded transaction' },
  ),
);

export const ListTransactionsQuery = ListQuery({
  status: Type.Optional(StringEnum(TRANSACTION_STATUSES)),
  clientId: Type.Optional(IdInput()),
  checkoutId: Type.Optional(IdInput()),
  invoiceId: Type.Optional(IdInput()),
});
export const UpdateTransactionBody = Type.Object(
  { metadata: MetadataInput({ minKeyLength: 1 }) },
  { additionalProperties: false, examples: [{ metadata: { orderId: '1042' } }] },
);
/** The body may be left out (or null): the refund is then of everything that remains. */
export const RefundBody = OptionalBody(
  Type.Object(
    { amount: Type.Optional(Amount({ description: 'minor units; default: what remains' })) },
    { additionalProperties: false, examples: [{ amount: 500 }] },
  ),
);

// ---------------------------------------------------------------------------------------------
// Data import and export

const RESOURCES = ['clients', 'invoices', 'transactions'] as const;
const FORMATS = ['csv', 'json'] as const;

export const DataIoJobErrorRef = component(
  'DataIoJobError',
  Type.Object(
    {
      line: Type.Optional(Type.Integer({ minimum: 1, description: 'The CSV line (1 is the header), for a bad import line' })),
      message: Type.String(),
    },
    { additionalProperties: false, description: 'Why a job failed' },
  ),
);

export const DataIoJobRef = component(
  'DataIoJob',
  Type.Object(
    {
      id: ObjectId('job'),
      object: Type.Literal('data_io_job'),
      kind: StringEnum(['export', 'import'] as const),
      resource: StringEnum(RESOURCES),
      format: StringEnum(FORMATS),
      status: StringEnum(['queued', 'running', 'completed', 'failed'] as const),
      progress: Type.Integer({ minimum: 0, maximum: 100, description: '100 only once completed' }),
      rowCount: Type.Integer({ minimum: 0, description: 'Rows written (export) or clients imported (import); a failed import imported none' }),
      errors: Type.Array(DataIoJobErrorRef, { description: 'Why it failed: the first 100 bad import lines, or one message' }),
      createdAt: DateTime(),
      completedAt: NullableDateTime({ description: 'When it completed or failed; null while queued or running' }),
    },
    { additionalProperties: false, description: 'A background import or export' },
  ),
);
export const DataIoJobListRef = component('DataIoJobList', ListOf(DataIoJobRef, 'A page of data I/O jobs, newest first'));

export const CreateExportBody = Type.Object(
  { resource: StringEnum(RESOURCES), format: StringEnum(FORMATS) },
  { additionalProperties: false, examples: [{ resource: 'clients', format: 'csv' }] },
);

// ---------------------------------------------------------------------------------------------
// Each schema is exactly its view: a field added to a view (or a schema) without the other fails
// the typecheck here, before a response could silently drop it or fail to serialise.

type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
/** Compiles only when A and B have the same keys, each as optional in both, with mutually assignable types. */
export function exact<A, B>(_proof: Mutual<A, B> extends true ? (SameKeys<A, B> extends true ? true : never) : never): void {}

exact<ClientView, Static<typeof ClientRef>>(true);
exact<InvoiceView['lines'][number], Static<typeof InvoiceLineRef>>(true);
exact<InvoiceView, Static<typeof InvoiceRef>>(true);
exact<RecurringScheduleView['template'], Static<typeof RecurringTemplateRef>>(true);
exact<RecurringScheduleView, Static<typeof RecurringScheduleRef>>(true);
exact<CheckoutView, Static<typeof CheckoutRef>>(true);
exact<NonNullable<TransactionView['card']>, Static<typeof CardRef>>(true);
exact<TransactionView, Static<typeof TransactionRef>>(true);
exact<RefundView, Static<typeof RefundRef>>(true);
exact<DataIoJobView['errors'][number], Static<typeof DataIoJobErrorRef>>(true);
exact<DataIoJobView, Static<typeof DataIoJobRef>>(true);
