/** Audit action names of SPEC §9: `noun.verb`, past tense. The `action` filter accepts exactly these. */
export const AUDIT_ACTIONS = [
  'api_key.created',
  'api_key.updated',
  'api_key.rotated',
  'api_key.revoked',
  'api_key.deleted',
  'system_key.created',
  'system_key.updated',
  'system_key.rotated',
  'system_key.revoked',
  'system_key.deleted',
  // A key's token reported leaked (SPEC §13, src/leaks/), of either tier; actor system, the report's
  // source and url in details, never the token. Quarantine is recorded as its own event.
  'api_key.leaked',
  'api_key.quarantined',
  'session.created',
  'session.ended',
  'login.failed',
  'member.added',
  'member.updated',
  'member.removed',
  'invitation.created',
  'invitation.accepted',
  'invitation.cancelled',
  'password_reset.requested',
  'password_reset.completed',
  'organization.created',
  'organization.updated',
  'organization.deleted',
  'system_settings.updated',
  'portal_link.created',
  'portal_link.redeemed',
  'refund.created',
  'data_io.export_started',
  'data_io.import_started',
  'audit.read',
  // Webhook endpoints (SPEC §16); an endpoint disabled after 3 days of failed deliveries is
  // `webhook_endpoint.updated` by the system actor. The signing secret is never in an event.
  'webhook_endpoint.created',
  'webhook_endpoint.updated',
  'webhook_endpoint.deleted',
  'webhook_endpoint.secret_rotated',
  // A global admin's request inside an organization (SPEC §3, §15): method, route, organization.
  'admin.accessed',
  'auth.invalid_api_key',
  'auth.insufficient_scope',
  'auth.organization_mismatch',
  // Beyond SPEC §9's list (docs/security.md, "What is audited"): a key whose secret matched but which
  // is revoked, expired or used from outside its allowlist; a cookie session's request without its
  // CSRF token; a global admin made or promoted.
  'auth.api_key_refused',
  'auth.csrf_failed',
  'user.global_admin_granted',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export type ActorType = 'user' | 'api_key' | 'system';

export interface Actor {
  type: ActorType;
  id: string | null;
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: null };

export interface AuditInput {
  action: AuditAction;
  actor: Actor;
  organizationId: string | null;
  target?: { type: string; id: string } | null;
  ip?: string | null;
  requestId?: string | null;
  outcome?: 'success' | 'failure' | 'denied';
  details?: Record<string, unknown>;
}

export interface AuditEvent {
  id: string;
  object: 'audit_event';
  at: string;
  action: AuditAction;
  actor: Actor;
  organizationId: string | null;
  target: { type: string; id: string } | null;
  ip: string | null;
  requestId: string | null;
  outcome: string;
  details: Record<string, unknown>;
}
