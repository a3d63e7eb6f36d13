/**
 * Members of the selected organization (/admin/members): owners and global admins invite, re-role
 * and remove members, and cancel invitations that were not accepted yet.
 */
import { useId, useState, type FormEvent } from 'react';
import { api, orgPath, type Invitation, type ListPage, type Member, type Role } from '../api';
import { Badge, Empty, ErrorAlert, Loading, StatusMessage, LoadMore } from '../components/Feedback';
import { formatDate } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

const ROLES: { value: Role; label: string }[] = [
  { value: 'owner', label: 'Owner' },
  { value: 'admin', label: 'Admin' },
  { value: 'developer', label: 'Developer' },
  { value: 'viewer', label: 'Viewer' },
];

type Entry = Member | Invitation;
const keyOf = (entry: Entry) => (entry.object === 'member' ? entry.userId : entry.id);

export function MembersPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Members');
  const { permissions, me, refresh } = useSession();
  const base = orgPath(organizationId, '/members');
  const [status, setStatus] = useState<string | null>(null);
  const [rowError, setRowError] = useState<unknown>(null);
  const [busyRow, setBusyRow] = useState<string | null>(null);
  const more = useAction();

  const list = useLoad(() =>
    permissions.manageMembers ? api.get<ListPage<Entry>>(base, { limit: 100 }) : Promise.resolve<ListPage<Entry>>({ object: 'list', data: [], hasMore: false }),
  );

  if (!permissions.manageMembers) {
    return (
      <>
        <h1 tabIndex={-1}>Members</h1>
        <p>Only owners of this organization manage its members.</p>
      </>
    );
  }

  const loadMore = async () => {
    const last = list.data?.data[list.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await api.get<ListPage<Entry>>(base, { limit: 100, startingAfter: keyOf(last) });
      list.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const rowAction = async (entry: Entry, action: () => Promise<void>) => {
    setRowError(null);
    setStatus(null);
    setBusyRow(keyOf(entry));
    try {
      await action();
    } catch (error) {
      setRowError(error);
    } finally {
      setBusyRow(null);
    }
  };

  const changeRole = (member: Member, role: Role) =>
    rowAction(member, async () => {
      const updated = await api.patch<Member>(`${base}/${encodeURIComponent(member.userId)}`, { role });
      list.setData((current) => (current ? { ...current, data: current.data.map((m) => (keyOf(m) === updated.userId ? updated : m)) } : current));
      setStatus(`Role changed to ${role}.`);
      if (member.userId === me.user.id) await refresh();
    });

  const remove = (entry: Entry) =>
    rowAction(entry, async () => {
      await api.delete(`${base}/${encodeURIComponent(keyOf(entry))}`);
      list.setData((current) => (current ? { ...current, data: current.data.filter((m) => keyOf(m) !== keyOf(entry)) } : current));
      setStatus(entry.object === 'member' ? 'Member removed.' : 'Invitation cancelled.');
      if (entry.object === 'member' && entry.userId === me.user.id) await refresh();
    });

  const entries = list.data?.data ?? [];

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Members</h1>
          <p className="page-lead">People who can sign in to this organization, their roles, and invitations not yet accepted.</p>
        </div>
      </div>

      <StatusMessage message={status} />
      <InviteForm
        base={base}
        canSetPassword={me.user.isGlobalAdmin}
        onInvited={() => void list.reload()}
      />

      <h2 className="section-title">People with access</h2>
      {list.loading && !list.data && <Loading />}
      <ErrorAlert error={list.error} />
      <ErrorAlert error={rowError} />
      {list.data &&
        (entries.length === 0 ? (
          <Empty>No members yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Since</th>
                  <td className="actions-head">
                    <span className="visually-hidden">Actions</span>
                  </td>
                </tr>
              </thead>
              <tbody>
                {entries.map((entry) =>
                  entry.object === 'member' ? (
                    <tr key={entry.userId}>
                      <td>
                        <div className="cell-title">{entry.email}</div>
                        {entry.userId === me.user.id && <div className="cell-sub">you</div>}
                      </td>
                      <td>
                        <select
                          aria-label={`Role for ${entry.email}`}
                          value={entry.role}
                          disabled={busyRow === entry.userId}
                          onChange={(e) => void changeRole(entry, e.target.value as Role)}
                        >
                          {ROLES.map((r) => (
                            <option key={r.value} value={r.value}>
                              {r.label}
                            </option>
                          ))}
                        </select>
                      </td>
                      <td>
                        <Badge status="active" />
                      </td>
                      <td>{formatDate(entry.createdAt)}</td>
                      <td className="row-actions">
                        <button
                          type="button"
                          className="button button-small button-danger-outline"
                          aria-label={`Remove ${entry.email}`}
                          disabled={busyRow === entry.userId}
                          onClick={() => void remove(entry)}
                        >
                          Remove
                        </button>
                      </td>
                    </tr>
                  ) : (
                    <tr key={entry.id}>
                      <td>
                        <div className="cell-title">{entry.email}</div>
                        <div className="cell-sub">invitation expires {formatDate(entry.expiresAt)}</div>
                      </td>
                      <td>{ROLES.find((r) => r.value === entry.role)?.label ?? entry.role}</td>
                      <td>
                        <Badge status="invited" />
                      </td>
                      <td>{formatDate(entry.createdAt)}</td>
                      <td className="row-actions">
                        <button
                          type="button"
                          className="button button-small button-danger-outline"
                          aria-label={`Cancel invitation for ${entry.email}`}
                          disabled={busyRow === entry.id}
                          onClick={() => void remove(entry)}
                        >
                          Cancel invitation
                        </button>
                      </td>
                    </tr>
                  ),
                )}
              </tbody>
            </table>
          </div>
        ))}
      <LoadMore hasMore={list.data?.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />
    </>
  );
}

function InviteForm({ base, canSetPassword, onInvited }: { base: string; canSetPassword: boolean; onInvited: () => void }) {
  const id = useId();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const [invited, setInvited] = useState<Invitation | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setInvited(null);
    await run(async () => {
      const body: Record<string, string> = { email: email.trim(), role };
      if (canSetPassword && password) body.password = password;
      const invitation = await api.post<Invitation>(base, body);
      setInvited(invitation);
      onInvited();
      setEmail('');
      setPassword('');
    });
  };

  return (
    <form className="card form-card" aria-labelledby={`${id}-title`} onSubmit={submit} noValidate>
      <h2 id={`${id}-title`}>Invite member</h2>
      <ErrorAlert error={error} />
      <div className="form-row">
        <div className="field">
          <label htmlFor={`${id}-email`}>Email</label>
          <input id={`${id}-email`} type="email" autoComplete="off" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </div>
        {canSetPassword && (
          <div className="field">
            <label htmlFor={`${id}-password`}>Password</label>
            <input
              id={`${id}-password`}
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-describedby={`${id}-password-hint`}
            />
          </div>
        )}
        <div className="field field-button">
          <button type="submit" className="button button-primary" disabled={busy}>
            Invite
          </button>
        </div>
      </div>
      <p id={`${id}-password-hint`} className="field-hint">
        The person accepts through the invitation link: someone new chooses a password there, someone with an account signs in.
        {canSetPassword && ' As a global admin you may set a password instead: a new account is then created, and a member, at once (an existing account keeps its own).'}
      </p>
      {invited && (
        <div className="alert alert-success" role="status">
          {invited.status === 'accepted' ? (
            <p>
              {invited.email} can sign in now, as {invited.role}.
            </p>
          ) : invited.url ? (
            <InvitationLink url={invited.url} />
          ) : (
            <p>
              Invitation e-mailed to {invited.email}. It works once, for 7 days.
            </p>
          )}
        </div>
      )}
    </form>
  );
}

function InvitationLink({ url }: { url: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="invitation">
      <p className="invitation-label">Invitation link</p>
      <div className="input-with-button">
        <code className="invitation-url">{url}</code>
        <button
          type="button"
          className="button button-secondary"
          aria-label="Copy invitation link"
          onClick={() => {
            void navigator.clipboard
              ?.writeText(url)
              .then(() => setCopied(true))
              .catch(() => setCopied(false));
          }}
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
      </div>
      <p className="field-hint">Paygate sends no mail here: hand this link to the person yourself. It works once, for 7 days.</p>
    </div>
  );
}
