/**
 * Authentication and authorization for every /v1 route, in one onRequest hook:
 * credential -> CSRF (cookie sessions) -> key tier -> organization context (SPEC §2) -> scope (SPEC §3)
 * -> a global admin's access inside an organization is audited (SPEC §3, §15).
 * Runs before the body is parsed, so an unauthenticated request never costs a parse.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { cookiesOf } from '../http/cookies.js';
import { AppError, validationError } from '../errors.js';
import { sendProblem } from '../http/error-handler.js';
import { ScopeSet } from '../scopes/check.js';
import { allScopes, roleScopes } from '../scopes/catalog.js';
import type { Services } from '../services.js';
import type { AuthRequirement, AuthState, Principal } from './requirements.js';
import { looksLikeJwt, safeEqual, type SessionPrincipal } from './sessions.js';
import type { RequestContext } from './context.js';
import type { MatchedSecret, VerifyFailure, VerifyOutcome } from '../keys/verify.js';
import { isUsageOutcome } from '../usage/aggregator.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
type KeyPrincipal = Extract<Principal, { type: 'api_key' }>;
const ALL_ORGANIZATION_SCOPES = new ScopeSet(allScopes('organization'));
const ALL_SYSTEM_SCOPES = new ScopeSet(allScopes('system'));
const EMPTY = new ScopeSet([]);

export const SESSION_COOKIE = 'session';
export const CSRF_COOKIE = 'csrf';
export const SELECTED_ORGANIZATION_COOKIE = 'selectedOrganization';

function insufficientScope(scope: string): AppError {
  return new AppError('insufficient_scope', `This credential lacks the scope ${scope}`, {
    extra: { requiredScope: scope },
    headers: { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"` },
  });
}

export function registerAuth(app: FastifyInstance, services: Services): void {
  app.decorateRequest('auth', null);
  app.decorateRequest('keyUse', null);

  // A protected route without a declared requirement is a bug: refuse to start rather than serve it.
  // Each protected route gets the auth hook with its requirement bound, ahead of its own onRequest
  // hooks: public routes (probes, pages) run none, and no request looks its requirement up.
  app.addHook('onRoute', (route) => {
    const requirement = route.config?.auth;
    if (route.url.startsWith('/v1') && !requirement) {
      throw new Error(`Route ${route.method} ${route.url} declares no auth requirement`);
    }
    if (!requirement || requirement.kind === 'public') return;
    const own = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [authHook(requirement, services), ...own];
  });
}

/**
 * The auth hook of one route. Callback-style, and synchronous whenever the decision needs no I/O (a
 * cached key on a route it may call, a malformed or forged token): the common cases pay no promise.
 */
function authHook(requirement: AuthRequirement, services: Services): onRequestHookHandler {
  return (request, reply, done) => {
    let decided: AuthState | AppError | Promise<AuthState>;
    try {
      decided = authorize(request, reply, requirement, services);
    } catch (error) {
      refused(request, reply, error, done, services);
      return;
    }
    if (decided instanceof AppError) refused(request, reply, decided, done, services);
    else if (decided instanceof Promise) {
      decided.then(
        (auth) => admitted(request, auth, done, services),
        (error: unknown) => refused(request, reply, error, done, services),
      );
    } else admitted(request, decided, done, services);
  };
}

function admitted(request: FastifyRequest, auth: AuthState, done: (error?: Error) => void, services: Services): void {
  request.auth = auth;
  try {
    countKeyUse(request, 'ok', services);
  } catch (error) {
    done(error as Error);
    return;
  }
  done();
}

/**
 * Refusals are answered here rather than through Fastify's error path: the common case under attack
 * (forged or malformed tokens) stays as cheap as possible. Anything but an AppError is Fastify's.
 */
function refused(request: FastifyRequest, reply: FastifyReply, error: unknown, done: (error?: Error) => void, services: Services): void {
  if (!(error instanceof AppError)) {
    done(error as Error);
    return;
  }
  try {
    countKeyUse(request, error.code, services);
    sendProblem(reply, error);
  } catch (failure) {
    done(failure as Error);
  }
}

/**
 * Node keeps the first of several Authorization headers and drops the rest without a word, so a
 * proxy and the backend could each believe a different credential: more than one is refused.
 */
function authorizationHeaders(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization') count++;
  return count;
}

/**
 * The credential of the request, or its refusal: both synchronously for API keys whose verification
 * needs no I/O. Refusals decided here are returned, not thrown: a forged token by the thousand
 * should not cost an exception each.
 */
