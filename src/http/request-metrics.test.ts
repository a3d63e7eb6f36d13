/** The batched request metrics print exactly what prom-client's own Counter and Histogram print. */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { OneLabelCounter, RequestMetrics } from './request-metrics.js';

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

describe('RequestMetrics', () => {
  it('renders the same series as prom-client for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const metrics = new RequestMetrics(ours, BOUNDS);
    const verifications = new OneLabelCounter(ours, 'paygate_api_key_verifications_total', 'API key verifications by outcome (ok or the error code)', 'outcome');
    const counter = new Counter({ name: 'paygate_http_requests_total', help: 'HTTP requests by method, route pattern and status', labelNames: ['method', 'route', 'status'], registers: [theirs] });
    const histogram = new Histogram({ name: 'paygate_http_request_duration_seconds', help: 'HTTP request duration by method and route pattern', labelNames: ['method', 'route'], buckets: BOUNDS, registers: [theirs] });
    const verified = new Counter({ name: 'paygate_api_key_verifications_total', help: 'API key verifications by outcome (ok or the error code)', labelNames: ['outcome'], registers: [theirs] });

    const observations: Array<[string, string, number, number]> = [
      ['GET', '/v1/auth/whoami', 200, 0.0001],
      ['GET', '/v1/auth/whoami', 200, 0.0005], // on a bound: counted in that bucket (le)
      ['GET', '/v1/auth/whoami', 401, 0.003],
      ['POST', '/v1/api-keys', 201, 0.04],
      ['GET', 'unmatched', 404, 7],
    ];
    for (const [method, route, status, seconds] of observations) {
      metrics.observe(method, route, status, seconds);
      counter.inc({ method, route, status: String(status) });
      histogram.observe({ method, route }, seconds);
    }
    for (const outcome of ['ok', 'ok', 'invalid_api_key']) {
      verifications.inc(outcome);
      verified.inc({ outcome });
    }
    const lines = (text: string) => text.split('\n').filter(Boolean).sort();
    expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
    expect(await ours.metrics()).toMatch(/^paygate_http_request_duration_seconds_bucket\{le="0.0005",method="GET",route="\/v1\/auth\/whoami"\} 2$/m);
  });
});
