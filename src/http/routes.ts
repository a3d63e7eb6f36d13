/**
 * Route helpers shared by every domain: dual mounting of organization routes, pagination, shapes,
 * and the route's share of the OpenAPI description (SPEC §17).
 *
 * Convention — a route declares everything its operation in /openapi.json says:
 *
 *   organizationRoute(app, {
 *     method: 'POST', path: '/api-keys/:id/rotate', operationId: 'rotateApiKey',
 *     auth: { kind: 'organization', scope: 'api_key:update' },      // -> security, x-required-scope,
 *                                                                    //    X-CSRF-Token, 401/403/429 problems
 *     summary: 'Rotate an API key', description: '...markdown...', tags: ['API keys'],
 *     schema: { params: IdParams, body: RotateBody, response: { 200: ApiKeyWithSecretRef } },
 *     errors: ['not_found', 'conflict'],                             // the route's own problem codes
 *     idempotent: true,                                              // only if it honours Idempotency-Key
 *     handler: async (request) => keys.rotate(..., request.params.id, request.body ?? {}),  // typed, no casts
 *   });
 *
 * - Schemas are TypeBox (`import { Type } from 'typebox'`; shared ones in src/http/openapi.ts). The
 *   handler's request parts are typed from them (the TypeBox type provider) and its return value is
 *   checked against `schema.response`.
 * - `schema.response` lists EVERY success status; it serialises the response and is a field
 *   allowlist (fields it lacks are dropped; a missing `required` field throws). Errors are never
 *   listed there: name their codes in `errors`; the common ones come from `auth` (openapi.ts
 *   commonErrors). Problems are sent by the error handler, serialised as they are.
 * - `operationId` is camelCase and stable; the `/v1/organizations/{orgId}` twin is `<id>InOrganization`.
 * - `hide: true` keeps a route out of the document (non-API pages).
 */
import type {
  ContextConfigDefault,
  FastifyInstance,
  FastifyRequest,
  FastifySchema,
  HTTPMethods,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from 'typebox';
import type { AuthRequirement, AuthState } from '../auth/requirements.js';
import { AppError, type ErrorCode } from '../errors.js';
import {
  CSRF_HEADER,
  IDEMPOTENCY_HEADER,
  commonErrors,
  acceptsSession,
  problemResponses,
  requiredScopeOf,
  securityOf,
  whoMayCall,
} from './openapi.js';

export interface RouteSchema {
  params?: TSchema;
  querystring?: TSchema;
  body?: TSchema;
  headers?: TSchema;
  /** Every success status the route sends, with its body schema (`NoContent` for a 204). */
  response: Record<number, TSchema>;
  /** Request media types other than application/json. */
  consumes?: string[];
  /** Response media types other than application/json (CSV, HTML, ...). */
  produces?: string[];
}

export type RouteHandler<S extends FastifySchema> = RouteHandlerMethod<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  RouteGenericInterface,
  ContextConfigDefault,
  S,
  TypeBoxTypeProvider
>;

export interface RouteDef<S extends RouteSchema = RouteSchema> {
  method: HTTPMethods;
  /** Path below /v1, e.g. "/api-keys/:id". */
  path: string;
  /** Stable camelCase operation id (createApiKey). */
  operationId: string;
  auth: AuthRequirement;
  schema: S;
  summary: string;
  /** Markdown; who may call is appended from `auth`. */
  description?: string;
  tags: string[];
  /** The route's own problem codes (not_found, conflict, ...); the common ones are added. */
  errors?: readonly ErrorCode[];
  /** The route honours Idempotency-Key (documents the header). */
  idempotent?: boolean;
  /** Keep out of the OpenAPI document. */
  hide?: boolean;
  handler: RouteHandler<S>;
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const ORG_ID_PARAM = { type: 'string', minLength: 1, maxLength: 64, description: 'The organization to act in' } as const;

type ObjectSchema = { properties?: Record<string, unknown>; required?: string[] } & Record<string, unknown>;

function withOrgId(params: TSchema | undefined): ObjectSchema {
  const p = (params as ObjectSchema | undefined) ?? {};
  return {
    type: 'object',
    properties: { orgId: ORG_ID_PARAM, ...(p.properties ?? {}) },
    required: ['orgId', ...(p.required ?? [])],
  };
}

/** Header parameters that are documented but checked by the auth hook or the domain, not the schema. */
function documentedHeaders(def: RouteDef<RouteSchema>): ObjectSchema | undefined {
  const properties: Record<string, unknown> = {};
  if (UNSAFE.has(def.method) && acceptsSession(def.auth)) properties['X-CSRF-Token'] = CSRF_HEADER;
  if (def.idempotent) properties['Idempotency-Key'] = IDEMPOTENCY_HEADER;
  return Object.keys(properties).length > 0 ? { type: 'object', properties } : undefined;
}

/** The Fastify schema of one mount: validation and serialisation, plus what the document shows. */
function fastifySchema(def: RouteDef<RouteSchema>, operationId: string, params: unknown, summary: string): Record<string, unknown> {
  const { response, ...parts } = def.schema ?? ({} as RouteSchema);
  const scope = requiredScopeOf(def.auth);
  const errors = [...commonErrors(def.auth, def.schema?.body !== undefined, UNSAFE.has(def.method)), ...(def.errors ?? [])];
  return {
    ...parts,
    ...(params ? { params } : {}),
    operationId,
    summary,
    description: [def.description, whoMayCall(def.auth)].filter(Boolean).join('\n\n'),
    tags: def.tags,
    security: securityOf(def.auth),
    // null: an API key may call it with no scope at all (whoami).
    ...(scope ? { 'x-required-scope': scope } : def.auth.kind === 'any' ? { 'x-required-scope': null } : {}),
    ...(def.hide ? { hide: true } : {}),
    // Success bodies are serialised through their schemas. Problems are only documented (merged into
    // the document's responses by transformRouteSchema): the error handler sends them as they are, and
    // a compiled serialiser per problem status and route would multiply start-up time by three.
    response: response ?? {},
    'x-problem-responses': problemResponses(errors),
    'x-documented-headers': documentedHeaders(def),
  };
}

function mount(app: FastifyInstance, def: RouteDef<RouteSchema>, url: string, operationId: string, params: unknown, summary: string): void {
  app.route({
    method: def.method,
    url,
    config: { auth: def.auth },
    schema: fastifySchema(def, operationId, params, summary) as FastifySchema,
    handler: def.handler as RouteHandlerMethod,
  });
}

export function route<S extends RouteSchema>(app: FastifyInstance, def: RouteDef<S>): void {
  const d = def as unknown as RouteDef<RouteSchema>;
  mount(app, d, `/v1${d.path}`, d.operationId, d.schema?.params, d.summary);
}

/**
 * Every organization-scoped route exists twice (SPEC §2): /v1/<path> and
 * /v1/organizations/{orgId}/<path>; the same handler serves both.
 */
export function organizationRoute<S extends RouteSchema>(app: FastifyInstance, def: RouteDef<S>): void {
  const d = def as unknown as RouteDef<RouteSchema>;
  route(app, def);
  mount(app, d, `/v1/organizations/:orgId${d.path}`, `${d.operationId}InOrganization`, withOrgId(d.schema?.params), `${d.summary} (organization in the path)`);
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