function authenticate(request: FastifyRequest, reply: FastifyReply, services: Services): Principal | AppError | Promise<Principal> {
  const header = request.headers.authorization;
  if (header !== undefined) {
    if (authorizationHeaders(request) > 1) {
      throw validationError([{ path: '/headers/authorization', message: 'must be sent once' }], 'Send exactly one Authorization header');
    }
    const space = header.indexOf(' ');
    const scheme = space === -1 ? header : header.slice(0, space);
    const value = space === -1 ? '' : header.slice(space + 1).trim();
    // The scheme name is case-insensitive (RFC 7235); anything else malformed is invalid_api_key.
    if (scheme.toLowerCase() !== 'bearer' || value === '') return new AppError('invalid_api_key', 'The Authorization header must be "Bearer <token>"');
    if (value.startsWith('sk_')) {
      const outcome = services.verifier.verify(value, request.ip);
      return outcome instanceof Promise ? outcome.then((decided) => principalOrThrow(keyPrincipal(request, reply, decided, services))) : keyPrincipal(request, reply, outcome, services);
    }
    if (looksLikeJwt(value)) return sessionPrincipal(value, false, services);
    services.metrics.countVerification('invalid_api_key');
    services.audit.noteInvalidApiKey(request.ip, request.id);
    return plainRefusal('invalid_api_key');
  }
  const cookie = cookiesOf(request)[SESSION_COOKIE];
  if (cookie) return sessionPrincipal(cookie, true, services);
  return new AppError('missing_credentials', 'Send an API key as "Authorization: Bearer sk_..." or sign in');
}

async function sessionPrincipal(token: string, viaCookie: boolean, services: Services): Promise<Principal> {
  const session = await services.sessions.verify(token);
  if (!session) throw new AppError('invalid_session', viaCookie ? 'The session cookie is invalid, expired or ended' : 'The session token is invalid, expired or ended');
  return { type: 'user', session, viaCookie };
}

/** A verification of a known key, counted once its outcome is decided (SPEC §12; countKeyUse). */
interface KeyUse {
  keyId: string;
  secret: MatchedSecret;
  generation: number;
}
declare module 'fastify' {
  interface FastifyRequest {
    /** The request's key verification until its outcome is counted (countKeyUse); null otherwise. */
    keyUse: KeyUse | null;
  }
}

/**
 * Refusals of a key that passed verification which SPEC §12's outcomes do not name (another tier's
 * route, another organization, an owner-only route) are counted as insufficient_scope: the key
 * lacks the authority the route needs, as the audit records them (auth.insufficient_scope).
 */
const COUNTED_AS_SCOPE = new Set(['wrong_key_tier', 'organization_mismatch', 'forbidden']);

/**
 * Counts the request's key verification with its final outcome: the verifier's, or the route's
 * (ok, insufficient_scope, api_key_quarantined), decided in `authorize`. Any refusal thrown there as
 * an AppError is counted here, once per request; nothing else needs to call services.usage.record.
 */
function countKeyUse(request: FastifyRequest, code: string, services: Services): void {
  const use = request.keyUse;
  if (!use) return;
  request.keyUse = null;
  const outcome = isUsageOutcome(code) ? code : COUNTED_AS_SCOPE.has(code) ? 'insufficient_scope' : null;
  if (outcome) services.usage.record(use.keyId, use.secret, outcome, request.ip, request.headers['user-agent'], use.generation);
}

/**
 * The principal of a verified key, or its refusal: returned at once, or (when the refusal is recorded
 * first) a promise that rejects with it.
 */
