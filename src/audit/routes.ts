/** HTTP for the audit log: per organization, system-wide, the chain's integrity check, and its signed checkpoints. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { PAGE_QUERY, authOf, organizationOf, organizationRoute, pageOf, route } from '../http/routes.js';
import type { AuditFilter } from './service.js';

const QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
    startingAfter: { type: 'string', minLength: 1, maxLength: 64 },
    action: { type: 'string', maxLength: 64 },
    actorType: { type: 'string', maxLength: 16 },
    actorId: { type: 'string', maxLength: 64 },
    from: { type: 'string', format: 'date-time', maxLength: 64, description: 'RFC 3339 date-time, inclusive' },
    to: { type: 'string', format: 'date-time', maxLength: 64, description: 'RFC 3339 date-time, exclusive' },
  },
} as const;

const filterOf = (request: FastifyRequest): AuditFilter => {
  const q = request.query as Partial<AuditFilter>;
  return { ...q, limit: q.limit ?? 20 };
};

export function registerAuditRoutes(app: FastifyInstance, services: Services): void {
  const tags = ['Audit'];
  organizationRoute(app, {
    method: 'GET', path: '/audit-events', auth: { kind: 'organization', scope: 'audit:read' }, summary: "The organization's audit events, newest first", tags,
    schema: { querystring: QUERY },
    handler: async (request) =>
      services.audit.list(authOf(request).ctx, { ...filterOf(request), organizationId: organizationOf(request) }, 'organization'),
  });
  route(app, {
    method: 'GET', path: '/system/audit-events', auth: { kind: 'system', scope: 'audit:read' }, summary: 'Every audit event, newest first', tags,
    schema: { querystring: QUERY },
    handler: async (request) => services.audit.list(authOf(request).ctx, filterOf(request), 'system'),
  });
  route(app, {
    method: 'GET', path: '/system/audit-integrity', auth: { kind: 'system', scope: 'audit:read' }, summary: "Recompute the audit log's hash chain and check it against a signed checkpoint", tags,
    schema: {
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { checkpoint: { type: 'string', minLength: 1, maxLength: 64, description: 'an audit checkpoint id (acp_...); default: the newest checkpoint' } },
      },
    },
    handler: async (request) => services.audit.verifyChain((request.query as { checkpoint?: string }).checkpoint),
  });
  registerCheckpointRoutes(app, services, tags);
}

const CHECKPOINT = {
  type: 'object',
  required: ['id', 'object', 'seq', 'hash', 'at', 'signature'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['audit_checkpoint'] },
    seq: { type: 'integer', description: "the newest event's position in the chain (0: empty chain)" },
    hash: { type: 'string', description: "that event's hash (64 zeros for an empty chain)" },
    at: { type: 'string', format: 'date-time' },
    signature: { type: 'string', description: 'Ed25519 signature (base64) of the bytes described in docs/security.md' },
  },
} as const;

/**
 * Signed checkpoints of the chain head (SPEC §15). Taking one records a fact about the log and
 * changes nothing else, so it is not itself audited; it needs `audit:create` (a system key holding
 * it or `audit:*`, or a global admin), not the read scope.
 */
function registerCheckpointRoutes(app: FastifyInstance, services: Services, tags: string[]): void {
  route(app, {
    method: 'POST', path: '/system/audit-checkpoints', auth: { kind: 'system', scope: 'audit:create' }, summary: "Sign the audit chain's head now", tags,
    schema: { response: { 201: CHECKPOINT } },
    handler: async (_request, reply) => {
      reply.code(201);
      return services.auditCheckpoints.create();
    },
  });
  route(app, {
    method: 'GET', path: '/system/audit-checkpoints', auth: { kind: 'system', scope: 'audit:read' }, summary: 'Signed checkpoints of the audit chain, newest first', tags,
    schema: {
      querystring: PAGE_QUERY,
      response: { 200: { type: 'object', required: ['object', 'data', 'hasMore'], properties: { object: { type: 'string', enum: ['list'] }, data: { type: 'array', items: CHECKPOINT }, hasMore: { type: 'boolean' } } } },
    },
    handler: async (request) => services.auditCheckpoints.list(pageOf(request)),
  });
  route(app, {
    method: 'GET', path: '/system/audit-checkpoints/public-key', auth: { kind: 'system', scope: 'audit:read' }, summary: "The audit signing key's public key (PEM)", tags,
    handler: async (_request, reply) => {
      reply.type('application/x-pem-file');
      return services.auditCheckpoints.publicKeyPem;
    },
  });
}
