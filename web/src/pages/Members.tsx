/** Members of the selected organization (/admin/members): owners and global admins add, re-role and remove. */
import { useId, useState, type FormEvent } from 'react';
import { api, orgPath, type ListPage, type Member, type Role } from '../api';
import { Empty, ErrorAlert, Loading, StatusMessage, LoadMore } from '../components/Feedback';
import { formatDate } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

const ROLES: { value: Role; label: string }[] = [
  { value: 'owner', label: 'Owner' },
  { value: 'admin', label: 'Admin' },
  { value: 'developer', label: 'Developer' },
  { value: 'viewer', label: 'Viewer' },
];

export function MembersPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Members');
  const { permissions, me, refresh } = useSession();
  const base = orgPath(organizationId, '/members');
  const [status, setStatus] = useState<string | null>(null);
  const [rowError, setRowError] = useState<unknown>(null);
  const [busyRow, setBusyRow] = useState<string | null>(null);
  const more = useAction();

  const list = useLoad(() =>
    permissions.manageMembers ? api.get<ListPage<Member>>(base, { limit: 100 }) : Promise.resolve<ListPage<Member>>({ object: 'list', data: [], hasMore: false }),
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
      const next = await api.get<ListPage<Member>>(base, { limit: 100, startingAfter: last.userId });
      list.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const changeRole = async (member: Member, role: Role) => {
    setRowError(null);
    setStatus(null);
    setBusyRow(member.userId);
    try {
      const updated = await api.patch<Member>(`${base}/${encodeURIComponent(member.userId)}`, { role });
      list.setData((current) => (current ? { ...current, data: current.data.map((m) => (m.userId === updated.userId ? updated : m)) } : current));
      setStatus(`Role changed to ${role}.`);
      if (member.userId === me.user.id) await refresh();
    } catch (error) {
      setRowError(error);
    } finally {
      setBusyRow(null);
    }
  };

  const remove = async (member: Member) => {
    setRowError(null);
    setStatus(null);
    setBusyRow(member.userId);
    try {
      await api.delete(`${base}/${encodeURIComponent(member.userId)}`);
      list.setData((current) => (current ? { ...current, data: current.data.filter((m) => m.userId !== member.userId) } : current));
      setStatus('Member removed.');
      if (member.userId === me.user.id) await refresh();
    } catch (error) {
      setRowError(error);
    } finally {
      setBusyRow(null);
    }
  };

  const members = list.data?.data ?? [];

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Members</h1>
          <p className="page-lead">People who can sign in to this organization, and their roles.</p>
        </div>
      </div>

      <StatusMessage message={status} />
      <AddMemberForm
        base={base}
        onAdded={(member) => {
          setStatus(`Member added as ${member.role}.`);
          list.setData((current) =>
            current ? { ...current, data: [...current.data.filter((m) => m.userId !== member.userId), { ...member, invitationUrl: undefined }] } : current,
          );
        }}
      />

      <h2 className="section-title">People with access</h2>
      {list.loading && !list.data && <Loading />}
      <ErrorAlert error={list.error} />
      <ErrorAlert error={rowError} />
      {list.data &&
        (members.length === 0 ? (
          <Empty>No members yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Member since</th>
                  <td className="actions-head">
                    <span className="visually-hidden">Actions</span>
                  </td>
                </tr>
              </thead>
              <tbody>
                {members.map((member) => (
                  <tr key={member.userId}>
                    <td>
                      <div className="cell-title">{member.email}</div>
                      {member.userId === me.user.id && <div className="cell-sub">you</div>}
                    </td>
                    <td>
                      <select
                        aria-label={`Role for ${member.email}`}
                        value={member.role}
                        disabled={busyRow === member.userId}
                        onChange={(e) => void changeRole(member, e.target.value as Role)}
                      >
                        {ROLES.map((r) => (
                          <option key={r.value} value={r.value}>
                            {r.label}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>{formatDate(member.createdAt)}</td>
                    <td className="row-actions">
                      <button
                        type="button"
                        className="button button-small button-danger-outline"
                        aria-label={`Remove ${member.email}`}
                        disabled={busyRow === member.userId}
                        onClick={() => void remove(member)}
                      >
                        Remove
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      <LoadMore hasMore={list.data?.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />
    </>
  );
}

function AddMemberForm({ base, onAdded }: { base: string; onAdded: (member: Member) => void }) {
  const id = useId();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const [added, setAdded] = useState<Member | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setAdded(null);
    await run(async () => {
      const body: Record<string, string> = { email: email.trim(), role };
      if (password) body.password = password;
      const member = await api.post<Member>(base, body);
      setAdded(member);
      onAdded(member);
      setEmail('');
      setPassword('');
    });
  };

  return (
    <form className="card form-card" aria-labelledby={`${id}-title`} onSubmit={submit} noValidate>
      <h2 id={`${id}-title`}>Add member</h2>
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
        <div className="field field-button">
          <button type="submit" className="button button-primary" disabled={busy}>
            Add member
          </button>
        </div>
      </div>
      <p id={`${id}-password-hint`} className="field-hint">
        Optional, at least 10 characters, for a new user. Leave it empty to get an invitation link instead; existing users keep their password.
      </p>
      {added?.invitationUrl && (
        <div className="alert alert-success">
          <InvitationLink url={added.invitationUrl} />
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
      <p className="field-hint">Send it to the new member: it works once, for 7 days, and lets them set a password.</p>
    </div>
  );
}
