/** The API key objects of the API description (SPEC §4, §12): request bodies and the key view. */
import { Type } from 'typebox';
import { component, DateTime, Nullable, NullableDateTime, PageQuery, ScopeString, StringEnum } from '../http/openapi.js';
import { KEY_STATUSES } from './store.js';

export const RateLimitSchema = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Requests allowed per window' }),
    windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400, description: 'The window, in seconds' }),
  },
  { additionalProperties: false },
);
export const RateLimitRef = component('RateLimit', RateLimitSchema);

export const KEY_FLAGS = ['rotation_due', 'inactive', 'expiring_soon', 'no_expiry', 'broad_scopes', 'creator_removed', 'leaked'] as const;

export const ActorRefSchema = Type.Object(
  {
    type: Type.String({ enum: ['user', 'api_key', 'system'], description: 'Who acted' }),
    id: Type.Union([Type.String(), Type.Null()], { description: 'The user or key id; null for the system' }),
  },
  { additionalProperties: false },
);

const keyFields = {
  id: Type.String({ description: "The key's id: the token's `<id>`, 20 characters `[0-9A-Za-z]`", examples: ['3hT0bqkQ9ZyR1mXo2LcV'] }),
  object: Type.Literal('api_key'),
  tier: Type.String({ enum: ['organization', 'system'] }),
  organizationId: Nullable(Type.String(), { description: 'The organization of an organization key; null for a system key' }),
  name: Type.String({ examples: ['Checkout server'] }),
  description: Nullable(Type.String()),
  scopes: Type.Array(Type.String(), { description: 'Sorted, de-duplicated `resource:action` scopes (OrganizationScope or SystemScope)', examples: [['checkout:create', 'checkout:read']] }),
  status: Type.String({ enum: ['active', 'revoked', 'expired', 'quarantined'] }),
  createdAt: DateTime(),
  createdBy: ActorRefSchema,
  updatedAt: DateTime(),
  lastUsedAt: NullableDateTime({ description: 'Last verification of the current secret' }),
  lastUsedIp: Type.Optional(Nullable(Type.String(), { description: 'The address the current secret was last used from' })),
  lastUserAgent: Type.Optional(Nullable(Type.String(), { description: 'The User-Agent the current secret was last used with' })),
  previousSecretLastUsedAt: Type.Optional(NullableDateTime({ description: 'During a grace period: last use of the previous secret' })),
  previousSecretLastUsedIp: Type.Optional(Nullable(Type.String(), { description: 'During a grace period: where the previous secret was last used from' })),
  previousSecretLastUserAgent: Type.Optional(Nullable(Type.String(), { description: 'During a grace period: the User-Agent the previous secret was last used with' })),
  flags: Type.Optional(Type.Array(Type.String({ enum: [...KEY_FLAGS] }), { description: 'Hygiene findings that apply to the key (SPEC §12)' })),
  expiresAt: NullableDateTime(),
  revokedAt: NullableDateTime(),
  rotatedAt: NullableDateTime(),
  previousSecretExpiresAt: NullableDateTime({ description: 'While a rotation grace period runs: when the previous secret stops working' }),
  allowedIps: Nullable(Type.Array(Type.String()), { description: 'Addresses or CIDR ranges the key may be used from; null: any' }),
  rateLimit: Nullable(RateLimitRef),
  hint: Type.String({ description: "The token's last 4 characters", examples: ['x9Qa'] }),
};

export const ApiKeyRef = component('ApiKey', Type.Object(keyFields, { additionalProperties: false, description: 'An API key; never its secret' }));

export const ApiKeyWithSecretRef = component(
  'ApiKeyWithSecret',
  Type.Object(
    {
      ...keyFields,
      secret: Type.String({
        description: 'The whole token `sk_<id>.<secret>`, shown in this response only: store it now',
        examples: ['sk_3hT0bqkQ9ZyR1mXo2LcV.4nW8Zr0pLqS6vYt2XbJ1kM9aD3fH7gE5cR0uI2oP8sQ4wN1x0Tq9'],
      }),
    },
    { additionalProperties: false, description: 'An API key just created or rotated, with its token (shown once)' },
  ),
);

const KEY_BODY_FIELDS = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  description: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  scopes: Type.Array(ScopeString({ maxLength: 64 }), { maxItems: 100, description: '`resource:action` scopes; only scopes the caller holds' }),
  expiresAt: Type.Optional(Nullable(Type.String({ format: 'date-time' }))),
  allowedIps: Type.Optional(Nullable(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100, description: 'IPv4/IPv6 addresses or CIDR ranges' }))),
  rateLimit: Type.Optional(Nullable(RateLimitSchema)),
};

export const CreateKeyBody = Type.Object(KEY_BODY_FIELDS, {
  additionalProperties: false,
  examples: [{ name: 'Checkout server', scopes: ['checkout:create', 'checkout:read'], expiresAt: '2027-12-31T00:00:00Z' }],
});
export const UpdateKeyBody = Type.Partial(Type.Object(KEY_BODY_FIELDS), { additionalProperties: false, minProperties: 1, examples: [{ name: 'Checkout server (eu)' }] });

/** The key list's query: a page, and filters applied before it is cut (cursors stay valid under them). */
export const KeyListQuery = Type.Object(
  {
    ...PageQuery.properties,
    status: Type.Optional(StringEnum(KEY_STATUSES, { description: 'Only keys with this status' })),
    flag: Type.Optional(StringEnum(KEY_FLAGS, { description: 'Only keys carrying this hygiene flag (SPEC §12), judged as the `flags` of the listed keys are' })),
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "Only the key with this exact id or hint, or keys whose name starts with this text (any case)" })),
  },
  { additionalProperties: false },
);
