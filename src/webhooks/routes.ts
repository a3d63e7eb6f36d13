/**
 * HTTP for webhook endpoints (SPEC §16), organization-scoped at both mounts. Scopes by verb (SPEC §3
 * names the `webhook` resource; its table has no rows for these routes, docs/scopes.md lists them):
 * list, get and deliveries `webhook:read`; create `webhook:create`; update and rotate-secret
 * `webhook:update`; delete `webhook:delete`; a delivery's retry and the test event `webhook:execute`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { PAGE_QUERY, authOf, organizationOf, organizationRoute, pageOf } from '../http/routes.js';
import { WEBHOOK_EVENT_TYPES } from './events.js';
import { MAX_SECRET_GRACE_MINUTES, type CreateEndpointInput, type DeliveryView, type UpdateEndpointInput } from './service.js';

const TIMESTAMP = { type: 'string', format: 'date-time' } as const;
const NULLABLE_TIMESTAMP = { type: ['string', 'null'], format: 'date-time' } as const;
const SUBSCRIBABLE = [...WEBHOOK_EVENT_TYPES, '*'];

const EVENTS = {
  type: 'array',
  minItems: 1,
  maxItems: SUBSCRIBABLE.length,
  items: { type: 'string', enum: SUBSCRIBABLE },
  description: 'event types to receive, or ["*"] for every type',
} as const;

const ENDPOINT_FIELDS = {
  url: { type: 'string', minLength: 1, maxLength: 2048, description: 'an absolute http(s) URL on a public address (SSRF guard: docs/webhooks.md)' },
  events: EVENTS,
  description: { type: ['string', 'null'], maxLength: 500 },
} as const;

const ENDPOINT_PROPERTIES = {
  id: { type: 'string', pattern: '^whe_[0-9A-Za-z]{22}$' },
  object: { type: 'string', enum: ['webhook_endpoint'] },
  url: { type: 'string' },
  events: { type: 'array', items: { type: 'string', enum: SUBSCRIBABLE } },
  status: { type: 'string', enum: ['enabled', 'disabled'] },
  description: { type: ['string', 'null'] },
  createdAt: TIMESTAMP,
  updatedAt: TIMESTAMP,
  previousSecretExpiresAt: { ...NULLABLE_TIMESTAMP, description: 'while a rotated-out secret still signs deliveries: until when' },
  secret: { type: 'string', pattern: '^whsec_[0-9A-Za-z]{43}$', description: 'the signing secret; only in the create and rotate-secret responses' },
} as const;

const ENDPOINT_REQUIRED = ['id', 'object', 'url', 'events', 'status', 'description', 'createdAt', 'updatedAt', 'previousSecretExpiresAt'];

/** An endpoint as every read returns it: never a secret. */
const ENDPOINT = { type: 'object', additionalProperties: false, required: ENDPOINT_REQUIRED, properties: ENDPOINT_PROPERTIES } as const;
/** The create and rotate-secret answers: the endpoint and its new secret, shown this once. */
const ENDPOINT_WITH_SECRET = { ...ENDPOINT, required: [...ENDPOINT_REQUIRED, 'secret'] } as const;

const ATTEMPT = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'startedAt', 'durationMs', 'responseStatus', 'responseBody', 'error', 'outcome'],
  properties: {
    id: { type: 'string', pattern: '^wha_[0-9A-Za-z]{22}$', description: 'sent as Paygate-Attempt-Id' },
    startedAt: TIMESTAMP,
    durationMs: { type: ['integer', 'null'] },
    responseStatus: { type: ['integer', 'null'], description: "the receiver's HTTP status; null when it gave none" },
    responseBody: { type: ['string', 'null'], description: "the first 1 KiB of the receiver's answer" },
    error: { type: ['string', 'null'], description: 'why no answer came: timeout, connection error, target refused' },
    outcome: { type: 'string', enum: ['succeeded', 'failed', 'unknown'], description: 'unknown: the node stopped before recording it' },
  },
} as const;

