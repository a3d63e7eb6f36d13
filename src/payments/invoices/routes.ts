/**
 * HTTP for invoices (SPEC §3: invoice:read/create/update/delete/execute).
 * `POST /v1/invoices/{id}/void` is an extension to SPEC's table, under invoice:update.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { ID_PARAM, PAGE_QUERY, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { CURRENCY_SCHEMA } from '../money.js';
import { sendIdempotent } from '../http.js';
import { LINES_SCHEMA } from './lines.js';
import type { InvoiceInput, InvoicePage } from './service.js';

const FIELDS = {
  clientId: { type: 'string', minLength: 1, maxLength: 64 },
  currency: CURRENCY_SCHEMA,
  lines: LINES_SCHEMA,
  dueAt: { type: ['string', 'null'], format: 'date-time' },
} as const;

const STATUS = { type: 'string', enum: ['draft', 'open', 'paid', 'void'] } as const;

export function registerInvoiceRoutes(app: FastifyInstance, services: Services): void {
  const { invoices, idempotency } = services.payments;
  const tags = ['Invoices'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;

  organizationRoute(app, {
    method: 'GET', path: '/invoices', auth: { kind: 'organization', scope: 'invoice:read' }, summary: 'List invoices, newest first', tags,
    schema: {
      querystring: {
        ...PAGE_QUERY,
        properties: { ...PAGE_QUERY.properties, status: STATUS, clientId: { type: 'string', minLength: 1, maxLength: 64 } },
      },
    },
    handler: async (request) => {
      const { status, clientId } = request.query as Pick<InvoicePage, 'status' | 'clientId'>;
      return invoices.list(organizationOf(request), { ...pageOf(request), status, clientId });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices', auth: { kind: 'organization', scope: 'invoice:create' },
    summary: 'Create a draft invoice; the total is computed from the lines (honours Idempotency-Key)', tags,
    schema: { body: { type: 'object', additionalProperties: false, required: ['clientId', 'currency', 'lines'], properties: FIELDS } },
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await invoices.create(tx, organizationOf(request), request.body as InvoiceInput),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/invoices/:id', auth: { kind: 'organization', scope: 'invoice:read' }, summary: 'Get an invoice', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => invoices.get(services.db, organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/invoices/:id', auth: { kind: 'organization', scope: 'invoice:update' }, summary: 'Change a draft invoice', tags,
    schema: { params: ID_PARAM, body: { type: 'object', additionalProperties: false, minProperties: 1, properties: FIELDS } },
    handler: async (request) => invoices.update(organizationOf(request), id(request), request.body as Partial<InvoiceInput>),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/invoices/:id', auth: { kind: 'organization', scope: 'invoice:delete' }, summary: 'Delete a draft invoice', tags,
    schema: { params: ID_PARAM },
    handler: async (request, reply) => {
      await invoices.delete(organizationOf(request), id(request));
      return reply.code(204).send();
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices/:id/finalize', auth: { kind: 'organization', scope: 'invoice:execute' },
    summary: 'Finalize a draft invoice (draft -> open)', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => invoices.finalize(organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'POST', path: '/invoices/:id/void', auth: { kind: 'organization', scope: 'invoice:update' },
    summary: 'Void an open invoice (open -> void; an extension to the SPEC table)', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => invoices.void(organizationOf(request), id(request)),
  });
}
