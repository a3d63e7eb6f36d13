/** HTTP for organizations: the caller's own (/v1/organization), members, and system provisioning. */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import { ROLES } from '../scopes/catalog.js';
import { authOf, organizationOf, organizationRoute, pageOf, route } from '../http/routes.js';
import { DateTime, IdParams, ListOf, NoContent, Nullable, PageQuery, ScopeString, StringEnum, component } from '../http/openapi.js';
import { ApiKeyWithSecretRef } from '../keys/schemas.js';
import { isId } from '../ids.js';
import { MAX_PASSWORD_LENGTH } from '../users/passwords.js';

const Name = Type.String({ minLength: 1, maxLength: 200, examples: ['Acme Ltd'] });
const Email = Type.String({ format: 'email', maxLength: 254, examples: ['ada@example.com'] });
const RoleSchema = StringEnum(ROLES, { description: 'owner: everything incl. members; admin: every organization scope; developer: api_key:* and every :read; viewer: every :read except api_key and audit' });
const UserParams = Type.Object({ userId: Type.String({ minLength: 1, maxLength: 64, description: "A member's user id, or an invitation id (inv_...)" }) });
const RenameBody = Type.Object({ name: Type.Optional(Name) }, { additionalProperties: false, minProperties: 1, examples: [{ name: 'Acme Ltd' }] });

export const OrganizationRef = component(
  'Organization',
  Type.Object(
    {
      id: Type.String({ examples: ['org_4fQ2kz9Lm1xY7bN0pR3sT6'] }),
      object: Type.Literal('organization'),
      name: Type.String(),
      status: Type.String({ enum: ['active', 'deleted'] }),
      createdAt: DateTime(),
      updatedAt: DateTime(),
      deletedAt: Nullable(DateTime()),
    },
    { additionalProperties: false, description: 'An organization (tenant)' },
  ),
);
const OrganizationListRef = component('OrganizationList', ListOf(OrganizationRef, 'A page of organizations'));

/** The answer to POST .../members (SPEC §7): always an invitation, of the same shape. */
export const InvitationRef = component(
  'Invitation',
  Type.Object(
    {
      id: Type.String({ examples: ['inv_7hR2kq0Lm3xZ'] }),
      object: Type.Literal('invitation'),
      organizationId: Type.String(),
      email: Type.String(),
      role: RoleSchema,
      status: Type.String({ enum: ['pending', 'invited', 'accepted'], description: '`pending` when just created, `invited` in member lists, `accepted` when a global admin provisioned the account at once' }),
      expiresAt: DateTime(),
      createdAt: DateTime(),
      url: Type.Optional(Type.String({ description: 'Only when SMTP is not configured: the link for the inviter to hand over' })),
    },
    { additionalProperties: false, description: 'An invitation to join an organization' },
  ),
);
const MemberRef = component(
  'Member',
  Type.Object(
    {
      object: Type.Literal('member'),
      organizationId: Type.String(),
      userId: Type.String(),
      email: Type.String(),
      role: RoleSchema,
      status: Type.Literal('active'),
      createdAt: DateTime(),
    },
    { additionalProperties: false, description: 'A member of an organization' },
  ),
);
const MemberListRef = component('MemberList', ListOf(Type.Union([MemberRef, InvitationRef]), 'A page of members and pending invitations'));

const ProvisionBody = Type.Object(
  {
    name: Name,
    owner: Type.Optional(Type.Object({ email: Email }, { additionalProperties: false, description: 'Invite this address as the owner' })),
    initialApiKey: Type.Optional(
      Type.Object(
        { name: Type.String({ minLength: 1, maxLength: 100 }), scopes: Type.Array(ScopeString({ maxLength: 64 }), { maxItems: 100 }) },
        { additionalProperties: false, description: 'Create an organization key at once (its secret is in the response, once)' },
      ),
    ),
  },
  { additionalProperties: false, examples: [{ name: 'Acme Ltd', owner: { email: 'ada@example.com' }, initialApiKey: { name: 'Server', scopes: ['checkout:*'] } }] },
);
const ProvisionedRef = component(
  'ProvisionedOrganization',
  Type.Object(
    {
      id: Type.String(),
      object: Type.Literal('organization'),
      name: Type.String(),
      status: Type.String({ enum: ['active', 'deleted'] }),
      createdAt: DateTime(),
      updatedAt: DateTime(),
      deletedAt: Nullable(DateTime()),
      owner: Type.Optional(InvitationRef),
      initialApiKey: Type.Optional(ApiKeyWithSecretRef),
    },
    { additionalProperties: false, description: 'A new organization, with the owner invitation and the initial key when asked for' },
  ),
);

