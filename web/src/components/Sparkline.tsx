/**
 * A tiny line of requests over time (the key list's last 24 hours), drawn as SVG: no inline style
 * (the CSP allows none), colours from styles.css. The figures it draws are in its accessible name.
 */
import { useEffect, useRef, useState } from 'react';

interface SparklineProps {
  /** Requests per bucket, oldest first. */
  values: readonly number[];
  /** What the line shows, in words ("42 requests in the last 24 hours"). */
  label: string;
  /** Refusals per bucket, drawn as a second line when any. */
  refused?: readonly number[];
}

const WIDTH = 84;
const HEIGHT = 24;
const PAD = 2;

function points(values: readonly number[], max: number): string {
  if (values.length === 0) return '';
  const step = values.length > 1 ? (WIDTH - PAD * 2) / (values.length - 1) : 0;
  return values
    .map((v, i) => {
      const x = PAD + i * step;
      const y = HEIGHT - PAD - (max === 0 ? 0 : (v / max) * (HEIGHT - PAD * 2));
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(' ');
}

export function Sparkline({ values, label, refused }: SparklineProps) {
  const max = Math.max(0, ...values);
  const anyRefused = refused?.some((v) => v > 0) ?? false;
  return (
    <svg className="sparkline" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} role="img" aria-label={label} preserveAspectRatio="none">
      <title>{label}</title>
      <line className="sparkline-base" x1={PAD} x2={WIDTH - PAD} y1={HEIGHT - PAD} y2={HEIGHT - PAD} />
      {/* Refusals under the total, so the total's line stays visible where they coincide. */}
      {anyRefused && refused && <polyline className="sparkline-refused" points={points(refused, max)} />}
      {values.length > 0 && <polyline className="sparkline-line" points={points(values, max)} />}
    </svg>
  );
}

/**
 * A sparkline that loads its figures only once its row scrolls into view (the key list fetches
 * one key's usage per visible row, never the whole list's at once), and only when `wanted`: a key
 * the usage overview shows without requests needs no fetch to draw a flat line.
 */
export function LazySparkline({
  wanted,
  load,
  emptyLabel,
}: {
  wanted: boolean;
  load: () => Promise<{ values: number[]; refused: number[]; label: string }>;
  emptyLabel: string;
}) {
  const ref = useRef<HTMLSpanElement>(null);
  const [state, setState] = useState<{ values: number[]; refused: number[]; label: string } | 'failed' | null>(null);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const el = ref.current;
    if (!wanted || !el) return;
    let cancelled = false;
    const observer = new IntersectionObserver((entries) => {
      if (!entries.some((e) => e.isIntersecting)) return;
      observer.disconnect();
      loadRef.current().then(
        (figures) => !cancelled && setState(figures),
        () => !cancelled && setState('failed'),
      );
    });
    observer.observe(el);
    return () => {
      cancelled = true;
      observer.disconnect();
    };
  }, [wanted]);

  return (
    <span ref={ref} className="sparkline-cell">
      {!wanted ? (
        <Sparkline values={[]} label={emptyLabel} />
      ) : state === null ? (
        <span className="muted small">…</span>
      ) : state === 'failed' ? (
        <span className="muted small">unavailable</span>
      ) : (
        <Sparkline values={state.values} refused={state.refused} label={state.label} />
      )}
    </span>
  );
}