function keyPrincipal(request: FastifyRequest, reply: FastifyReply, outcome: VerifyOutcome, services: Services): Principal | AppError | Promise<never> {
  if (outcome.ok) request.keyUse = { keyId: outcome.key.id, secret: outcome.secret, generation: outcome.key.rotatedAt ? outcome.key.rotatedAt.getTime() : 0 };
  else if (outcome.keyId) request.keyUse = { keyId: outcome.keyId, secret: outcome.secret ?? null, generation: outcome.generation ?? -1 };
  services.metrics.countVerification(outcome.ok ? 'ok' : outcome.code);
  // A key with a rate limit says where it stands on every answer, refusals after this point included
  // (RateLimit-* as the IETF httpapi draft names them; Reset in seconds). Keys without one send none.
  if (outcome.rateLimit) {
    reply.header('ratelimit-limit', outcome.rateLimit.limit);
    reply.header('ratelimit-remaining', outcome.rateLimit.remaining);
    reply.header('ratelimit-reset', outcome.rateLimit.resetSeconds);
  }
  if (outcome.ok) return { type: 'api_key', key: outcome.key, scopes: outcome.scopes };
  if (outcome.code === 'invalid_api_key') services.audit.noteInvalidApiKey(request.ip, request.id);
  // The secret matched, so someone holds a revoked or expired key, or uses one from outside its
  // allowlist: worth a record, once per key, code and minute (audit/bursts.ts).
  if (outcome.code === 'api_key_revoked' || outcome.code === 'api_key_expired' || outcome.code === 'ip_not_allowed') {
    const code = outcome.code;
    return services.audit.noteRefusal(
      `api_key:${outcome.keyId}|${outcome.code}`,
      {
        action: 'auth.api_key_refused',
        actor: { type: 'api_key', id: outcome.keyId ?? null },
        organizationId: outcome.organizationId ?? null,
        target: outcome.keyId ? { type: 'api_key', id: outcome.keyId } : null,
        ip: request.ip,
        requestId: request.id,
        details: { code: outcome.code, ...where(request) },
      },
      { field: 'routes', value: `${request.method} ${request.routeOptions.url}` },
    ).then(() => {
      throw plainRefusal(code);
    });
  }
  if (outcome.code === 'rate_limited') {
    const retry = String(outcome.retryAfterSeconds ?? 1);
    return new AppError('rate_limited', `This key's rate limit is exhausted; retry in ${retry} s`, { headers: { 'Retry-After': retry } });
  }
  return plainRefusal(outcome.code);
}

/**
 * One frozen error per refusal code that carries nothing of the request (invalid_api_key for every
 * forged token, ...): thrown by the thousand under attack, made once.
 */
const plainRefusals = new Map<VerifyFailure, AppError>();
function plainRefusal(code: VerifyFailure): AppError {
  let error = plainRefusals.get(code);
  if (!error) {
    error = new AppError(code);
    plainRefusals.set(code, Object.freeze(error));
  }
  return error;
}

function context(request: FastifyRequest, principal: Principal, grantable: ScopeSet | null): RequestContext {
  if (principal.type === 'api_key') {
    const { key } = principal;
    return {
      actor: { type: 'api_key', id: key.id },
      ip: request.ip,
      requestId: request.id,
      grantable,
      // Keys this key creates or changes may be no looser than it is (SPEC §3; keys/service.ts).
      restrictions: { expiresAt: key.expiresAt, allowedIps: key.allowedIps, rateLimit: key.rateLimit },
    };
  }
  return { actor: { type: 'user', id: principal.session.userId }, ip: request.ip, requestId: request.id, grantable };
}

function routeOrgId(request: FastifyRequest): string | undefined {
  return (request.params as { orgId?: string } | undefined)?.orgId;
}

/** A refusal returned by keyPrincipal, thrown where a promise carries it. */
function principalOrThrow(principal: Principal | AppError | Promise<never>): Principal | Promise<never> {
  if (principal instanceof AppError) throw principal;
  return principal;
}

function authorize(request: FastifyRequest, reply: FastifyReply, requirement: AuthRequirement, services: Services): AuthState | AppError | Promise<AuthState> {
  const principal = authenticate(request, reply, services);
  if (principal instanceof AppError) return principal;
  if (principal instanceof Promise) return principal.then((known) => authorizePrincipal(request, requirement, known, services));
  return authorizePrincipal(request, requirement, principal, services);
}

function authorizePrincipal(request: FastifyRequest, requirement: AuthRequirement, principal: Principal, services: Services): AuthState | Promise<AuthState> {
  return (principal.type === 'api_key' && admitKey(request, requirement, principal)) || authorizeFully(request, requirement, principal, services);
}

/** The state of a request made with a key, acting in `organizationId`. */
function keyState(request: FastifyRequest, principal: KeyPrincipal, organizationId: string | null): AuthState {
  return { principal, organizationId, scopes: principal.scopes, ctx: context(request, principal, principal.scopes) };
}

/**
 * The common case, decided without a promise: a key on a route it plainly may call (its tier, its
 * organization, a scope it holds, not a write while quarantined). Anything to refuse or to record
 * returns null and goes the full way (authorizeFully), which decides these cases the same way.
 */
