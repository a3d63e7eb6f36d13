/**
 * HTTP for sessions and identity: login, logout, me, whoami, selected organization, accepting
 * invitations (SPEC §7: a new person sets a password; an existing account signs in and joins), and
 * password reset.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import { AppError } from '../errors.js';
import { ROLES, roleScopes } from '../scopes/catalog.js';
import { authOf, route } from '../http/routes.js';
import { DateTime, NoContent, Nullable, StringEnum, component } from '../http/openapi.js';
import { CSRF_COOKIE, SELECTED_ORGANIZATION_COOKIE, SESSION_COOKIE } from './plugin.js';
import { clearCookie, cookiesOf, setCookie } from '../http/cookies.js';
import type { SessionPrincipal } from './sessions.js';
import { MAX_PASSWORD_LENGTH } from '../users/passwords.js';

const tags = ['Authentication'];

/** Typed addresses as login takes them: anything plausible, normalised by the service. */
const TypedEmail = Type.String({ minLength: 3, maxLength: 254, examples: ['ada@example.com'] });
const Password = Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH });
const Token = Type.String({ minLength: 10, maxLength: 128, description: 'The token of the link' });
const TokenBody = Type.Object({ token: Token }, { additionalProperties: false });
const RoleSchema = StringEnum(ROLES);

