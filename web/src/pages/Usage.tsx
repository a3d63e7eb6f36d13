/**
 * Usage overview (/admin/usage for the selected organization; its system-key twin on the system
 * reports page): the keys by requests over a range with their refusal rates (SPEC §12
 * GET /v1/usage), and the organization's credential report as CSV or JSON (SPEC §14).
 */
import { useEffect, useId, useRef, useState } from 'react';
import type { Tier } from '../api';
import { Empty, ErrorAlert, Loading, StatusMessage } from '../components/Feedback';
import { TableHead } from '../components/TableHead';
import { useAction, useLoad, usePageTitle } from '../hooks';
import {
  REFUSAL_CODES,
  formatCount,
  formatRate,
  isMissingRoute,
  keyIntelligenceApi,
  keyPagePath,
  rangeOf,
  refusals,
  saveFile,
  type RangeId,
  type UsageCounts,
} from '../key-intelligence-api';
import { Link } from '../router';
import { useSession } from '../session';

const OVERVIEW_RANGES = [
  { id: '1h', label: 'Last hour' },
  { id: '24h', label: 'Last 24 hours' },
  { id: '7d', label: 'Last 7 days' },
  { id: '30d', label: 'Last 30 days' },
] as const satisfies readonly { id: RangeId; label: string }[];

/** Keys listed: the busiest first. */
const TOP_KEYS = 50;

export function UsagePage({ organizationId }: { organizationId: string }) {
  usePageTitle('Usage');
  const { permissions } = useSession();
  if (!permissions.can('api_key:read')) {
    return (
      <>
        <h1 tabIndex={-1}>Usage</h1>
        <p>You don't have access to API keys in this organization.</p>
      </>
    );
  }
  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Usage</h1>
          <p className="page-lead">Which keys call Paygate, how often they are refused, and the credential report of every key.</p>
        </div>
      </div>
      <UsageOverviewSection tier="organization" organizationId={organizationId} />
      <CredentialReportSection tier="organization" organizationId={organizationId} />
    </>
  );
}

/** The busiest keys of a range with their refusal rates; hidden when the API has no usage route. */
export function UsageOverviewSection({ tier, organizationId }: { tier: Tier; organizationId: string | null }) {
  const id = useId();
  const [range, setRange] = useState<RangeId>('24h');
  const rangeRef = useRef(range);
  rangeRef.current = range;
  const overview = useLoad(() => {
    const { from, to } = rangeOf(rangeRef.current);
    return keyIntelligenceApi.overview(tier, organizationId, { from, to, limit: TOP_KEYS });
  });
  const shownRange = useRef(range);
  const reload = overview.reload;
  useEffect(() => {
    if (shownRange.current === range) return;
    shownRange.current = range;
    void reload();
  }, [range, reload]);

  if (isMissingRoute(overview.error)) return null;
  const data = overview.data;
  const label = OVERVIEW_RANGES.find((r) => r.id === range)!.label.toLowerCase();

  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <div className="card-header">
        <h2 id={`${id}-title`}>{tier === 'system' ? 'System keys by requests' : 'Keys by requests'}</h2>
        <div className="field inline-field">
          <label htmlFor={`${id}-range`}>Range</label>
          <select id={`${id}-range`} value={range} onChange={(e) => setRange(e.target.value as RangeId)}>
            {OVERVIEW_RANGES.map((r) => (
              <option key={r.id} value={r.id}>
                {r.label}
              </option>
            ))}
          </select>
        </div>
      </div>
      <ErrorAlert error={overview.error} />
      {overview.loading && !data && <Loading />}
      {data && (
        <>
          <dl className="facts usage-totals">
            <div>
              <dt>Requests</dt>
              <dd>{formatCount(data.totals.total)}</dd>
            </div>
            <div>
              <dt>Refused</dt>
              <dd>{formatCount(refusals(data.totals))}</dd>
            </div>
            <div>
              <dt>Refusal rate</dt>
              <dd>{formatRate(refusals(data.totals), data.totals.total)}</dd>
            </div>
            <div>
              <dt>With a previous secret</dt>
              <dd>{formatCount(data.totals.bySecret.previous)}</dd>
            </div>
          </dl>
          {data.data.length === 0 ? (
            <Empty>No requests in the {label}.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table">
                <caption className="visually-hidden">Keys by requests, {label}</caption>
                <TableHead columns={['Key', 'Requests', 'Refused', 'Refusal rate', 'Top refusal', 'Previous secret']} />
                <tbody>
                  {data.data.map((row) => (
                    <tr key={row.keyId}>
                      <td>
                        <div className="cell-title">
                          <Link to={keyPagePath(tier, row.keyId)}>{row.name}</Link>
                        </div>
                        <div className="cell-meta">
                          <code>{row.keyId}</code>
                          <code>…{row.hint}</code>
                        </div>
                      </td>
                      <td>{formatCount(row.total)}</td>
                      <td>{formatCount(refusals(row))}</td>
                      <td>{formatRate(refusals(row), row.total)}</td>
                      <td>{topRefusal(row)}</td>
                      <td>{formatCount(row.bySecret.previous)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {data.hasMore && <p className="muted small">Only the {TOP_KEYS} busiest keys are listed; the totals count them all.</p>}
        </>
      )}
    </section>
  );
}

function topRefusal(counts: UsageCounts) {
  const top = REFUSAL_CODES.map((code) => ({ code, n: counts.outcomes[code] }))
    .filter((r) => r.n > 0)
    .sort((a, b) => b.n - a.n)[0];
  return top ? (
    <>
      <code>{top.code}</code> ({formatCount(top.n)})
    </>
  ) : (
    <span className="muted">—</span>
  );
}

/** Downloads of the credential report (SPEC §14), the organization's or (system) every key's. */
export function CredentialReportSection({ tier, organizationId }: { tier: Tier; organizationId: string | null }) {
  const id = useId();
  const download = useAction();
  const [status, setStatus] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);

  const fetchReport = async (format: 'csv' | 'json') => {
    setStatus(null);
    await download.run(async () => {
      try {
        const file = await keyIntelligenceApi.credentialReport({ tier, organizationId }, format);
        saveFile(file, `credential-report.${format}`);
        setStatus(`Credential report downloaded (${format.toUpperCase()}).`);
      } catch (error) {
        if (isMissingRoute(error)) setMissing(true);
        else throw error;
      }
    });
  };

  if (missing) return null;
  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>{tier === 'system' ? 'Credential report of every key' : 'Credential report'}</h2>
      <p>
        One row per key{tier === 'system' ? ' of every organization and every system key' : ''}: its age, last use and address, restrictions and
        hygiene flags. Deleted keys are not included. Downloading it is recorded in the audit log.
      </p>
      <ErrorAlert error={download.error} />
      <div className="button-row">
        <button type="button" className="button button-secondary" disabled={download.busy} onClick={() => void fetchReport('csv')}>
          Download CSV
        </button>
        <button type="button" className="button button-secondary" disabled={download.busy} onClick={() => void fetchReport('json')}>
          Download JSON
        </button>
      </div>
      <StatusMessage message={status} />
    </section>
  );
}
