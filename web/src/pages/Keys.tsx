/**
 * API keys of an organization (/admin/keys) and system keys (/admin/system/keys): list, create with
 * presets and the scope picker, the secret shown once, rotate with a grace period, revoke, delete.
 */
import { useCallback, useId, useRef, useState, type FormEvent, type MouseEvent } from 'react';
import { api, ApiError, orgPath, type ApiKey, type ListPage, type Tier } from '../api';
import { Dialog } from '../components/Dialog';
import { Badge, Empty, ErrorAlert, Loading, LoadMore } from '../components/Feedback';
import { formatDate, formatDateLong, localInputToIso } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { ACTIONS, PRESETS, RESOURCES } from '../scopes';
import { useSession } from '../session';

interface KeysPageProps {
  tier: Tier;
  organizationId: string | null;
}

type Modal =
  | { kind: 'none' }
  | { kind: 'create' }
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
      {modal.kind === 'secret' && <SecretDialog apiKey={modal.key} rotation={modal.rotation} onClose={close} returnFocus={opener.current} />}
      {modal.kind === 'rotate' && (
        <RotateDialog
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
  const id = useId();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [expiresAt, setExpiresAt] = useState('');
  const [allowedIps, setAllowedIps] = useState('');
  const [rateRequests, setRateRequests] = useState('');
  const [rateWindow, setRateWindow] = useState('');
  const [scopes, setScopes] = useState<Set<string>>(new Set());
  const { busy, error, setError, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    const problems: { path: string; message: string }[] = [];
    if (!name.trim()) problems.push({ path: 'Name', message: 'is required' });
    const expiresIso = localInputToIso(expiresAt);
    if (expiresAt && !expiresIso) problems.push({ path: 'Expires at', message: 'is not a valid date and time' });
    let rateLimit: { requests: number; windowSeconds: number } | undefined;
    if (rateRequests || rateWindow) {
      const requests = Number(rateRequests);
      const windowSeconds = Number(rateWindow);
      if (!Number.isInteger(requests) || requests < 1 || !Number.isInteger(windowSeconds) || windowSeconds < 1) {
        problems.push({ path: 'Rate limit', message: 'needs both a number of requests and a window in seconds (whole numbers, at least 1)' });
      } else rateLimit = { requests, windowSeconds };
    }
    if (problems.length > 0) {
      setError(new ApiError(0, { title: 'Check the form', detail: 'Some fields need attention.', errors: problems }));
      return;
    }
    const ips = allowedIps
      .split(/[\n,]/)
      .map((s) => s.trim())
      .filter(Boolean);
    const body: Record<string, unknown> = { name: name.trim(), scopes: [...scopes] };
    if (description.trim()) body.description = description.trim();
    if (expiresIso) body.expiresAt = expiresIso;
    if (ips.length > 0) body.allowedIps = ips;
    if (rateLimit) body.rateLimit = rateLimit;
    await run(async () => {
      const key = await api.post<ApiKey>(base, body);
      onCreated(key);
    });
  };

  return (
    <Dialog title="Create API key" onClose={onClose} wide>
      <form onSubmit={submit} noValidate>
        <ErrorAlert error={error} />
        <div className="form-grid">
          <div className="field">
            <label htmlFor={`${id}-name`}>Name</label>
            <input id={`${id}-name`} data-autofocus value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-expires`}>Expires at</label>
            <input id={`${id}-expires`} type="datetime-local" value={expiresAt} onChange={(e) => setExpiresAt(e.target.value)} aria-describedby={`${id}-expires-hint`} />
            <p id={`${id}-expires-hint`} className="field-hint">
              Your local time. Empty: never (unless the system caps key lifetime).
            </p>
          </div>
          <div className="field field-span">
            <label htmlFor={`${id}-description`}>Description</label>
            <textarea id={`${id}-description`} rows={2} maxLength={500} value={description} onChange={(e) => setDescription(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor={`${id}-ips`}>Allowed IPs</label>
            <textarea
              id={`${id}-ips`}
              rows={3}
              value={allowedIps}
              onChange={(e) => setAllowedIps(e.target.value)}
              aria-describedby={`${id}-ips-hint`}
              spellCheck={false}
            />
            <p id={`${id}-ips-hint`} className="field-hint">
              One address or CIDR range per line, e.g. 203.0.113.0/24. Empty: any address.
            </p>
          </div>
          <div className="field">
            <fieldset className="inline-fieldset">
              <legend>Rate limit</legend>
              <div className="field">
                <label htmlFor={`${id}-rate-requests`}>Rate limit requests</label>
                <input id={`${id}-rate-requests`} type="number" min={1} inputMode="numeric" value={rateRequests} onChange={(e) => setRateRequests(e.target.value)} />
              </div>
              <div className="field">
                <label htmlFor={`${id}-rate-window`}>Rate limit window (seconds)</label>
                <input id={`${id}-rate-window`} type="number" min={1} inputMode="numeric" value={rateWindow} onChange={(e) => setRateWindow(e.target.value)} />
              </div>
              <p className="field-hint">Empty: no per-key limit.</p>
            </fieldset>
          </div>
        </div>

        {tier === 'organization' && (
          <div role="group" aria-labelledby={`${id}-presets`} className="presets">
            <h3 id={`${id}-presets`}>Presets</h3>
            <div className="preset-buttons">
              {PRESETS.map((preset) => (
                <button
                  key={preset.name}
                  type="button"
                  className="button button-small button-secondary"
                  onClick={() => setScopes(new Set(preset.scopes))}
                  title={preset.scopes.join(', ')}
                >
                  {preset.name}
                </button>
              ))}
            </div>
          </div>
        )}

        <ScopePicker tier={tier} selected={scopes} onChange={setScopes} />

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

function ScopePicker({ tier, selected, onChange }: { tier: Tier; selected: Set<string>; onChange: (next: Set<string>) => void }) {
  const id = useId();
  const toggle = (scope: string, on: boolean) => {
    const next = new Set(selected);
    if (on) next.add(scope);
    else next.delete(scope);
    onChange(next);
  };
  return (
    <section className="scope-picker" aria-labelledby={`${id}-title`}>
      <div className="scope-picker-header">
        <h3 id={`${id}-title`}>Scopes</h3>
        <p className="field-hint">
          {selected.size === 0 ? 'No scopes selected.' : `${selected.size} selected.`} <code>resource:*</code> grants every action of the resource.
        </p>
        {selected.size > 0 && (
          <button type="button" className="button button-small button-ghost" onClick={() => onChange(new Set())}>
            Clear scopes
          </button>
        )}
      </div>
      <div className="scope-grid">
        {RESOURCES[tier].map((resource) => (
          <fieldset key={resource} className="scope-group">
            <legend>{resource}</legend>
            {ACTIONS.map((action) => {
              const scope = `${resource}:${action}`;
              const inputId = `${id}-${resource}-${action === '*' ? 'all' : action}`;
              return (
                <div key={action} className="check">
                  <input id={inputId} type="checkbox" checked={selected.has(scope)} onChange={(e) => toggle(scope, e.target.checked)} />
                  <label htmlFor={inputId}>{scope}</label>
                </div>
              );
            })}
          </fieldset>
        ))}
      </div>
    </section>
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
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | null>(null);
  const secret = apiKey.secret ?? '';

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('Copied to the clipboard.');
    } catch {
      // Clipboard API unavailable (permissions, insecure context): select the text so Ctrl+C works.
      input.current?.select();
      const ok = document.execCommand?.('copy') ?? false;
      setCopied(ok ? 'Copied to the clipboard.' : 'Select the secret and copy it with your keyboard.');
    }
  };

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
        <div className="input-with-button">
          <input
            id={`${id}-secret`}
            ref={input}
            readOnly
            value={secret}
            className="mono"
            data-autofocus
            spellCheck={false}
            autoComplete="off"
            onFocus={(e) => e.currentTarget.select()}
          />
          <button type="button" className="button button-secondary" onClick={() => void copy()}>
            Copy
          </button>
        </div>
      </div>
      <p role="status" className="copy-status">
        {copied ?? ''}
      </p>
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
  apiKey,
  base,
  onClose,
  onRotated,
}: {
  apiKey: ApiKey;
  base: string;
  onClose: () => void;
  onRotated: (key: ApiKey, graceMinutes: number) => void;
}) {
  const id = useId();
  const [grace, setGrace] = useState<number>(1440);
  const { busy, error, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await run(async () => {
      const key = await api.post<ApiKey>(`${base}/${encodeURIComponent(apiKey.id)}/rotate`, { gracePeriodMinutes: grace });
      onRotated(key, grace);
    });
  };

  return (
    <Dialog title="Rotate API key" onClose={onClose}>
      <form onSubmit={submit}>
        <ErrorAlert error={error} />
        <p>
          Rotating <strong>{apiKey.name}</strong> issues a new secret. The key keeps its id, scopes and settings; only one previous secret is kept.
        </p>
        <fieldset className="radio-group">
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
          <button type="submit" className="button button-primary" disabled={busy}>
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
