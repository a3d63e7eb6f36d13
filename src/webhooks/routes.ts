/**
 * HTTP for webhook endpoints (SPEC §16), organization-scoped at both mounts. Scopes by verb (SPEC §3
 * names the `webhook` resource; its table has no rows for these routes, docs/scopes.md lists them):
 * list, get and deliveries `webhook:read`; create `webhook:create`; update and rotate-secret
 * `webhook:update`; delete `webhook:delete`; a delivery's retry and the test event `webhook:execute`.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import { authOf, organizationOf, organizationRoute, pageOf } from '../http/routes.js';
import { DateTime, IdParams, ListOf, NoContent, Nullable, NullableDateTime, OptionalBody, PageQuery, StringEnum, component } from '../http/openapi.js';
import { WEBHOOK_EVENT_TYPES } from './events.js';
import { MAX_SECRET_GRACE_MINUTES, type EndpointView } from './service.js';

const SUBSCRIBABLE = [...WEBHOOK_EVENT_TYPES, '*'];
const STATUSES = ['enabled', 'disabled'] as const;

const Events = Type.Array(Type.String({ enum: SUBSCRIBABLE }), {
  minItems: 1,
  maxItems: SUBSCRIBABLE.length,
  description: 'Event types to receive, or ["*"] for every type',
  examples: [['checkout.completed', 'refund.created']],
});

const ENDPOINT_FIELDS = {
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'An absolute http(s) URL on a public address (SSRF guard: docs/webhooks.md)', examples: ['https://example.com/paygate/webhooks'] }),
  events: Events,
  description: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
};

const endpointFields = {
  id: Type.String({ pattern: '^whe_[0-9A-Za-z]{22}$' }),
  object: Type.Literal('webhook_endpoint'),
  url: Type.String(),
  events: Type.Array(Type.String({ enum: SUBSCRIBABLE })),
  status: StringEnum(STATUSES),
  description: Nullable(Type.String()),
  createdAt: DateTime(),
  updatedAt: DateTime(),
  previousSecretExpiresAt: NullableDateTime({ description: 'While a rotated-out secret still signs deliveries: until when' }),
};

/** An endpoint as every read returns it: never a secret. */
const WebhookEndpointRef = component('WebhookEndpoint', Type.Object(endpointFields, { additionalProperties: false, description: 'A webhook endpoint; never its secret' }));
/** The create and rotate-secret answers: the endpoint and its new secret, shown this once. */
const WebhookEndpointWithSecretRef = component(
  'WebhookEndpointWithSecret',
  Type.Object(
    { ...endpointFields, secret: Type.String({ pattern: '^whsec_[0-9A-Za-z]{43}$', description: 'The signing secret, shown in this response only' }) },
    { additionalProperties: false, description: 'A webhook endpoint just created or with a new secret (shown once)' },
  ),
);
const WebhookEndpointListRef = component('WebhookEndpointList', ListOf(WebhookEndpointRef, 'A page of webhook endpoints, newest first'));

const WebhookAttempt = Type.Object(
  {
    id: Type.String({ pattern: '^wha_[0-9A-Za-z]{22}$', description: 'Sent as Paygate-Attempt-Id' }),
    startedAt: DateTime(),
    durationMs: Nullable(Type.Integer()),
    responseStatus: Nullable(Type.Integer(), { description: "The receiver's HTTP status; null when it gave none" }),
    responseBody: Nullable(Type.String(), { description: "The first 1 KiB of the receiver's answer" }),
    error: Nullable(Type.String(), { description: 'Why no answer came: timeout, connection error, target refused' }),
    outcome: StringEnum(['succeeded', 'failed', 'unknown'] as const, { description: 'unknown: the node stopped before recording it' }),
  },
  { additionalProperties: false, description: 'One delivery attempt' },
);
const WebhookDeliveryRef = component(
  'WebhookDelivery',
  Type.Object(
    {
      id: Type.String({ pattern: '^whd_[0-9A-Za-z]{22}$' }),
      object: Type.Literal('webhook_delivery'),
      endpointId: Type.String(),
      eventId: Type.String({ pattern: '^wev_[0-9A-Za-z]{22}$' }),
      eventType: Type.String(),
      status: StringEnum(['pending', 'succeeded', 'failed'] as const),
      attempts: Type.Integer({ minimum: 0 }),
      nextAttemptAt: NullableDateTime({ description: 'null once it succeeded or failed for good' }),
      lastAttemptAt: NullableDateTime(),
      responseStatus: Nullable(Type.Integer(), { description: "The last attempt's HTTP status" }),
      lastError: Nullable(Type.String()),
      createdAt: DateTime(),
      recentAttempts: Type.Array(WebhookAttempt, { maxItems: 10, description: 'The newest 10 attempts, newest first' }),
    },
    { additionalProperties: false, description: 'The delivery of one event to one endpoint' },
  ),
);
const WebhookDeliveryListRef = component('WebhookDeliveryList', ListOf(WebhookDeliveryRef, 'A page of deliveries, newest first'));

const DeliveryParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64, description: 'The endpoint id' }),
  deliveryId: Type.String({ minLength: 1, maxLength: 64, description: 'The delivery id' }),
});
const EmptyBody = OptionalBody(Type.Object({}, { additionalProperties: false }));

/** A create or rotate-secret answer: the view with its secret (a view without one is a bug, never sent). */
function withSecret(view: EndpointView): EndpointView & { secret: string } {
  if (typeof view.secret !== 'string') throw new Error('a new webhook secret is missing');
  return view as EndpointView & { secret: string };
}

