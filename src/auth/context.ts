/** What a service call needs to know about who acts and from where: for rules and for audit. */
import type { Actor } from '../audit/events.js';
import type { ScopeSet } from '../scopes/check.js';

export interface RequestContext {
  actor: Actor;
  ip: string | null;
  requestId: string | null;
  /**
   * Scopes the actor holds where it acts; keys it creates or changes may hold no more than this.
   * null: no limit within the tier (a global admin, or Paygate itself at first start).
   */
  grantable: ScopeSet | null;
  /**
   * The restrictions of the API key that acts (SPEC §3): keys it creates or changes may be no looser.
   * Absent for sessions (members keep their role rules) and for Paygate itself.
   */
  restrictions?: KeyRestrictions;
}

/** An API key's own limits: expiry, address allowlist, rate limit (null: the key has none). */
export interface KeyRestrictions {
  expiresAt: Date | null;
  allowedIps: readonly string[] | null;
  rateLimit: { requests: number; windowSeconds: number } | null;
}

/** Paygate acting on its own behalf: CLI, first-start bootstrap, scheduled work. */
export function systemContext(requestId: string | null = null): RequestContext {
  return { actor: { type: 'system', id: null }, ip: null, requestId, grantable: null };
}
