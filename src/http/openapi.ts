/**
 * The OpenAPI description is the code's own (SPEC §17): this module holds its shared parts.
 *
 * Convention (how a route declares itself; src/http/routes.ts mounts it):
 * - `operationId`: stable camelCase verb + noun (`createApiKey`, `listAuditEvents`); the
 *   `/v1/organizations/{orgId}/...` twin of an organization route gets `<operationId>InOrganization`.
 * - `schema.params | querystring | body | headers`: TypeBox schemas (`import { Type } from 'typebox'`);
 *   the handler's `request.body` etc. are typed from them (no `as` casts). Bodies are validated
 *   strictly (unknown fields refused), query strings and path parameters coerced.
 * - `schema.response`: EVERY success status the route sends (`{ 201: ApiKeyRef }`, `{ 204: NoContent }`).
 *   A response schema is also the serialiser and a field allowlist: a field the handler returns that
 *   the schema lacks is silently dropped, and a `required` field missing makes serialisation throw.
 * - Objects shared between operations are components: `const XRef = component('X', Type.Object(...))`
 *   at module top level gives a `$ref` (typed as the object) and a named `#/components/schemas/X`.
 * - `errors: ['not_found', 'conflict']`: the route's own problem codes; the route helper adds the
 *   common ones (400 validation_error, the 401/403 of its auth requirement, 429, 503, and 413/415 for
 *   bodies), grouped by status as `application/problem+json` responses with an example per code.
 * - Security, `x-required-scope` and the `X-CSRF-Token` header follow from `auth` (AuthRequirement);
 *   `idempotent: true` declares the `Idempotency-Key` header (only routes that honour it).
 * - `summary` (short, no trailing period), `description` (markdown), `tags` (one of TAGS below, or
 *   one added with addTag). Write markup such as `sk_<id>` only inside backticks: Swagger UI renders
 *   descriptions as markdown, and `<id>` outside a code span would be taken for an HTML tag.
 * - Helpers: `Nullable(s)` (type [.., "null"]), `NullableDateTime()`, `StringEnum([...])` (typed
 *   union), `OptionalBody(Type.Object(...))` (a body that may be left out), `ScopeString()` (a scope:
 *   a string at run time, the scope enums in the document), `ListOf(item)`, `PageQuery`, `IdParams`,
 *   `NoContent`.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { FastifyDynamicSwaggerOptions, SwaggerTransform, SwaggerTransformObject } from '@fastify/swagger';
import type { Ajv } from 'ajv';
import { Type, type Static, type TSchema, type TUnsafe } from 'typebox';
import { ERRORS, type ErrorCode } from '../errors.js';
import type { AuthRequirement } from '../auth/requirements.js';
import { ACTIONS, ORGANIZATION_RESOURCES, SYSTEM_RESOURCES } from '../scopes/catalog.js';
import type { Config } from '../config.js';
import { PROBLEM_TYPE_BASE } from './error-handler.js';

// ---------------------------------------------------------------------------------------------
// Components

const components = new Map<string, TSchema>();

/**
 * Registers a named schema component and answers a `$ref` to it, typed as the schema. Call at
 * module top level (components are added to the app before any route is mounted).
 */
export function component<T extends TSchema>(name: string, schema: T): TUnsafe<Static<T>> {
  const known = components.get(name);
  if (known && known !== schema) throw new Error(`OpenAPI component ${name} is registered twice`);
  components.set(name, schema);
  return Type.Unsafe<Static<T>>({ $ref: `${name}#` });
}

/** Adds every component to the app (serialisers, the document) and to the request validators. */
export function registerComponents(app: FastifyInstance, validators: Ajv[]): void {
  for (const [name, schema] of components) {
    const shared = { $id: name, ...(schema as object) };
    app.addSchema(shared);
    for (const ajv of validators) ajv.addSchema(shared, name);
  }
}

export function componentNames(): string[] {
  return [...components.keys()];
}

// ---------------------------------------------------------------------------------------------
// Scopes

export const ORGANIZATION_SCOPES = ORGANIZATION_RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}:${a}`));
export const SYSTEM_SCOPES = SYSTEM_RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}:${a}`));

