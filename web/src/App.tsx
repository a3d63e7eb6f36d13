/**
 * The shell: sign-in when there is no session; otherwise the banner (organization switcher, sign
 * out), the main navigation and the page for the current path.
 */
import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, request, setSessionLostHandler, type ListPage, type Me, type Organization } from './api';
import { Link, navigate, usePath } from './router';
import { SessionContext, useSession, type OrganizationOption, type SessionState } from './session';
import { permissionsFor } from './scopes';
import { ErrorAlert, Loading } from './components/Feedback';
import { usePageTitle } from './hooks';
import { SignInPage } from './pages/SignIn';
import { KeysPage } from './pages/Keys';
import { KeyDetailPage } from './pages/KeyDetail';
import { UsagePage } from './pages/Usage';
import { ReportsPage } from './pages/Reports';
import { MembersPage } from './pages/Members';
import { OrganizationSettingsPage } from './pages/OrganizationSettings';
import { WebhooksPage } from './pages/Webhooks';
import { AuditLogPage } from './pages/AuditLog';
import { SystemOrganizationsPage } from './pages/SystemOrganizations';
import { SystemSettingsPage } from './pages/SystemSettings';
import { HealthPage } from './pages/Health';
import { AcceptInvitationPage } from './pages/AcceptInvitation';
import { ResetPasswordPage } from './pages/ResetPassword';

type Phase = { kind: 'loading' } | { kind: 'signed-out'; notice: string | null } | { kind: 'signed-in'; me: Me; organizations: OrganizationOption[] };

/** Every organization a global admin may act in (all pages of GET /v1/system/organizations). */
async function loadAllOrganizations(): Promise<Organization[]> {
  const all: Organization[] = [];
  let startingAfter: string | undefined;
  for (let page = 0; page < 50; page++) {
    const result = await api.get<ListPage<Organization>>('/v1/system/organizations', { limit: 100, startingAfter });
    all.push(...result.data);
    const last = result.data[result.data.length - 1];
    if (!result.hasMore || !last) break;
    startingAfter = last.id;
  }
  return all.filter((o) => o.status === 'active');
}

async function loadSession(): Promise<{ me: Me; organizations: OrganizationOption[] }> {
  let me = await request<Me>('GET', '/v1/auth/me', { quiet401: true });
  // A member of exactly one organization has nothing to choose: select it (login itself selects
  // none, SPEC §7), before the shell first renders, so no page shows "Choose an organization".
  const only = me.memberships.length === 1 ? me.memberships[0] : undefined;
  if (only && !me.selectedOrganization) {
    try {
      const result = await api.put<{ selectedOrganization: Me['selectedOrganization'] }>('/v1/auth/selected-organization', {
        organizationId: only.organizationId,
      });
      me = { ...me, selectedOrganization: result.selectedOrganization };
    } catch {
      // Left unselected, the person can still choose it in the top bar (where an error shows).
    }
  }
  const options = new Map<string, OrganizationOption>();
  for (const m of me.memberships) options.set(m.organizationId, { id: m.organizationId, name: m.organizationName, role: m.role });
  if (me.user.isGlobalAdmin) {
    for (const o of await loadAllOrganizations()) if (!options.has(o.id)) options.set(o.id, { id: o.id, name: o.name, role: null });
  }
  const organizations = [...options.values()].sort((a, b) => a.name.localeCompare(b.name));
  return { me, organizations };
}

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' });
  const path = usePath();

  const load = useCallback(async (notice: string | null = null) => {
    try {
      const { me, organizations } = await loadSession();
      setPhase({ kind: 'signed-in', me, organizations });
    } catch {
      setPhase({ kind: 'signed-out', notice });
    }
  }, []);

  useEffect(() => {
    void load();
    setSessionLostHandler(() => setPhase({ kind: 'signed-out', notice: 'Your session has ended. Sign in again.' }));
    return () => setSessionLostHandler(null);
  }, [load]);

  // Invitation and reset links work whether or not someone is signed in on this browser.
  if (path === '/accept-invitation') return <AcceptInvitationPage />;
  if (path === '/reset-password') return <ResetPasswordPage />;
  if (phase.kind === 'loading') {
    return (
      <div className="centered">
        <Loading />
      </div>
    );
  }
  if (phase.kind === 'signed-out') {
    return (
      <SignInPage
        notice={phase.notice}
        onSignedIn={async () => {
          const { me, organizations } = await loadSession();
          setPhase({ kind: 'signed-in', me, organizations });
        }}
      />
    );
  }
  return (
    <SignedIn
      me={phase.me}
      organizations={phase.organizations}
      onChange={(me, organizations) => setPhase({ kind: 'signed-in', me, organizations })}
      onSignedOut={() => setPhase({ kind: 'signed-out', notice: null })}
    />
  );
}

