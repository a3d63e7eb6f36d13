/** Route helpers shared by every domain: dual mounting of organization routes, pagination, shapes. */
import type { FastifyInstance, FastifyRequest, HTTPMethods, RouteHandlerMethod, FastifySchema } from 'fastify';
import type { AuthRequirement, AuthState } from '../auth/requirements.js';
import { AppError } from '../errors.js';

export interface RouteDef {
  method: HTTPMethods;
  /** Path below /v1, e.g. "/api-keys/:id". */
  path: string;
  auth: AuthRequirement;
  schema?: FastifySchema;
  summary: string;
  tags: string[];
  handler: RouteHandlerMethod;
}

const ORG_ID_PARAM = { orgId: { type: 'string', minLength: 1, maxLength: 64 } } as const;

function withParams(schema: FastifySchema | undefined, extra: Record<string, unknown>): FastifySchema {
  const params = (schema?.params as { properties?: Record<string, unknown>; required?: string[] } | undefined) ?? {};
  return {
    ...schema,
    params: {
      type: 'object',
      properties: { ...(params.properties ?? {}), ...extra },
      required: [...(params.required ?? []), ...Object.keys(extra)],
    },
  };
}

export function route(app: FastifyInstance, def: RouteDef): void {
  app.route({
    method: def.method,
    url: `/v1${def.path}`,
    config: { auth: def.auth },
    schema: { ...def.schema, summary: def.summary, tags: def.tags } as FastifySchema,
    handler: def.handler,
  });
}

/**
 * Every organization-scoped route exists twice (SPEC §2): /v1/<path> and
 * /v1/organizations/{orgId}/<path>; the same handler serves both.
 */
export function organizationRoute(app: FastifyInstance, def: RouteDef): void {
  route(app, def);
  app.route({
    method: def.method,
    url: `/v1/organizations/:orgId${def.path}`,
    config: { auth: def.auth },
    schema: { ...withParams(def.schema, ORG_ID_PARAM), summary: `${def.summary} (organization in the path)`, tags: def.tags } as FastifySchema,
    handler: def.handler,
  });
}

export const PAGE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
    startingAfter: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

export function pageOf(request: FastifyRequest): { limit: number; startingAfter: string | null } {
  const q = request.query as { limit?: number; startingAfter?: string };
  return { limit: q.limit ?? 20, startingAfter: q.startingAfter ?? null };
}

export function authOf(request: FastifyRequest): AuthState {
  if (!request.auth) throw new AppError('missing_credentials');
  return request.auth;
}

/** The organization the request acts in; set by the auth hook on organization routes. */
export function organizationOf(request: FastifyRequest): string {
  const auth = authOf(request);
  if (!auth.organizationId) throw new AppError('organization_required');
  return auth.organizationId;
}

export const ID_PARAM = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id'],
} as const;