const DELIVERY = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'object', 'endpointId', 'eventId', 'eventType', 'status', 'attempts', 'nextAttemptAt', 'lastAttemptAt', 'responseStatus', 'lastError', 'createdAt', 'recentAttempts'],
  properties: {
    id: { type: 'string', pattern: '^whd_[0-9A-Za-z]{22}$' },
    object: { type: 'string', enum: ['webhook_delivery'] },
    endpointId: { type: 'string' },
    eventId: { type: 'string', pattern: '^wev_[0-9A-Za-z]{22}$' },
    eventType: { type: 'string' },
    status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] },
    attempts: { type: 'integer', minimum: 0 },
    nextAttemptAt: { ...NULLABLE_TIMESTAMP, description: 'null once it succeeded or failed for good' },
    lastAttemptAt: NULLABLE_TIMESTAMP,
    responseStatus: { type: ['integer', 'null'], description: "the last attempt's HTTP status" },
    lastError: { type: ['string', 'null'] },
    createdAt: TIMESTAMP,
    recentAttempts: { type: 'array', maxItems: 10, items: ATTEMPT, description: 'the newest 10 attempts, newest first' },
  },
} as const;

const listOf = (item: object) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: ['object', 'data', 'hasMore'],
    properties: { object: { type: 'string', enum: ['list'] }, data: { type: 'array', items: item }, hasMore: { type: 'boolean' } },
  }) as const;

/** Every error is problem+json (SPEC §8); `additionalProperties` keeps the per-code extras (`errors`, `requiredScope`, ...). */
const PROBLEM = {
  type: 'object',
  additionalProperties: true,
  required: ['type', 'title', 'status', 'detail', 'code', 'requestId'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    code: { type: 'string' },
    requestId: { type: 'string' },
    errors: { type: 'array', items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } } },
    requiredScope: { type: 'string' },
  },
} as const;

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'validation_error (a target refused by the SSRF guard included), organization_required',
  401: 'missing_credentials, invalid_api_key, api_key_revoked, api_key_expired, invalid_session',
  403: 'insufficient_scope, forbidden, organization_mismatch, wrong_key_tier, ip_not_allowed, csrf_failed, api_key_quarantined',
  404: 'not_found (another organization\'s endpoint or delivery too)',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  500: 'internal_error',
  503: 'service_unavailable',
};

/** The problem+json answers of a route, by status. */
function problems(...statuses: number[]): Record<number, object> {
  return Object.fromEntries(statuses.map((status) => [status, { ...PROBLEM, description: PROBLEM_DESCRIPTIONS[status] }]));
}

const COMMON = [400, 401, 403, 429, 500, 503];
const WITH_BODY = [413, 415];

const ENDPOINT_PARAM = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id'],
} as const;
const DELIVERY_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 }, deliveryId: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id', 'deliveryId'],
} as const;
const EMPTY_BODY = { type: ['object', 'null'], additionalProperties: false, properties: {} } as const;

