/**
 * The per-request metrics, counted in plain numbers on the request path and turned into Prometheus
 * series only when /metrics is read. prom-client's Counter and Histogram validate and hash their
 * labels on every inc/observe, which cost more than a cache-hit key verification; these keep the
 * same names, labels, buckets and text format, registered in the same prom-client registry.
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** What a prom-client Registry needs of a metric (registerMetric; read by metrics() and friends). */
interface RegistryMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: MetricValue[] }>;
  reset(): void;
}

/** A counter with one label, counted into a Map. */
export class OneLabelCounter {
  private counts = new Map<string, number>();

  constructor(registry: Registry, private readonly name: string, private readonly help: string, private readonly label: string) {
    registry.registerMetric(this.metric() as never);
  }

  inc(value: string): void {
    this.counts.set(value, (this.counts.get(value) ?? 0) + 1);
  }

  private metric(): RegistryMetric {
    return {
      name: this.name,
      help: this.help,
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name: this.name,
        help: this.help,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.counts].map(([value, count]) => ({ labels: { [this.label]: value }, value: count })),
      }),
      reset: () => this.counts.clear(),
    };
  }
}

interface RouteSeries {
  method: string;
  route: string;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative); the last one is above every bound (+Inf). */
  buckets: Float64Array;
  statuses: Map<number, number>;
}

/** `paygate_http_requests_total{method,route,status}` and `paygate_http_request_duration_seconds{method,route}`. */
export class RequestMetrics {
  /** By route pattern, then method: no string is built per request. */
  private series = new Map<string, Map<string, RouteSeries>>();

  constructor(
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    registry.registerMetric(this.counter() as never);
    registry.registerMetric(this.histogram() as never);
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) {
      byMethod = new Map();
      this.series.set(route, byMethod);
    }
    let series = byMethod.get(method);
    if (!series) {
      series = { method, route, count: 0, sum: 0, buckets: new Float64Array(this.bounds.length + 1), statuses: new Map() };
      byMethod.set(method, series);
    }
    series.count++;
    series.sum += seconds;
    let bucket = 0;
    while (bucket < this.bounds.length && seconds > this.bounds[bucket]!) bucket++;
    series.buckets[bucket]!++;
    series.statuses.set(status, (series.statuses.get(status) ?? 0) + 1);
  }

  private all(): RouteSeries[] {
    return [...this.series.values()].flatMap((byMethod) => [...byMethod.values()]);
  }

  private counter(): RegistryMetric {
    const name = 'paygate_http_requests_total';
    const help = 'HTTP requests by method, route pattern and status';
    return {
      name,
      help,
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name,
        help,
        type: 'counter',
        aggregator: 'sum',
        values: this.all().flatMap((s) => [...s.statuses].map(([status, count]) => ({ labels: { method: s.method, route: s.route, status: String(status) }, value: count }))),
      }),
      reset: () => this.series.clear(),
    };
  }

  private histogram(): RegistryMetric {
    const name = 'paygate_http_request_duration_seconds';
    const help = 'HTTP request duration by method and route pattern';
    return {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => ({
        name,
        help,
        type: 'histogram',
        aggregator: 'sum',
        values: this.all().flatMap((s) => {
          const labels = { method: s.method, route: s.route };
          let cumulative = 0;
          const buckets = this.bounds.map((bound, i) => {
            cumulative += s.buckets[i]!;
            return { labels: { le: String(bound), ...labels }, value: cumulative, metricName: `${name}_bucket` };
          });
          return [
            ...buckets,
            { labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${name}_bucket` },
            { labels, value: s.sum, metricName: `${name}_sum` },
            { labels, value: s.count, metricName: `${name}_count` },
          ];
        }),
      }),
      reset: () => this.series.clear(),
    };
  }
}
