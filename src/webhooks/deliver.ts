/**
 * One delivery attempt over HTTP: a POST of the event's raw body to the endpoint, at the address the
 * SSRF guard checked (ssrf.ts), never re-resolved in between: the socket is opened to that address
 * while the Host header and the TLS server name (and so certificate verification) stay the URL's.
 *
 * Bounded in every way a receiver could hold a node: the whole attempt (DNS, connect, TLS, answer)
 * within `timeoutMs` (10 s), the answer read to at most MAX_READ_BYTES and only the first
 * RESPONSE_BODY_BYTES kept, redirects never followed (a 3xx is an answer like any other non-2xx),
 * no connection reuse. Expected outcomes are values; this never throws.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { checkTarget, hostOf, type Resolver } from './ssrf.js';

/** What is kept of a receiver's answer (bytes of UTF-8; shown in the deliveries list). */
export const RESPONSE_BODY_BYTES = 1024;
/** What is read of it at most before the connection is dropped. */
const MAX_READ_BYTES = 16 * 1024;

export interface AttemptRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  allowPrivate: boolean;
  resolve: Resolver;
  /** Aborts the attempt (the node is stopping). */
  signal?: AbortSignal;
}

export type AttemptOutcome =
  | { kind: 'answered'; status: number; body: string; durationMs: number }
  /** The guard refused the target (SSRF), or DNS failed: nothing was sent. */
  | { kind: 'refused'; error: string; durationMs: number }
  | { kind: 'timeout'; error: string; durationMs: number }
  /** Connection refused or reset, TLS failure, aborted: the request may or may not have arrived. */
  | { kind: 'error'; error: string; durationMs: number };

/** Text PostgreSQL can store: the decoder already replaced invalid UTF-8; only NUL is left to replace. */
const storable = (text: string) => text.replace(/\u0000/g, '\uFFFD');

export async function attemptDelivery(request: AttemptRequest): Promise<AttemptOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const url = new URL(request.url);
  const deadline = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal ? AbortSignal.any([deadline, request.signal]) : deadline;

  const target = await Promise.race([
    checkTarget(url, request.allowPrivate, request.resolve),
    new Promise<null>((resolve) => signal.addEventListener('abort', () => resolve(null), { once: true })),
  ]);
  if (target === null) return deadline.aborted ? { kind: 'timeout', error: `no answer within ${request.timeoutMs / 1000} s (DNS)`, durationMs: elapsed() } : { kind: 'error', error: 'aborted', durationMs: elapsed() };
  if (!target.ok) return { kind: 'refused', error: `refused: ${target.reason}`, durationMs: elapsed() };
  if (target.addresses.length === 0) return { kind: 'refused', error: `DNS lookup failed (${target.lookupError ?? 'no address'})`, durationMs: elapsed() };

  const host = hostOf(url);
  const address = target.addresses[0]!;
  const secure = url.protocol === 'https:';
  const options: https.RequestOptions = {
    method: 'POST',
    host: address,
    family: net.isIPv6(address) ? 6 : 4,
    port: url.port || (secure ? 443 : 80),
    path: `${url.pathname}${url.search}`,
    headers: { ...request.headers, host: url.host, 'content-length': String(Buffer.byteLength(request.body)), connection: 'close' },
    agent: false,
    signal,
    // SNI and the certificate check name the URL's host; an IP literal is checked as an IP (no SNI).
    ...(secure && net.isIP(host) === 0 ? { servername: host } : {}),
  };

  return new Promise<AttemptOutcome>((resolve) => {
    let settled = false;
    const finish = (outcome: AttemptOutcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const failed = (error: Error) => {
      if (deadline.aborted) finish({ kind: 'timeout', error: `no answer within ${request.timeoutMs / 1000} s`, durationMs: elapsed() });
      else finish({ kind: 'error', error: storable(error.message || String(error)).slice(0, 500), durationMs: elapsed() });
    };
    const req = (secure ? https : http).request(options, (res) => {
      const kept: Buffer[] = [];
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        if (read < RESPONSE_BODY_BYTES) kept.push(chunk.subarray(0, RESPONSE_BODY_BYTES - read));
        read += chunk.length;
        if (read >= MAX_READ_BYTES) res.destroy();
      });
      const done = () => {
        // A body cut in the middle of a character decodes to U+FFFD there: still valid text.
        const body = storable(Buffer.concat(kept).subarray(0, RESPONSE_BODY_BYTES).toString('utf8'));
        finish({ kind: 'answered', status: res.statusCode ?? 0, body, durationMs: elapsed() });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', () => done());
    });
    req.on('error', failed);
    req.end(request.body);
  });
}
