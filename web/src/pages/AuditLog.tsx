/** The selected organization's audit log (/admin/audit): filters, Load more, event details, chain integrity. */
import { useId, useState, type FormEvent } from 'react';
import { api, orgPath, type AuditEvent, type IntegrityReport, type ListPage } from '../api';
import { Dialog } from '../components/Dialog';
import { Badge, Empty, ErrorAlert, Loading, LoadMore } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { formatDateLong, localInputToIso } from '../format';
import { useLoad, usePageTitle, useAction } from '../hooks';
import { AUDIT_ACTIONS } from '../scopes';
import { useSession } from '../session';

const PAGE_SIZE = 50;

interface Filters {
  action: string;
  from: string;
  to: string;
}

const NO_FILTERS: Filters = { action: '', from: '', to: '' };

export function AuditLogPage({ organizationId }: { organizationId: string }) {
  usePageTitle('Audit log');
  const { permissions, me } = useSession();
  const id = useId();
  const path = orgPath(organizationId, '/audit-events');
  const canRead = permissions.can('audit:read');

  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<Filters>(NO_FILTERS);
  const [filterError, setFilterError] = useState<unknown>(null);
  const more = useAction();
  const [detail, setDetail] = useState<AuditEvent | null>(null);

  const query = (f: Filters, startingAfter?: string) => ({
    limit: PAGE_SIZE,
    action: f.action || undefined,
    from: localInputToIso(f.from) ?? undefined,
    to: localInputToIso(f.to) ?? undefined,
    startingAfter,
  });

  const events = useLoad(() => (canRead ? api.get<ListPage<AuditEvent>>(path, query(applied)) : Promise.resolve(null)));
  const integrity = useLoad(() => (me.user.isGlobalAdmin ? api.get<IntegrityReport>('/v1/system/audit-integrity') : Promise.resolve(null)));

  if (!canRead) {
    return (
      <>
        <h1 tabIndex={-1}>Audit log</h1>
        <p>You don't have access to the audit log of this organization.</p>
      </>
    );
  }

  const apply = async (event: FormEvent) => {
    event.preventDefault();
    setFilterError(null);
    try {
      const page = await api.get<ListPage<AuditEvent>>(path, query(draft));
      setApplied(draft);
      events.setData(() => page);
    } catch (e) {
      setFilterError(e);
    }
  };

  const loadMore = async () => {
    const last = events.data?.data[events.data.data.length - 1];
    if (!last) return;
    await more.run(async () => {
      const next = await api.get<ListPage<AuditEvent>>(path, query(applied, last.id));
      events.setData((current) => (current ? { ...next, data: [...current.data, ...next.data] } : next));
    });
  };

  const rows = events.data?.data ?? [];

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Audit log</h1>
          <p className="page-lead">Every key, member, session and settings change in this organization, newest first. Events are hash-chained.</p>
        </div>
      </div>

      {me.user.isGlobalAdmin && (
        <div className="integrity">
          {integrity.error ? (
            <ErrorAlert error={integrity.error} />
          ) : integrity.data ? (
            <p role="status" className={integrity.data.ok ? 'integrity-line integrity-ok' : 'integrity-line integrity-broken'}>
              {integrity.data.ok
                ? `Audit chain intact (${integrity.data.checked} events checked)`
                : `Audit chain BROKEN at ${integrity.data.firstBrokenEventId ?? 'the newest events'}`}
              {!integrity.data.ok && integrity.data.reason ? <span className="integrity-reason"> — {integrity.data.reason}</span> : null}
            </p>
          ) : (
            <p className="integrity-line">Checking the audit chain…</p>
          )}
        </div>
      )}

      <form className="card filters" aria-label="Audit log filters" onSubmit={apply}>
        <div className="field">
          <label htmlFor={`${id}-action`}>Action</label>
          <select id={`${id}-action`} value={draft.action} onChange={(e) => setDraft({ ...draft, action: e.target.value })}>
            <option value="">Any</option>
            {AUDIT_ACTIONS.map((a) => (
              <option key={a} value={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-from`}>From</label>
          <input id={`${id}-from`} type="datetime-local" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-to`}>To</label>
          <input id={`${id}-to`} type="datetime-local" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        </div>
        <div className="field field-button">
          <button type="submit" className="button button-primary">
            Apply filters
          </button>
        </div>
      </form>
      <ErrorAlert error={filterError} />

      {events.loading && !events.data && <Loading />}
      <ErrorAlert error={events.error} />
      {events.data &&
        (rows.length === 0 ? (
          <Empty>No audit events match.</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table">
              <TableHead columns={['At', 'Action', 'Actor', 'Target', 'Outcome']} actions="Details" />
              <tbody>
                {rows.map((e) => (
                  <tr key={e.id}>
                    <td className="nowrap">{formatDateLong(e.at)}</td>
                    <td>
                      <code>{e.action}</code>
                    </td>
                    <td>
                      {e.actor.type === 'user' && e.actor.id === me.user.id ? me.user.email : e.actor.type}
                      {e.actor.id && <div className="cell-sub mono">{e.actor.id}</div>}
                    </td>
                    <td>
                      {e.target ? (
                        <>
                          {e.target.type}
                          <div className="cell-sub mono">{e.target.id}</div>
                        </>
                      ) : (
                        <span className="muted">—</span>
                      )}
                    </td>
                    <td>
                      <Badge status={e.outcome} />
                    </td>
                    <td className="row-actions">
                      <button type="button" className="button button-small" onClick={() => setDetail(e)}>
                        Details
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      <LoadMore hasMore={events.data?.hasMore} busy={more.busy} error={more.error} onLoad={loadMore} />

      {detail && (
        <Dialog title="Event details" onClose={() => setDetail(null)} wide>
          <p className="cell-sub">
            <code>{detail.action}</code> at {formatDateLong(detail.at)}
          </p>
          <pre className="json" tabIndex={0} aria-label="Event JSON">
            {JSON.stringify(detail, null, 2)}
          </pre>
          <div className="dialog-actions">
            <button type="button" className="button button-primary" onClick={() => setDetail(null)} data-autofocus>
              Close
            </button>
          </div>
        </Dialog>
      )}
    </>
  );
}
