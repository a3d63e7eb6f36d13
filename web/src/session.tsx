/**
 * The signed-in user, the organizations they can choose, the selected organization and the
 * permissions that follow from their role there (SPEC §3). Pages read it through useSession().
 */
import { createContext, useContext } from 'react';
import type { Me, Role } from './api';
import type { Permissions } from './scopes';

export interface OrganizationOption {
  id: string;
  name: string;
  role: Role | null;
}

export interface SessionState {
  me: Me;
  organizations: OrganizationOption[];
  selectedOrganization: OrganizationOption | null;
  permissions: Permissions;
  selectOrganization: (organizationId: string) => Promise<void>;
  /** Reloads /v1/auth/me and, for global admins, the organization list (after renames, provisioning). */
  refresh: () => Promise<void>;
  signOut: () => Promise<void>;
}

export const SessionContext = createContext<SessionState | null>(null);

export function useSession(): SessionState {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside the signed-in shell');
  return session;
}
