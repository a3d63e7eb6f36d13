/**
 * API keys of an organization (/admin/keys) and system keys (/admin/system/keys): list (status
 * tabs, search by name, id or hint, a flag filter, sorting by last use, age or expiry, a sparkline of
 * each key's last 24 hours, hygiene badges), create with presets and the scope picker, edit, the
 * secret shown once, rotate with a grace period (ended early once the old secret is idle), revoke,
 * delete. A key's name leads to its page (pages/KeyDetail.tsx), which reuses the dialogs below.
 */
import { useCallback, useId, useMemo, useRef, useState, type FormEvent, type KeyboardEvent, type MouseEvent } from 'react';
import { api, orgPath, type ApiKey, type ListPage, type Tier } from '../api';
import { FlagBadges } from '../components/FlagBadges';
import { LazySparkline } from '../components/Sparkline';
import {
  FLAG_LABELS,
  KEY_FLAGS,
  formatCount,
  isMissingRoute,
  keyIntelligenceApi,
  keyPagePath,
  refusals,
  type KeyView,
} from '../key-intelligence-api';
import { Link } from '../router';
import { SecretField } from '../components/SecretField';
import { Dialog } from '../components/Dialog';
import { Badge, Empty, ErrorAlert, LoadMore, StatusMessage, ListFeedback } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
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
import { formatDate, formatDateLong, formatRelative } from '../format';
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
  | { kind: 'secret'; key: ApiKey; rotation: Rotation | null }
  | { kind: 'rotate'; key: ApiKey }
  | { kind: 'revoke'; key: ApiKey }
  | { kind: 'delete'; key: ApiKey };

const PAGE_SIZE = 100;

/** How a rotation's grace period was set, for the secret dialog's sentence about the previous secret. */
export interface Rotation {
  graceMinutes: number;
  /** retireWhenIdleMinutes (SPEC §12), when asked for. */
  idleMinutes: number | null;
}

const STATUS_TABS = [
  { id: 'all', label: 'All' },
  { id: 'active', label: 'Active' },
  { id: 'quarantined', label: 'Quarantined' },
  { id: 'expired', label: 'Expired' },
  { id: 'revoked', label: 'Revoked' },
] as const;
type StatusTab = (typeof STATUS_TABS)[number]['id'];

const SORTS = [
  { id: 'created', label: 'Newest first' },
  { id: 'last-used', label: 'Last used' },
  { id: 'age', label: 'Oldest secret first' },
  { id: 'expiry', label: 'Expiring first' },
] as const;
type SortId = (typeof SORTS)[number]['id'];

interface ListView {
  tab: StatusTab;
  search: string;
  flag: string;
  sort: SortId;
}

const DEFAULT_VIEW: ListView = { tab: 'all', search: '', flag: '', sort: 'created' };

const time = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);

/**
 * The keys a view shows, in its order, over the keys the list has loaded: tabs, search and sort answer
 * at once without a round trip (the API filters the same way, `status`, `flag`, `q`, for scripts and
 * lists longer than a page).
 */