export const OrganizationScopeRef = component(
  'OrganizationScope',
  Type.String({ enum: ORGANIZATION_SCOPES, description: 'A scope of an organization key: `resource:action`; `resource:*` grants every action of the resource.' }),
);
export const SystemScopeRef = component(
  'SystemScope',
  Type.String({ enum: SYSTEM_SCOPES, description: 'A scope of a system key: `resource:action`; `resource:*` grants every action of the resource.' }),
);

// ---------------------------------------------------------------------------------------------
// Common schemas

/** An RFC 3339 date-time, as every timestamp of the API. */
export const DateTime = (options: { description?: string } = {}) => Type.String({ format: 'date-time', ...options });
/**
 * The schema or null. A typed schema stays one schema with `type: [..., "null"]` (so every rule that
 * walks schemas by type, such as the NUL and date checks of test/hardening.test.ts, still sees its
 * strings and dates); a `$ref` becomes `anyOf [ref, null]`.
 */
export function Nullable<T extends TSchema>(schema: T, options: { description?: string } = {}): TUnsafe<Static<T> | null> {
  const s = schema as unknown as Record<string, unknown>;
  if (typeof s.type === 'string' && !('$ref' in s)) {
    return Type.Unsafe<Static<T> | null>({ ...s, ...options, type: [s.type, 'null'], ...(Array.isArray(s.enum) ? { enum: [...(s.enum as unknown[]), null] } : {}) });
  }
  return Type.Unsafe<Static<T> | null>({ anyOf: [s, { type: 'null' }], ...options });
}
export const NullableDateTime = (options: { description?: string } = {}) => Nullable(Type.String({ format: 'date-time' }), options);

/** The answer of a 204: no body. */
export const NoContent = Type.Null({ description: 'No content' });

/** `{ object: "list", data, hasMore }` of a cursor-paginated list (SPEC §11). */
export function ListOf<T extends TSchema>(item: T, description: string) {
  return Type.Object(
    {
      object: Type.Literal('list'),
      data: Type.Array(item),
      hasMore: Type.Boolean({ description: 'More items follow: pass the last id as startingAfter' }),
    },
    { additionalProperties: false, description },
  );
}

export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page (1..100)' })),
    startingAfter: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The id of the last item of the previous page' })),
  },
  { additionalProperties: false },
);

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, description: 'The object id' }) });

// ---------------------------------------------------------------------------------------------
// Problems (SPEC §8)

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export const ProblemRef = component(
  'Problem',
  Type.Object(
    {
      type: Type.String({ description: 'A URI naming the error code', examples: [`${PROBLEM_TYPE_BASE}not_found`] }),
      title: Type.String({ description: 'The short title of the error code' }),
      status: Type.Integer({ minimum: 400, maximum: 599, description: 'The HTTP status' }),
      detail: Type.String({ description: 'What went wrong in this request' }),
      code: Type.String({ enum: ERROR_CODES, description: 'The error code: the field to branch on' }),
      requestId: Type.String({ description: 'The request id (also in X-Request-Id); quote it when reporting a problem' }),
      errors: Type.Optional(
        Type.Array(
          Type.Object(
            { path: Type.String({ description: 'A JSON Pointer to the field (`/params/...`, `/querystring/...` for those parts)' }), message: Type.String() },
            { additionalProperties: false },
          ),
          { description: 'validation_error: every invalid field' },
        ),
      ),
      requiredScope: Type.Optional(Type.String({ description: 'insufficient_scope: the scope the route needs' })),
    },
    {
      additionalProperties: true,
      required: ['type', 'title', 'status', 'detail', 'code', 'requestId'],
      description: 'An error, as application/problem+json (RFC 9457). Codes may carry further fields.',
    },
  ),
);

const PROBLEM_MEDIA = 'application/problem+json';

const RESPONSE_HEADERS: Record<number, Record<string, { description: string; type: 'string' | 'integer' }>> = {
  401: { 'WWW-Authenticate': { type: 'string', description: 'Bearer error="invalid_token"' } },
  429: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before retrying' } },
  503: { 'Retry-After': { type: 'integer', description: 'Seconds to wait before retrying' } },
};

function exampleProblem(code: ErrorCode): Record<string, unknown> {
  const { status, title } = ERRORS[code];
  const example: Record<string, unknown> = { type: `${PROBLEM_TYPE_BASE}${code}`, title, status, detail: title, code, requestId: 'req_Qm9vZ0x3e' };
  if (code === 'validation_error') example.errors = [{ path: '/name', message: 'must NOT have fewer than 1 characters' }];
  if (code === 'insufficient_scope') example.requiredScope = 'api_key:read';
  return example;
}