function admitKey(request: FastifyRequest, requirement: AuthRequirement, principal: KeyPrincipal): AuthState | null {
  const key = principal.key;
  switch (requirement.kind) {
    case 'any':
      return keyState(request, principal, key.organizationId);
    case 'organization': {
      if (key.tier !== 'organization' || !principal.scopes.has(requirement.scope)) return null;
      if (key.quarantinedAt && !requirement.scope.endsWith(':read')) return null;
      const header = request.headers['x-organization-id'];
      const fromRoute = routeOrgId(request);
      if ((header !== undefined && header !== key.organizationId) || (fromRoute !== undefined && fromRoute !== key.organizationId)) return null;
      return keyState(request, principal, key.organizationId);
    }
    case 'system':
      if (key.tier !== 'system' || !principal.scopes.has(requirement.scope)) return null;
      if (key.quarantinedAt && !requirement.scope.endsWith(':read')) return null;
      return keyState(request, principal, null);
    default:
      return null;
  }
}

/** Every case: sessions (CSRF, membership, admin access), and every refusal with its record. */
async function authorizeFully(request: FastifyRequest, requirement: AuthRequirement, principal: Principal, services: Services): Promise<AuthState> {
  // CSRF check, only for cookie-borne sessions: a Bearer header is not sent by browsers on their own.
  // The header must echo the csrf cookie and be the token of this very session (an HMAC of its id),
  // so a cookie and header pair an attacker planted does not pass (auth/csrf.ts).
  if (principal.type === 'user' && principal.viaCookie && !SAFE_METHODS.has(request.method)) {
    const sent = request.headers['x-csrf-token'];
    const expected = cookiesOf(request)[CSRF_COOKIE];
    if (typeof sent !== 'string' || !expected || !safeEqual(sent, expected) || !services.sessions.csrf.verify(principal.session.sessionId, sent)) {
      // A forged cross-site request, or a client that lost its token: recorded, in the route's
      // organization when the user is a member there.
      const orgId = routeOrgId(request);
      await refuse(request, principal, orgId && principal.session.roles.has(orgId) ? orgId : null, 'auth.csrf_failed', 'csrf_failed', services);
      throw new AppError('csrf_failed', 'Send the X-CSRF-Token header with the value of the csrf cookie');
    }
  }

  switch (requirement.kind) {
    case 'any': {
      if (principal.type === 'api_key') return keyState(request, principal, principal.key.organizationId);
      return { principal, organizationId: null, scopes: EMPTY, ctx: context(request, principal, null) };
    }
    case 'session': {
      if (principal.type !== 'user') throw new AppError('forbidden', 'This route is for admin sessions, not API keys');
      return { principal, organizationId: null, scopes: EMPTY, ctx: context(request, principal, null) };
    }
    case 'organization':
    case 'organization_owner':
      return authorizeOrganization(request, requirement, principal, services);
    case 'system':
    case 'global_admin': {
      if (principal.type === 'api_key') {
        if (principal.key.tier !== 'system') {
          await refuse(request, principal, principal.key.organizationId, 'auth.insufficient_scope', 'wrong_key_tier', services, { reason: 'system route' });
          throw new AppError('wrong_key_tier', 'Organization API keys cannot call system routes');
        }
        if (requirement.kind === 'global_admin') {
          await refuse(request, principal, null, 'auth.insufficient_scope', 'forbidden', services, { reason: 'global-admin session required' });
          throw new AppError('forbidden', 'System API keys are managed by global-admin sessions only');
        }
        if (!principal.scopes.has(requirement.scope)) await refuseScope(request, principal, null, requirement.scope, services);
        if (principal.key.quarantinedAt) await checkQuarantine(request, principal.key, requirement.scope, services);
        return keyState(request, principal, null);
      }
      if (!principal.session.isGlobalAdmin) {
        await refuse(request, principal, null, 'auth.insufficient_scope', 'forbidden', services, { reason: 'global admin required' });
        throw new AppError('forbidden', 'System routes need a global admin');
      }
      return { principal, organizationId: null, scopes: ALL_SYSTEM_SCOPES, ctx: context(request, principal, null) };
    }
    default:
      throw new Error(`unknown auth requirement ${(requirement as { kind: string }).kind}`);
  }
}

