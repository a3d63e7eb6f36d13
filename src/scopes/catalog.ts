/** The scope catalogue of SPEC §3: `resource:action`, per key tier. */
export const ACTIONS = ['create', 'read', 'update', 'delete', 'execute', '*'] as const;
export type Action = (typeof ACTIONS)[number];

export const ORGANIZATION_RESOURCES = [
  'checkout',
  'transaction',
  'invoice',
  'client',
  'data_io',
  'portal',
  'organization',
  'api_key',
  'audit',
  'webhook',
] as const;

export const SYSTEM_RESOURCES = ['organization', 'system_settings', 'health', 'audit'] as const;

export type Tier = 'organization' | 'system';
export type Scope = `${string}:${Action}`;

export const RESOURCES: Record<Tier, readonly string[]> = {
  organization: ORGANIZATION_RESOURCES,
  system: SYSTEM_RESOURCES,
};

/** Every concrete scope (no wildcards) of a tier, for pickers and role mapping. */
export function allScopes(tier: Tier): string[] {
  return RESOURCES[tier].flatMap((resource) =>
    ACTIONS.filter((a) => a !== '*').map((action) => `${resource}:${action}`),
  );
}

export const ROLES = ['owner', 'admin', 'developer', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Scopes each admin role holds in its organization (SPEC §3): owner and admin every organization
 * scope (owner also manages members, checked separately), developer `api_key:*` and every `:read`,
 * viewer every `:read` except api_key and audit.
 */
export function roleScopes(role: Role): string[] {
  const reads = ORGANIZATION_RESOURCES.map((r) => `${r}:read`);
  switch (role) {
    case 'owner':
    case 'admin':
      return ORGANIZATION_RESOURCES.map((r) => `${r}:*`);
    case 'developer':
      return [...new Set(['api_key:*', ...reads])];
    case 'viewer':
      return reads.filter((s) => s !== 'api_key:read' && s !== 'audit:read');
  }
}
