/** Every organization (/admin/system/organizations): provision with an owner, delete (revokes its keys). */
import { useId, useState, type FormEvent, type MouseEvent } from 'react';
import { api, type ListPage, type Organization, type ProvisionResult } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { InvitationLink } from '../components/Copy';
import { Badge, Empty, ErrorAlert, StatusMessage, LoadMore, ListFeedback } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { formatDate } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

const BASE = '/v1/system/organizations';

export function SystemOrganizationsPage() {
  usePageTitle('Organizations');
  const { refresh } = useSession();
  const list = useLoad(() => api.get<ListPage<Organization>>(BASE, { limit: 100 }));
  const [status, setStatus] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<{ org: Organization; opener: HTMLElement } | null>(null);
  const more = useAction();

  const loadMore = async () => {
    const last = list.data?.data[list.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await api.get<ListPage<Organization>>(BASE, { limit: 100, startingAfter: last.id });
      list.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const [showDeleted, setShowDeleted] = useState(false);
  const all = list.data?.data ?? [];
  const orgs = showDeleted ? all : all.filter((o) => o.status === 'active');
  const deletedCount = all.length - all.filter((o) => o.status === 'active').length;

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Organizations</h1>
          <p className="page-lead">Every organization on this Paygate. Deleting one revokes all its keys at once.</p>
        </div>
      </div>

      <StatusMessage message={status} />
      <ProvisionForm
        onProvisioned={(result) => {
          setStatus(`Organization provisioned.`);
          const { owner: _owner, initialApiKey: _key, ...org } = result;
          list.setData((current) => (current ? { ...current, data: [org, ...current.data.filter((o) => o.id !== org.id)] } : current));
          void refresh().catch(() => undefined);
        }}
      />

      <div className="section-header">
        <div className="check">
          <input id="show-deleted-organizations" type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} />
          <label htmlFor="show-deleted-organizations">Show deleted organizations{deletedCount > 0 ? ` (${deletedCount})` : ''}</label>
        </div>
      </div>
      <ListFeedback list={list} />
      {list.data &&
        (orgs.length === 0 ? (
          <Empty>No organizations yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <TableHead columns={['Name', 'ID', 'Status', 'Created']} actions="Actions" />
              <tbody>
                {orgs.map((org) => (
                  <tr key={org.id}>
                    <td className="cell-title">{org.name}</td>
                    <td>
                      <code>{org.id}</code>
                    </td>
                    <td>
                      <Badge status={org.status} />
                    </td>
                    <td>{formatDate(org.createdAt)}</td>
                    <td className="row-actions">
                      {org.status === 'active' && (
                        <button
                          type="button"
                          className="button button-small button-danger-outline"
                          aria-label={`Delete ${org.name}`}
                          onClick={(event: MouseEvent<HTMLButtonElement>) => setDeleting({ org, opener: event.currentTarget })}
                        >
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      <LoadMore hasMore={list.data?.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />

      {deleting && (
        <DeleteOrganizationDialog
          org={deleting.org}
          onClose={() => setDeleting(null)}
          onDeleted={(deleted) => {
            list.setData((current) => (current ? { ...current, data: current.data.map((o) => (o.id === deleted.id ? deleted : o)) } : current));
            setDeleting(null);
            setStatus('Organization deleted.');
            void refresh().catch(() => undefined);
          }}
        />
      )}
    </>
  );
}

function ProvisionForm({ onProvisioned }: { onProvisioned: (result: ProvisionResult) => void }) {
  const id = useId();
  const [name, setName] = useState('');
  const [ownerEmail, setOwnerEmail] = useState('');
  const { busy, error, run } = useAction();
  const [invitation, setInvitation] = useState<{ url: string; email: string } | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setInvitation(null);
    await run(async () => {
      const body: Record<string, unknown> = { name: name.trim() };
      if (ownerEmail.trim()) body.owner = { email: ownerEmail.trim() };
      const result = await api.post<ProvisionResult>(BASE, body);
      setInvitation(result.owner?.url ? { url: result.owner.url, email: result.owner.email } : null);
      setName('');
      setOwnerEmail('');
      onProvisioned(result);
    });
  };

  return (
    <form className="card form-card" aria-labelledby={`${id}-title`} onSubmit={submit} noValidate>
      <h2 id={`${id}-title`}>Provision organization</h2>
      <ErrorAlert error={error} />
      <div className="form-row">
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input id={`${id}-name`} value={name} maxLength={200} onChange={(e) => setName(e.target.value)} required />
        </div>
        <div className="field">
          <label htmlFor={`${id}-owner`}>Owner email</label>
          <input
            id={`${id}-owner`}
            type="email"
            autoComplete="off"
            value={ownerEmail}
            onChange={(e) => setOwnerEmail(e.target.value)}
            aria-describedby={`${id}-owner-hint`}
          />
        </div>
        <div className="field field-button">
          <button type="submit" className="button button-primary" disabled={busy}>
            Provision
          </button>
        </div>
      </div>
      <p id={`${id}-owner-hint`} className="field-hint">
        Optional. The owner gets an invitation: a new person sets a password through its link, someone with an account signs in to accept. With e-mail set up, the link is mailed.
      </p>
      {invitation && (
        <div className="alert alert-success">
          <InvitationLink url={invitation.url} title={`Invitation link for the owner, ${invitation.email}`} email={invitation.email} />
        </div>
      )}
    </form>
  );
}

function DeleteOrganizationDialog({ org, onClose, onDeleted }: { org: Organization; onClose: () => void; onDeleted: (org: Organization) => void }) {
  const remove = async () => {
    const result = await api.delete<Organization | undefined>(`${BASE}/${encodeURIComponent(org.id)}`);
    onDeleted(result && typeof result === 'object' && 'id' in result ? result : { ...org, status: 'deleted', deletedAt: new Date().toISOString() });
  };

  return (
    <ConfirmDialog
      title="Delete organization"
      confirmLabel="Delete organization"
      danger
      typeToConfirm={{ text: org.name, label: 'Type the organization name to confirm' }}
      onClose={onClose}
      onConfirm={remove}
    >
      <p>
        Deleting <strong>{org.name}</strong> revokes every API key of the organization at once and ends its members' access. This cannot be
        undone.
      </p>
    </ConfirmDialog>
  );
}
