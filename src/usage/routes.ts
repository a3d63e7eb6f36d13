/**
 * HTTP for usage and rotation evidence (SPEC §12): a key's usage, the usage overview, and ending a
 * grace period now. Organization routes (both mounts) and their system-key twins (global admins).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import type { AuthRequirement } from '../auth/requirements.js';
import { authOf, organizationRoute, route, type RouteDef, type RouteSchema } from '../http/routes.js';
import { DateTime, IdParams, Nullable, OptionalBody, addTag, component } from '../http/openapi.js';
import { ApiKeyRef } from '../keys/schemas.js';
import type { KeyScope } from '../keys/store.js';
import { USAGE_OUTCOMES } from './aggregator.js';

addTag('Usage', 'Verifications of API keys per minute, hour and day, by outcome and by secret; ending a grace period on evidence.');

const count = (description: string) => Type.Integer({ minimum: 0, description });

const countFields = {
  total: count('Verifications of the key'),
  outcomes: Type.Object(Object.fromEntries(USAGE_OUTCOMES.map((o) => [o, count(o === 'ok' ? 'Let through' : `Refused with ${o}`)])) as Record<(typeof USAGE_OUTCOMES)[number], ReturnType<typeof count>>, {
    additionalProperties: false,
    description: 'Every outcome, 0 when none',
  }),
  bySecret: Type.Object(
    { current: count('With the current secret'), previous: count('With the previous secret (during a grace period)') },
    { additionalProperties: false, description: 'Verifications whose secret matched, by secret (a wrong secret counts in neither)' },
  ),
};

const UsageCountsRef = component('UsageCounts', Type.Object(countFields, { additionalProperties: false, description: 'Counts of verifications' }));

const ApiKeyUsageRef = component(
  'ApiKeyUsage',
  Type.Object(
    {
      object: Type.Literal('api_key_usage'),
      keyId: Type.String(),
      granularity: Type.String({ enum: ['minute', 'hour', 'day'] }),
      from: DateTime({ description: 'Start of the first bucket' }),
      to: DateTime({ description: 'End of the range (exclusive)' }),
      totals: UsageCountsRef,
      buckets: Type.Array(Type.Object({ start: DateTime(), ...countFields }, { additionalProperties: false }), { description: 'Every bucket of the range, in order, empty ones included' }),
    },
    { additionalProperties: false, description: "A key's verifications over time (SPEC §12); complete within 10 s of the requests on every node" },
  ),
);

const UsageOverviewRef = component(
  'UsageOverview',
  Type.Object(
    {
      object: Type.Literal('usage'),
      organizationId: Nullable(Type.String(), { description: 'null for system keys' }),
      granularity: Type.String({ enum: ['minute', 'hour', 'day'], description: 'The rows summed: the finest kept for the range' }),
      from: DateTime(),
      to: DateTime(),
      totals: UsageCountsRef,
      data: Type.Array(Type.Object({ keyId: Type.String(), name: Type.String(), hint: Type.String(), ...countFields }, { additionalProperties: false }), { description: 'Keys with verifications in the range, most first' }),
      hasMore: Type.Boolean({ description: 'More keys had verifications than `limit`' }),
    },
    { additionalProperties: false, description: 'The keys by requests, with totals (SPEC §12)' },
  ),
);

const Range = {
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Start (default: 24 hours before `to`)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'End, exclusive (default: now)' })),
};

const KeyUsageQuery = Type.Object(
  { ...Range, granularity: Type.Optional(Type.Union([Type.Literal('minute'), Type.Literal('hour'), Type.Literal('day')], { description: 'Bucket size (default hour); a range covers at most 1 day of minutes, 31 of hours, 731 of days' })) },
  { additionalProperties: false },
);
const UsageQuery = Type.Object(
  { ...Range, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Most keys listed' })) },
  { additionalProperties: false },
);
const EmptyBody = OptionalBody(Type.Object({}, { additionalProperties: false }));

interface Variant {
  mount: <S extends RouteSchema>(app: FastifyInstance, def: RouteDef<S>) => void;
  keys: string;
  usage: string;
  tag: string;
  /** operationId infix: '' or 'System'. */
  noun: '' | 'System';
  auth: (scope: string) => AuthRequirement;
  where: (request: FastifyRequest) => KeyScope;
}

function registerVariant(app: FastifyInstance, services: Services, v: Variant): void {
  const { usage } = services;
  const tags = [v.tag];
  const what = v.noun === '' ? 'an API key' : 'a system API key';

  v.mount(app, {
    method: 'GET', path: `${v.keys}/:id/usage`, operationId: `get${v.noun}ApiKeyUsage`, auth: v.auth('api_key:read'), summary: `Get the usage of ${what}`, tags,
    description: 'Verifications per bucket by outcome and by secret. Minute buckets are kept 7 days, hours 90 days, days 2 years. `from` after `to`, an unknown granularity or a range too long is `400 validation_error`.',
    schema: { params: IdParams, querystring: KeyUsageQuery, response: { 200: ApiKeyUsageRef } },
    errors: ['not_found'],
    handler: async (request) => usage.keyUsage(v.where(request), request.params.id, request.query),
  });
  v.mount(app, {
    method: 'GET', path: v.usage, operationId: `list${v.noun}Usage`, auth: v.auth('api_key:read'), summary: v.noun === '' ? "The organization's keys by requests" : 'The system keys by requests', tags,
    description: 'Totals per key over the range (default: the last 24 hours), most requests first, and the sum of them all.',
    schema: { querystring: UsageQuery, response: { 200: UsageOverviewRef } },
    handler: async (request) => usage.listUsage(v.where(request), request.query),
  });
  v.mount(app, {
    method: 'POST', path: `${v.keys}/:id/end-grace`, operationId: `end${v.noun}ApiKeyGrace`, auth: v.auth('api_key:update'), summary: `End the grace period of ${what} now`, tags,
    description: 'The previous secret stops working on every node as soon as the response returns; audited with `graceEnded: "by request"`. `409 conflict` when the key has no previous secret.',
    schema: { params: IdParams, body: EmptyBody, response: { 200: ApiKeyRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => {
      await usage.endGrace(authOf(request).ctx, v.where(request), request.params.id);
      // The key as every other key route shows it (flags from the settings included).
      return services.keys.get(v.where(request), request.params.id);
    },
  });
}

export function registerUsageRoutes(app: FastifyInstance, services: Services): void {
  registerVariant(app, services, {
    mount: organizationRoute,
    keys: '/api-keys',
    usage: '/usage',
    tag: 'Usage',
    noun: '',
    auth: (scope) => ({ kind: 'organization', scope }),
    where: (request) => ({ tier: 'organization', organizationId: authOf(request).organizationId }),
  });
  registerVariant(app, services, {
    mount: route,
    keys: '/system/api-keys',
    usage: '/system/usage',
    tag: 'System API keys',
    noun: 'System',
    auth: () => ({ kind: 'global_admin' }),
    where: () => ({ tier: 'system', organizationId: null }),
  });
}