interface SignedInProps {
  me: Me;
  organizations: OrganizationOption[];
  onChange: (me: Me, organizations: OrganizationOption[]) => void;
  onSignedOut: () => void;
}

function SignedIn({ me, organizations, onChange, onSignedOut }: SignedInProps) {
  const selectedId = me.selectedOrganization?.id ?? null;
  const selected = useMemo<OrganizationOption | null>(() => {
    if (!selectedId) return null;
    return (
      organizations.find((o) => o.id === selectedId) ?? {
        id: selectedId,
        name: me.selectedOrganization?.name ?? selectedId,
        role: me.selectedOrganization?.role ?? null,
      }
    );
  }, [selectedId, organizations, me.selectedOrganization]);

  const session = useMemo<SessionState>(
    () => ({
      me,
      organizations,
      selectedOrganization: selected,
      permissions: permissionsFor(selected?.role ?? null, me.user.isGlobalAdmin),
      selectOrganization: async (organizationId) => {
        const result = await api.put<{ selectedOrganization: Me['selectedOrganization'] }>('/v1/auth/selected-organization', { organizationId });
        onChange({ ...me, selectedOrganization: result.selectedOrganization }, organizations);
      },
      refresh: async () => {
        const next = await loadSession();
        onChange(next.me, next.organizations);
      },
      signOut: async () => {
        try {
          await api.post('/v1/auth/logout');
        } finally {
          onSignedOut();
        }
      },
    }),
    [me, organizations, selected, onChange, onSignedOut],
  );

  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  );
}

function Shell() {
  const session = useSession();
  const path = usePath();
  const [menuOpen, setMenuOpen] = useState(false);
  const [switchError, setSwitchError] = useState<string | null>(null);
  const isGlobalAdmin = session.me.user.isGlobalAdmin;

  useEffect(() => {
    if (path === '/') navigate('/keys', { replace: true });
    setMenuOpen(false);
  }, [path]);

  const links: { to: string; label: string }[] = [
    { to: '/keys', label: 'API keys' },
    { to: '/usage', label: 'Usage' },
    { to: '/members', label: 'Members' },
    { to: '/organization', label: 'Organization settings' },
    { to: '/webhooks', label: 'Webhooks' },
    { to: '/audit', label: 'Audit log' },
  ];
  const systemLinks: { to: string; label: string }[] = isGlobalAdmin
    ? [
        { to: '/system/organizations', label: 'Organizations' },
        { to: '/system/keys', label: 'System API keys' },
        { to: '/system/reports', label: 'Reports' },
        { to: '/system/settings', label: 'System settings' },
        { to: '/system/health', label: 'Health' },
      ]
    : [];

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="topbar-start">
          <button
            type="button"
            className="button button-ghost menu-button"
            aria-expanded={menuOpen}
            aria-controls="main-nav"
            onClick={() => setMenuOpen((open) => !open)}
          >
            Menu
          </button>
          <span className="brand">
            <span className="brand-mark" aria-hidden="true">
              P
            </span>
            Paygate <span className="brand-sub">admin</span>
          </span>
        </div>
        <div className="topbar-end">
          <div className="org-switcher">
            <label htmlFor="organization-select">Organization</label>
            <select
              id="organization-select"
              value={session.selectedOrganization?.id ?? ''}
              onChange={(event) => {
                const id = event.target.value;
                if (!id) return;
                setSwitchError(null);
                session.selectOrganization(id).catch((error: unknown) => setSwitchError(error instanceof Error ? error.message : String(error)));
              }}
            >
              {!session.selectedOrganization && (
                <option value="" disabled>
                  No organization selected
                </option>
              )}
              {session.organizations.map((o) => (
                <option key={o.id} value={o.id}>
                  {o.name}
                </option>
              ))}
            </select>
          </div>
          <span className="user-email" title={session.me.user.email}>
            <span className="user-email-text">{session.me.user.email}</span>
            {isGlobalAdmin && <span className="badge badge-neutral">global admin</span>}
          </span>
          <button type="button" className="button button-secondary" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      {switchError && (
        <div role="alert" className="alert alert-error banner-alert">
          {switchError}
        </div>
      )}
      <div className="layout">
        <nav
          aria-label="Main"
          id="main-nav"
          className={menuOpen ? 'sidenav open' : 'sidenav'}
          // Any link closes the menu, including the link of the page already shown.
          onClick={(event) => {
            if ((event.target as HTMLElement).closest('a')) setMenuOpen(false);
          }}
        >
          <p className="nav-heading">Organization</p>
          <ul>
            {links.map((l) => (
              <li key={l.to}>
                <Link to={l.to}>{l.label}</Link>
              </li>
            ))}
          </ul>
          {systemLinks.length > 0 && (
            <>
              <p className="nav-heading">System</p>
              <ul>
                {systemLinks.map((l) => (
                  <li key={l.to}>
                    <Link to={l.to}>{l.label}</Link>
                  </li>
                ))}
              </ul>
            </>
          )}
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          <Page path={path} />
        </main>
      </div>
    </div>
  );
}

