/**
 * System settings (/admin/system/settings), SPEC §6.
 *
 * When they were last changed, and by whom, comes from the audit log's newest
 * `system_settings.updated` event, not from `updatedAt`: the settings row is created with the
 * database, so its `updatedAt` is the install time until someone saves, and the API has no field
 * that tells the two apart. No such event: the settings were never changed.
 */
import { useEffect, useId, useState, type FormEvent } from 'react';
import { api, ApiError, type AuditEvent, type ListPage, type SystemSettings } from '../api';
import { ErrorAlert, Loading, StatusMessage } from '../components/Feedback';
import { formatDate } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

interface LastChange {
  at: string;
  by: string;
}

/** Who an audit actor is, in words: the signed-in user by email, others by id. */
function actorName(actor: AuditEvent['actor'], me: { id: string; email: string }): string {
  if (actor.type === 'user') return actor.id === me.id ? `you (${me.email})` : `user ${actor.id ?? ''}`.trim();
  if (actor.type === 'api_key') return `API key ${actor.id ?? ''}`.trim();
  return actor.type;
}

interface Draft {
  ttl: string;
  grace: string;
  maxLifetime: string;
}

const toDraft = (s: SystemSettings): Draft => ({
  ttl: String(s.portalMagicLinkTtlMinutes),
  grace: String(s.apiKeyRotationGraceMinutes),
  maxLifetime: s.apiKeyMaxLifetimeDays === null ? '' : String(s.apiKeyMaxLifetimeDays),
});

/** A whole number from a field, or a field error; the server checks the ranges again. */
function parseWhole(value: string, path: string, errors: { path: string; message: string }[]): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isInteger(n)) errors.push({ path, message: 'must be a whole number' });
  return n;
}

export function SystemSettingsPage() {
  usePageTitle('System settings');
  const id = useId();
  const { me } = useSession();
  const settings = useLoad(() => api.get<SystemSettings>('/v1/system/settings'));
  // null: never changed; undefined: not known (the audit log could not be read).
  const lastChange = useLoad<LastChange | null | undefined>(async () => {
    try {
      const events = await api.get<ListPage<AuditEvent>>('/v1/system/audit-events', { action: 'system_settings.updated', limit: 1 });
      const event = events.data[0];
      return event ? { at: event.at, by: actorName(event.actor, me.user) } : null;
    } catch {
      return undefined;
    }
  });
  const [draft, setDraft] = useState<Draft>({ ttl: '', grace: '', maxLifetime: '' });
  const { busy, error, setError, run } = useAction();
  const [status, setStatus] = useState<string | null>(null);

  useEffect(() => {
    if (settings.data) setDraft(toDraft(settings.data));
  }, [settings.data]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setStatus(null);
    const errors: { path: string; message: string }[] = [];
    const body = {
      portalMagicLinkTtlMinutes: parseWhole(draft.ttl, 'Portal magic link TTL (minutes)', errors),
      apiKeyRotationGraceMinutes: parseWhole(draft.grace, 'Rotation grace default (minutes)', errors),
      apiKeyMaxLifetimeDays: draft.maxLifetime.trim() === '' ? null : parseWhole(draft.maxLifetime, 'Maximum key lifetime (days)', errors),
    };
    if (errors.length > 0) {
      setError(new ApiError(0, { title: 'Check the form', detail: 'Some fields need attention.', errors }));
      return;
    }
    await run(async () => {
      const saved = await api.patch<SystemSettings>('/v1/system/settings', body);
      settings.setData(() => saved);
      lastChange.setData(() => ({ at: saved.updatedAt, by: actorName({ type: 'user', id: me.user.id }, me.user) }));
      setStatus('Settings saved');
    });
  };

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>System settings</h1>
          <p className="page-lead">Defaults and limits that apply to every organization.</p>
        </div>
      </div>
      {settings.loading && !settings.data && <Loading />}
      <ErrorAlert error={settings.error} />
      {settings.data && (
        <form className="card form-card narrow" onSubmit={submit} noValidate>
          <ErrorAlert error={error} />
          <div className="field">
            <label htmlFor={`${id}-ttl`}>Portal magic link TTL (minutes)</label>
            <input
              id={`${id}-ttl`}
              type="number"
              inputMode="numeric"
              min={1}
              max={1440}
              value={draft.ttl}
              onChange={(e) => setDraft({ ...draft, ttl: e.target.value })}
              aria-describedby={`${id}-ttl-hint`}
            />
            <p id={`${id}-ttl-hint`} className="field-hint">
              1 to 1440. The longest a customer portal magic link stays valid; requests for longer get this.
            </p>
          </div>
          <div className="field">
            <label htmlFor={`${id}-grace`}>Rotation grace default (minutes)</label>
            <input
              id={`${id}-grace`}
              type="number"
              inputMode="numeric"
              min={0}
              max={10080}
              value={draft.grace}
              onChange={(e) => setDraft({ ...draft, grace: e.target.value })}
              aria-describedby={`${id}-grace-hint`}
            />
            <p id={`${id}-grace-hint`} className="field-hint">
              0 to 10080. How long a rotated key's previous secret keeps working when the rotation names no grace period.
            </p>
          </div>
          <div className="field">
            <label htmlFor={`${id}-lifetime`}>Maximum key lifetime (days)</label>
            <input
              id={`${id}-lifetime`}
              type="number"
              inputMode="numeric"
              min={1}
              value={draft.maxLifetime}
              onChange={(e) => setDraft({ ...draft, maxLifetime: e.target.value })}
              aria-describedby={`${id}-lifetime-hint`}
            />
            <p id={`${id}-lifetime-hint`} className="field-hint">
              Empty: no limit. When set, new keys expire no later than this many days after creation.
            </p>
          </div>
          {lastChange.data === null && <p className="muted small settings-changed">Never changed: these are the values Paygate started with.</p>}
          {lastChange.data && (
            <p className="muted small settings-changed">
              Last changed {formatDate(lastChange.data.at)} by {lastChange.data.by}.
            </p>
          )}
          <div className="form-actions">
            <button type="submit" className="button button-primary" disabled={busy}>
              Save settings
            </button>
          </div>
          <StatusMessage message={status} />
        </form>
      )}
    </>
  );
}