async function authorizeOrganization(
  request: FastifyRequest,
  requirement: Extract<AuthRequirement, { kind: 'organization' | 'organization_owner' }>,
  principal: Principal,
  services: Services,
): Promise<AuthState> {
  const fromRoute = routeOrgId(request);
  if (principal.type === 'api_key') {
    const key = principal.key;
    if (key.tier !== 'organization') {
      await refuse(request, principal, null, 'auth.insufficient_scope', 'wrong_key_tier', services, { reason: 'organization route' });
      throw new AppError('wrong_key_tier', 'System API keys carry no organization scopes');
    }
    // The organization is the key's. A different one named by header or route is an attempt to cross tenants.
    const header = request.headers['x-organization-id'];
    const named = [typeof header === 'string' ? header : undefined, fromRoute].find((o) => o !== undefined && o !== key.organizationId);
    if (named !== undefined) {
      const requested = named.slice(0, 64);
      await refuse(request, principal, key.organizationId, 'auth.organization_mismatch', 'organization_mismatch', services, { requestedOrganizationId: requested }, { field: 'requestedOrganizationIds', value: requested });
      // The probed organization hears of it too (its owners are the ones attacked). The answer is the
      // same whether or not it exists; only an id that can name an organization is looked up.
      if (await services.organizations.isActive(requested)) {
        await refuse(request, principal, requested, 'auth.organization_mismatch', 'organization_mismatch', services, { keyOrganizationId: key.organizationId, probed: true });
      }
      throw new AppError('organization_mismatch', 'This API key belongs to another organization');
    }
    if (requirement.kind === 'organization_owner') {
      await refuse(request, principal, key.organizationId, 'auth.insufficient_scope', 'forbidden', services, { reason: 'owner session required' });
      throw new AppError('forbidden', 'Members are managed by organization owners in the admin panel');
    }
    if (!principal.scopes.has(requirement.scope)) await refuseScope(request, principal, key.organizationId, requirement.scope, services);
    if (key.quarantinedAt) await checkQuarantine(request, key, requirement.scope, services);
    return keyState(request, principal, key.organizationId);
  }

  const session = principal.session;
  const organizationId = fromRoute ?? cookiesOf(request)[SELECTED_ORGANIZATION_COOKIE];
  if (!organizationId) throw new AppError('organization_required', 'Name the organization in the route or select one (PUT /v1/auth/selected-organization)');
  const role = session.roles.get(organizationId);
  if (!role && !session.isGlobalAdmin) {
    // The session analogue of an organization key naming another organization: recorded in the
    // probed organization when it exists (else in the system-wide log); the answer is the same.
    const probed = (await services.organizations.isActive(organizationId)) ? organizationId : null;
    await refuse(request, principal, probed, 'auth.organization_mismatch', 'forbidden', services, { requestedOrganizationId: organizationId.slice(0, 64) }, probed ? undefined : { field: 'requestedOrganizationIds', value: organizationId.slice(0, 64) });
    throw new AppError('forbidden', 'You are not a member of this organization');
  }
  if (!(await services.organizations.isActive(organizationId))) {
    throw role ? new AppError('forbidden', 'This organization no longer exists') : new AppError('not_found', 'No such organization');
  }
  const scopes = session.isGlobalAdmin ? ALL_ORGANIZATION_SCOPES : new ScopeSet(roleScopes(role!));
  if (requirement.kind === 'organization_owner') {
    if (role !== 'owner' && !session.isGlobalAdmin) {
      await refuse(request, principal, organizationId, 'auth.insufficient_scope', 'forbidden', services, { reason: 'owner required', role });
      throw new AppError('forbidden', 'Only owners manage members');
    }
  } else if (!scopes.has(requirement.scope)) {
    await refuseScope(request, principal, organizationId, requirement.scope, services);
  }
  if (session.isGlobalAdmin) await recordAdminAccess(request, session, organizationId, role ?? null, services);
  return { principal, organizationId, scopes, ctx: context(request, principal, session.isGlobalAdmin ? null : scopes) };
}

/**
 * A global admin inside an organization (SPEC §3, §15): every request, read or change, member of
 * that organization or not, is audited as `admin.accessed` with its method, route and organization.
 * A global admin holds every organization scope wherever they act and grants without limit, so
 * membership does not tell which requests used the global power: all of them are recorded.
 *
 * Recorded before the request is let in, in its own unit of work, and awaited: when it cannot be
 * written the request fails (503 or 500) and nothing is read or changed. This hook cannot know which
 * units of work a handler will run (none, one, several), so "before" is what makes the record
 * impossible to skip for any route; an attempt that fails later still leaves its record, and the
 * change's own event carries the same requestId. One event per request, not aggregated like
 * invalid_api_key bursts: those come from anyone at attacker-chosen rates, these need a valid
 * global-admin session, are few, and each says which tenant's data was touched and when.
 */