/** The problem+json responses for these codes, by status: `{ 404: { description, content, headers } }`. */
export function problemResponses(codes: readonly ErrorCode[]): Record<number, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, unknown> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[status] = {
      description: list.map((code) => `\`${code}\`: ${ERRORS[code].title}`).join('; '),
      content: {
        [PROBLEM_MEDIA]: {
          schema: ProblemRef,
          examples: Object.fromEntries(list.map((code) => [code, { summary: ERRORS[code].title, value: exampleProblem(code) }])),
        },
      },
      ...(RESPONSE_HEADERS[status] ? { headers: RESPONSE_HEADERS[status] } : {}),
    };
  }
  return responses;
}

/** The problem codes any request with this auth requirement can meet before its handler runs. */
export function commonErrors(auth: AuthRequirement, hasBody: boolean, unsafe: boolean): ErrorCode[] {
  const codes: ErrorCode[] = ['validation_error', 'service_unavailable'];
  if (hasBody) codes.push('payload_too_large', 'unsupported_media_type');
  if (auth.kind === 'public') return codes;
  codes.push('missing_credentials', 'invalid_session');
  const apiKey = acceptsApiKey(auth);
  if (apiKey) codes.push('invalid_api_key', 'api_key_revoked', 'api_key_expired', 'ip_not_allowed', 'rate_limited');
  if (unsafe && acceptsSession(auth)) codes.push('csrf_failed');
  switch (auth.kind) {
    case 'organization':
      codes.push('organization_required', 'organization_mismatch', 'wrong_key_tier', 'insufficient_scope', 'forbidden');
      if (!auth.scope.endsWith(':read')) codes.push('api_key_quarantined');
      break;
    case 'organization_owner':
      codes.push('organization_required', 'forbidden');
      break;
    case 'system':
      codes.push('wrong_key_tier', 'insufficient_scope', 'forbidden');
      if (!auth.scope.endsWith(':read')) codes.push('api_key_quarantined');
      break;
    case 'global_admin':
    case 'session':
      codes.push('forbidden');
      break;
    case 'any':
      break;
  }
  return codes;
}

// ---------------------------------------------------------------------------------------------
// Security

export const SECURITY_SCHEMES = {
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'sk_<id>.<secret>',
    description:
      'An organization or system API key: `Authorization: Bearer sk_<id>.<secret>`, matching `sk_[0-9A-Za-z]{20}\\.[0-9A-Za-z]{49}`.',
  },
  sessionToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An admin session token (a JWT signed by Paygate, from `POST /v1/auth/login`): `Authorization: Bearer <JWT>`.',
  },
  sessionCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'session',
    description: 'The admin session cookie set by `POST /v1/auth/login`. Unsafe requests must also send `X-CSRF-Token`.',
  },
} as const;

export function acceptsApiKey(auth: AuthRequirement): boolean {
  return auth.kind === 'organization' || auth.kind === 'system' || auth.kind === 'any';
}

export function acceptsSession(auth: AuthRequirement): boolean {
  return auth.kind !== 'public';
}

export function securityOf(auth: AuthRequirement): Array<Record<string, string[]>> {
  if (auth.kind === 'public') return [];
  const sessions: Array<Record<string, string[]>> = [{ sessionToken: [] }, { sessionCookie: [] }];
  return acceptsApiKey(auth) ? [{ apiKey: [] }, ...sessions] : sessions;
}

/** The scope an API key needs for the route (`x-required-scope`), when an API key can call it. */
export function requiredScopeOf(auth: AuthRequirement): string | null {
  return auth.kind === 'organization' || auth.kind === 'system' ? auth.scope : null;
}

/** Who may call, in words, for the operation's description. */
export function whoMayCall(auth: AuthRequirement): string {
  switch (auth.kind) {
    case 'public':
      return 'No credential needed.';
    case 'any':
      return 'Any valid credential; no scope needed.';
    case 'session':
      return 'An admin session.';
    case 'organization':
      return `An organization API key with \`${auth.scope}\`, or an admin session whose role in the organization grants it.`;
    case 'organization_owner':
      return 'An admin session of an owner of the organization, or of a global admin.';
    case 'system':
      return `A system API key with \`${auth.scope}\`, or a global admin's session.`;
    case 'global_admin':
      return "A global admin's session only.";
  }
}

