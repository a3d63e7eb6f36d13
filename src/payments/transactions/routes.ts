/** HTTP for transactions and refunds (SPEC §3: transaction:read/update/execute). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { ID_PARAM, PAGE_QUERY, authOf, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { sendIdempotent } from '../http.js';
import { AMOUNT_SCHEMA } from '../money.js';
import type { TransactionFilter } from './service.js';

const OBJECT_ID = { type: 'string', minLength: 1, maxLength: 64 } as const;
const METADATA = {
  type: 'object',
  maxProperties: 50,
  propertyNames: { minLength: 1, maxLength: 40 },
  additionalProperties: { type: 'string', maxLength: 500 },
} as const;

const LIST_QUERY = {
  ...PAGE_QUERY,
  properties: {
    ...PAGE_QUERY.properties,
    status: { type: 'string', enum: ['succeeded', 'failed'] },
    clientId: OBJECT_ID,
    checkoutId: OBJECT_ID,
    invoiceId: OBJECT_ID,
  },
} as const;

export function registerTransactionRoutes(app: FastifyInstance, services: Services): void {
  const { transactions, idempotency, processor } = services.payments;
  const tags = ['Transactions'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;

  organizationRoute(app, {
    method: 'GET', path: '/transactions', auth: { kind: 'organization', scope: 'transaction:read' }, summary: 'List transactions (payment attempts), newest first', tags,
    schema: { querystring: LIST_QUERY },
    handler: async (request) => {
      const q = request.query as Omit<TransactionFilter, 'limit' | 'startingAfter'>;
      return transactions.list(organizationOf(request), { ...pageOf(request), status: q.status, clientId: q.clientId, checkoutId: q.checkoutId, invoiceId: q.invoiceId });
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/transactions/:id', auth: { kind: 'organization', scope: 'transaction:read' }, summary: 'Get a transaction', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => transactions.get(services.db, organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/transactions/:id', auth: { kind: 'organization', scope: 'transaction:update' },
    summary: "Replace a transaction's metadata (the only changeable field)", tags,
    schema: { params: ID_PARAM, body: { type: 'object', additionalProperties: false, required: ['metadata'], properties: { metadata: METADATA } } },
    handler: async (request) =>
      transactions.updateMetadata(organizationOf(request), id(request), (request.body as { metadata: Record<string, string> }).metadata),
  });
  organizationRoute(app, {
    method: 'POST', path: '/transactions/:id/refunds', auth: { kind: 'organization', scope: 'transaction:execute' },
    summary: 'Refund all or part of what remains of a succeeded transaction (honours Idempotency-Key)', tags,
    schema: {
      params: ID_PARAM,
      // The body may be omitted: the refund is then of everything that remains.
      body: { type: ['object', 'null'], additionalProperties: false, properties: { amount: { ...AMOUNT_SCHEMA, description: 'minor units; default: what remains' } } },
    },
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await transactions.refund(
          tx,
          authOf(request).ctx,
          processor,
          organizationOf(request),
          id(request),
          (request.body as { amount?: number } | null | undefined)?.amount,
        ),
      })),
  });
}