async function recordAdminAccess(
  request: FastifyRequest,
  session: SessionPrincipal,
  organizationId: string,
  role: string | null,
  services: Services,
): Promise<void> {
  const { orgId: _orgId, ...params } = (request.params ?? {}) as Record<string, unknown>;
  await services.work.run(async (tx) =>
    tx.audit({
      action: 'admin.accessed',
      actor: { type: 'user', id: session.userId },
      organizationId,
      target: { type: 'organization', id: organizationId },
      ip: request.ip,
      requestId: request.id,
      details: {
        method: request.method,
        route: request.routeOptions.url,
        // Which object, when the route names one; the organization's own role of the admin, if any.
        params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v).slice(0, 64)])),
        membership: role,
      },
    }),
  );
}

/** The method and route pattern of a request, as refusals record them. */
function where(request: FastifyRequest): { method: string; route: string } {
  return { method: request.method, route: request.routeOptions.url ?? request.url.split('?')[0]!.slice(0, 200) };
}

const actorOf = (principal: Principal) =>
  principal.type === 'api_key' ? { type: 'api_key' as const, id: principal.key.id } : { type: 'user' as const, id: principal.session.userId };

/**
 * Records a refusal of the auth layer (SPEC §9), aggregated per principal, organization, route and
 * code and minute (AuditService.noteRefusal): the first is written before the answer, a loop adds one
 * event a minute with the count. `details.code` is the error code answered.
 */
async function refuse(
  request: FastifyRequest,
  principal: Principal,
  organizationId: string | null,
  action: 'auth.insufficient_scope' | 'auth.organization_mismatch' | 'auth.csrf_failed',
  code: string,
  services: Services,
  details: Record<string, unknown> = {},
  sample?: { field: string; value: unknown },
): Promise<void> {
  const actor = actorOf(principal);
  const at = where(request);
  await services.audit.noteRefusal(
    `${actor.type}:${actor.id}|${organizationId}|${action}|${code}|${at.method} ${at.route}`,
    { action, actor, organizationId, ip: request.ip, requestId: request.id, details: { code, ...at, ...details } },
    sample,
  );
}

/**
 * A quarantined key (SPEC §13: reported leaked, quarantined rather than revoked) passes verification
 * and may still read: routes whose scope is a `:read` scope, and whoami (no scope). Anything else is
 * `403 api_key_quarantined`, after the scope check (SPEC §4's order), and recorded once per key and
 * minute like other refusals of a key whose secret matched. The verifier's cached record carries
 * `quarantinedAt`, dropped on every node by the containment's invalidation (src/leaks/service.ts).
 */
async function checkQuarantine(request: FastifyRequest, key: Extract<Principal, { type: 'api_key' }>['key'], scope: string, services: Services): Promise<void> {
  if (scope.endsWith(':read')) return;
  await services.audit.noteRefusal(
    `api_key:${key.id}|api_key_quarantined`,
    {
      action: 'auth.api_key_refused',
      actor: { type: 'api_key', id: key.id },
      organizationId: key.organizationId,
      target: { type: 'api_key', id: key.id },
      ip: request.ip,
      requestId: request.id,
      details: { code: 'api_key_quarantined', requiredScope: scope, ...where(request) },
    },
    { field: 'routes', value: `${request.method} ${request.routeOptions.url}` },
  );
  throw new AppError('api_key_quarantined', 'This API key was reported leaked and is quarantined: it may only read until it is rotated or revoked');
}

/** A route's scope the credential lacks: aggregated per principal, organization and scope (not route). */
async function refuseScope(request: FastifyRequest, principal: Principal, organizationId: string | null, scope: string, services: Services): Promise<never> {
  const actor = actorOf(principal);
  const at = where(request);
  await services.audit.noteRefusal(
    `${actor.type}:${actor.id}|${organizationId}|auth.insufficient_scope|scope:${scope}`,
    { action: 'auth.insufficient_scope', actor, organizationId, ip: request.ip, requestId: request.id, details: { requiredScope: scope, ...at } },
    { field: 'routes', value: `${at.method} ${at.route}` },
  );
  throw insufficientScope(scope);
}
