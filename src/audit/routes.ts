/** HTTP for the audit log: per organization, system-wide, and the chain's integrity check. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { authOf, organizationOf, organizationRoute, route } from '../http/routes.js';
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
    from: { type: 'string', maxLength: 64, description: 'ISO 8601, inclusive' },
    to: { type: 'string', maxLength: 64, description: 'ISO 8601, exclusive' },
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
    method: 'GET', path: '/system/audit-integrity', auth: { kind: 'system', scope: 'audit:read' }, summary: "Recompute the audit log's hash chain", tags,
    handler: async () => services.audit.verifyChain(),
  });
}