export const CSRF_HEADER = Type.String({ description: 'The value of the `csrf` cookie: required when the request is authenticated by the `session` cookie' });
export const IDEMPOTENCY_HEADER = Type.String({
  minLength: 1,
  maxLength: 255,
  description: 'Makes the create safe to retry: the same key with the same request answers the first response again (for 24 hours)',
});

// ---------------------------------------------------------------------------------------------
// Tags and the document

export const TAGS: Array<{ name: string; description: string }> = [
  { name: 'Authentication', description: 'Admin sessions (login, logout, the current user), password resets, invitations, and `whoami` for any credential.' },
  { name: 'API keys', description: "The organization's API keys: create (the secret is shown once), rotate with a grace period, revoke, delete." },
  { name: 'Organization', description: 'The organization the request acts in, and its members and invitations.' },
  { name: 'Audit', description: 'The hash-chained, append-only audit log.' },
  { name: 'Webhooks', description: 'Webhook endpoints, their signing secrets and their deliveries.' },
  { name: 'System organizations', description: 'Provisioning of organizations (system keys, global admins).' },
  { name: 'System API keys', description: 'System-tier API keys, managed by global-admin sessions alone.' },
  { name: 'System settings', description: 'Instance-wide settings.' },
  { name: 'System audit', description: 'The audit log of every organization, checkpoints and integrity checks.' },
  { name: 'Health', description: 'Liveness, readiness and detailed health.' },
];

/** Registers a tag (for domains converted elsewhere: payments, portal, usage, ...). */
export function addTag(name: string, description: string): void {
  if (!TAGS.some((tag) => tag.name === name)) TAGS.push({ name, description });
}

export function swaggerOptions(config: Pick<Config, 'publicUrl'>): FastifyDynamicSwaggerOptions {
  return {
    transform: transformRouteSchema as unknown as SwaggerTransform,
    transformObject: transformDocument as unknown as SwaggerTransformObject,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Paygate API',
        version: '0.1.0',
        description: [
          'Paygate: API keys and authentication for a self-hostable payment gateway.',
          '',
          'Authenticate with `Authorization: Bearer sk_<id>.<secret>` (an API key; tokens match `sk_[0-9A-Za-z]{20}\\.[0-9A-Za-z]{49}`) ' +
            'or an admin session. Every organization route also exists as `/v1/organizations/{orgId}/...`. ' +
            'Errors are `application/problem+json`; branch on `code`. Lists are cursor-paginated (`limit`, `startingAfter`).',
        ].join('\n'),
        license: { name: 'Proprietary', identifier: 'LicenseRef-Paygate' },
        contact: { name: 'Paygate' },
      },
      servers: [{ url: config.publicUrl, description: 'This Paygate instance' }],
      tags: TAGS,
      components: { securitySchemes: SECURITY_SCHEMES as never },
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  };
}

/**
 * Per-route document transform (@fastify/swagger `transform`): header parameters that the auth hook
 * or the domain checks (X-CSRF-Token, Idempotency-Key) are documented without a runtime schema, so
 * their checks and error messages stay where they are.
 */
export function transformRouteSchema({ schema, url }: { schema: Record<string, unknown> | undefined; url: string }) {
  if (!schema) return { schema: schema as unknown as Record<string, unknown>, url };
  const {
    'x-documented-headers': documented,
    'x-problem-responses': problems,
    ...withoutProblems
  } = schema as Record<string, unknown> & { 'x-documented-headers'?: { properties: Record<string, unknown> }; 'x-problem-responses'?: Record<number, unknown> };
  // Problem responses are documented here, not compiled by Fastify (routes.ts fastifySchema).
  const rest = problems ? { ...withoutProblems, response: { ...problems, ...((withoutProblems.response as Record<number, unknown> | undefined) ?? {}) } } : withoutProblems;
  if (!documented) return { schema: rest, url };
  const headers = (rest.headers as { properties?: Record<string, unknown>; required?: string[] } | undefined) ?? {};
  return {
    schema: { ...rest, headers: { type: 'object', ...headers, properties: { ...(headers.properties ?? {}), ...documented.properties } } },
    url,
  };
}