export function registerOrganizationRoutes(app: FastifyInstance, services: Services): void {
  const { organizations, members } = services;

  organizationRoute(app, {
    method: 'GET', path: '/organization', operationId: 'getOrganization', auth: { kind: 'organization', scope: 'organization:read' }, summary: 'Get the organization the credential acts in', tags: ['Organization'],
    schema: { response: { 200: OrganizationRef } },
    errors: ['not_found'],
    handler: async (request) => organizations.get(organizationOf(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/organization', operationId: 'updateOrganization', auth: { kind: 'organization', scope: 'organization:update' }, summary: 'Rename the organization', tags: ['Organization'],
    schema: { body: RenameBody, response: { 200: OrganizationRef } },
    errors: ['not_found'],
    handler: async (request) => organizations.update(authOf(request).ctx, organizationOf(request), request.body),
  });

  const memberTags = ['Organization'];
  organizationRoute(app, {
    method: 'GET', path: '/members', operationId: 'listMembers', auth: { kind: 'organization_owner' }, summary: 'List members and pending invitations', tags: memberTags,
    schema: { querystring: PageQuery, response: { 200: MemberListRef } },
    handler: async (request) => members.list(organizationOf(request), pageOf(request)),
  });
  organizationRoute(app, {
    method: 'POST', path: '/members', operationId: 'inviteMember', auth: { kind: 'organization_owner' }, summary: 'Invite a member', tags: memberTags,
    description:
      'Always answers `201` with an invitation of the same shape, whether or not the address has an account; the membership exists once the invitation is accepted through its link (mailed when SMTP is configured, else in `url`).',
    schema: {
      body: Type.Object(
        {
          email: Email,
          role: RoleSchema,
          password: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH, description: 'Global admins only (operator provisioning): a new account gets this password and the membership at once' })),
        },
        { additionalProperties: false, examples: [{ email: 'ada@example.com', role: 'developer' }] },
      ),
      response: { 201: InvitationRef },
    },
    errors: ['conflict', 'rate_limited'],
    handler: async (request, reply) => {
      const { principal, ctx } = authOf(request);
      const isGlobalAdmin = principal.type === 'user' && principal.session.isGlobalAdmin;
      return reply.code(201).send(await members.invite(ctx, organizationOf(request), request.body, { isGlobalAdmin }));
    },
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/members/:userId', operationId: 'updateMember', auth: { kind: 'organization_owner' }, summary: "Change a member's role", tags: memberTags,
    schema: { params: UserParams, body: Type.Object({ role: RoleSchema }, { additionalProperties: false }), response: { 200: MemberRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => members.updateRole(authOf(request).ctx, organizationOf(request), request.params.userId, request.body.role),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/members/:userId', operationId: 'removeMember', auth: { kind: 'organization_owner' }, summary: 'Remove a member, or cancel an invitation', tags: memberTags,
    description: 'Given an invitation id (`inv_...`), cancels the invitation.',
    schema: { params: UserParams, response: { 204: NoContent } },
    errors: ['not_found', 'conflict'],
    handler: async (request, reply) => {
      const id = request.params.userId;
      if (isId('invitation', id)) await members.cancel(authOf(request).ctx, organizationOf(request), id);
      else await members.remove(authOf(request).ctx, organizationOf(request), id);
      return reply.code(204).send(null);
    },
  });

  const systemTags = ['System organizations'];
  route(app, {
    method: 'POST', path: '/system/organizations', operationId: 'createOrganization', auth: { kind: 'system', scope: 'organization:create' }, summary: 'Provision an organization', tags: systemTags,
    description: 'Optionally with an owner (invited) and an initial organization key, whose secret is in the response once.',
    schema: { body: ProvisionBody, response: { 201: ProvisionedRef } },
    errors: ['conflict'],
    handler: async (request, reply) => {
      const result = await organizations.provision(authOf(request).ctx, request.body);
      const initialApiKey = result.initialApiKey;
      if (initialApiKey && typeof initialApiKey.secret !== 'string') throw new Error('a provisioned key has no secret');
      return reply.code(201).send({
        ...result.organization,
        ...(result.owner ? { owner: result.owner } : {}),
        ...(initialApiKey ? { initialApiKey: initialApiKey as typeof initialApiKey & { secret: string } } : {}),
      });
    },
  });
  route(app, {
    method: 'GET', path: '/system/organizations', operationId: 'listOrganizations', auth: { kind: 'system', scope: 'organization:read' }, summary: 'List organizations', tags: systemTags,
    schema: { querystring: PageQuery, response: { 200: OrganizationListRef } },
    handler: async (request) => organizations.list(pageOf(request)),
  });
  route(app, {
    method: 'GET', path: '/system/organizations/:id', operationId: 'getSystemOrganization', auth: { kind: 'system', scope: 'organization:read' }, summary: 'Get an organization', tags: systemTags,
    schema: { params: IdParams, response: { 200: OrganizationRef } },
    errors: ['not_found'],
    handler: async (request) => organizations.get(request.params.id),
  });
  route(app, {
    method: 'PATCH', path: '/system/organizations/:id', operationId: 'updateSystemOrganization', auth: { kind: 'system', scope: 'organization:update' }, summary: 'Rename an organization', tags: systemTags,
    schema: { params: IdParams, body: RenameBody, response: { 200: OrganizationRef } },
    errors: ['not_found'],
    handler: async (request) => organizations.update(authOf(request).ctx, request.params.id, request.body),
  });
  route(app, {
    method: 'DELETE', path: '/system/organizations/:id', operationId: 'deleteOrganization', auth: { kind: 'system', scope: 'organization:delete' }, summary: 'Delete an organization', tags: systemTags,
    description: 'Revokes all its keys at once; answers the organization as deleted.',
    schema: { params: IdParams, response: { 200: OrganizationRef } },
    errors: ['not_found'],
    handler: async (request) => organizations.delete(authOf(request).ctx, request.params.id),
  });
}
