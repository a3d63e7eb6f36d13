/** HTTP for transactions and refunds (SPEC §3: transaction:read/update/execute). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { authOf, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams } from '../../http/openapi.js';
import { sendIdempotent } from '../http.js';
import { PAYMENT_TAGS } from '../tags.js';
import { ListTransactionsQuery, RefundBody, RefundRef, TransactionListRef, TransactionRef, UpdateTransactionBody } from '../schemas.js';

export function registerTransactionRoutes(app: FastifyInstance, services: Services): void {
  const { transactions, idempotency, processor } = services.payments;
  const tags = [PAYMENT_TAGS.transactions];

  organizationRoute(app, {
    method: 'GET', path: '/transactions', operationId: 'listTransactions', auth: { kind: 'organization', scope: 'transaction:read' },
    summary: 'List transactions (payment attempts), newest first', tags,
    description: 'Cursor-paginated; filter by `status`, `clientId`, `checkoutId` and `invoiceId`.',
    schema: { querystring: ListTransactionsQuery, response: { 200: TransactionListRef } },
    errors: ['not_found'],
    handler: async (request) => {
      const { status, clientId, checkoutId, invoiceId } = request.query;
      return transactions.list(organizationOf(request), { ...pageOf(request), status, clientId, checkoutId, invoiceId });
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/transactions/:id', operationId: 'getTransaction', auth: { kind: 'organization', scope: 'transaction:read' },
    summary: 'Get a transaction', tags,
    schema: { params: IdParams, response: { 200: TransactionRef } },
    errors: ['not_found'],
    handler: async (request) => transactions.get(services.db, organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/transactions/:id', operationId: 'updateTransaction', auth: { kind: 'organization', scope: 'transaction:update' },
    summary: "Replace a transaction's metadata", tags,
    description: 'Metadata is the only field that changes.',
    schema: { params: IdParams, body: UpdateTransactionBody, response: { 200: TransactionRef } },
    errors: ['not_found'],
    handler: async (request) => transactions.updateMetadata(organizationOf(request), request.params.id, request.body.metadata),
  });
  organizationRoute(app, {
    method: 'POST', path: '/transactions/:id/refunds', operationId: 'refundTransaction', auth: { kind: 'organization', scope: 'transaction:execute' },
    summary: 'Refund a succeeded transaction', tags,
    description:
      'Refunds `amount`, or everything that remains when the body is left out. More than what remains, or a refund of a failed or fully refunded transaction, is `400 validation_error`; a transaction captured by another processor than the configured one is `409 conflict`. Honours `Idempotency-Key`.',
    schema: { params: IdParams, body: RefundBody, response: { 201: RefundRef } },
    errors: ['not_found', 'conflict', 'idempotency_conflict'],
    idempotent: true,
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await transactions.refund(tx, authOf(request).ctx, processor, organizationOf(request), request.params.id, request.body?.amount),
      })),
  });
}
