/**
 * HTTP for invoices (SPEC §3: invoice:read/create/update/delete/execute).
 * `POST /v1/invoices/{id}/void` is an extension to SPEC's table, under invoice:update.
 */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams, NoContent } from '../../http/openapi.js';
import { sendIdempotent } from '../http.js';
import { PAYMENT_TAGS } from '../tags.js';
import { CreateInvoiceBody, InvoiceListRef, InvoiceRef, ListInvoicesQuery, UpdateInvoiceBody } from '../schemas.js';

export function registerInvoiceRoutes(app: FastifyInstance, services: Services): void {
  const { invoices, idempotency } = services.payments;
  const tags = [PAYMENT_TAGS.invoices];

  organizationRoute(app, {
    method: 'GET', path: '/invoices', operationId: 'listInvoices', auth: { kind: 'organization', scope: 'invoice:read' },
    summary: 'List invoices, newest first', tags,
    description: 'Cursor-paginated; filter by `status` and `clientId`.',
    schema: { querystring: ListInvoicesQuery, response: { 200: InvoiceListRef } },
    errors: ['not_found'],
    handler: async (request) => {
      const { status, clientId } = request.query;
      return invoices.list(organizationOf(request), { ...pageOf(request), status, clientId });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices', operationId: 'createInvoice', auth: { kind: 'organization', scope: 'invoice:create' },
    summary: 'Create a draft invoice', tags,
    description:
      'The total is computed from the lines (integer minor units) and must be between 1 and 10^11. The client must be one of the organization\'s (`404` otherwise). Honours `Idempotency-Key`.',
    schema: { body: CreateInvoiceBody, response: { 201: InvoiceRef } },
    errors: ['not_found', 'idempotency_conflict'],
    idempotent: true,
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await invoices.create(tx, organizationOf(request), request.body),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/invoices/:id', operationId: 'getInvoice', auth: { kind: 'organization', scope: 'invoice:read' },
    summary: 'Get an invoice', tags,
    schema: { params: IdParams, response: { 200: InvoiceRef } },
    errors: ['not_found'],
    handler: async (request) => invoices.get(services.db, organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/invoices/:id', operationId: 'updateInvoice', auth: { kind: 'organization', scope: 'invoice:update' },
    summary: 'Change a draft invoice', tags,
    description: 'Only a draft changes (`409 conflict` otherwise); new lines recompute the total.',
    schema: { params: IdParams, body: UpdateInvoiceBody, response: { 200: InvoiceRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => invoices.update(organizationOf(request), request.params.id, request.body),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/invoices/:id', operationId: 'deleteInvoice', auth: { kind: 'organization', scope: 'invoice:delete' },
    summary: 'Delete a draft invoice', tags,
    description: 'Only a draft can be deleted (`409 conflict` otherwise): void an open invoice instead.',
    schema: { params: IdParams, response: { 204: NoContent } },
    errors: ['not_found', 'conflict'],
    handler: async (request, reply) => {
      await invoices.delete(organizationOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices/:id/finalize', operationId: 'finalizeInvoice', auth: { kind: 'organization', scope: 'invoice:execute' },
    summary: 'Finalize a draft invoice (draft -> open)', tags,
    description: 'Of two concurrent finalizes one succeeds and the other is `409 conflict`.',
    schema: { params: IdParams, response: { 200: InvoiceRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => invoices.finalize(organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices/:id/void', operationId: 'voidInvoice', auth: { kind: 'organization', scope: 'invoice:update' },
    summary: 'Void an open invoice (open -> void)', tags,
    description: 'The way to withdraw an invoice a client has seen; an extension to the SPEC table.',
    schema: { params: IdParams, response: { 200: InvoiceRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => invoices.void(organizationOf(request), request.params.id),
  });
}
