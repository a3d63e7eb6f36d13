/** HTTP for clients (SPEC §3: client:read/create/update/delete). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams, NoContent } from '../../http/openapi.js';
import { sendIdempotent } from '../http.js';
import { PAYMENT_TAGS } from '../tags.js';
import { ClientListRef, ClientRef, CreateClientBody, ListClientsQuery, UpdateClientBody } from '../schemas.js';

export function registerClientRoutes(app: FastifyInstance, services: Services): void {
  const { clients, idempotency } = services.payments;
  const tags = [PAYMENT_TAGS.clients];

  organizationRoute(app, {
    method: 'GET', path: '/clients', operationId: 'listClients', auth: { kind: 'organization', scope: 'client:read' },
    summary: 'List clients, newest first', tags,
    description: 'Cursor-paginated; `email` filters by e-mail address (case-insensitive). Deleted clients are not listed.',
    schema: { querystring: ListClientsQuery, response: { 200: ClientListRef } },
    errors: ['not_found'],
    handler: async (request) => clients.list(organizationOf(request), { ...pageOf(request), email: request.query.email }),
  });
  organizationRoute(app, {
    method: 'POST', path: '/clients', operationId: 'createClient', auth: { kind: 'organization', scope: 'client:create' },
    summary: 'Create a client', tags,
    description: 'Honours `Idempotency-Key`: a retry with the same key and body answers the first response again.',
    schema: { body: CreateClientBody, response: { 201: ClientRef } },
    errors: ['idempotency_conflict'],
    idempotent: true,
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await clients.create(tx, organizationOf(request), request.body),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/clients/:id', operationId: 'getClient', auth: { kind: 'organization', scope: 'client:read' },
    summary: 'Get a client', tags,
    schema: { params: IdParams, response: { 200: ClientRef } },
    errors: ['not_found'],
    handler: async (request) => clients.get(services.db, organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/clients/:id', operationId: 'updateClient', auth: { kind: 'organization', scope: 'client:update' },
    summary: 'Update a client', tags,
    description: 'Changes the fields sent; `metadata` replaces the whole metadata object.',
    schema: { params: IdParams, body: UpdateClientBody, response: { 200: ClientRef } },
    errors: ['not_found'],
    handler: async (request) => clients.update(organizationOf(request), request.params.id, request.body),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/clients/:id', operationId: 'deleteClient', auth: { kind: 'organization', scope: 'client:delete' },
    summary: 'Delete a client', tags,
    description: 'The client is gone from the API (`404` after); its invoices and transactions keep pointing at it.',
    schema: { params: IdParams, response: { 204: NoContent } },
    errors: ['not_found'],
    handler: async (request, reply) => {
      await clients.delete(organizationOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
}
