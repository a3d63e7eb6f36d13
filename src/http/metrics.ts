/** Prometheus metrics. One registry per server instance, so tests can run many servers in a process. */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { OneLabelCounter, RequestMetrics } from './request-metrics.js';

export interface Metrics {
  registry: Registry;
  rateLimiterFailures: Counter;
  /** Webhook delivery attempts by outcome: succeeded, failed (non-2xx), timeout, error (connection), refused (SSRF guard, DNS). */
  webhookDeliveries: Counter<'outcome'>;
  /** Counts a finished request (plain numbers; series are made when /metrics is read). */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  countVerification(outcome: string): void;
}

export function createMetrics(sources: {
  cacheStats: () => { hits: number; misses: number; negativeHits: number; size: number };
  channelLive: () => boolean;
  ackTimeouts: () => number;
}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'paygate_' });
  const requests = new RequestMetrics(registry, [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);
  const verifications = new OneLabelCounter(registry, 'paygate_api_key_verifications_total', 'API key verifications by outcome (ok or the error code)', 'outcome');
  new Gauge({
    name: 'paygate_key_cache_hit_ratio',
    help: 'Share of key lookups served from the verified-key cache (positive and negative) since start',
    registers: [registry],
    collect() {
      const s = sources.cacheStats();
      const served = s.hits + s.negativeHits;
      this.set(served + s.misses === 0 ? 0 : served / (served + s.misses));
    },
  });
  new Gauge({
    name: 'paygate_key_cache_entries',
    help: 'Verified keys held in this node\'s cache',
    registers: [registry],
    collect() {
      this.set(sources.cacheStats().size);
    },
  });
  new Gauge({
    name: 'paygate_invalidation_channel_live',
    help: '1 while this node listens for cache invalidations (caches trusted), else 0',
    registers: [registry],
    collect() {
      this.set(sources.channelLive() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'paygate_invalidation_ack_timeouts',
    help: 'Changes whose invalidation some live peer did not acknowledge in time (that peer stopped trusting its cache instead)',
    registers: [registry],
    collect() {
      this.set(sources.ackTimeouts());
    },
  });
  const rateLimiterFailures = new Counter({
    name: 'paygate_rate_limiter_failures_total',
    help: 'Rate-limit decisions that could not reach Redis and failed open',
    registers: [registry],
  });
  const webhookDeliveries = new Counter({
    name: 'paygate_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome: succeeded, failed (non-2xx answer), timeout, error (connection), refused (target refused by the SSRF guard, or DNS failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const observeRequest = (method: string, route: string, status: number, seconds: number) => requests.observe(method, route, status, seconds);
  const countVerification = (outcome: string) => verifications.inc(outcome);
  return { registry, rateLimiterFailures, webhookDeliveries, observeRequest, countVerification };
}
