/**
 * A key's requests over time by outcome (SPEC §12), drawn with uPlot (a small canvas chart library
 * without dependencies; it styles its elements through the CSSOM, which the panel's CSP allows).
 * One line per outcome that occurred, `ok` always; the figures are also in a table below the chart,
 * for screen readers and for anyone who wants the numbers.
 */
import { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { USAGE_OUTCOMES, formatCount, type Granularity, type UsageBucket, type UsageOutcome } from '../key-intelligence-api';

/** Colours of the outcomes on the canvas (CSS variables do not reach a canvas). */
const COLOURS: Record<UsageOutcome, string> = {
  ok: '#17643a',
  invalid_api_key: '#b42318',
  api_key_revoked: '#7a271a',
  api_key_expired: '#8a5a00',
  ip_not_allowed: '#6941c6',
  rate_limited: '#c4320a',
  insufficient_scope: '#1f4f8f',
  api_key_quarantined: '#9e165f',
};

const timeFormats: Record<Granularity, Intl.DateTimeFormat> = {
  minute: new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' }),
  hour: new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }),
  day: new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' }),
};

interface UsageChartProps {
  buckets: readonly UsageBucket[];
  granularity: Granularity;
  /** The chart's accessible name. */
  label: string;
}

/** The outcomes worth a line: `ok`, and every refusal that happened in the range. */
export function outcomesShown(buckets: readonly UsageBucket[]): UsageOutcome[] {
  return USAGE_OUTCOMES.filter((o) => o === 'ok' || buckets.some((b) => b.outcomes[o] > 0));
}

export function UsageChart({ buckets, granularity, label }: UsageChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const shown = useMemo(() => outcomesShown(buckets), [buckets]);

  const chart = useRef<uPlot | null>(null);
  const data = useMemo<uPlot.AlignedData>(
    () => [buckets.map((b) => Date.parse(b.start) / 1000), ...shown.map((o) => buckets.map((b) => b.outcomes[o]))],
    [buckets, shown],
  );
  const dataRef = useRef(data);
  dataRef.current = data;
  // The chart is rebuilt only when its lines change; a refresh with the same lines just sets the data.
  const shape = `${granularity}|${shown.join(',')}|${buckets.length <= 60}`;

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const width = () => Math.max(280, Math.floor(el.clientWidth));
    const opts: uPlot.Options = {
      width: width(),
      height: 220,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? formatCount(t) : '')) }],
      series: [
        { value: (_u, v) => (v == null ? '' : timeFormats[granularity].format(new Date(v * 1000))) },
        ...shown.map((o) => ({
          label: o,
          stroke: COLOURS[o],
          width: o === 'ok' ? 2 : 1.5,
          fill: o === 'ok' ? 'rgba(23, 100, 58, 0.08)' : undefined,
          points: { show: buckets.length <= 60 },
        })),
      ],
    };
    const made = new uPlot(opts, dataRef.current, el);
    chart.current = made;
    const resize = new ResizeObserver(() => made.setSize({ width: width(), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      made.destroy();
      chart.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `shape` stands for granularity, shown and the point setting.
  }, [shape]);

  useEffect(() => {
    chart.current?.setData(data);
  }, [data]);

  const withTraffic = buckets.filter((b) => b.total > 0);
  return (
    <figure className="usage-chart">
      <div ref={host} className="usage-chart-canvas" role="img" aria-label={label} />
      <details className="usage-figures">
        <summary>Figures</summary>
        {withTraffic.length === 0 ? (
          <p className="muted small">No requests in this range.</p>
        ) : (
          <div className="table-wrap">
            <table className="table table-compact">
              <caption className="visually-hidden">{label}</caption>
              <thead>
                <tr>
                  <th scope="col">From</th>
                  <th scope="col">Total</th>
                  {shown.map((o) => (
                    <th key={o} scope="col">
                      {o}
                    </th>
                  ))}
                  <th scope="col">Current secret</th>
                  <th scope="col">Previous secret</th>
                </tr>
              </thead>
              <tbody>
                {withTraffic.map((b) => (
                  <tr key={b.start}>
                    <td className="nowrap">{timeFormats[granularity].format(new Date(b.start))}</td>
                    <td>{formatCount(b.total)}</td>
                    {shown.map((o) => (
                      <td key={o}>{formatCount(b.outcomes[o])}</td>
                    ))}
                    <td>{formatCount(b.bySecret.current)}</td>
                    <td>{formatCount(b.bySecret.previous)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </details>
    </figure>
  );
}
