/** The selected organization's own settings (/admin/organization): its name. */
import { useEffect, useId, useState, type FormEvent } from 'react';
import { api, orgPath, type Organization } from '../api';
import { ErrorAlert, Loading, StatusMessage } from '../components/Feedback';
import { formatDate } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

export function OrganizationSettingsPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Organization settings');
  const { permissions, refresh } = useSession();
  const id = useId();
  const path = orgPath(organizationId, '/organization');
  const canRead = permissions.can('organization:read');
  const canUpdate = permissions.can('organization:update');
  const org = useLoad(() => api.get<Organization>(path));
  const [name, setName] = useState('');
  const { busy, error, run } = useAction();
  const [status, setStatus] = useState<string | null>(null);

  useEffect(() => {
    if (org.data) setName(org.data.name);
  }, [org.data]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setStatus(null);
    await run(async () => {
      const updated = await api.patch<Organization>(path, { name: name.trim() });
      org.setData(() => updated);
      setStatus('Organization saved');
      // The organization switcher shows the new name.
      await refresh().catch(() => undefined);
    });
  };

  if (!canRead) {
    return (
      <>
        <h1 tabIndex={-1}>Organization settings</h1>
        <p>You don't have access to this organization's settings.</p>
      </>
    );
  }

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Organization settings</h1>
          <p className="page-lead">How this organization is named in the panel, in audit events and for its members.</p>
        </div>
      </div>
      {org.loading && !org.data && <Loading />}
      <ErrorAlert error={org.error} />
      {org.data && (
        <form className="card form-card narrow" onSubmit={submit} noValidate>
          <ErrorAlert error={error} />
          <div className="field">
            <label htmlFor={`${id}-name`}>Organization name</label>
            <input
              id={`${id}-name`}
              value={name}
              maxLength={200}
              readOnly={!canUpdate}
              aria-describedby={canUpdate ? undefined : `${id}-readonly`}
              onChange={(e) => setName(e.target.value)}
            />
            {!canUpdate && (
              <p id={`${id}-readonly`} className="field-hint">
                Your role can read these settings but not change them.
              </p>
            )}
          </div>
          <dl className="facts">
            <div>
              <dt>ID</dt>
              <dd>
                <code>{org.data.id}</code>
              </dd>
            </div>
            <div>
              <dt>Created</dt>
              <dd>{formatDate(org.data.createdAt)}</dd>
            </div>
            <div>
              <dt>Updated</dt>
              <dd>{formatDate(org.data.updatedAt)}</dd>
            </div>
          </dl>
          {canUpdate && (
            <div className="form-actions">
              <button type="submit" className="button button-primary" disabled={busy}>
                Save
              </button>
            </div>
          )}
          <StatusMessage message={status} />
        </form>
      )}
    </>
  );
}
