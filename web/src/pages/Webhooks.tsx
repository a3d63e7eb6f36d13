/**
 * Settings > Webhooks (/admin/webhooks): the organization's webhook endpoints (SPEC §16). List them;
 * add one with the event picker, its signing secret shown once; rotate the secret with a grace
 * period; disable, enable, delete; send a test event; and the deliveries of an endpoint with their
 * attempts and a Retry button (WebhooksDeliveries.tsx). Buttons follow the role's scopes; the API
 * decides, and a refusal is shown in words where the action was asked for.
 */
import { useCallback, useId, useRef, useState, type FormEvent, type MouseEvent } from 'react';
import { ApiError } from '../api';
import { SecretField } from '../components/SecretField';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { Dialog } from '../components/Dialog';
import { Empty, ErrorAlert, StatusMessage, ListFeedback } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { formatDate, formatDateLong } from '../format';
import { useAction, useLoad, usePageTitle } from '../hooks';
import { useSession } from '../session';
import { MAX_ENDPOINTS, WEBHOOK_EVENT_TYPES, webhooksApi, type WebhookEndpoint } from '../webhooks-api';
import { DeliveriesPanel, StatusBadge } from './WebhooksDeliveries';

type Modal =
  | { kind: 'none' }
  | { kind: 'create' }
  | { kind: 'secret'; endpoint: WebhookEndpoint; rotation: { graceMinutes: number } | null }
  | { kind: 'rotate'; endpoint: WebhookEndpoint }
  | { kind: 'delete'; endpoint: WebhookEndpoint };

const FIELD_LABELS = { url: 'URL', events: 'Events', description: 'Description', gracePeriodMinutes: 'Grace period' };

