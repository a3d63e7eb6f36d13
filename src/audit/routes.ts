/** HTTP for the audit log: per organization, system-wide, the chain's integrity check, and its signed checkpoints. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import type { Services } from '../services.js';
import { authOf, organizationOf, organizationRoute, pageOf, route } from '../http/routes.js';
import { DateTime, ListOf, Nullable, PageQuery, StringEnum, component } from '../http/openapi.js';
import { AUDIT_ACTIONS } from './events.js';
import type { AuditFilter } from './service.js';

const Query = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page (1..100)' })),
    startingAfter: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The id of the last event of the previous page' })),
    action: Type.Optional(Type.String({ maxLength: 64, description: 'One action (`noun.verb`, see AuditEvent.action)', examples: ['api_key.created'] })),
    actorType: Type.Optional(Type.String({ maxLength: 16, description: '`user`, `api_key` or `system`' })),
    actorId: Type.Optional(Type.String({ maxLength: 64 })),
    targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Only events whose target has this id (e.g. an API key id: its whole trail)' })),
    from: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'RFC 3339 date-time, inclusive' })),
    to: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'RFC 3339 date-time, exclusive' })),
  },
  { additionalProperties: false },
);

const AuditEventRef = component(
  'AuditEvent',
  Type.Object(
    {
      id: Type.String({ examples: ['evt_2xQ9mL0kR7'] }),
      object: Type.Literal('audit_event'),
      at: DateTime(),
      action: StringEnum(AUDIT_ACTIONS),
      actor: Type.Object(
        { type: StringEnum(['user', 'api_key', 'system'] as const), id: Nullable(Type.String()) },
        { additionalProperties: false },
      ),
      organizationId: Nullable(Type.String()),
      target: Nullable(Type.Object({ type: Type.String(), id: Type.String() }, { additionalProperties: false })),
      ip: Nullable(Type.String()),
      requestId: Nullable(Type.String()),
      outcome: Type.String({ examples: ['success', 'denied'] }),
      details: Type.Object({}, { additionalProperties: true, description: 'What changed; never a secret' }),
    },
    { additionalProperties: false, description: 'An append-only, hash-chained audit event' },
  ),
);
const AuditEventListRef = component('AuditEventList', ListOf(AuditEventRef, 'A page of audit events, newest first'));

const CheckpointSchema = Type.Object(
  {
    id: Type.String({ examples: ['acp_5kT1qz8Nw2'] }),
    object: Type.Literal('audit_checkpoint'),
    seq: Type.Integer({ description: "The newest event's position in the chain (0: empty chain)" }),
    hash: Type.String({ description: "That event's hash (64 zeros for an empty chain)" }),
    at: DateTime(),
    signature: Type.String({ description: 'Ed25519 signature (base64) of the bytes described in docs/security.md' }),
  },
  { additionalProperties: false, description: "A signed checkpoint of the audit chain's head" },
);
const AuditCheckpointRef = component('AuditCheckpoint', CheckpointSchema);
const AuditCheckpointListRef = component('AuditCheckpointList', ListOf(AuditCheckpointRef, 'A page of audit checkpoints, newest first'));

const AuditIntegrityRef = component(
  'AuditIntegrity',
  Type.Object(
    {
      ok: Type.Boolean({ description: 'The chain verifies, and matches the checkpoint' }),
      checked: Type.Integer({ description: 'Events checked' }),
      headMatches: Type.Boolean(),
      firstBrokenEventId: Nullable(Type.String({ description: 'The first event whose hash or link does not verify' })),
      reason: Nullable(Type.String()),
      checkpoint: Nullable(
        Type.Object(
          {
            id: Type.String(),
            seq: Nullable(Type.Integer()),
            hash: Nullable(Type.String()),
            at: Nullable(DateTime()),
            found: Type.Boolean({ description: 'The checkpoint is recorded' }),
            signatureValid: Type.Boolean(),
            matches: Type.Boolean({ description: 'The chain holds, at its seq, the event with the signed hash' }),
          },
          { additionalProperties: false, description: 'The checkpoint the chain was checked against' },
        ),
      ),
    },
    { additionalProperties: false, description: "The result of recomputing the audit log's hash chain" },
  ),
);

const filterOf = (query: Static<typeof Query>): AuditFilter => ({ ...query, limit: query.limit ?? 20 });

export function registerAuditRoutes(app: FastifyInstance, services: Services): void {
  const tags = ['Audit'];
  organizationRoute(app, {
    method: 'GET', path: '/audit-events', operationId: 'listAuditEvents', auth: { kind: 'organization', scope: 'audit:read' }, summary: "List the organization's audit events", tags,
    description: 'Newest first; filter by action, actor, target and time range. Reading is itself audited (`audit.read`).',
    schema: { querystring: Query, response: { 200: AuditEventListRef } },
    handler: async (request) =>
      services.audit.list(authOf(request).ctx, { ...filterOf(request.query), organizationId: organizationOf(request) }, 'organization'),
  });
  const systemTags = ['System audit'];
  route(app, {
    method: 'GET', path: '/system/audit-events', operationId: 'listSystemAuditEvents', auth: { kind: 'system', scope: 'audit:read' }, summary: 'List every audit event', tags: systemTags,
    description: 'Newest first, across organizations; the same filters.',
    schema: { querystring: Query, response: { 200: AuditEventListRef } },
    handler: async (request) => services.audit.list(authOf(request).ctx, filterOf(request.query), 'system'),
  });
  route(app, {
    method: 'GET', path: '/system/audit-integrity', operationId: 'checkAuditIntegrity', auth: { kind: 'system', scope: 'audit:read' }, summary: "Check the audit log's hash chain", tags: systemTags,
    description: 'Recomputes the chain and checks it against a signed checkpoint: events removed up to that checkpoint, or the chain replaced, make `ok` false.',
    schema: {
      querystring: Type.Object(
        { checkpoint: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'An audit checkpoint id (acp_...); default: the newest checkpoint' })) },
        { additionalProperties: false },
      ),
      response: { 200: AuditIntegrityRef },
    },
    handler: async (request) => services.audit.verifyChain(request.query.checkpoint),
  });
  registerCheckpointRoutes(app, services, systemTags);
}

/**
 * Signed checkpoints of the chain head (SPEC §15). Taking one records a fact about the log and
 * changes nothing else, so it is not itself audited; it needs `audit:create` (a system key holding
 * it or `audit:*`, or a global admin), not the read scope.
 */
