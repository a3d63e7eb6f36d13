/**
 * HTTP for sessions and identity: login, logout, me, whoami, selected organization, accepting
 * invitations (SPEC §7: a new person sets a password; an existing account signs in and joins), and
 * password reset.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { AppError } from '../errors.js';
import { roleScopes } from '../scopes/catalog.js';
import { authOf, route } from '../http/routes.js';
import { CSRF_COOKIE, SELECTED_ORGANIZATION_COOKIE, SESSION_COOKIE, cookiesOf } from './plugin.js';
import type { SessionPrincipal } from './sessions.js';
import { MAX_PASSWORD_LENGTH } from '../users/passwords.js';

const tags = ['Sessions'];

const NULLABLE_STRING = { type: ['string', 'null'] } as const;
/** Typed addresses as login takes them: anything plausible, normalised by the service. */
const TYPED_EMAIL = { type: 'string', minLength: 3, maxLength: 254 } as const;
const PASSWORD = { type: 'string', minLength: 1, maxLength: MAX_PASSWORD_LENGTH } as const;
const TOKEN = { type: 'string', minLength: 10, maxLength: 128 } as const;
const TOKEN_BODY = { type: 'object', additionalProperties: false, required: ['token'], properties: { token: TOKEN } } as const;
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
        properties: { email: TYPED_EMAIL, password: PASSWORD },
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

  const meta = (request: FastifyRequest) => ({ ip: request.ip, requestId: request.id });

  route(app, {
    method: 'POST', path: '/auth/invitations/inspect', auth: { kind: 'public' }, summary: "An invitation link's organization, role, address, and whether that address must sign in to accept", tags,
    schema: { body: TOKEN_BODY },
    handler: async (request) => services.members.inspect((request.body as { token: string }).token),
  });

  route(app, {
    method: 'POST', path: '/auth/invitations/accept', auth: { kind: 'public' }, summary: 'Accept an invitation as a new person: creates the account with this password, and the membership', tags,
    schema: {
      body: { type: 'object', additionalProperties: false, required: ['token', 'password'], properties: { token: TOKEN, password: PASSWORD } },
    },
    handler: async (request) => {
      const { token, password } = request.body as { token: string; password: string };
      return services.members.acceptAsNewAccount(token, password, meta(request));
    },
  });

  route(app, {
    method: 'POST', path: '/auth/invitations/join', auth: { kind: 'session' }, summary: 'Accept an invitation as the signed-in account (the invited address)', tags,
    schema: { body: TOKEN_BODY },
    handler: async (request) => {
      const session = sessionOf(request);
      return services.members.acceptAsMember((request.body as { token: string }).token, { userId: session.userId, email: session.email }, meta(request));
    },
  });

  route(app, {
    method: 'POST', path: '/auth/password-reset', auth: { kind: 'public' }, summary: 'Mail a password-reset link when an account uses this address; always 202', tags,
    schema: { body: { type: 'object', additionalProperties: false, required: ['email'], properties: { email: TYPED_EMAIL } } },
    handler: async (request, reply) => {
      await services.passwordResets.request((request.body as { email: string }).email, meta(request));
      return reply.code(202).send({ accepted: true });
    },
  });

  route(app, {
    method: 'POST', path: '/auth/password-reset/confirm', auth: { kind: 'public' }, summary: 'Set a new password with a reset link; ends every session of the user', tags,
    schema: {
      body: { type: 'object', additionalProperties: false, required: ['token', 'password'], properties: { token: TOKEN, password: PASSWORD } },
    },
    handler: async (request) => {
      const { token, password } = request.body as { token: string; password: string };
      const { email } = await services.passwordResets.confirm(token, password, meta(request));
      return { object: 'password_reset', email, completed: true };
    },
  });
}