export function WebhooksPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Webhooks');
  const { permissions } = useSession();
  const can = (action: 'read' | 'create' | 'update' | 'delete' | 'execute') => permissions.can(`webhook:${action}`);
  const list = useLoad(() => webhooksApi.list(organizationId));
  const [modal, setModal] = useState<Modal>({ kind: 'none' });
  const [status, setStatus] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  // Bumped to make the deliveries panel reload (after a test event was queued).
  const [deliveriesVersion, setDeliveriesVersion] = useState(0);
  const rowAction = useAction();
  const opener = useRef<HTMLElement | null>(null);

  const open = (next: Modal) => (event: MouseEvent<HTMLElement>) => {
    opener.current = event.currentTarget;
    setStatus(null);
    rowAction.setError(null);
    setModal(next);
  };
  const close = useCallback(() => setModal({ kind: 'none' }), []);

  const replace = (endpoint: WebhookEndpoint) => {
    const { secret: _secret, ...view } = endpoint;
    list.setData((current) => (current ? { ...current, data: current.data.map((e) => (e.id === view.id ? view : e)) } : current));
  };

  const setEnabled = async (endpoint: WebhookEndpoint, enabled: boolean) => {
    setStatus(null);
    await rowAction.run(async () => {
      const updated = await webhooksApi.update(organizationId, endpoint.id, { status: enabled ? 'enabled' : 'disabled' });
      replace(updated);
      setStatus(enabled ? `Enabled ${updated.url}.` : `Disabled ${updated.url}: it gets no deliveries until enabled again.`);
    });
  };

  const sendTest = async (endpoint: WebhookEndpoint) => {
    setStatus(null);
    await rowAction.run(async () => {
      const delivery = await webhooksApi.sendTest(organizationId, endpoint.id);
      setSelected(endpoint.id);
      setDeliveriesVersion((v) => v + 1);
      setStatus(`Test event queued for ${endpoint.url} (delivery ${delivery.id}).`);
    });
  };

  if (!can('read')) {
    return (
      <>
        <h1 tabIndex={-1}>Webhooks</h1>
        <p>You don't have access to this organization's webhooks.</p>
      </>
    );
  }

  const endpoints = list.data?.data ?? [];
  const current = endpoints.find((e) => e.id === selected) ?? null;

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Webhooks</h1>
          <p className="page-lead">
            Paygate POSTs signed events (a checkout paid, an invoice finalized, a key revoked) to these endpoints, retrying for 3 days until
            they answer 2xx.
          </p>
        </div>
        {can('create') && (
          <button type="button" className="button button-primary" onClick={open({ kind: 'create' })} disabled={endpoints.length >= MAX_ENDPOINTS}>
            Add endpoint
          </button>
        )}
      </div>

      <StatusMessage message={status} />
      <ErrorAlert error={rowAction.error} />
      <ListFeedback list={list} />

      {list.data &&
        (endpoints.length === 0 ? (
          <Empty>No webhook endpoints yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Webhook endpoints">
              <TableHead columns={['Endpoint', 'Events', 'Status', 'Created']} actions="Actions" />
              <tbody>
                {endpoints.map((endpoint) => (
                  <tr key={endpoint.id} aria-current={endpoint.id === selected ? 'true' : undefined}>
                    <td>
                      <div className="cell-title webhook-url">{endpoint.url}</div>
                      {endpoint.description && <div className="cell-sub">{endpoint.description}</div>}
                      <div className="cell-meta">
                        <code>{endpoint.id}</code>
                        {endpoint.previousSecretExpiresAt && <span>Previous secret signs until {formatDate(endpoint.previousSecretExpiresAt)}</span>}
                      </div>
                    </td>
                    <td>
                      {endpoint.events.includes('*') ? (
                        <span>All events</span>
                      ) : (
                        <ul className="chips">
                          {endpoint.events.map((type) => (
                            <li key={type} className="chip">
                              {type}
                            </li>
                          ))}
                        </ul>
                      )}
                    </td>
                    <td>
                      <StatusBadge status={endpoint.status} />
                    </td>
                    <td>{formatDate(endpoint.createdAt)}</td>
                    <td className="row-actions">
                      <div className="row-buttons">
                        <button
                          type="button"
                          className="button button-small"
                          aria-label={`Deliveries of ${endpoint.url}`}
                          aria-pressed={endpoint.id === selected}
                          onClick={() => setSelected((s) => (s === endpoint.id ? null : endpoint.id))}
                        >
                          Deliveries
                        </button>
                        {can('execute') && endpoint.status === 'enabled' && (
                          <button
                            type="button"
                            className="button button-small"
                            aria-label={`Send test event to ${endpoint.url}`}
                            disabled={rowAction.busy}
                            onClick={() => void sendTest(endpoint)}
                          >
                            Send test event
                          </button>
                        )}
                        {can('update') && (
                          <button
                            type="button"
                            className="button button-small"
                            aria-label={`Rotate secret of ${endpoint.url}`}
                            onClick={open({ kind: 'rotate', endpoint })}
                          >
                            Rotate secret
                          </button>
                        )}
                        {can('update') && (
                          <button
                            type="button"
                            className="button button-small"
                            aria-label={`${endpoint.status === 'enabled' ? 'Disable' : 'Enable'} ${endpoint.url}`}
                            disabled={rowAction.busy}
                            onClick={() => void setEnabled(endpoint, endpoint.status !== 'enabled')}
                          >
                            {endpoint.status === 'enabled' ? 'Disable' : 'Enable'}
                          </button>
                        )}
                        {can('delete') && (
                          <button
                            type="button"
                            className="button button-small button-danger-outline"
                            aria-label={`Delete ${endpoint.url}`}
                            onClick={open({ kind: 'delete', endpoint })}
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
        ))}

      {current && (
        <DeliveriesPanel
          key={current.id}
          organizationId={organizationId}
          endpoint={current}
          version={deliveriesVersion}
          canRetry={can('execute')}
          onClose={() => setSelected(null)}
        />
      )}

      {modal.kind === 'create' && (
        <CreateEndpointDialog
          organizationId={organizationId}
          onClose={close}
          onCreated={(endpoint) => {
            setModal({ kind: 'secret', endpoint, rotation: null });
            void list.reload();
          }}
        />
      )}
      {modal.kind === 'secret' && <SecretDialog endpoint={modal.endpoint} rotation={modal.rotation} onClose={close} returnFocus={opener.current} />}
      {modal.kind === 'rotate' && (
        <RotateSecretDialog
          organizationId={organizationId}
          endpoint={modal.endpoint}
          onClose={close}
          onRotated={(endpoint, graceMinutes) => {
            replace(endpoint);
            setModal({ kind: 'secret', endpoint, rotation: { graceMinutes } });
          }}
        />
      )}
      {modal.kind === 'delete' && (
        <ConfirmDialog
          title="Delete webhook endpoint"
          confirmLabel="Delete endpoint"
          danger
          returnFocus={opener.current}
          onClose={close}
          onConfirm={async () => {
            const { endpoint } = modal;
            await webhooksApi.remove(organizationId, endpoint.id);
            list.setData((c) => (c ? { ...c, data: c.data.filter((e) => e.id !== endpoint.id) } : c));
            if (selected === endpoint.id) setSelected(null);
            setStatus(`Deleted ${endpoint.url}.`);
            close();
          }}
        >
          <p>
            Deleting <strong className="webhook-url">{modal.endpoint.url}</strong> stops its deliveries at once and removes them with their
            attempts. Its audit events stay.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

// ---- Add an endpoint ----

/** The event types grouped by what they concern ("api_key", "checkout", ...), in the server's order. */
function eventGroups(): [string, string[]][] {
  const groups = new Map<string, string[]>();
  for (const type of WEBHOOK_EVENT_TYPES) {
    const group = type.slice(0, type.indexOf('.'));
    groups.set(group, [...(groups.get(group) ?? []), type]);
  }
  return [...groups.entries()];
}

function CreateEndpointDialog({
  organizationId,
  onClose,
  onCreated,
}: {
  organizationId: string;
  onClose: () => void;
  onCreated: (endpoint: WebhookEndpoint) => void;
}) {
  const id = useId();
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [all, setAll] = useState(false);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const { busy, error, setError, run } = useAction();

  const toggle = (type: string, on: boolean) =>
    setPicked((current) => {
      const next = new Set(current);
      if (on) next.add(type);
      else next.delete(type);
      return next;
    });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    const events = all ? ['*'] : WEBHOOK_EVENT_TYPES.filter((t) => picked.has(t));
    const problems: { path: string; message: string }[] = [];
    if (!url.trim()) problems.push({ path: 'URL', message: 'enter the address Paygate should POST events to' });
    if (events.length === 0) problems.push({ path: 'Events', message: 'choose at least one event type, or all events' });
    if (problems.length > 0) {
      setError(new ApiError(400, { title: 'Check the endpoint', errors: problems }));
      return;
    }
    await run(async () => {
      const body: { url: string; events: string[]; description?: string } = { url: url.trim(), events };
      if (description.trim()) body.description = description.trim();
      onCreated(await webhooksApi.create(organizationId, body));
    });
  };

  return (
    <Dialog title="Add webhook endpoint" onClose={onClose} wide>
      <form onSubmit={submit} noValidate>
        <LocalOrApiError error={error} />
        <div className="form-grid">
          <div className="field field-span">
            <label htmlFor={`${id}-url`}>Endpoint URL</label>
            <input
              id={`${id}-url`}
              type="url"
              value={url}
              maxLength={2048}
              placeholder="https://shop.example.com/paygate/events"
              autoComplete="off"
              spellCheck={false}
              aria-describedby={`${id}-url-hint`}
              onChange={(e) => setUrl(e.target.value)}
              data-autofocus
            />
            <p id={`${id}-url-hint`} className="field-hint">
              An http(s) address on a public network. Paygate follows no redirects; any 2xx within 10 seconds is a success.
            </p>
          </div>
          <div className="field field-span">
            <label htmlFor={`${id}-description`}>Description (optional)</label>
            <input id={`${id}-description`} value={description} maxLength={500} onChange={(e) => setDescription(e.target.value)} />
          </div>
        </div>
        <section className="scope-picker" aria-labelledby={`${id}-events`}>
          <div className="scope-picker-header">
            <h3 id={`${id}-events`}>Events to send</h3>
            <p className="field-hint">{all ? 'Every event type, including types added later.' : `${picked.size} of ${WEBHOOK_EVENT_TYPES.length} types selected.`}</p>
          </div>
          <div className="check">
            <input id={`${id}-all`} type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
            <label htmlFor={`${id}-all`}>All events</label>
          </div>
          <fieldset disabled={all} className="plain-fieldset">
            <legend className="visually-hidden">Event types</legend>
            <div className="scope-grid">
              {eventGroups().map(([group, types]) => (
                <fieldset key={group} className="scope-group">
                  <legend>{group}</legend>
                  {types.map((type) => (
                    <div key={type} className="check">
                      <input id={`${id}-${type}`} type="checkbox" checked={all || picked.has(type)} onChange={(e) => toggle(type, e.target.checked)} />
                      <label htmlFor={`${id}-${type}`}>{type}</label>
                    </div>
                  ))}
                </fieldset>
              ))}
            </div>
          </fieldset>
        </section>
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={busy}>
            Add endpoint
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The panel's own form problems read like the API's field errors; an ApiError as ErrorAlert shows it. */
function LocalOrApiError({ error }: { error: unknown }) {
  return <ErrorAlert error={error} labels={FIELD_LABELS} />;
}

// ---- The secret, shown once ----

const GRACE_OPTIONS = [
  { minutes: 0, label: 'Now' },
  { minutes: 60, label: 'In 1 hour' },
  { minutes: 1440, label: 'In 24 hours' },
  { minutes: 10080, label: 'In 7 days' },
] as const;

function SecretDialog({
  endpoint,
  rotation,
  onClose,
  returnFocus,
}: {
  endpoint: WebhookEndpoint;
  rotation: { graceMinutes: number } | null;
  onClose: () => void;
  returnFocus: HTMLElement | null;
}) {
  const id = useId();
  const secret = endpoint.secret ?? '';
  let previous: string | null = null;
  if (rotation) {
    if (rotation.graceMinutes === 0 || !endpoint.previousSecretExpiresAt) previous = 'The previous secret no longer signs deliveries.';
    else
      previous = `Until ${formatDateLong(endpoint.previousSecretExpiresAt)} every delivery carries two signatures, the new secret's first and the previous secret's: deploy the new secret to your receiver meanwhile.`;
  }
  return (
    <Dialog title="Signing secret" onClose={onClose} returnFocus={returnFocus} describedBy={`${id}-warning`}>
      <p>
        {rotation ? 'New signing secret for' : 'Endpoint added:'} <strong className="webhook-url">{endpoint.url}</strong>
      </p>
      <SecretField id={`${id}-secret`} label="Signing secret" secret={secret} copyLabel="Copy signing secret" />
      <div id={`${id}-warning`} className="alert alert-warning">
        <p>
          Copy it now into your receiver: it will not be shown again. Verify each delivery's <code>Paygate-Signature</code> with it (HMAC-SHA256
          of <code>t.body</code>).
        </p>
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

// ---- Rotate the secret ----

function RotateSecretDialog({
  organizationId,
  endpoint,
  onClose,
  onRotated,
}: {
  organizationId: string;
  endpoint: WebhookEndpoint;
  onClose: () => void;
  onRotated: (endpoint: WebhookEndpoint, graceMinutes: number) => void;
}) {
  const id = useId();
  const [grace, setGrace] = useState<number>(1440);
  const { busy, error, run } = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await run(async () => onRotated(await webhooksApi.rotateSecret(organizationId, endpoint.id, grace), grace));
  };
  return (
    <Dialog title="Rotate signing secret" onClose={onClose}>
      <form onSubmit={submit}>
        <ErrorAlert error={error} labels={FIELD_LABELS} />
        <p>
          Rotating issues a new secret for <strong className="webhook-url">{endpoint.url}</strong>. Only one previous secret is kept: rotating
          again ends the older one at once.
        </p>
        <fieldset className="radio-group">
          <legend>Previous secret stops signing</legend>
          {GRACE_OPTIONS.map((option) => (
            <div key={option.minutes} className="check">
              <input
                id={`${id}-grace-${option.minutes}`}
                type="radio"
                name={`${id}-grace`}
                value={option.minutes}
                checked={grace === option.minutes}
                onChange={() => setGrace(option.minutes)}
                data-autofocus={option.minutes === 1440 ? true : undefined}
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
            Rotate secret
          </button>
        </div>
      </form>
    </Dialog>
  );
}
