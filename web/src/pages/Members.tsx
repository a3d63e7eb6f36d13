/**
 * Members of the selected organization (/admin/members): owners and global admins invite people,
 * change roles and remove members (each change confirmed first), and see the invitations not yet
 * accepted apart from the members, with their expiry, their link when Paygate mails none, and Cancel.
 */
import { useId, useRef, useState, type FormEvent } from 'react';
import { api, orgPath, type Invitation, type ListPage, type Member, type Role } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { CopyButton, InvitationLink } from '../components/Copy';
import { Empty, ErrorAlert, StatusMessage, LoadMore, ListFeedback } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { formatDate, formatRelative } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

const ROLES: { value: Role; label: string; means: string }[] = [
  { value: 'owner', label: 'Owner', means: 'everything in the organization, members included' },
  { value: 'admin', label: 'Admin', means: 'every organization scope, but not members' },
  { value: 'developer', label: 'Developer', means: 'API keys, and reading everything else' },
  { value: 'viewer', label: 'Viewer', means: 'reading, except API keys and the audit log' },
];
const roleLabel = (role: Role) => ROLES.find((r) => r.value === role)?.label ?? role;

type Entry = Member | Invitation;
const keyOf = (entry: Entry) => (entry.object === 'member' ? entry.userId : entry.id);

type Pending =
  | { kind: 'role'; member: Member; role: Role }
  | { kind: 'remove'; member: Member }
  | { kind: 'cancel'; invitation: Invitation };

