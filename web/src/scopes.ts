/**
 * The scope catalogue, presets and role permissions as the panel shows them, from the server's own
 * src/scopes/catalog.ts and docs/scopes.md (SPEC §3); the server remains the judge of every request.
 */
import type { Role } from './api';
// One source of truth: the server's own catalogue, bundled into the panel (both modules are pure).
import { ACTIONS, RESOURCES, roleScopes } from '../../src/scopes/catalog';
import { AUDIT_ACTIONS } from '../../src/audit/events';

export { ACTIONS, RESOURCES, roleScopes, AUDIT_ACTIONS };

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
