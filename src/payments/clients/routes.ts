/** HTTP for clients (SPEC §3: client:read/create/update/delete). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { ID_PARAM, PAGE_QUERY, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { sendIdempotent } from '../http.js';
import type { ClientInput } from './service.js';

const METADATA = {
  type: 'object',
  maxProperties: 50,
  propertyNames: { maxLength: 40 },
  additionalProperties: { type: 'string', maxLength: 500 },
} as const;
const FIELDS = {
  name: { type: 'string', minLength: 1, maxLength: 200 },
  email: { type: ['string', 'null'], format: 'email', maxLength: 254 },
  metadata: METADATA,
} as const;

export function registerClientRoutes(app: FastifyInstance, services: Services): void {
  const { clients, idempotency } = services.payments;
  const tags = ['Clients'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;

  organizationRoute(app, {
    method: 'GET', path: '/clients', auth: { kind: 'organization', scope: 'client:read' }, summary: 'List clients, newest first', tags,
    schema: { querystring: { ...PAGE_QUERY, properties: { ...PAGE_QUERY.properties, email: { type: 'string', maxLength: 254 } } } },
    handler: async (request) =>
      clients.list(organizationOf(request), { ...pageOf(request), email: (request.query as { email?: string }).email }),
  });
  organizationRoute(app, {
    method: 'POST', path: '/clients', auth: { kind: 'organization', scope: 'client:create' }, summary: 'Create a client (honours Idempotency-Key)', tags,
    schema: { body: { type: 'object', additionalProperties: false, required: ['name'], properties: FIELDS } },
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await clients.create(tx, organizationOf(request), request.body as ClientInput),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/clients/:id', auth: { kind: 'organization', scope: 'client:read' }, summary: 'Get a client', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => clients.get(services.db, organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/clients/:id', auth: { kind: 'organization', scope: 'client:update' }, summary: 'Update a client', tags,
    schema: { params: ID_PARAM, body: { type: 'object', additionalProperties: false, minProperties: 1, properties: FIELDS } },
    handler: async (request) => clients.update(organizationOf(request), id(request), request.body as Partial<ClientInput>),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/clients/:id', auth: { kind: 'organization', scope: 'client:delete' }, summary: 'Delete a client', tags,
    schema: { params: ID_PARAM },
    handler: async (request, reply) => {
      await clients.delete(organizationOf(request), id(request));
      return reply.code(204).send();
    },
  });
}
