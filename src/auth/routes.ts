/** HTTP for sessions and identity: login, logout, me, whoami, selected organization, invitations. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { AppError } from '../errors.js';
import { roleScopes } from '../scopes/catalog.js';
import { authOf, route } from '../http/routes.js';
import { CSRF_COOKIE, SELECTED_ORGANIZATION_COOKIE, SESSION_COOKIE, cookiesOf } from './plugin.js';
import type { SessionPrincipal } from './sessions.js';

const tags = ['Sessions'];

const NULLABLE_STRING = { type: ['string', 'null'] } as const;
const WHOAMI_RESPONSE = {
  type: 'object',
  required: ['type', 'keyId', 'tier', 'organizationId', 'scopes'],
  properties: {
    type: { type: 'string', enum: ['api_key', 'user'] },
    keyId: NULLABLE_STRING,
    tier: { type: ['string', 'null'], enum: ['organization', 'system', null] },
    organizationId: NULLABLE_STRING,
    scopes: { type: 'array', items: { type: 'string' } },
    userId: { type: 'string' },
    email: { type: 'string' },
    isGlobalAdmin: { type: 'boolean' },
    roles: {
      type: 'array',
      items: { type: 'object', properties: { organizationId: { type: 'string' }, role: { type: 'string' } } },
    },
  },
} as const;

function secureCookies(services: Services, request: FastifyRequest): boolean {
  return services.config.publicUrl.startsWith('https://') || request.protocol === 'https';
}

function sessionOf(request: FastifyRequest): SessionPrincipal {
  const { principal } = authOf(request);
  if (principal.type !== 'user') throw new AppError('forbidden');
  return principal.session;
}

function selectedOrganization(request: FastifyRequest, session: SessionPrincipal) {
  const id = cookiesOf(request)[SELECTED_ORGANIZATION_COOKIE];
  if (!id) return null;
  const membership = session.memberships.find((m) => m.organizationId === id);
  if (membership) return { id, name: membership.organizationName, role: membership.role };
  return session.isGlobalAdmin ? { id, name: null, role: null } : null;
}

export function registerAuthRoutes(app: FastifyInstance, services: Services): void {
  const clearCookies = (reply: FastifyReply) => {
    for (const name of [SESSION_COOKIE, CSRF_COOKIE, SELECTED_ORGANIZATION_COOKIE]) reply.clearCookie(name, { path: '/' });
  };

  route(app, {
    method: 'POST', path: '/auth/login', auth: { kind: 'public' }, summary: 'Sign in; sets the session and csrf cookies', tags,
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['email', 'password'],
        properties: { email: { type: 'string', minLength: 3, maxLength: 254 }, password: { type: 'string', minLength: 1, maxLength: 256 } },
      },
    },
    handler: async (request, reply) => {
      const { email, password } = request.body as { email: string; password: string };
      const result = await services.sessions.login(email, password, {
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
        requestId: request.id,
      });
      const secure = secureCookies(services, request);
      const maxAge = Math.floor((result.expiresAt.getTime() - Date.now()) / 1000);
      reply.setCookie(SESSION_COOKIE, result.token, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge });
      // Readable by the admin page, which echoes it in X-CSRF-Token (double submit).
      reply.setCookie(CSRF_COOKIE, result.csrf, { httpOnly: false, sameSite: 'lax', secure, path: '/', maxAge });
      // Login chooses no organization: a stale selection from an earlier session must not carry over.
      reply.clearCookie(SELECTED_ORGANIZATION_COOKIE, { path: '/' });
      return { user: result.user, token: result.token, csrfToken: result.csrf, expiresAt: result.expiresAt.toISOString() };
    },
  });

  route(app, {
    method: 'POST', path: '/auth/logout', auth: { kind: 'session' }, summary: 'End the session on every node', tags,
    handler: async (request, reply) => {
      await services.sessions.logout(sessionOf(request), { ip: request.ip, userAgent: null, requestId: request.id });
      clearCookies(reply);
      return reply.code(204).send();
    },
  });

  route(app, {
    method: 'GET', path: '/auth/me', auth: { kind: 'session' }, summary: 'The signed-in user, memberships and selected organization', tags,
    handler: async (request) => {
      const session = sessionOf(request);
      return {
        user: { id: session.userId, email: session.email, isGlobalAdmin: session.isGlobalAdmin },
        memberships: session.memberships.map((m) => ({ organizationId: m.organizationId, organizationName: m.organizationName, role: m.role })),
        selectedOrganization: selectedOrganization(request, session),
      };
    },
  });

  route(app, {
    method: 'GET', path: '/auth/whoami', auth: { kind: 'any' }, summary: 'Describe the credential; needs no scope and reads no payment data', tags,
    // A response schema lets Fastify serialise with a compiled function: whoami is the benchmark of
    // authentication alone, so its own cost should be as small as possible.
    schema: { response: { 200: WHOAMI_RESPONSE } },
    handler: async (request) => {
      const { principal } = authOf(request);
      if (principal.type === 'api_key') {
        const key = principal.key;
        return { type: 'api_key', keyId: key.id, tier: key.tier, organizationId: key.organizationId, scopes: key.scopes };
      }
      const session = principal.session;
      const selected = selectedOrganization(request, session);
      const role = selected ? session.roles.get(selected.id) : undefined;
      return {
        type: 'user',
        keyId: null,
        tier: null,
        userId: session.userId,
        email: session.email,
        isGlobalAdmin: session.isGlobalAdmin,
        organizationId: selected?.id ?? null,
        // What the plugin grants in the selected organization: a global admin holds every organization scope there.
        scopes: !selected ? [] : session.isGlobalAdmin ? roleScopes('owner') : role ? roleScopes(role) : [],
        roles: session.memberships.map((m) => ({ organizationId: m.organizationId, role: m.role })),
      };
    },
  });

  route(app, {
    method: 'PUT', path: '/auth/selected-organization', auth: { kind: 'session' }, summary: 'Select the organization for admin-panel requests', tags,
    schema: {
      body: { type: 'object', additionalProperties: false, required: ['organizationId'], properties: { organizationId: { type: 'string', minLength: 1, maxLength: 64 } } },
    },
    handler: async (request, reply) => {
      const session = sessionOf(request);
      const { organizationId } = request.body as { organizationId: string };
      const member = session.roles.has(organizationId);
      if (!member && !session.isGlobalAdmin) throw new AppError('forbidden', 'You are not a member of this organization');
      if (!(await services.organizations.isActive(organizationId))) throw new AppError('not_found', 'No such organization');
      reply.setCookie(SELECTED_ORGANIZATION_COOKIE, organizationId, { httpOnly: false, sameSite: 'lax', secure: secureCookies(services, request), path: '/' });
      const membership = session.memberships.find((m) => m.organizationId === organizationId);
      return { selectedOrganization: { id: organizationId, name: membership?.organizationName ?? null, role: membership?.role ?? null } };
    },
  });

  route(app, {
    method: 'POST', path: '/auth/invitations/accept', auth: { kind: 'public' }, summary: 'Set a password with a one-time invitation token', tags,
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['token', 'password'],
        properties: { token: { type: 'string', minLength: 10, maxLength: 128 }, password: { type: 'string', minLength: 1, maxLength: 256 } },
      },
    },
    handler: async (request) => {
      const { token, password } = request.body as { token: string; password: string };
      const { userId } = await services.members.acceptInvitation(token, password);
      return { userId, accepted: true };
    },
  });
}
