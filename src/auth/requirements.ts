/** What a route demands of its caller. Every /v1 route declares one in its route config. */
import type { ScopeSet } from '../scopes/check.js';
import type { ApiKeyRecord } from '../keys/store.js';
import type { SessionPrincipal } from './sessions.js';
import type { RequestContext } from './context.js';

export type AuthRequirement =
  /** No credential needed (login, health probes). */
  | { kind: 'public' }
  /** Any valid credential, no scope (whoami). */
  | { kind: 'any' }
  /** An admin session of any user (me, logout, selected organization). */
  | { kind: 'session' }
  /** Organization-scoped: organization keys and admin sessions, with this scope. */
  | { kind: 'organization'; scope: string }
  /** Organization-scoped and owner-only (members): owners and global admins, via sessions. */
  | { kind: 'organization_owner' }
  /** System routes: system keys and global-admin sessions, with this system scope. */
  | { kind: 'system'; scope: string }
  /** System key management: global-admin sessions alone. */
  | { kind: 'global_admin' };

export type Principal =
  | { type: 'api_key'; key: ApiKeyRecord; scopes: ScopeSet }
  | { type: 'user'; session: SessionPrincipal; viaCookie: boolean };

export interface AuthState {
  principal: Principal;
  /** The organization the request acts in, for organization-scoped routes. */
  organizationId: string | null;
  /** Scopes held where the request acts. */
  scopes: ScopeSet;
  ctx: RequestContext;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthRequirement;
  }
  interface FastifyRequest {
    auth: AuthState | null;
  }
}