export function registerWebhookRoutes(app: FastifyInstance, services: Services): void {
  const { webhooks } = services;
  const tags = ['Webhooks'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;
  const auth = (scope: string) => ({ kind: 'organization', scope }) as const;

  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints', auth: auth('webhook:read'), summary: 'List webhook endpoints, newest first', tags,
    schema: { querystring: PAGE_QUERY, response: { 200: listOf(ENDPOINT), ...problems(...COMMON, 404) } },
    handler: async (request) => webhooks.list(organizationOf(request), pageOf(request)),
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints', auth: auth('webhook:create'), summary: 'Create a webhook endpoint (its signing secret is shown once)', tags,
    schema: {
      body: { type: 'object', additionalProperties: false, required: ['url', 'events'], properties: ENDPOINT_FIELDS },
      response: { 201: ENDPOINT_WITH_SECRET, ...problems(...COMMON, 409, ...WITH_BODY) },
    },
    handler: async (request, reply) => {
      const endpoint = await webhooks.create(authOf(request).ctx, organizationOf(request), request.body as CreateEndpointInput);
      return reply.code(201).send(endpoint);
    },
  });
  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints/:id', auth: auth('webhook:read'), summary: 'Get a webhook endpoint', tags,
    schema: { params: ENDPOINT_PARAM, response: { 200: ENDPOINT, ...problems(...COMMON, 404) } },
    handler: async (request) => webhooks.get(organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/webhook-endpoints/:id', auth: auth('webhook:update'), summary: 'Change a webhook endpoint (url, events, description, status)', tags,
    schema: {
      params: ENDPOINT_PARAM,
      body: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: { ...ENDPOINT_FIELDS, status: { type: 'string', enum: ['enabled', 'disabled'], description: 'enabling it again also forgets the failures that counted towards disabling it' } },
      },
      response: { 200: ENDPOINT, ...problems(...COMMON, 404, ...WITH_BODY) },
    },
    handler: async (request) => webhooks.update(authOf(request).ctx, organizationOf(request), id(request), request.body as UpdateEndpointInput),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/webhook-endpoints/:id', auth: auth('webhook:delete'), summary: 'Delete a webhook endpoint and its deliveries', tags,
    schema: { params: ENDPOINT_PARAM, response: { 204: { type: 'null', description: 'deleted' }, ...problems(...COMMON, 404) } },
    handler: async (request, reply) => {
      await webhooks.delete(authOf(request).ctx, organizationOf(request), id(request));
      return reply.code(204).send();
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/rotate-secret', auth: auth('webhook:update'),
    summary: 'Rotate the signing secret (the previous one keeps signing during the grace period)', tags,
    schema: {
      params: ENDPOINT_PARAM,
      body: {
        type: ['object', 'null'],
        additionalProperties: false,
        properties: { gracePeriodMinutes: { type: 'integer', minimum: 0, maximum: MAX_SECRET_GRACE_MINUTES, description: 'default 1440 (24 h); 0 ends the previous secret at once' } },
      },
      response: { 200: ENDPOINT_WITH_SECRET, ...problems(...COMMON, 404, ...WITH_BODY) },
    },
    handler: async (request) =>
      webhooks.rotateSecret(authOf(request).ctx, organizationOf(request), id(request), (request.body as { gracePeriodMinutes?: number } | null | undefined) ?? {}),
  });
  organizationRoute(app, {
    method: 'GET', path: '/webhook-endpoints/:id/deliveries', auth: auth('webhook:read'), summary: "An endpoint's deliveries, newest first, with their attempts", tags,
    schema: {
      params: ENDPOINT_PARAM,
      querystring: { ...PAGE_QUERY, properties: { ...PAGE_QUERY.properties, status: { type: 'string', enum: ['pending', 'succeeded', 'failed'] } } },
      response: { 200: listOf(DELIVERY), ...problems(...COMMON, 404) },
    },
    handler: async (request) => {
      const { status } = request.query as { status?: DeliveryView['status'] };
      return webhooks.listDeliveries(organizationOf(request), id(request), { ...pageOf(request), status });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/deliveries/:deliveryId/retry', auth: auth('webhook:execute'),
    summary: 'Attempt a delivery again now (202: queued)', tags,
    schema: { params: DELIVERY_PARAMS, body: EMPTY_BODY, response: { 202: DELIVERY, ...problems(...COMMON, 404, 409, ...WITH_BODY) } },
    handler: async (request, reply) => {
      const { deliveryId } = request.params as { deliveryId: string };
      return reply.code(202).send(await webhooks.retry(organizationOf(request), id(request), deliveryId));
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/webhook-endpoints/:id/test', auth: auth('webhook:execute'),
    summary: 'Send a webhook_endpoint.test event to this endpoint (202: queued)', tags,
    schema: { params: ENDPOINT_PARAM, body: EMPTY_BODY, response: { 202: DELIVERY, ...problems(...COMMON, 404, 409, ...WITH_BODY) } },
    handler: async (request, reply) => reply.code(202).send(await webhooks.sendTest(organizationOf(request), id(request))),
  });
}