function registerCheckpointRoutes(app: FastifyInstance, services: Services, tags: string[]): void {
  route(app, {
    method: 'POST', path: '/system/audit-checkpoints', operationId: 'createAuditCheckpoint', auth: { kind: 'system', scope: 'audit:create' }, summary: "Sign the audit chain's head now", tags,
    schema: { response: { 201: AuditCheckpointRef } },
    handler: async (_request, reply) => reply.code(201).send(await services.auditCheckpoints.create()),
  });
  route(app, {
    method: 'GET', path: '/system/audit-checkpoints', operationId: 'listAuditCheckpoints', auth: { kind: 'system', scope: 'audit:read' }, summary: 'List the signed checkpoints of the audit chain', tags,
    description: 'Newest first; cursor-paginated.',
    schema: { querystring: PageQuery, response: { 200: AuditCheckpointListRef } },
    handler: async (request) => services.auditCheckpoints.list(pageOf(request)),
  });
  route(app, {
    method: 'GET', path: '/system/audit-checkpoints/public-key', operationId: 'getAuditSigningPublicKey', auth: { kind: 'system', scope: 'audit:read' }, summary: "Get the audit signing key's public key", tags,
    description: 'PEM (SPKI) of the Ed25519 key that signs checkpoints and compliance evidence.',
    schema: { produces: ['application/x-pem-file'], response: { 200: Type.String({ description: 'The public key, PEM', examples: ['-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA...\n-----END PUBLIC KEY-----\n'] }) } },
    handler: async (_request, reply) => {
      reply.type('application/x-pem-file');
      return services.auditCheckpoints.publicKeyPem;
    },
  });
}
