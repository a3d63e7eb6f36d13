/**
 * The deliveries of one webhook endpoint, newest first, under the endpoint list: status, attempts,
 * the last answer, when the next attempt is due, each delivery's newest attempts (started, outcome,
 * status code, duration, the first 1 KiB of the answer or the error) and a Retry button. While a
 * delivery is pending the list refreshes itself every few seconds (only while it is shown).
 */
import { useEffect, useId, useState } from 'react';
import { Empty, ErrorAlert, LoadMore, StatusMessage, ListFeedback } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { formatDate, formatDateLong } from '../format';
import { useAction, useLoad } from '../hooks';
import { webhooksApi, type WebhookAttempt, type WebhookDelivery, type WebhookEndpoint } from '../webhooks-api';

const REFRESH_MS = 2_000;
type StatusFilter = '' | WebhookDelivery['status'];

/** The status of an endpoint, a delivery or an attempt, with the tone of its badge. */
export function StatusBadge({ status }: { status: string }) {
  const tone = status === 'enabled' || status === 'succeeded' ? 'good' : status === 'failed' ? 'bad' : status === 'disabled' || status === 'unknown' ? 'warn' : 'neutral';
  return <span className={`badge badge-${tone}`}>{status}</span>;
}

interface DeliveriesPanelProps {
  organizationId: string;
  endpoint: WebhookEndpoint;
  /** Changes when the page wants a reload (a test event was queued). */
  version: number;
  canRetry: boolean;
  onClose: () => void;
}

export function DeliveriesPanel({ organizationId, endpoint, version, canRetry, onClose }: DeliveriesPanelProps) {
  const id = useId();
  const [filter, setFilter] = useState<StatusFilter>('');
  const list = useLoad(() => webhooksApi.deliveries(organizationId, endpoint.id, { status: filter || undefined }));
  const more = useAction();
  const retry = useAction();
  const [status, setStatus] = useState<string | null>(null);

  // A new filter, or a test event queued by the page: load again.
  useEffect(() => {
    void list.reload();
  }, [filter, version, list.reload]);

  const pending = list.data?.data.some((d) => d.status === 'pending') ?? false;
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(() => void list.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [pending, list.reload]);

  const loadMore = async () => {
    const last = list.data?.data[list.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await webhooksApi.deliveries(organizationId, endpoint.id, { status: filter || undefined, startingAfter: last.id });
      list.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const retryNow = async (delivery: WebhookDelivery) => {
    setStatus(null);
    await retry.run(async () => {
      const updated = await webhooksApi.retry(organizationId, endpoint.id, delivery.id);
      list.setData((current) => (current ? { ...current, data: current.data.map((d) => (d.id === updated.id ? updated : d)) } : current));
      setStatus(`Delivery ${updated.id} is due again now.`);
    });
  };

  const deliveries = list.data?.data ?? [];

  return (
    <section className="card deliveries" aria-labelledby={`${id}-title`}>
      <div className="deliveries-header">
        <div>
          <h2 id={`${id}-title`}>Deliveries</h2>
          <p className="muted small webhook-url">{endpoint.url}</p>
        </div>
        <div className="deliveries-tools">
          <div className="field inline-field">
            <label htmlFor={`${id}-filter`}>Status</label>
            <select id={`${id}-filter`} value={filter} onChange={(e) => setFilter(e.target.value as StatusFilter)}>
              <option value="">All</option>
              <option value="pending">Pending</option>
              <option value="succeeded">Succeeded</option>
              <option value="failed">Failed</option>
            </select>
          </div>
          <button type="button" className="button button-small button-secondary" onClick={() => void list.reload()} disabled={list.loading}>
            Refresh
          </button>
          <button type="button" className="button button-small button-ghost" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
      {endpoint.status === 'disabled' && (
        <p className="alert alert-warning">This endpoint is disabled: it gets no deliveries, and retries are refused until it is enabled again.</p>
      )}
      <StatusMessage message={status} />
      <ErrorAlert error={retry.error} />
      <ListFeedback list={list} />
      {list.data &&
        (deliveries.length === 0 ? (
          <Empty>{filter ? `No ${filter} deliveries.` : 'No deliveries yet. Send a test event to try the endpoint.'}</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label={`Deliveries of ${endpoint.url}`}>
              <TableHead columns={['Event', 'Status', 'Attempts', 'Last answer', 'Next attempt']} actions="Actions" />
              <tbody>
                {deliveries.map((delivery) => (
                  <tr key={delivery.id} data-delivery-id={delivery.id}>
                    <td>
                      <div className="cell-title">{delivery.eventType}</div>
                      <div className="cell-meta">
                        <code>{delivery.eventId}</code>
                        <span>{formatDate(delivery.createdAt)}</span>
                      </div>
                      {delivery.recentAttempts.length > 0 && <Attempts attempts={delivery.recentAttempts} total={delivery.attempts} />}
                    </td>
                    <td>
                      <StatusBadge status={delivery.status} />
                    </td>
                    <td>{delivery.attempts}</td>
                    <td>
                      {delivery.responseStatus !== null ? <span>HTTP {delivery.responseStatus}</span> : <span className="muted">—</span>}
                      {/* The error of an answered attempt is its status again ("HTTP 500"): shown once. */}
                      {delivery.lastError && delivery.lastError !== `HTTP ${delivery.responseStatus}` && <div className="cell-sub">{delivery.lastError}</div>}
                    </td>
                    <td>{delivery.nextAttemptAt ? formatDateLong(delivery.nextAttemptAt) : <span className="muted">—</span>}</td>
                    <td className="row-actions">
                      {canRetry && (
                        <button
                          type="button"
                          className="button button-small"
                          aria-label={`Retry delivery ${delivery.id}`}
                          disabled={retry.busy}
                          onClick={() => void retryNow(delivery)}
                        >
                          Retry
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      {list.data && <LoadMore hasMore={list.data.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />}
    </section>
  );
}

function Attempts({ attempts, total }: { attempts: WebhookAttempt[]; total: number }) {
  return (
    <details className="attempts">
      <summary>
        {total > attempts.length ? `The newest ${attempts.length} of ${total} attempts` : attempts.length === 1 ? '1 attempt' : `${attempts.length} attempts`}
      </summary>
      <table className="table attempts-table">
        <TableHead columns={['Started', 'Outcome', 'Response', 'Duration', 'Body or error']} />
        <tbody>
          {attempts.map((attempt) => (
            <tr key={attempt.id}>
              <td>
                {formatDateLong(attempt.startedAt)}
                <div className="cell-meta">
                  <code>{attempt.id}</code>
                </div>
              </td>
              <td>
                <StatusBadge status={attempt.outcome} />
              </td>
              <td>{attempt.responseStatus !== null ? `HTTP ${attempt.responseStatus}` : '—'}</td>
              <td>{attempt.durationMs !== null ? `${attempt.durationMs} ms` : '—'}</td>
              <td>
                {attempt.error ? (
                  <span>{attempt.error}</span>
                ) : attempt.responseBody ? (
                  <pre className="attempt-body">{attempt.responseBody}</pre>
                ) : (
                  <span className="muted">{attempt.outcome === 'unknown' ? 'in flight, or its node stopped' : 'empty'}</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}