/** Organization pages need a selected organization; they remount when it changes, reloading their data. */
function OrganizationPage({ render }: { render: (organizationId: string) => ReactNode }) {
  const { selectedOrganization } = useSession();
  if (!selectedOrganization) return <ChooseOrganization />;
  return <div key={selectedOrganization.id}>{render(selectedOrganization.id)}</div>;
}

/** What an organization page shows before one is chosen: the choices, or why there are none. */
function ChooseOrganization() {
  const session = useSession();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  usePageTitle('Choose an organization');
  const choose = async (organizationId: string) => {
    setBusy(true);
    setError(null);
    try {
      await session.selectOrganization(organizationId);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  if (session.organizations.length === 0) {
    return (
      <>
        <h1 tabIndex={-1}>No organization yet</h1>
        {session.me.user.isGlobalAdmin ? (
          <p>
            No organization exists yet. <Link to="/system/organizations">Provision one</Link> to manage its keys and members.
          </p>
        ) : (
          <p>You are not a member of any organization. Ask an owner of one to invite you.</p>
        )}
      </>
    );
  }
  return (
    <>
      <h1 tabIndex={-1}>Choose an organization</h1>
      <p>Pick the organization to work in; you can switch at any time in the top bar.</p>
      <ErrorAlert error={error} />
      <ul className="organization-choices">
        {session.organizations.map((o) => (
          <li key={o.id}>
            <button type="button" className="button button-secondary" disabled={busy} onClick={() => void choose(o.id)}>
              {o.name}
              {o.role && <span className="muted"> · {o.role}</span>}
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}

function SystemPage({ children }: { children: ReactNode }) {
  const { me } = useSession();
  if (!me.user.isGlobalAdmin) {
    return (
      <>
        <h1 tabIndex={-1}>System</h1>
        <p>System pages are for global admins.</p>
      </>
    );
  }
  return <>{children}</>;
}

function Page({ path }: { path: string }) {
  const { selectedOrganization } = useSession();
  const orgKey = selectedOrganization?.id ?? 'none';
  // A key's page: /keys/<id> (the selected organization's key) or /system/keys/<id>.
  const keyPage = /^\/(system\/)?keys\/([^/]+)$/.exec(path);
  if (keyPage) {
    // Ids are [0-9A-Za-z]; anything else is passed on as typed and the API answers 404.
    const keyId = keyPage[2]!;
    if (keyPage[1]) {
      return (
        <SystemPage>
          <KeyDetailPage key={keyId} tier="system" organizationId={null} keyId={keyId} />
        </SystemPage>
      );
    }
    return <OrganizationPage key={orgKey} render={(id) => <KeyDetailPage key={keyId} tier="organization" organizationId={id} keyId={keyId} />} />;
  }
  switch (path) {
    case '/':
    case '/keys':
      return <OrganizationPage key={orgKey} render={(id) => <KeysPage tier="organization" organizationId={id} />} />;
    case '/members':
      return <OrganizationPage key={orgKey} render={(id) => <MembersPage organizationId={id} />} />;
    case '/organization':
      return <OrganizationPage key={orgKey} render={(id) => <OrganizationSettingsPage organizationId={id} />} />;
    case '/webhooks':
      return <OrganizationPage key={orgKey} render={(id) => <WebhooksPage organizationId={id} />} />;
    case '/audit':
      return <OrganizationPage key={orgKey} render={(id) => <AuditLogPage organizationId={id} />} />;
    case '/usage':
      return <OrganizationPage key={orgKey} render={(id) => <UsagePage organizationId={id} />} />;
    case '/system/organizations':
      return (
        <SystemPage>
          <SystemOrganizationsPage />
        </SystemPage>
      );
    case '/system/keys':
      return (
        <SystemPage>
          <KeysPage tier="system" organizationId={null} />
        </SystemPage>
      );
    case '/system/settings':
      return (
        <SystemPage>
          <SystemSettingsPage />
        </SystemPage>
      );
    case '/system/reports':
      return (
        <SystemPage>
          <ReportsPage />
        </SystemPage>
      );
    case '/system/health':
      return (
        <SystemPage>
          <HealthPage />
        </SystemPage>
      );
    default:
      return (
        <>
          <h1 tabIndex={-1}>Page not found</h1>
          <p>
            There is no page at this address. <Link to="/keys">Go to API keys</Link>.
          </p>
        </>
      );
  }
}
