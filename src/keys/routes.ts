/** HTTP for API keys: /v1/api-keys (organization tier) and /v1/system/api-keys (system tier). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import type { AuthRequirement } from '../auth/requirements.js';
import { authOf, organizationRoute, pageOf, route, type RouteDef, type RouteSchema } from '../http/routes.js';
import { IdParams, ListOf, NoContent, OptionalBody, component } from '../http/openapi.js';
import type { KeyScope } from './store.js';
import { MAX_GRACE_MINUTES, type ApiKeyView } from './service.js';
import { ApiKeyRef, ApiKeyWithSecretRef, CreateKeyBody, KeyListQuery, UpdateKeyBody } from './schemas.js';

/** A create or rotate answer: the view with its token (a view without one is a bug, never sent). */
function withSecret(view: ApiKeyView): ApiKeyView & { secret: string } {
  if (typeof view.secret !== 'string') throw new Error('a created or rotated key has no secret');
  return view as ApiKeyView & { secret: string };
}

const ApiKeyListRef = component('ApiKeyList', ListOf(ApiKeyRef, 'A page of API keys'));

const RotateBody = OptionalBody(
  Type.Object(
    {
      gracePeriodMinutes: Type.Optional(
        Type.Integer({ minimum: 0, maximum: MAX_GRACE_MINUTES, description: 'How long the previous secret keeps working (default: the system setting apiKeyRotationGraceMinutes; 0 ends it at once)' }),
      ),
      retireWhenIdleMinutes: Type.Optional(
        Type.Integer({ minimum: 1, maximum: 1440, description: 'Also end the grace once the previous secret has not been seen on any node for this many minutes after the new secret\'s first use (never later than previousSecretExpiresAt); docs/usage.md' }),
      ),
    },
    { additionalProperties: false, examples: [{ gracePeriodMinutes: 60 }] },
  ),
);
const EmptyBody = OptionalBody(Type.Object({}, { additionalProperties: false }));

interface Variant {
  mount: <S extends RouteSchema>(app: FastifyInstance, def: RouteDef<S>) => void;
  prefix: string;
  tag: string;
  /** operationId noun: ApiKey or SystemApiKey. */
  noun: string;
  auth: (scope: string) => AuthRequirement;
  where: (request: FastifyRequest) => KeyScope;
}

function registerVariant(app: FastifyInstance, services: Services, v: Variant): void {
  const { keys } = services;
  const tags = [v.tag];
  const what = v.noun === 'ApiKey' ? 'API key' : 'system API key';

  v.mount(app, {
    method: 'GET', path: v.prefix, operationId: `list${v.noun}s`, auth: v.auth('api_key:read'), summary: `List ${what}s`, tags,
    description: 'Newest first; cursor-paginated. Filter by `status`, by hygiene `flag`, and by `q` (an exact id or hint, or the start of the name); filters apply before the page is cut, so a cursor walks the filtered list.',
    schema: { querystring: KeyListQuery, response: { 200: ApiKeyListRef } },
    handler: async (request) => {
      const { status, flag, q } = request.query;
      return keys.list(v.where(request), pageOf(request), { status, flag, q });
    },
  });
  v.mount(app, {
    method: 'POST', path: v.prefix, operationId: `create${v.noun}`, auth: v.auth('api_key:create'), summary: `Create an ${what}`, tags,
    description: 'The response holds the whole token in `secret`, shown this once. A key may grant only scopes and restrictions its creator holds.',
    schema: { body: CreateKeyBody, response: { 201: ApiKeyWithSecretRef } },
    errors: ['conflict'],
    handler: async (request, reply) => {
      const key = await keys.create(authOf(request).ctx, v.where(request), request.body);
      return reply.code(201).send(withSecret(key));
    },
  });
  v.mount(app, {
    method: 'GET', path: `${v.prefix}/:id`, operationId: `get${v.noun}`, auth: v.auth('api_key:read'), summary: `Get an ${what}`, tags,
    schema: { params: IdParams, response: { 200: ApiKeyRef } },
    errors: ['not_found'],
    handler: async (request) => keys.get(v.where(request), request.params.id),
  });
  v.mount(app, {
    method: 'PATCH', path: `${v.prefix}/:id`, operationId: `update${v.noun}`, auth: v.auth('api_key:update'), summary: `Update an ${what}`, tags,
    description: 'Takes effect on every node as soon as the response returns. The expiry of an expired or revoked key cannot change (`409 conflict`).',
    schema: { params: IdParams, body: UpdateKeyBody, response: { 200: ApiKeyRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => keys.update(authOf(request).ctx, v.where(request), request.params.id, request.body),
  });
  v.mount(app, {
    method: 'POST', path: `${v.prefix}/:id/rotate`, operationId: `rotate${v.noun}`, auth: v.auth('api_key:update'), summary: `Rotate an ${what}`, tags,
    description: 'A new secret, same id; the response holds the new token once. The previous secret keeps working until `previousSecretExpiresAt`; rotating again ends the older one at once.',
    schema: { params: IdParams, body: RotateBody, response: { 200: ApiKeyWithSecretRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => withSecret(await keys.rotate(authOf(request).ctx, v.where(request), request.params.id, request.body ?? {})),
  });
  v.mount(app, {
    method: 'POST', path: `${v.prefix}/:id/revoke`, operationId: `revoke${v.noun}`, auth: v.auth('api_key:delete'), summary: `Revoke an ${what}`, tags,
    description: 'Irreversible: the current and previous secrets stop working on every node as soon as the response returns.',
    schema: { params: IdParams, body: EmptyBody, response: { 200: ApiKeyRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => keys.revoke(authOf(request).ctx, v.where(request), request.params.id),
  });
  v.mount(app, {
    method: 'DELETE', path: `${v.prefix}/:id`, operationId: `delete${v.noun}`, auth: v.auth('api_key:delete'), summary: `Delete an ${what}`, tags,
    description: 'The key is gone (`404` after); its id is never reused and its audit events stay.',
    schema: { params: IdParams, response: { 204: NoContent } },
    errors: ['not_found'],
    handler: async (request, reply) => {
      await keys.delete(authOf(request).ctx, v.where(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
}

export function registerKeyRoutes(app: FastifyInstance, services: Services): void {
  registerVariant(app, services, {
    mount: organizationRoute,
    prefix: '/api-keys',
    tag: 'API keys',
    noun: 'ApiKey',
    auth: (scope) => ({ kind: 'organization', scope }),
    where: (request) => ({ tier: 'organization', organizationId: authOf(request).organizationId }),
  });
  registerVariant(app, services, {
    mount: route,
    prefix: '/system/api-keys',
    tag: 'System API keys',
    noun: 'SystemApiKey',
    auth: () => ({ kind: 'global_admin' }),
    where: () => ({ tier: 'system', organizationId: null }),
  });
}
