/** HTTP for checkouts (SPEC §3: checkout:create/read) and the hosted pay page /pay/{id}. */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams } from '../../http/openapi.js';
import { sendIdempotent } from '../http.js';
import { PAYMENT_TAGS } from '../tags.js';
import { CheckoutListRef, CheckoutRef, CreateCheckoutBody, ListCheckoutsQuery } from '../schemas.js';
import { registerPayPage } from './pay-page.js';

export function registerCheckoutRoutes(app: FastifyInstance, services: Services): void {
  const { checkouts, idempotency } = services.payments;
  const tags = [PAYMENT_TAGS.checkouts];

  organizationRoute(app, {
    method: 'POST', path: '/checkouts', operationId: 'createCheckout', auth: { kind: 'organization', scope: 'checkout:create' },
    summary: 'Create a checkout', tags,
    description: [
      'Either `amount` and `currency` (and optionally `clientId`), or `invoiceId` of an open invoice (amount, currency and client then come from it).',
      'Send the payer to `url`, the hosted pay page. An invoice or client over the card-testing brake gets `429 rate_limited` with `Retry-After`.',
      'Honours `Idempotency-Key`.',
    ].join(' '),
    schema: { body: CreateCheckoutBody, response: { 201: CheckoutRef } },
    errors: ['not_found', 'conflict', 'idempotency_conflict', 'rate_limited'],
    idempotent: true,
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await checkouts.create(tx, organizationOf(request), request.body),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/checkouts', operationId: 'listCheckouts', auth: { kind: 'organization', scope: 'checkout:read' },
    summary: 'List checkouts, newest first', tags,
    description: 'Cursor-paginated; filter by `status`, `clientId` and `invoiceId`.',
    schema: { querystring: ListCheckoutsQuery, response: { 200: CheckoutListRef } },
    errors: ['not_found'],
    handler: async (request) => {
      const { status, clientId, invoiceId } = request.query;
      return checkouts.list(organizationOf(request), { ...pageOf(request), status, clientId, invoiceId });
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/checkouts/:id', operationId: 'getCheckout', auth: { kind: 'organization', scope: 'checkout:read' },
    summary: 'Get a checkout', tags,
    schema: { params: IdParams, response: { 200: CheckoutRef } },
    errors: ['not_found'],
    handler: async (request) => checkouts.get(services.db, organizationOf(request), request.params.id),
  });

  // The payer's HTML page, not an API operation: kept out of the document (schema.hide).
  registerPayPage(app, services);
}
