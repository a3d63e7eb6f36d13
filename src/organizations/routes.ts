/** HTTP for organizations: the caller's own (/v1/organization), members, and system provisioning. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { ROLES, type Role } from '../scopes/catalog.js';
import { ID_PARAM, PAGE_QUERY, authOf, organizationOf, organizationRoute, pageOf, route } from '../http/routes.js';
import type { ProvisionInput } from './service.js';
import { isId } from '../ids.js';
import { MAX_PASSWORD_LENGTH } from '../users/passwords.js';

const NAME = { type: 'string', minLength: 1, maxLength: 200 } as const;
const EMAIL = { type: 'string', format: 'email', maxLength: 254 } as const;
const ROLE = { type: 'string', enum: [...ROLES] } as const;
const USER_PARAM = { type: 'object', required: ['userId'], properties: { userId: { type: 'string', minLength: 1, maxLength: 64 } } } as const;
/** The answer to POST .../members (SPEC §7): always an invitation, of the same shape. */
const INVITATION = {
  type: 'object',
  required: ['id', 'object', 'organizationId', 'email', 'role', 'status', 'expiresAt', 'createdAt'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['invitation'] },
    organizationId: { type: 'string' },
    email: { type: 'string' },
    role: ROLE,
    status: { type: 'string', enum: ['pending', 'accepted'] },
    expiresAt: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
    url: { type: 'string', description: 'Only when SMTP is not configured: the link for the inviter to hand over' },
  },
} as const;

export function registerOrganizationRoutes(app: FastifyInstance, services: Services): void {
  const { organizations, members } = services;
  const idOf = (request: FastifyRequest) => (request.params as { id: string }).id;
  const userOf = (request: FastifyRequest) => (request.params as { userId: string }).userId;

  organizationRoute(app, {
    method: 'GET', path: '/organization', auth: { kind: 'organization', scope: 'organization:read' }, summary: 'The organization the credential acts in', tags: ['Organization'],
    handler: async (request) => organizations.get(organizationOf(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/organization', auth: { kind: 'organization', scope: 'organization:update' }, summary: 'Rename the organization', tags: ['Organization'],
    schema: { body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: NAME } } },
    handler: async (request) => organizations.update(authOf(request).ctx, organizationOf(request), request.body as { name?: string }),
  });

  const memberTags = ['Members'];
  organizationRoute(app, {
    method: 'GET', path: '/members', auth: { kind: 'organization_owner' }, summary: 'List members and pending invitations (owners and global admins)', tags: memberTags,
    schema: { querystring: PAGE_QUERY },
    handler: async (request) => members.list(organizationOf(request), pageOf(request)),
  });
  organizationRoute(app, {
    method: 'POST', path: '/members', auth: { kind: 'organization_owner' }, summary: 'Invite a member: the membership exists once the invitation is accepted', tags: memberTags,
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['email', 'role'],
        properties: {
          email: EMAIL,
          role: ROLE,
          password: { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH, description: 'Global admins only (operator provisioning): a new account gets this password and the membership at once' },
        },
      },
      response: { 201: INVITATION },
    },
    handler: async (request, reply) => {
      const { principal, ctx } = authOf(request);
      const isGlobalAdmin = principal.type === 'user' && principal.session.isGlobalAdmin;
      return reply.code(201).send(await members.invite(ctx, organizationOf(request), request.body as { email: string; role: Role; password?: string }, { isGlobalAdmin }));
    },
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/members/:userId', auth: { kind: 'organization_owner' }, summary: "Change a member's role", tags: memberTags,
    schema: { params: USER_PARAM, body: { type: 'object', additionalProperties: false, required: ['role'], properties: { role: ROLE } } },
    handler: async (request) => members.updateRole(authOf(request).ctx, organizationOf(request), userOf(request), (request.body as { role: Role }).role),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/members/:userId', auth: { kind: 'organization_owner' }, summary: 'Remove a member, or cancel an invitation (by its id)', tags: memberTags,
    schema: { params: USER_PARAM },
    handler: async (request, reply) => {
      const id = userOf(request);
      if (isId('invitation', id)) await members.cancel(authOf(request).ctx, organizationOf(request), id);
      else await members.remove(authOf(request).ctx, organizationOf(request), id);
      return reply.code(204).send();
    },
  });

  const systemTags = ['System: organizations'];
  route(app, {
    method: 'POST', path: '/system/organizations', auth: { kind: 'system', scope: 'organization:create' }, summary: 'Provision an organization, optionally with an owner and an initial key', tags: systemTags,
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['name'],
        properties: {
          name: NAME,
          owner: { type: 'object', additionalProperties: false, required: ['email'], properties: { email: EMAIL } },
          initialApiKey: {
            type: 'object', additionalProperties: false, required: ['name', 'scopes'],
            properties: { name: { type: 'string', minLength: 1, maxLength: 100 }, scopes: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 64 } } },
          },
        },
      },
    },
    handler: async (request, reply) => {
      const result = await organizations.provision(authOf(request).ctx, request.body as ProvisionInput);
      return reply.code(201).send({ ...result.organization, ...(result.owner ? { owner: result.owner } : {}), ...(result.initialApiKey ? { initialApiKey: result.initialApiKey } : {}) });
    },
  });
  route(app, {
    method: 'GET', path: '/system/organizations', auth: { kind: 'system', scope: 'organization:read' }, summary: 'List organizations', tags: systemTags,
    schema: { querystring: PAGE_QUERY },
    handler: async (request) => organizations.list(pageOf(request)),
  });
  route(app, {
    method: 'GET', path: '/system/organizations/:id', auth: { kind: 'system', scope: 'organization:read' }, summary: 'Get an organization', tags: systemTags,
    schema: { params: ID_PARAM },
    handler: async (request) => organizations.get(idOf(request)),
  });
  route(app, {
    method: 'PATCH', path: '/system/organizations/:id', auth: { kind: 'system', scope: 'organization:update' }, summary: 'Rename an organization', tags: systemTags,
    schema: { params: ID_PARAM, body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: NAME } } },
    handler: async (request) => organizations.update(authOf(request).ctx, idOf(request), request.body as { name?: string }),
  });
  route(app, {
    method: 'DELETE', path: '/system/organizations/:id', auth: { kind: 'system', scope: 'organization:delete' }, summary: 'Delete an organization; revokes all its keys at once', tags: systemTags,
    schema: { params: ID_PARAM },
    handler: async (request) => organizations.delete(authOf(request).ctx, idOf(request)),
  });
}