export function MembersPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Members');
  const { permissions, me, refresh, selectedOrganization } = useSession();
  const organizationName = selectedOrganization?.name ?? 'this organization';
  const base = orgPath(organizationId, '/members');
  const [status, setStatus] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  // Links of invitations made on this page: the API returns one only in the answer that creates it.
  const [links, setLinks] = useState<Map<string, string>>(new Map());
  const opener = useRef<HTMLElement | null>(null);
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

  const ask = (next: Pending, element: HTMLElement | null) => {
    opener.current = element;
    setStatus(null);
    setPending(next);
  };

  const changeRole = async (member: Member, role: Role) => {
    const updated = await api.patch<Member>(`${base}/${encodeURIComponent(member.userId)}`, { role });
    list.setData((current) => (current ? { ...current, data: current.data.map((m) => (keyOf(m) === updated.userId ? updated : m)) } : current));
    setPending(null);
    setStatus(`${member.email} is ${roleLabel(updated.role).toLowerCase()} now.`);
    if (member.userId === me.user.id) await refresh();
  };

  const remove = async (entry: Entry) => {
    await api.delete(`${base}/${encodeURIComponent(keyOf(entry))}`);
    list.setData((current) => (current ? { ...current, data: current.data.filter((m) => keyOf(m) !== keyOf(entry)) } : current));
    setPending(null);
    setStatus(entry.object === 'member' ? `${entry.email} was removed.` : `Invitation for ${entry.email} cancelled.`);
    if (entry.object === 'member' && entry.userId === me.user.id) await refresh();
  };

  const entries = list.data?.data ?? [];
  const members = entries.filter((e): e is Member => e.object === 'member');
  const invitations = entries.filter((e): e is Invitation => e.object === 'invitation');

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Members</h1>
          <p className="page-lead">People who can sign in to this organization and their roles; below them, invitations not yet accepted.</p>
        </div>
      </div>

      <StatusMessage message={status} />
      <InviteForm
        base={base}
        canSetPassword={me.user.isGlobalAdmin}
        onInvited={(invitation) => {
          if (invitation.url) setLinks((current) => new Map(current).set(invitation.id, invitation.url!));
          void list.reload();
        }}
      />

      <h2 className="section-title" id="members-title">
        Current members
      </h2>
      <ListFeedback list={list} />
      {list.data &&
        (members.length === 0 ? (
          <Empty>No members yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-labelledby="members-title">
              <TableHead columns={['Email', 'Role', 'Member since']} actions="Actions" />
              <tbody>
                {members.map((member) => (
                  <tr key={member.userId}>
                    <td>
                      <div className="cell-title">{member.email}</div>
                      {member.userId === me.user.id && <div className="cell-sub">you</div>}
                    </td>
                    <td>
                      {/* The select only proposes a change: the dialog confirms it, and Cancel leaves the role as it was. */}
                      <select
                        aria-label={`Role for ${member.email}`}
                        value={member.role}
                        onChange={(e) => ask({ kind: 'role', member, role: e.target.value as Role }, e.currentTarget)}
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
                        onClick={(e) => ask({ kind: 'remove', member }, e.currentTarget)}
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

      <h2 className="section-title" id="invitations-title">
        Pending invitations
      </h2>
      {list.data &&
        (invitations.length === 0 ? (
          <Empty>No pending invitations.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-labelledby="invitations-title">
              <TableHead columns={['Email', 'Role', 'Invited', 'Expires']} actions="Actions" />
              <tbody>
                {invitations.map((invitation) => {
                  const url = links.get(invitation.id);
                  return (
                    <tr key={invitation.id}>
                      <td>
                        <div className="cell-title">{invitation.email}</div>
                        <div className="cell-sub">
                          <span className="badge badge-neutral">invited</span> not accepted yet
                        </div>
                      </td>
                      <td>{roleLabel(invitation.role)}</td>
                      <td>{formatDate(invitation.createdAt)}</td>
                      <td>
                        {formatDate(invitation.expiresAt)}
                        <div className="cell-sub">{formatRelative(invitation.expiresAt)}</div>
                      </td>
                      <td className="row-actions">
                        <div className="row-buttons">
                          {url && <CopyButton text={url} label={`Copy invitation link for ${invitation.email}`} className="button button-small button-secondary" />}
                          <button
                            type="button"
                            className="button button-small button-danger-outline"
                            aria-label={`Cancel invitation for ${invitation.email}`}
                            onClick={(e) => ask({ kind: 'cancel', invitation }, e.currentTarget)}
                          >
                            Cancel
                          </button>
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        ))}
      <LoadMore hasMore={list.data?.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />

      {pending?.kind === 'role' && (
        <ConfirmDialog
          title="Change role"
          confirmLabel="Change role"
          returnFocus={opener.current}
          onClose={() => setPending(null)}
          onConfirm={() => changeRole(pending.member, pending.role)}
        >
          <p>
            Change the role of <strong>{pending.member.email}</strong> in {organizationName} from <strong>{roleLabel(pending.member.role)}</strong> to{' '}
            <strong>{roleLabel(pending.role)}</strong>?
          </p>
          <p className="muted">
            {roleLabel(pending.role)}: {ROLES.find((r) => r.value === pending.role)?.means}. It takes effect at once
            {pending.member.userId === me.user.id ? ', for you too.' : '.'}
          </p>
        </ConfirmDialog>
      )}
      {pending?.kind === 'remove' && (
        <ConfirmDialog
          title="Remove member"
          confirmLabel="Remove member"
          danger
          returnFocus={opener.current}
          onClose={() => setPending(null)}
          onConfirm={() => remove(pending.member)}
        >
          <p>
            Remove <strong>{pending.member.email}</strong> ({roleLabel(pending.member.role).toLowerCase()}) from {organizationName}?
          </p>
          <p className="muted">
            {pending.member.userId === me.user.id ? 'You lose' : 'They lose'} access to this organization at once. The account stays, and so do the
            API keys and audit events; coming back takes a new invitation.
          </p>
        </ConfirmDialog>
      )}
      {pending?.kind === 'cancel' && (
        <ConfirmDialog
          title="Cancel invitation"
          confirmLabel="Cancel invitation"
          danger
          returnFocus={opener.current}
          onClose={() => setPending(null)}
          onConfirm={() => remove(pending.invitation)}
        >
          <p>
            Cancel the invitation of <strong>{pending.invitation.email}</strong> as {roleLabel(pending.invitation.role).toLowerCase()}?
          </p>
          <p className="muted">Its link stops working at once. You can invite the address again later.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function InviteForm({ base, canSetPassword, onInvited }: { base: string; canSetPassword: boolean; onInvited: (invitation: Invitation) => void }) {
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
      onInvited(invitation);
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
        <div className="alert alert-success">
          {invited.status === 'accepted' ? (
            <p role="status">
              {invited.email} can sign in now, as {invited.role}.
            </p>
          ) : invited.url ? (
            <>
              <p role="status">
                {invited.email} is invited as {invited.role}, until {formatDate(invited.expiresAt)}.
              </p>
              <InvitationLink url={invited.url} />
            </>
          ) : (
            <p role="status">
              Invitation e-mailed to {invited.email}. It works once, until {formatDate(invited.expiresAt)}.
            </p>
          )}
        </div>
      )}
    </form>
  );
}