function viewKeys(keys: readonly KeyView[], view: ListView, options: { ignoreTab?: boolean } = {}): KeyView[] {
  const needle = view.search.trim().toLowerCase().replace(/^…/, '');
  const shown = keys.filter(
    (k) =>
      (options.ignoreTab || view.tab === 'all' || k.status === view.tab) &&
      (!view.flag || (k.flags ?? []).includes(view.flag)) &&
      (!needle || k.name.toLowerCase().includes(needle) || k.id.toLowerCase().includes(needle) || k.hint.toLowerCase() === needle || (needle.length >= 2 && k.hint.toLowerCase().endsWith(needle))),
  );
  // Keys without the date sort last, whatever the direction.
  const byDate = (pick: (k: KeyView) => number, direction: 1 | -1) => (a: KeyView, b: KeyView) => {
    const x = pick(a);
    const y = pick(b);
    if (Number.isNaN(x) && Number.isNaN(y)) return 0;
    if (Number.isNaN(x)) return 1;
    if (Number.isNaN(y)) return -1;
    return (x - y) * direction;
  };
  if (view.sort === 'last-used') shown.sort(byDate((k) => time(k.lastUsedAt), -1));
  else if (view.sort === 'age') shown.sort(byDate((k) => time(k.rotatedAt ?? k.createdAt), 1));
  else if (view.sort === 'expiry') shown.sort(byDate((k) => time(k.expiresAt), 1));
  return shown;
}

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
    can('read') ? api.get<ListPage<KeyView>>(base, { limit: PAGE_SIZE }) : Promise.resolve<ListPage<KeyView>>({ object: 'list', data: [], hasMore: false }),
  );
  const [view, setView] = useState<ListView>(DEFAULT_VIEW);
  const tabsId = useId();
  // One request tells which keys had traffic in the last 24 hours (SPEC §12 GET /v1/usage); only
  // those fetch their own figures for a sparkline, and only once their row is in view.
  const overview = useLoad(() => (can('read') ? keyIntelligenceApi.overview(tier, organizationId, { limit: 1000 }) : Promise.resolve(null)));
  const usageOf = useMemo(() => new Map((overview.data?.data ?? []).map((row) => [row.keyId, row])), [overview.data]);
  const showUsage = !overview.error || !isMissingRoute(overview.error);
  const sparkline = useCallback(
    async (id: string) => {
      const usage = await keyIntelligenceApi.usage(tier, organizationId, id, { granularity: 'hour' });
      const refused = refusals(usage.totals);
      return {
        values: usage.buckets.map((b) => b.total),
        refused: usage.buckets.map((b) => b.total - b.outcomes.ok),
        label: `${formatCount(usage.totals.total)} requests in the last 24 hours${refused > 0 ? `, ${formatCount(refused)} refused` : ''}`,
      };
    },
    [tier, organizationId],
  );

  const loadMore = async () => {
    const last = list.data?.data[list.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await api.get<ListPage<KeyView>>(base, { limit: PAGE_SIZE, startingAfter: last.id });
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
  const shown = viewKeys(keys, view);
  const inTabs = viewKeys(keys, view, { ignoreTab: true });
  const countIn = (tab: StatusTab) => (tab === 'all' ? inTabs.length : inTabs.filter((k) => k.status === tab).length);
  const selectTab = (tab: StatusTab) => setView((v) => ({ ...v, tab }));
  // Arrow keys move between the tabs (the WAI-ARIA tabs pattern); the chosen tab takes focus.
  const tabKeys = (event: KeyboardEvent<HTMLDivElement>) => {
    const index = STATUS_TABS.findIndex((t) => t.id === view.tab);
    const next = event.key === 'ArrowRight' ? index + 1 : event.key === 'ArrowLeft' ? index - 1 : event.key === 'Home' ? 0 : event.key === 'End' ? STATUS_TABS.length - 1 : null;
    if (next === null) return;
    event.preventDefault();
    const tab = STATUS_TABS[(next + STATUS_TABS.length) % STATUS_TABS.length]!;
    selectTab(tab.id);
    document.getElementById(`${tabsId}-tab-${tab.id}`)?.focus();
  };

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
      <ListFeedback list={list} />

      {list.data && (
        <>
          {keys.length === 0 ? (
            <Empty>No API keys yet.</Empty>
          ) : (
            <>
              <div className="filters key-filters" role="search" aria-label="Filter keys">
                <div className="field">
                  <label htmlFor={`${tabsId}-search`}>Search keys</label>
                  <input
                    id={`${tabsId}-search`}
                    type="search"
                    value={view.search}
                    placeholder="Name, id or hint"
                    autoComplete="off"
                    spellCheck={false}
                    onChange={(e) => setView((v) => ({ ...v, search: e.target.value }))}
                  />
                </div>
                <div className="field">
                  <label htmlFor={`${tabsId}-flag`}>Flag</label>
                  <select id={`${tabsId}-flag`} value={view.flag} onChange={(e) => setView((v) => ({ ...v, flag: e.target.value }))}>
                    <option value="">Any</option>
                    {KEY_FLAGS.map((flag) => (
                      <option key={flag} value={flag}>
                        {FLAG_LABELS[flag]}
                      </option>
                    ))}
                  </select>
                </div>
                <div className="field">
                  <label htmlFor={`${tabsId}-sort`}>Sort by</label>
                  <select id={`${tabsId}-sort`} value={view.sort} onChange={(e) => setView((v) => ({ ...v, sort: e.target.value as SortId }))}>
                    {SORTS.map((sort) => (
                      <option key={sort.id} value={sort.id}>
                        {sort.label}
                      </option>
                    ))}
                  </select>
                </div>
              </div>
              <div className="tabs" role="tablist" aria-label="Key status" onKeyDown={tabKeys}>
                {STATUS_TABS.map((tab) => (
                  <button
                    key={tab.id}
                    id={`${tabsId}-tab-${tab.id}`}
                    type="button"
                    role="tab"
                    className="tab"
                    aria-selected={view.tab === tab.id}
                    aria-controls={`${tabsId}-panel`}
                    tabIndex={view.tab === tab.id ? 0 : -1}
                    onClick={() => selectTab(tab.id)}
                  >
                    {tab.label} <span className="tab-count">{countIn(tab.id)}</span>
                  </button>
                ))}
              </div>
              <div id={`${tabsId}-panel`} role="tabpanel" aria-labelledby={`${tabsId}-tab-${view.tab}`}>
                {shown.length === 0 ? (
                  <Empty>No keys match.</Empty>
                ) : (
                  <div className="table-wrap">
                    <table className="table">
                      <TableHead columns={['Name', 'Hint', 'Scopes', 'Status', 'Created by', 'Last used', 'Expires']} actions="Actions" />
                      <tbody>
                        {shown.map((key) => (
                          <tr key={key.id}>
                            <td>
                              <div className="cell-title">
                                <Link to={keyPagePath(tier, key.id)}>{key.name}</Link>
                              </div>
                              {key.description && <div className="cell-sub">{key.description}</div>}
                              <div className="cell-meta">
                                <code>{key.id}</code>
                                {key.allowedIps && key.allowedIps.length > 0 && <span>IPs: {key.allowedIps.join(', ')}</span>}
                                {key.rateLimit && (
                                  <span>
                                    {key.rateLimit.requests} req / {key.rateLimit.windowSeconds} s
                                  </span>
                                )}
                                {key.previousSecretExpiresAt && (
                                  <span>
                                    Previous secret until {formatDate(key.previousSecretExpiresAt)}
                                    {key.previousSecretLastUsedAt ? `, last used ${formatRelative(key.previousSecretLastUsedAt)}` : ''}
                                  </span>
                                )}
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
                              <FlagBadges flags={key.flags} />
                            </td>
                            <td>{createdBy(key, me.user)}</td>
                            <td>
                              {formatDate(key.lastUsedAt, 'Never')}
                              {/* The last 24 hours under the last use: one column, so the table keeps its width. */}
                              {showUsage && (
                                <div className="last-use-activity">
                                  <LazySparkline
                                    // Without the overview (an error), every visible row asks for itself.
                                    wanted={overview.data ? usageOf.has(key.id) || overview.data.hasMore : !overview.loading}
                                    load={() => sparkline(key.id)}
                                    emptyLabel="No requests in the last 24 hours"
                                  />
                                  {usageOf.has(key.id) && <span className="sparkline-total">{formatCount(usageOf.get(key.id)!.total)} in 24 h</span>}
                                </div>
                              )}
                            </td>
                            <td>{formatDate(key.expiresAt, 'Never')}</td>
                            <td className="row-actions">
                              <div className="row-buttons">
                                {key.status !== 'revoked' && can('update') && (
                                  <button type="button" className="button button-small" aria-label={`Edit ${key.name}`} onClick={open({ kind: 'edit', key })}>
                                    Edit
                                  </button>
                                )}
                                {(key.status === 'active' || key.status === 'quarantined') && can('update') && (
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
              </div>
            </>
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
          onRotated={(key, rotation) => {
            replaceKey(key);
            setModal({ kind: 'secret', key, rotation });
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

export function EditKeyDialog({ tier, base, apiKey, onClose, onSaved }: EditKeyDialogProps) {
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

/** rotate's retireWhenIdleMinutes: 1 minute to 1 day (SPEC §12). */
const MAX_IDLE_MINUTES = 1440;

const GRACE_OPTIONS = [
  { minutes: 0, label: 'Now' },
  { minutes: 60, label: 'In 1 hour' },
  { minutes: 1440, label: 'In 24 hours' },
  { minutes: 10080, label: 'In 7 days' },
] as const;

export function SecretDialog({
  apiKey,
  rotation,
  onClose,
  returnFocus,
}: {
  apiKey: ApiKey;
  rotation: Rotation | null;
  onClose: () => void;
  returnFocus: HTMLElement | null;
}) {
  const id = useId();
  const secret = apiKey.secret ?? '';

  let previous: string | null = null;
  if (rotation) {
    if (rotation.graceMinutes === 0 || !apiKey.previousSecretExpiresAt) previous = 'The previous secret stops working now.';
    else {
      const label = GRACE_OPTIONS.find((o) => o.minutes === rotation.graceMinutes)?.label.toLowerCase() ?? `in ${rotation.graceMinutes} minutes`;
      previous = `The previous secret stops working ${label}, at ${formatDateLong(apiKey.previousSecretExpiresAt)}.`;
    }
  }
  const idle =
    rotation && rotation.idleMinutes !== null && previous && apiKey.previousSecretExpiresAt && rotation.graceMinutes > 0
      ? `It stops sooner once it has not been used for ${rotation.idleMinutes} ${rotation.idleMinutes === 1 ? 'minute' : 'minutes'} after the new secret's first use.`
      : null;

  return (
    <Dialog title="Your new API key" onClose={onClose} returnFocus={returnFocus} describedBy={`${id}-warning`}>
      <p>
        {rotation ? 'New secret for' : 'Created'} <strong>{apiKey.name}</strong>.
      </p>
      <SecretField id={`${id}-secret`} label="Secret" secret={secret} />
      <div id={`${id}-warning`} className="alert alert-warning">
        <p>Copy it now and store it somewhere safe: it will not be shown again. Paygate keeps only a hash of it.</p>
        {previous && <p>{previous}</p>}
        {idle && <p>{idle}</p>}
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

export function RotateDialog({
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
  onRotated: (key: ApiKey, rotation: Rotation) => void;
}) {
  const id = useId();
  const [grace, setGrace] = useState<number>(1440);
  const [whenIdle, setWhenIdle] = useState(false);
  const [idleMinutes, setIdleMinutes] = useState('15');
  const { busy, error, setError, run } = useAction();
  const locked = lockReason(useGrants(tier), apiKey);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (locked) return;
    const idle = whenIdle && grace > 0 ? Number(idleMinutes) : null;
    if (idle !== null && (!Number.isInteger(idle) || idle < 1 || idle > MAX_IDLE_MINUTES)) {
      setError(new Error(`Idle minutes must be a whole number from 1 to ${MAX_IDLE_MINUTES}.`));
      return;
    }
    await run(async () => {
      const body = idle === null ? { gracePeriodMinutes: grace } : { gracePeriodMinutes: grace, retireWhenIdleMinutes: idle };
      const key = await api.post<ApiKey>(`${base}/${encodeURIComponent(apiKey.id)}/rotate`, body);
      onRotated(key, { graceMinutes: grace, idleMinutes: idle });
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
        {grace > 0 && (
          <fieldset className="idle-retire" disabled={locked !== null}>
            <legend className="visually-hidden">End on evidence</legend>
            <div className="check">
              <input id={`${id}-idle`} type="checkbox" checked={whenIdle} onChange={(e) => setWhenIdle(e.target.checked)} />
              <label htmlFor={`${id}-idle`}>End when the old secret is idle</label>
            </div>
            {whenIdle && (
              <div className="field idle-minutes">
                <label htmlFor={`${id}-idle-minutes`}>Idle minutes</label>
                <input
                  id={`${id}-idle-minutes`}
                  type="number"
                  inputMode="numeric"
                  min={1}
                  max={MAX_IDLE_MINUTES}
                  step={1}
                  value={idleMinutes}
                  aria-describedby={`${id}-idle-hint`}
                  onChange={(e) => setIdleMinutes(e.target.value)}
                />
                <p id={`${id}-idle-hint`} className="field-hint">
                  The grace period ends as soon as the old secret has not been used for this many minutes after the new secret's first use, on
                  any node; never later than the time chosen above.
                </p>
              </div>
            )}
          </fieldset>
        )}
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

export function RevokeDialog({ apiKey, base, onClose, onRevoked }: { apiKey: ApiKey; base: string; onClose: () => void; onRevoked: (key: ApiKey) => void }) {
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

export function DeleteDialog({ apiKey, base, onClose, onDeleted }: { apiKey: ApiKey; base: string; onClose: () => void; onDeleted: (id: string) => void }) {
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
