/**
 * API keys of an organization (/admin/keys) and system keys (/admin/system/keys): list, create with
 * presets and the scope picker, edit, the secret shown once, rotate with a grace period, revoke,
 * delete.
 */
import { useCallback, useId, useRef, useState, type FormEvent, type MouseEvent } from 'react';
import { api, orgPath, type ApiKey, type ListPage, type Tier } from '../api';
import { CopyButton } from '../components/Copy';
import { Dialog } from '../components/Dialog';
import { Badge, Empty, ErrorAlert, Loading, LoadMore, StatusMessage } from '../components/Feedback';
import {
  EMPTY_KEY_FORM,
  KEY_FIELD_LABELS,
  KeyFields,
  keyChanges,
  keyFormOf,
  readKeyForm,
  ungrantable,
  useGrants,
  type Grants,
  type KeyFormState,
} from '../components/KeyForm';
import { formatDate, formatDateLong } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { useSession } from '../session';

interface KeysPageProps {
  tier: Tier;
  organizationId: string | null;
}

type Modal =
  | { kind: 'none' }
  | { kind: 'create' }
  | { kind: 'edit'; key: ApiKey }
  | { kind: 'secret'; key: ApiKey; rotation: { graceMinutes: number } | null }
  | { kind: 'rotate'; key: ApiKey }
  | { kind: 'revoke'; key: ApiKey }
  | { kind: 'delete'; key: ApiKey };

const PAGE_SIZE = 100;

