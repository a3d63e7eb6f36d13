/**
 * The scope catalogue, presets and role permissions as the panel shows them. They mirror
 * src/scopes/catalog.ts and docs/scopes.md (SPEC §3); the server remains the judge of every request.
 */
import type { Role, Tier } from './api';

export const ACTIONS = ['create', 'read', 'update', 'delete', 'execute', '*'] as const;

export const RESOURCES: Record<Tier, readonly string[]> = {
  organization: ['checkout', 'transaction', 'invoice', 'client', 'data_io', 'portal', 'organization', 'api_key', 'audit'],
  system: ['organization', 'system_settings', 'health', 'audit'],
};

export interface Preset {
  name: string;
  scopes: string[];
}

/** Least-privilege presets of docs/scopes.md, for organization keys. */
export const PRESETS: Preset[] = [
  { name: 'Create checkout links', scopes: ['checkout:create'] },
  { name: 'Website billing bridge auto-provisioning', scopes: ['client:read', 'client:create', 'invoice:read', 'invoice:create'] },
  { name: 'Recurring schedule management', scopes: ['invoice:read', 'invoice:create', 'invoice:execute'] },
  { name: 'Background customer portal direct-login links', scopes: ['portal:create'] },
];

/** Scopes a role holds in its organization (SPEC §3). A global admin acts as an owner everywhere. */
export function roleScopes(role: Role): string[] {
  const reads = RESOURCES.organization.map((r) => `${r}:read`);
  switch (role) {
    case 'owner':
    case 'admin':
      return RESOURCES.organization.map((r) => `${r}:*`);
    case 'developer':
      return ['api_key:*', ...reads.filter((s) => s !== 'api_key:read')];
    case 'viewer':
      return reads.filter((s) => s !== 'api_key:read' && s !== 'audit:read');
  }
}

export function grants(scopes: readonly string[], scope: string): boolean {
  const [resource] = scope.split(':');
  return scopes.includes(scope) || scopes.includes(`${resource}:*`);
}

export interface Permissions {
  role: Role | null;
  isGlobalAdmin: boolean;
  can: (scope: string) => boolean;
  /** Members are managed by owners (and global admins), not by a scope. */
  manageMembers: boolean;
}

export function permissionsFor(role: Role | null, isGlobalAdmin: boolean): Permissions {
  const scopes = isGlobalAdmin ? roleScopes('owner') : role ? roleScopes(role) : [];
  return {
    role,
    isGlobalAdmin,
    can: (scope) => grants(scopes, scope),
    manageMembers: isGlobalAdmin || role === 'owner',
  };
}

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
  'session.created',
  'session.ended',
  'login.failed',
  'member.added',
  'member.updated',
  'member.removed',
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
  'auth.invalid_api_key',
  'auth.insufficient_scope',
  'auth.organization_mismatch',
] as const;
