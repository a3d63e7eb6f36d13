/** HTTP for checkouts (SPEC §3: checkout:create/read) and the hosted pay page /pay/{id}. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { ID_PARAM, PAGE_QUERY, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { sendIdempotent } from '../http.js';
import { AMOUNT_SCHEMA, CURRENCY_SCHEMA } from '../money.js';
import { MAX_EXPIRY_MINUTES, type CheckoutFilter, type CheckoutInput } from './service.js';
import { registerPayPage } from './pay-page.js';

const OBJECT_ID = { type: 'string', minLength: 1, maxLength: 64 } as const;
const REDIRECT_URL = { type: ['string', 'null'], minLength: 1, maxLength: 2048, description: 'absolute http(s) URL' } as const;

const CREATE_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    amount: AMOUNT_SCHEMA,
    currency: CURRENCY_SCHEMA,
    clientId: OBJECT_ID,
    invoiceId: { ...OBJECT_ID, description: 'pay an open invoice: amount, currency and client come from it' },
    successUrl: { ...REDIRECT_URL, description: 'where the payer goes after paying (303)' },
    cancelUrl: { ...REDIRECT_URL, description: 'the pay page links here to cancel' },
    expiresInMinutes: { type: 'integer', minimum: 1, maximum: MAX_EXPIRY_MINUTES, description: 'default 60' },
  },
} as const;

const LIST_QUERY = {
  ...PAGE_QUERY,
  properties: {
    ...PAGE_QUERY.properties,
    status: { type: 'string', enum: ['open', 'completed', 'expired'] },
    clientId: OBJECT_ID,
    invoiceId: OBJECT_ID,
  },
} as const;

export function registerCheckoutRoutes(app: FastifyInstance, services: Services): void {
  const { checkouts, idempotency } = services.payments;
  const tags = ['Checkouts'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;

  organizationRoute(app, {
    method: 'POST', path: '/checkouts', auth: { kind: 'organization', scope: 'checkout:create' },
    summary: 'Create a checkout by amount and currency, or for an open invoice (honours Idempotency-Key)', tags,
    schema: { body: CREATE_BODY },
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await checkouts.create(tx, organizationOf(request), request.body as CheckoutInput),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/checkouts', auth: { kind: 'organization', scope: 'checkout:read' }, summary: 'List checkouts, newest first', tags,
    schema: { querystring: LIST_QUERY },
    handler: async (request) => {
      const q = request.query as Omit<CheckoutFilter, 'limit' | 'startingAfter'>;
      return checkouts.list(organizationOf(request), { ...pageOf(request), status: q.status, clientId: q.clientId, invoiceId: q.invoiceId });
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/checkouts/:id', auth: { kind: 'organization', scope: 'checkout:read' }, summary: 'Get a checkout', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => checkouts.get(services.db, organizationOf(request), id(request)),
  });

  registerPayPage(app, services);
}