export function KeysPage({ tier, organizationId }: KeysPageProps) {
  const title = tier === 'system' ? 'System API keys' : 'API keys';
  usePageTitle(title);
  const { permissions, me } = useSession();
  const base = tier === 'system' ? '/v1/system/api-keys' : orgPath(organizationId!, '/api-keys');
  // System keys are managed by global-admin sessions alone; organization keys follow the role (SPEC §3).
  const can = (action: 'read' | 'create' | 'update' | 'delete') =>
    tier === 'system' ? me.user.isGlobalAdmin : permissions.can(`api_key:${action}`);

  const [modal, setModal] = useState<Modal>({ kind: 'none' });
  const [status, setStatus] = useState<string | null>(null);
  const opener = useRef<HTMLElement | null>(null);
  const more = useAction();

  const list = useLoad(() =>
    can('read') ? api.get<ListPage<ApiKey>>(base, { limit: PAGE_SIZE }) : Promise.resolve<ListPage<ApiKey>>({ object: 'list', data: [], hasMore: false }),
  );

  const loadMore = async () => {
    const last = list.data?.data[list.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await api.get<ListPage<ApiKey>>(base, { limit: PAGE_SIZE, startingAfter: last.id });
      list.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const open = (next: Modal) => (event: MouseEvent<HTMLElement>) => {
    opener.current = event.currentTarget;
    setStatus(null);
    setModal(next);
  };
  const close = useCallback(() => setModal({ kind: 'none' }), []);

  /** Replaces a key in the list with the server's new view of it (without its secret). */
  const replaceKey = (key: ApiKey) => {
    const { secret: _secret, ...view } = key;
    list.setData((current) => (current ? { ...current, data: current.data.map((k) => (k.id === key.id ? view : k)) } : current));
  };

  if (!can('read')) {
    return (
      <>
        <h1 tabIndex={-1}>{title}</h1>
        <p>You don't have access to API keys in this organization.</p>
      </>
    );
  }

  const keys = list.data?.data ?? [];

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>{title}</h1>
          <p className="page-lead">
            {tier === 'system'
              ? 'System keys automate provisioning, settings, health and audit across every organization.'
              : 'Keys let integrations call Paygate for this organization. Grant each key only the scopes it needs.'}
          </p>
        </div>
        {can('create') && (
          <button type="button" className="button button-primary" onClick={open({ kind: 'create' })}>
            Create key
          </button>
        )}
      </div>

      <StatusMessage message={status} />
      {list.loading && !list.data && <Loading />}
      <ErrorAlert error={list.error} />

      {list.data && (
        <>
          {keys.length === 0 ? (
            <Empty>No API keys yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Hint</th>
                    <th scope="col">Scopes</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created by</th>
                    <th scope="col">Last used</th>
                    <th scope="col">Expires</th>
                    <td className="actions-head">
                      <span className="visually-hidden">Actions</span>
                    </td>
                  </tr>
                </thead>
                <tbody>
                  {keys.map((key) => (
                    <tr key={key.id}>
                      <td>
                        <div className="cell-title">{key.name}</div>
                        {key.description && <div className="cell-sub">{key.description}</div>}
                        <div className="cell-meta">
                          <code>{key.id}</code>
                          {key.allowedIps && key.allowedIps.length > 0 && <span>IPs: {key.allowedIps.join(', ')}</span>}
                          {key.rateLimit && (
                            <span>
                              {key.rateLimit.requests} req / {key.rateLimit.windowSeconds} s
                            </span>
                          )}
                          {key.previousSecretExpiresAt && <span>Previous secret until {formatDate(key.previousSecretExpiresAt)}</span>}
                        </div>
                      </td>
                      <td>
                        <code className="hint-code">…{key.hint}</code>
                      </td>
                      <td>
                        {key.scopes.length === 0 ? (
                          <span className="muted">none</span>
                        ) : (
                          <ul className="chips">
                            {key.scopes.map((s) => (
                              <li key={s} className="chip">
                                {s}
                              </li>
                            ))}
                          </ul>
                        )}
                      </td>
                      <td>
                        <Badge status={key.status} />
                      </td>
                      <td>{createdBy(key, me.user)}</td>
                      <td>{formatDate(key.lastUsedAt, 'Never')}</td>
                      <td>{formatDate(key.expiresAt, 'Never')}</td>
                      <td className="row-actions">
                        <div className="row-buttons">
                          {key.status !== 'revoked' && can('update') && (
                            <button type="button" className="button button-small" aria-label={`Edit ${key.name}`} onClick={open({ kind: 'edit', key })}>
                              Edit
                            </button>
                          )}
                          {key.status === 'active' && can('update') && (
                            <button type="button" className="button button-small" aria-label={`Rotate ${key.name}`} onClick={open({ kind: 'rotate', key })}>
                              Rotate
                            </button>
                          )}
                          {key.status !== 'revoked' && can('delete') && (
                            <button type="button" className="button button-small" aria-label={`Revoke ${key.name}`} onClick={open({ kind: 'revoke', key })}>
                              Revoke
                            </button>
                          )}
                          {can('delete') && (
                            <button
                              type="button"
                              className="button button-small button-danger-outline"
                              aria-label={`Delete ${key.name}`}
                              onClick={open({ kind: 'delete', key })}
                            >
                              Delete
                            </button>
                          )}
                        </div>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <LoadMore hasMore={list.data.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />
        </>
      )}

      {modal.kind === 'create' && (
        <CreateKeyDialog
          tier={tier}
          base={base}
          onClose={close}
          onCreated={(key) => {
            setModal({ kind: 'secret', key, rotation: null });
            void list.reload();
          }}
        />
      )}
      {modal.kind === 'edit' && (
        <EditKeyDialog
          tier={tier}
          base={base}
          apiKey={modal.key}
          onClose={close}
          onSaved={(key) => {
            if (key) replaceKey(key);
            setStatus(key ? `Saved ${key.name}.` : 'Nothing changed.');
            close();
          }}
        />
      )}
      {modal.kind === 'secret' && <SecretDialog apiKey={modal.key} rotation={modal.rotation} onClose={close} returnFocus={opener.current} />}
      {modal.kind === 'rotate' && (
        <RotateDialog
          tier={tier}
          apiKey={modal.key}
          base={base}
          onClose={close}
          onRotated={(key, graceMinutes) => {
            replaceKey(key);
            setModal({ kind: 'secret', key, rotation: { graceMinutes } });
          }}
        />
      )}
      {modal.kind === 'revoke' && (
        <RevokeDialog
          apiKey={modal.key}
          base={base}
          onClose={close}
          onRevoked={(key) => {
            replaceKey(key);
            close();
          }}
        />
      )}
      {modal.kind === 'delete' && (
        <DeleteDialog
          apiKey={modal.key}
          base={base}
          onClose={close}
          onDeleted={(id) => {
            list.setData((current) => (current ? { ...current, data: current.data.filter((k) => k.id !== id) } : current));
            close();
          }}
        />
      )}
    </>
  );
}

function createdBy(key: ApiKey, user: { id: string; email: string }): string {
  const { type, id } = key.createdBy;
  if (type === 'user') return id === user.id ? user.email : `user ${id ?? ''}`.trim();
  if (type === 'api_key') return `key ${id ?? ''}`.trim();
  return type;
}

// ---- Create ----

interface CreateKeyDialogProps {
  tier: Tier;
  base: string;
  onClose: () => void;
  onCreated: (key: ApiKey) => void;
}

function CreateKeyDialog({ tier, base, onClose, onCreated }: CreateKeyDialogProps) {
  const [form, setForm] = useState<KeyFormState>(EMPTY_KEY_FORM);
  const g = useGrants(tier);
  const { busy, error, setError, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    const { values, problem } = readKeyForm(form);
    if (!values) {
      setError(problem);
      return;
    }
    const body: Record<string, unknown> = { name: values.name, scopes: values.scopes };
    if (values.description) body.description = values.description;
    if (values.expiresAt) body.expiresAt = values.expiresAt;
    if (values.allowedIps.length > 0) body.allowedIps = values.allowedIps;
    if (values.rateLimit) body.rateLimit = values.rateLimit;
    await run(async () => {
      const key = await api.post<ApiKey>(base, body);
      onCreated(key);
    });
  };

  return (
    <Dialog title="Create API key" onClose={onClose} wide>
      <form onSubmit={submit} noValidate>
        <ErrorAlert error={error} labels={KEY_FIELD_LABELS} />
        <KeyFields tier={tier} form={form} onChange={setForm} grants={g} />
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy}>
            Create key
          </button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- Edit ----

/** Why the signed-in person cannot change (or rotate) this key, or null: doing so is as strong as holding it (SPEC §3). */
function lockReason(g: Grants, key: ApiKey): string | null {
  const missing = ungrantable(g, key.scopes);
  if (missing.length === 0) return null;
  return `This key holds scopes you cannot grant (${missing.join(', ')}), and changing or rotating a key is as strong as holding it. An owner or admin can.`;
}

interface EditKeyDialogProps {
  tier: Tier;
  base: string;
  apiKey: ApiKey;
  onClose: () => void;
  onSaved: (key: ApiKey | null) => void;
}

function EditKeyDialog({ tier, base, apiKey, onClose, onSaved }: EditKeyDialogProps) {
  const id = useId();
  const [form, setForm] = useState<KeyFormState>(() => keyFormOf(apiKey));
  const g = useGrants(tier);
  const locked = lockReason(g, apiKey);
  const { busy, error, setError, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (locked) return;
    setError(null);
    const { values, problem } = readKeyForm(form);
    if (!values) {
      setError(problem);
      return;
    }
    const changes = keyChanges(apiKey, form, values);
    if (Object.keys(changes).length === 0) {
      onSaved(null);
      return;
    }
    await run(async () => {
      onSaved(await api.patch<ApiKey>(`${base}/${encodeURIComponent(apiKey.id)}`, changes));
    });
  };

  return (
    <Dialog title="Edit API key" onClose={onClose} wide describedBy={locked ? `${id}-locked` : undefined}>
      <form onSubmit={submit} noValidate>
        {locked && (
          // Focused on open, so the reason is what is read and seen first (not a disabled form).
          <div id={`${id}-locked`} className="alert alert-warning" tabIndex={-1} data-autofocus>
            <p>{locked}</p>
          </div>
        )}
        <ErrorAlert error={error} labels={KEY_FIELD_LABELS} />
        <p className="muted small">
          <code>{apiKey.id}</code> · the secret stays the same; changes apply on every node as soon as they are saved.
        </p>
        <fieldset disabled={locked !== null} className="plain-fieldset">
          <legend className="visually-hidden">Key settings</legend>
          <KeyFields tier={tier} form={form} onChange={setForm} grants={g} expiryLocked={apiKey.status === 'expired'} />
        </fieldset>
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy || locked !== null}>
            Save changes
          </button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- Secret (shown once) ----

const GRACE_OPTIONS = [
  { minutes: 0, label: 'Now' },
  { minutes: 60, label: 'In 1 hour' },
  { minutes: 1440, label: 'In 24 hours' },
  { minutes: 10080, label: 'In 7 days' },
] as const;

function SecretDialog({
  apiKey,
  rotation,
  onClose,
  returnFocus,
}: {
  apiKey: ApiKey;
  rotation: { graceMinutes: number } | null;
  onClose: () => void;
  returnFocus: HTMLElement | null;
}) {
  const id = useId();
  const field = useRef<HTMLTextAreaElement>(null);
  const secret = apiKey.secret ?? '';

  let previous: string | null = null;
  if (rotation) {
    if (rotation.graceMinutes === 0 || !apiKey.previousSecretExpiresAt) previous = 'The previous secret stops working now.';
    else {
      const label = GRACE_OPTIONS.find((o) => o.minutes === rotation.graceMinutes)?.label.toLowerCase() ?? `in ${rotation.graceMinutes} minutes`;
      previous = `The previous secret stops working ${label}, at ${formatDateLong(apiKey.previousSecretExpiresAt)}.`;
    }
  }

  return (
    <Dialog title="Your new API key" onClose={onClose} returnFocus={returnFocus} describedBy={`${id}-warning`}>
      <p>
        {rotation ? 'New secret for' : 'Created'} <strong>{apiKey.name}</strong>.
      </p>
      <div className="field">
        <label htmlFor={`${id}-secret`}>Secret</label>
        {/* The whole token, wrapped, never scrolled: its sk_ start tells what it is, its end matches the hint. */}
        <div className="secret-row">
          <textarea
            id={`${id}-secret`}
            ref={field}
            readOnly
            value={secret}
            className="mono secret-value"
            rows={2}
            data-autofocus
            spellCheck={false}
            autoComplete="off"
            onFocus={(e) => e.currentTarget.select()}
          />
          <CopyButton text={secret} select={field} />
        </div>
      </div>
      <div id={`${id}-warning`} className="alert alert-warning">
        <p>Copy it now and store it somewhere safe: it will not be shown again. Paygate keeps only a hash of it.</p>
        {previous && <p>{previous}</p>}
      </div>
      <div className="dialog-actions">
        <button type="button" className="button button-primary" onClick={onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}

// ---- Rotate ----

function RotateDialog({
  tier,
  apiKey,
  base,
  onClose,
  onRotated,
}: {
  tier: Tier;
  apiKey: ApiKey;
  base: string;
  onClose: () => void;
  onRotated: (key: ApiKey, graceMinutes: number) => void;
}) {
  const id = useId();
  const [grace, setGrace] = useState<number>(1440);
  const { busy, error, run } = useAction();
  const locked = lockReason(useGrants(tier), apiKey);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (locked) return;
    await run(async () => {
      const key = await api.post<ApiKey>(`${base}/${encodeURIComponent(apiKey.id)}/rotate`, { gracePeriodMinutes: grace });
      onRotated(key, grace);
    });
  };

  return (
    <Dialog title="Rotate API key" onClose={onClose} describedBy={locked ? `${id}-locked` : undefined}>
      <form onSubmit={submit}>
        {locked && (
          // Focused on open, so the reason is what is read and seen first (not a disabled form).
          <div id={`${id}-locked`} className="alert alert-warning" tabIndex={-1} data-autofocus>
            <p>{locked}</p>
          </div>
        )}
        <ErrorAlert error={error} />
        <p>
          Rotating <strong>{apiKey.name}</strong> issues a new secret. The key keeps its id, scopes and settings; only one previous secret is kept.
        </p>
        <fieldset className="radio-group" disabled={locked !== null}>
          <legend>Previous secret stops working</legend>
          {GRACE_OPTIONS.map((option, index) => (
            <div key={option.minutes} className="check">
              <input
                id={`${id}-grace-${option.minutes}`}
                type="radio"
                name={`${id}-grace`}
                value={option.minutes}
                checked={grace === option.minutes}
                onChange={() => setGrace(option.minutes)}
                data-autofocus={index === 2 ? true : undefined}
              />
              <label htmlFor={`${id}-grace-${option.minutes}`}>{option.label}</label>
            </div>
          ))}
        </fieldset>
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy || locked !== null}>
            Rotate
          </button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- Revoke ----

function RevokeDialog({ apiKey, base, onClose, onRevoked }: { apiKey: ApiKey; base: string; onClose: () => void; onRevoked: (key: ApiKey) => void }) {
  const id = useId();
  const { busy, error, run } = useAction();

  const revoke = async () => {
    await run(async () => {
      onRevoked(await api.post<ApiKey>(`${base}/${encodeURIComponent(apiKey.id)}/revoke`));
    });
  };

  return (
    <Dialog title="Revoke API key" onClose={onClose} describedBy={`${id}-text`}>
      <ErrorAlert error={error} />
      <p id={`${id}-text`}>
        Revoking <strong>{apiKey.name}</strong> is irreversible. Its secret, and any previous secret still in its grace period, stop working
        at once on every node. The key stays listed as revoked until you delete it.
      </p>
      <div className="dialog-actions">
        <button type="button" className="button button-secondary" onClick={onClose} data-autofocus>
          Cancel
        </button>
        <button type="button" className="button button-danger" onClick={() => void revoke()} disabled={busy}>
          Revoke key
        </button>
      </div>
    </Dialog>
  );
}

// ---- Delete ----

function DeleteDialog({ apiKey, base, onClose, onDeleted }: { apiKey: ApiKey; base: string; onClose: () => void; onDeleted: (id: string) => void }) {
  const id = useId();
  const [typed, setTyped] = useState('');
  const { busy, error, run } = useAction();
  const matches = typed === apiKey.name;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!matches) return;
    await run(async () => {
      await api.delete(`${base}/${encodeURIComponent(apiKey.id)}`);
      onDeleted(apiKey.id);
    });
  };

  return (
    <Dialog title="Delete API key" onClose={onClose}>
      <form onSubmit={submit}>
        <ErrorAlert error={error} />
        <p>
          Deleting <strong>{apiKey.name}</strong> removes it for good: integrations using it are refused at once, and its id is never reused.
          Its audit events stay.
        </p>
        <div className="field">
          <label htmlFor={`${id}-confirm`}>Type the key name to confirm</label>
          <input id={`${id}-confirm`} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} data-autofocus />
        </div>
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-danger" disabled={!matches || busy}>
            Delete key
          </button>
        </div>
      </form>
    </Dialog>
  );
}