export function registerWebhookRoutes(app: FastifyInstance, services: Services): void {
  const { webhooks } = services;
  const tags = ['Webhooks'];
  const auth = (scope: string) => ({ kind: 'organization', scope }) as const;

  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints', operationId: 'listWebhookEndpoints', auth: auth('webhook:read'), summary: 'List webhook endpoints', tags,
    description: 'Newest first; cursor-paginated.',
    schema: { querystring: PageQuery, response: { 200: WebhookEndpointListRef } },
    handler: async (request) => webhooks.list(organizationOf(request), pageOf(request)),
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints', operationId: 'createWebhookEndpoint', auth: auth('webhook:create'), summary: 'Create a webhook endpoint', tags,
    description: 'The response holds the signing secret (`whsec_...`), shown this once. Targets on loopback, private or link-local addresses are refused.',
    schema: {
      body: Type.Object(ENDPOINT_FIELDS, { additionalProperties: false, examples: [{ url: 'https://example.com/paygate/webhooks', events: ['checkout.completed'] }] }),
      response: { 201: WebhookEndpointWithSecretRef },
    },
    errors: ['conflict'],
    handler: async (request, reply) => {
      const endpoint = await webhooks.create(authOf(request).ctx, organizationOf(request), request.body);
      return reply.code(201).send(withSecret(endpoint));
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints/:id', operationId: 'getWebhookEndpoint', auth: auth('webhook:read'), summary: 'Get a webhook endpoint', tags,
    schema: { params: IdParams, response: { 200: WebhookEndpointRef } },
    errors: ['not_found'],
    handler: async (request) => webhooks.get(organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/webhook-endpoints/:id', operationId: 'updateWebhookEndpoint', auth: auth('webhook:update'), summary: 'Update a webhook endpoint', tags,
    description: 'Change its url, events, description or status.',
    schema: {
      params: IdParams,
      body: Type.Object(
        {
          url: Type.Optional(ENDPOINT_FIELDS.url),
          events: Type.Optional(Events),
          description: ENDPOINT_FIELDS.description,
          status: Type.Optional(StringEnum(STATUSES, { description: 'Enabling it again also forgets the failures that counted towards disabling it' })),
        },
        { additionalProperties: false, minProperties: 1, examples: [{ status: 'enabled' }] },
      ),
      response: { 200: WebhookEndpointRef },
    },
    errors: ['not_found'],
    handler: async (request) => webhooks.update(authOf(request).ctx, organizationOf(request), request.params.id, request.body),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/webhook-endpoints/:id', operationId: 'deleteWebhookEndpoint', auth: auth('webhook:delete'), summary: 'Delete a webhook endpoint', tags,
    description: 'Deletes its deliveries too.',
    schema: { params: IdParams, response: { 204: NoContent } },
    errors: ['not_found'],
    handler: async (request, reply) => {
      await webhooks.delete(authOf(request).ctx, organizationOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/rotate-secret', operationId: 'rotateWebhookSecret', auth: auth('webhook:update'),
    summary: 'Rotate the signing secret', tags,
    description: 'The new secret is in the response, once; the previous one keeps signing deliveries (one `v1=` per live secret) during the grace period.',
    schema: {
      params: IdParams,
      body: OptionalBody(
        Type.Object(
          { gracePeriodMinutes: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SECRET_GRACE_MINUTES, description: 'Default 1440 (24 h); 0 ends the previous secret at once' })) },
          { additionalProperties: false, examples: [{ gracePeriodMinutes: 60 }] },
        ),
      ),
      response: { 200: WebhookEndpointWithSecretRef },
    },
    errors: ['not_found'],
    handler: async (request) =>
      withSecret(await webhooks.rotateSecret(authOf(request).ctx, organizationOf(request), request.params.id, request.body ?? {})),
  });
  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints/:id/deliveries', operationId: 'listWebhookDeliveries', auth: auth('webhook:read'), summary: "List an endpoint's deliveries", tags,
    description: 'Newest first, each with its newest attempts.',
    schema: {
      params: IdParams,
      querystring: Type.Object(
        { ...PageQuery.properties, status: Type.Optional(StringEnum(['pending', 'succeeded', 'failed'] as const)) },
        { additionalProperties: false },
      ),
      response: { 200: WebhookDeliveryListRef },
    },
    errors: ['not_found'],
    handler: async (request) => {
      const { status } = request.query;
      return webhooks.listDeliveries(organizationOf(request), request.params.id, { ...pageOf(request), status });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/deliveries/:deliveryId/retry', operationId: 'retryWebhookDelivery', auth: auth('webhook:execute'),
    summary: 'Retry a delivery now', tags,
    description: '`202`: queued for an attempt now.',
    schema: { params: DeliveryParams, body: EmptyBody, response: { 202: WebhookDeliveryRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request, reply) => {
      const { id, deliveryId } = request.params;
      return reply.code(202).send(await webhooks.retry(organizationOf(request), id, deliveryId));
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/test', operationId: 'sendWebhookTestEvent', auth: auth('webhook:execute'),
    summary: 'Send a test event', tags,
    description: 'Queues a `webhook_endpoint.test` event for this endpoint (`202`).',
    schema: { params: IdParams, body: EmptyBody, response: { 202: WebhookDeliveryRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request, reply) => reply.code(202).send(await webhooks.sendTest(organizationOf(request), request.params.id)),
  });
}
