/** Health of the node that answers (/admin/system/health): GET /v1/system/health, readably. */
import { api } from '../api';
import { Badge, ErrorAlert, Loading } from '../components/Feedback';
import { formatBytes, formatDuration } from '../format';
import { useLoad, usePageTitle } from '../hooks';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const LABELS: Record<string, string> = {
  status: 'Status',
  uptimeSeconds: 'Uptime',
  mode: 'Database mode',
  database: 'Database',
  ok: 'Reachable',
  version: 'Version',
  latencyMs: 'Latency',
  invalidationChannel: 'Invalidation channel',
  live: 'Live',
  keyCache: 'Key cache',
  entries: 'Entries',
  hits: 'Hits',
  misses: 'Misses',
  negativeHits: 'Negative hits',
  rateLimiter: 'Rate limiter',
  kind: 'Kind',
  reachable: 'Reachable',
  failures: 'Failures',
  counts: 'Counts',
  organizations: 'Active organizations',
  keys: 'Unrevoked API keys',
  users: 'Users',
  memory: 'Memory',
  rssBytes: 'Resident set size',
};

/** "lastHeartbeatAt" -> "Last heartbeat at", for fields without a label. */
function humanize(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function formatValue(key: string, value: Json): string {
  if (value === null) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number') {
    if (key === 'uptimeSeconds') return formatDuration(value);
    if (key === 'latencyMs' || key.endsWith('Ms')) return `${value} ms`;
    if (key.endsWith('Bytes')) return formatBytes(value);
    return value.toLocaleString();
  }
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return value;
}

function Fields({ data }: { data: { [key: string]: Json } }) {
  return (
    <dl className="facts">
      {Object.entries(data)
        .filter(([, v]) => v === null || typeof v !== 'object' || Array.isArray(v))
        .map(([key, value]) => (
          <div key={key}>
            <dt>{LABELS[key] ?? humanize(key)}</dt>
            <dd>{key === 'status' && typeof value === 'string' ? <Badge status={value} /> : formatValue(key, value)}</dd>
          </div>
        ))}
    </dl>
  );
}

export function HealthPage() {
  usePageTitle('Health');
  const health = useLoad(() => api.get<{ [key: string]: Json }>('/v1/system/health'));
  const data = health.data;
  const sections = data ? Object.entries(data).filter((e): e is [string, { [key: string]: Json }] => typeof e[1] === 'object' && e[1] !== null && !Array.isArray(e[1])) : [];

  return (
    <>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>Health</h1>
          <p className="page-lead">The node that answered this request: its database, cache invalidation, key cache and rate limiter.</p>
        </div>
        <button type="button" className="button button-secondary" onClick={() => void health.reload()} disabled={health.loading}>
          Refresh
        </button>
      </div>
      {health.loading && !data && <Loading />}
      <ErrorAlert error={health.error} />
      {data && (
        <>
          <section className="card" aria-labelledby="health-overview">
            <h2 id="health-overview">Overview</h2>
            <Fields data={data} />
          </section>
          <div className="card-grid">
            {sections.map(([key, value]) => (
              <section key={key} className="card" aria-labelledby={`health-${key}`}>
                <h2 id={`health-${key}`}>{LABELS[key] ?? humanize(key)}</h2>
                <Fields data={value} />
              </section>
            ))}
          </div>
        </>
      )}
    </>
  );
}