const UserRef = component(
  'User',
  Type.Object({ id: Type.String({ examples: ['usr_4fQ2kz9Lm1'] }), email: Type.String(), isGlobalAdmin: Type.Boolean() }, { additionalProperties: false, description: 'An admin user' }),
);
const LoginResult = component(
  'LoginResult',
  Type.Object(
    {
      user: UserRef,
      token: Type.String({ description: 'The session token (a JWT): send it as `Authorization: Bearer <token>`, or rely on the session cookie' }),
      csrfToken: Type.String({ description: 'Send it as X-CSRF-Token on unsafe requests authenticated by the session cookie' }),
      expiresAt: DateTime(),
    },
    { additionalProperties: false, description: 'A new admin session' },
  ),
);
const SelectedOrganization = Type.Object(
  { id: Type.String(), name: Nullable(Type.String()), role: Nullable(RoleSchema) },
  { additionalProperties: false },
);
const MeRef = component(
  'Me',
  Type.Object(
    {
      user: UserRef,
      memberships: Type.Array(Type.Object({ organizationId: Type.String(), organizationName: Type.String(), role: RoleSchema }, { additionalProperties: false })),
      selectedOrganization: Nullable(SelectedOrganization),
    },
    { additionalProperties: false, description: 'The signed-in user, memberships and selected organization' },
  ),
);
const WhoamiRef = component(
  'Whoami',
  Type.Object(
    {
      type: Type.String({ enum: ['api_key', 'user'] }),
      keyId: Nullable(Type.String()),
      tier: Nullable(Type.String({ enum: ['organization', 'system'] })),
      organizationId: Nullable(Type.String()),
      scopes: Type.Array(Type.String()),
      status: Type.Optional(Type.String({ enum: ['active', 'quarantined'], description: "An API key's status: `active`, or `quarantined` (it may only read)" })),
      userId: Type.Optional(Type.String()),
      email: Type.Optional(Type.String()),
      isGlobalAdmin: Type.Optional(Type.Boolean()),
      roles: Type.Optional(Type.Array(Type.Object({ organizationId: Type.String(), role: RoleSchema }, { additionalProperties: false }))),
    },
    { additionalProperties: false, description: 'What the credential is and what it may do' },
  ),
);
const InvitationSummaryRef = component(
  'InvitationSummary',
  Type.Object(
    {
      object: Type.Literal('invitation'),
      email: Type.String(),
      role: RoleSchema,
      organizationId: Type.String(),
      organizationName: Type.String(),
      expiresAt: DateTime(),
      accountExists: Type.Boolean({ description: 'An account uses the address: sign in to accept' }),
    },
    { additionalProperties: false, description: "An invitation link's organization, role and address" },
  ),
);
const InvitationAcceptedRef = component(
  'InvitationAccepted',
  Type.Object(
    { accepted: Type.Literal(true), userId: Type.String(), organizationId: Type.String(), email: Type.String(), role: RoleSchema },
    { additionalProperties: false, description: 'The membership that the invitation created' },
  ),
);

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
    for (const name of [SESSION_COOKIE, CSRF_COOKIE, SELECTED_ORGANIZATION_COOKIE]) clearCookie(reply, name, { path: '/' });
  };

  route(app, {
    method: 'POST', path: '/auth/login', operationId: 'login', auth: { kind: 'public' }, summary: 'Sign in', tags,
    description: 'Sets the `session` (HttpOnly) and `csrf` cookies and answers the session token. Failed logins are throttled per account and per source address (`429`).',
    schema: {
      body: Type.Object({ email: TypedEmail, password: Password }, { additionalProperties: false, examples: [{ email: 'ada@example.com', password: 'correct horse battery staple' }] }),
      response: { 200: LoginResult },
    },
    errors: ['invalid_session', 'rate_limited'],
    handler: async (request, reply) => {
      const { email, password } = request.body;
      const result = await services.sessions.login(email, password, {
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
        requestId: request.id,
      });
      const secure = secureCookies(services, request);
      const maxAge = Math.floor((result.expiresAt.getTime() - Date.now()) / 1000);
      setCookie(reply, SESSION_COOKIE, result.token, { httpOnly: true, sameSite: 'lax', secure, path: '/', maxAge });
      // Readable by the admin page, which echoes it in X-CSRF-Token (double submit).
      setCookie(reply, CSRF_COOKIE, result.csrf, { httpOnly: false, sameSite: 'lax', secure, path: '/', maxAge });
      // Login chooses no organization: a stale selection from an earlier session must not carry over.
      clearCookie(reply, SELECTED_ORGANIZATION_COOKIE, { path: '/' });
      return { user: result.user, token: result.token, csrfToken: result.csrf, expiresAt: result.expiresAt.toISOString() };
    },
  });

  route(app, {
    method: 'POST', path: '/auth/logout', operationId: 'logout', auth: { kind: 'session' }, summary: 'End the session on every node', tags,
    schema: { response: { 204: NoContent } },
    handler: async (request, reply) => {
      await services.sessions.logout(sessionOf(request), { ip: request.ip, userAgent: null, requestId: request.id });
      clearCookies(reply);
      return reply.code(204).send(null);
    },
  });

  route(app, {
    method: 'GET', path: '/auth/me', operationId: 'getMe', auth: { kind: 'session' }, summary: 'The signed-in user, memberships and selected organization', tags,
    schema: { response: { 200: MeRef } },
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
    method: 'GET', path: '/auth/whoami', operationId: 'whoami', auth: { kind: 'any' }, summary: 'Describe the credential', tags,
    description: 'Needs no scope and reads no payment data: integrators use it to check a key. A quarantined key may call it.',
    // A response schema lets Fastify serialise with a compiled function: whoami is the benchmark of
    // authentication alone, so its own cost should be as small as possible.
    schema: { response: { 200: WhoamiRef } },
    handler: async (request) => {
      const { principal } = authOf(request);
      if (principal.type === 'api_key') {
        const key = principal.key;
        // A key that got here is neither revoked nor expired: active, or quarantined (SPEC §13).
        return { type: 'api_key' as const, keyId: key.id, tier: key.tier, organizationId: key.organizationId, scopes: key.scopes, status: key.quarantinedAt ? 'quarantined' : 'active' };
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
    method: 'PUT', path: '/auth/selected-organization', operationId: 'selectOrganization', auth: { kind: 'session' }, summary: 'Select the organization for admin-panel requests', tags,
    description: 'Sets the `selectedOrganization` cookie after checking membership.',
    schema: {
      body: Type.Object({ organizationId: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
      response: { 200: Type.Object({ selectedOrganization: SelectedOrganization }, { additionalProperties: false, description: 'The organization now selected' }) },
    },
    errors: ['not_found'],
    handler: async (request, reply) => {
      const session = sessionOf(request);
      const { organizationId } = request.body;
      const member = session.roles.has(organizationId);
      if (!member && !session.isGlobalAdmin) throw new AppError('forbidden', 'You are not a member of this organization');
      if (!(await services.organizations.isActive(organizationId))) throw new AppError('not_found', 'No such organization');
      setCookie(reply, SELECTED_ORGANIZATION_COOKIE, organizationId, { httpOnly: false, sameSite: 'lax', secure: secureCookies(services, request), path: '/' });
      const membership = session.memberships.find((m) => m.organizationId === organizationId);
      return { selectedOrganization: { id: organizationId, name: membership?.organizationName ?? null, role: membership?.role ?? null } };
    },
  });

  const meta = (request: FastifyRequest) => ({ ip: request.ip, requestId: request.id });

  route(app, {
    method: 'POST', path: '/auth/invitations/inspect', operationId: 'inspectInvitation', auth: { kind: 'public' }, summary: 'Inspect an invitation link', tags,
    description: "The link's organization, role, address, and whether that address must sign in to accept.",
    schema: { body: TokenBody, response: { 200: InvitationSummaryRef } },
    errors: ['not_found', 'rate_limited'],
    handler: async (request) => services.members.inspect(request.body.token),
  });

  route(app, {
    method: 'POST', path: '/auth/invitations/accept', operationId: 'acceptInvitation', auth: { kind: 'public' }, summary: 'Accept an invitation as a new person', tags,
    description: 'Creates the account with this password, and the membership. An address that already has an account must sign in and join instead (`409 conflict`).',
    schema: { body: Type.Object({ token: Token, password: Password }, { additionalProperties: false }), response: { 200: InvitationAcceptedRef } },
    errors: ['not_found', 'conflict', 'rate_limited'],
    handler: async (request) => {
      const { token, password } = request.body;
      return services.members.acceptAsNewAccount(token, password, meta(request));
    },
  });

  route(app, {
    method: 'POST', path: '/auth/invitations/join', operationId: 'joinInvitation', auth: { kind: 'session' }, summary: 'Accept an invitation as the signed-in account', tags,
    description: 'Only the account of the invited address may accept.',
    schema: { body: TokenBody, response: { 200: InvitationAcceptedRef } },
    errors: ['not_found'],
    handler: async (request) => {
      const session = sessionOf(request);
      return services.members.acceptAsMember(request.body.token, { userId: session.userId, email: session.email }, meta(request));
    },
  });

  route(app, {
    method: 'POST', path: '/auth/password-reset', operationId: 'requestPasswordReset', auth: { kind: 'public' }, summary: 'Request a password-reset link', tags,
    description: 'Mails a single-use link (30 minutes) when an account uses this address and SMTP is configured; always answers 202, so it never tells whether the account exists.',
    schema: {
      body: Type.Object({ email: TypedEmail }, { additionalProperties: false }),
      response: { 202: Type.Object({ accepted: Type.Literal(true) }, { additionalProperties: false, description: 'Accepted' }) },
    },
    errors: ['rate_limited'],
    handler: async (request, reply) => {
      await services.passwordResets.request(request.body.email, meta(request));
      return reply.code(202).send({ accepted: true as const });
    },
  });

  route(app, {
    method: 'POST', path: '/auth/password-reset/confirm', operationId: 'confirmPasswordReset', auth: { kind: 'public' }, summary: 'Set a new password with a reset link', tags,
    description: 'Ends every session of the user on every node.',
    schema: {
      body: Type.Object({ token: Token, password: Password }, { additionalProperties: false }),
      response: { 200: Type.Object({ object: Type.Literal('password_reset'), email: Type.String(), completed: Type.Literal(true) }, { additionalProperties: false, description: 'The password is set' }) },
    },
    errors: ['not_found', 'rate_limited'],
    handler: async (request) => {
      const { token, password } = request.body;
      const { email } = await services.passwordResets.confirm(token, password, meta(request));
      return { object: 'password_reset' as const, email, completed: true as const };
    },
  });
}