const OPTIONAL_BODY = 'x-optional-body';

/**
 * A request body that may be left out (`POST .../revoke` with no body): the schema admits null, as
 * Fastify validates an absent body as null, and the document marks the body not required.
 */
export function OptionalBody<T extends TSchema>(schema: T): TUnsafe<Static<T> | null> {
  const s = schema as unknown as Record<string, unknown>;
  return Type.Unsafe<Static<T> | null>({ ...s, type: ['object', 'null'], [OPTIONAL_BODY]: true });
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

const SCOPE_ENUM = 'x-scope-enum';

/**
 * A scope in a request (`resource:action`): validated by the domain, which names each bad scope
 * (SPEC §3), so at run time a string; the document shows it as the OrganizationScope or SystemScope
 * enum (transformDocument).
 */
export const ScopeString = (options: { maxLength?: number } = {}) =>
  Type.String({ ...options, [SCOPE_ENUM]: true, description: 'A scope, `resource:action`: an OrganizationScope for organization keys, a SystemScope for system keys' });

function scopeEnums(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(scopeEnums);
  if (!node || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  if (record[SCOPE_ENUM]) {
    const description = record.description;
    for (const key of Object.keys(record)) delete record[key];
    Object.assign(record, { description, anyOf: [{ $ref: '#/components/schemas/OrganizationScope' }, { $ref: '#/components/schemas/SystemScope' }] });
    return;
  }
  Object.values(record).forEach(scopeEnums);
}

type MediaObject = { schema?: unknown; examples?: Record<string, unknown> };
type ResponseObject = { description?: string; content?: Record<string, MediaObject>; headers?: unknown; $ref?: string };

/**
 * Problem responses are the same few objects on every operation: each is named once, in
 * `components.responses` (by status and codes) with its examples in `components.examples` (by code),
 * and the operations refer to them. The document stays small enough for Swagger UI to render fast.
 */
function shareProblemResponses(document: Record<string, unknown>): void {
  const components = (document.components ??= {}) as Record<string, Record<string, unknown>>;
  const responses = (components.responses ??= {}) as Record<string, ResponseObject>;
  const examples = (components.examples ??= {}) as Record<string, unknown>;
  const names = new Map<string, string>();
  const paths = (document.paths ?? {}) as Record<string, Record<string, { responses?: Record<string, ResponseObject> }>>;
  for (const item of Object.values(paths)) {
    for (const method of METHODS) {
      const operation = item[method];
      for (const [status, response] of Object.entries(operation?.responses ?? {})) {
        const media = response.content?.[PROBLEM_MEDIA];
        if (!media?.examples) continue;
        const codes = Object.keys(media.examples);
        for (const code of codes) {
          examples[code] ??= media.examples[code];
          media.examples[code] = { $ref: `#/components/examples/${code}` };
        }
        const text = JSON.stringify(response);
        let name = names.get(text);
        if (!name) {
          const base = `Problem${status}-${createHash('sha256').update(codes.join(',')).digest('hex').slice(0, 8)}`;
          name = base;
          for (let n = 2; responses[name]; n++) name = `${base}-${n}`;
          names.set(text, name);
          responses[name] = response;
        }
        operation!.responses![status] = { $ref: `#/components/responses/${name}` };
      }
    }
  }
}

/** Whole-document transform: optional bodies are not required; scope strings are the scope enums. */
export function transformDocument({ openapiObject }: { openapiObject: Record<string, unknown> }): Record<string, unknown> {
  scopeEnums(openapiObject.paths);
  scopeEnums(openapiObject.components);
  shareProblemResponses(openapiObject);
  const paths = (openapiObject.paths ?? {}) as Record<string, Record<string, { requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> } }>>;
  for (const item of Object.values(paths)) {
    for (const method of METHODS) {
      const body = item[method]?.requestBody;
      if (!body?.content) continue;
      for (const media of Object.values(body.content)) {
        if (media.schema?.[OPTIONAL_BODY]) {
          delete media.schema[OPTIONAL_BODY];
          body.required = false;
        }
      }
    }
  }
  return openapiObject;
}

/** `{ type: "string", enum: [...] }`, typed as the union of its values. */
export function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string; default?: T[number] } = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}
