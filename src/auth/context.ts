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
}

/** Paygate acting on its own behalf: CLI, first-start bootstrap, scheduled work. */
export function systemContext(requestId: string | null = null): RequestContext {
  return { actor: { type: 'system', id: null }, ip: null, requestId, grantable: null };
}
