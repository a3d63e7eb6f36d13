/** HTTP for API keys: /v1/api-keys (organization tier) and /v1/system/api-keys (system tier). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import type { AuthRequirement } from '../auth/requirements.js';
import { ID_PARAM, PAGE_QUERY, authOf, organizationRoute, pageOf, route, type RouteDef } from '../http/routes.js';
import type { KeyScope } from './store.js';
import type { CreateKeyInput, UpdateKeyInput } from './service.js';

const RATE_LIMIT = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: ['requests', 'windowSeconds'],
  properties: {
    requests: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    windowSeconds: { type: 'integer', minimum: 1, maximum: 86_400 },
  },
} as const;

const KEY_FIELDS = {
  name: { type: 'string', minLength: 1, maxLength: 100 },
  description: { type: ['string', 'null'], maxLength: 500 },
  scopes: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 64 }, description: 'resource:action scopes' },
  expiresAt: { type: ['string', 'null'], format: 'date-time' },
  allowedIps: { type: ['array', 'null'], maxItems: 100, items: { type: 'string', maxLength: 64 }, description: 'IPv4/IPv6 addresses or CIDR ranges' },
  rateLimit: RATE_LIMIT,
} as const;

const CREATE_BODY = { type: 'object', additionalProperties: false, required: ['name', 'scopes'], properties: KEY_FIELDS } as const;
const UPDATE_BODY = { type: 'object', additionalProperties: false, minProperties: 1, properties: KEY_FIELDS } as const;
const ROTATE_BODY = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { gracePeriodMinutes: { type: 'integer', minimum: 0, maximum: 10080 } },
} as const;

interface Variant {
  mount: (app: FastifyInstance, def: RouteDef) => void;
  prefix: string;
  tag: string;
  auth: (scope: string) => AuthRequirement;
  where: (request: FastifyRequest) => KeyScope;
}

function registerVariant(app: FastifyInstance, services: Services, v: Variant): void {
  const { keys } = services;
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;
  const tags = [v.tag];

  v.mount(app, {
    method: 'GET', path: v.prefix, auth: v.auth('api_key:read'), summary: 'List API keys', tags,
    schema: { querystring: PAGE_QUERY },
    handler: async (request) => keys.list(v.where(request), pageOf(request)),
  });
  v.mount(app, {
    method: 'POST', path: v.prefix, auth: v.auth('api_key:create'), summary: 'Create an API key (the secret is shown once)', tags,
    schema: { body: CREATE_BODY },
    handler: async (request, reply) => {
      const key = await keys.create(authOf(request).ctx, v.where(request), request.body as CreateKeyInput);
      return reply.code(201).send(key);
    },
  });
  v.mount(app, {
    method: 'GET', path: `${v.prefix}/:id`, auth: v.auth('api_key:read'), summary: 'Get an API key', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => keys.get(v.where(request), id(request)),
  });
  v.mount(app, {
    method: 'PATCH', path: `${v.prefix}/:id`, auth: v.auth('api_key:update'), summary: 'Update an API key', tags,
    schema: { params: ID_PARAM, body: UPDATE_BODY },
    handler: async (request) => keys.update(authOf(request).ctx, v.where(request), id(request), request.body as UpdateKeyInput),
  });
  v.mount(app, {
    method: 'POST', path: `${v.prefix}/:id/rotate`, auth: v.auth('api_key:update'), summary: 'Rotate an API key (new secret, same id)', tags,
    schema: { params: ID_PARAM, body: ROTATE_BODY },
    handler: async (request) => keys.rotate(authOf(request).ctx, v.where(request), id(request), (request.body as { gracePeriodMinutes?: number } | undefined) ?? {}),
  });
  v.mount(app, {
    method: 'POST', path: `${v.prefix}/:id/revoke`, auth: v.auth('api_key:delete'), summary: 'Revoke an API key (irreversible)', tags,
    schema: { params: ID_PARAM, body: { type: ['object', 'null'], additionalProperties: false, properties: {} } },
    handler: async (request) => keys.revoke(authOf(request).ctx, v.where(request), id(request)),
  });
  v.mount(app, {
    method: 'DELETE', path: `${v.prefix}/:id`, auth: v.auth('api_key:delete'), summary: 'Delete an API key for good', tags,
    schema: { params: ID_PARAM },
    handler: async (request, reply) => {
      await keys.delete(authOf(request).ctx, v.where(request), id(request));
      return reply.code(204).send();
    },
  });
}

export function registerKeyRoutes(app: FastifyInstance, services: Services): void {
  registerVariant(app, services, {
    mount: organizationRoute,
    prefix: '/api-keys',
    tag: 'API keys',
    auth: (scope) => ({ kind: 'organization', scope }),
    where: (request) => ({ tier: 'organization', organizationId: authOf(request).organizationId }),
  });
  registerVariant(app, services, {
    mount: route,
    prefix: '/system/api-keys',
    tag: 'System API keys',
    auth: () => ({ kind: 'global_admin' }),
    where: () => ({ tier: 'system', organizationId: null }),
  });
}
