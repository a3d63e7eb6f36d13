/**
 * Retries of `429 rate_limited` and `503 service_unavailable`, after the answer's `Retry-After`,
 * within a budget: at most `maxAttempts` attempts in all, and no wait that would end later than
 * `maxElapsedMs` after the first attempt began (the last answer is then returned as it is, and
 * becomes a PaygateError carrying `retryAfter`).
 *
 * Only requests that are safe to send twice are retried: GET and HEAD, and POSTs to operations that
 * honour `Idempotency-Key` carrying one (a repeat replays the first outcome, it never creates a
 * second object). The caller decides that per request (`mayRetry`); a POST without a key is never
 * retried, since a 503 after the change committed would otherwise make it twice.
 */
import { retryAfterSeconds } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first one included (default 3); 1 turns retrying off. */
  maxAttempts?: number;
  /** How long after the first attempt began a retry may still start, in ms (default 30 000). */
  maxElapsedMs?: number;
}

export const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 3, maxElapsedMs: 30_000 };

const RETRIED_STATUSES = new Set([429, 503]);
/** Without a Retry-After: 0.5 s, 1 s, 2 s ... (each between half and all of that: jitter). */
const BACKOFF_BASE_MS = 500;

export type FetchLike = (request: Request) => Promise<Response>;

export interface Clock {
  now(): number;
  sleep(ms: number, signal: AbortSignal | null): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

function delayMs(response: Response, attempt: number): number {
  const seconds = retryAfterSeconds(response.headers.get('retry-after'));
  if (seconds !== null) return seconds * 1000;
  const ceiling = BACKOFF_BASE_MS * 2 ** (attempt - 1);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export function retryingFetch(fetchImpl: FetchLike, options: RetryOptions, mayRetry: (request: Request) => boolean, clock: Clock = realClock): FetchLike {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? DEFAULT_RETRY.maxAttempts));
  const maxElapsedMs = Math.max(0, options.maxElapsedMs ?? DEFAULT_RETRY.maxElapsedMs);
  return async (request) => {
    if (maxAttempts === 1 || !mayRetry(request)) return fetchImpl(request);
    const started = clock.now();
    let current = request;
    for (let attempt = 1; ; attempt++) {
      // A body can be sent once: keep a copy for the next attempt before this one consumes it.
      const spare = attempt < maxAttempts ? current.clone() : null;
      const response = await fetchImpl(current);
      if (!RETRIED_STATUSES.has(response.status) || spare === null) return response;
      const wait = delayMs(response, attempt);
      if (clock.now() + wait - started > maxElapsedMs) return response;
      // Free the connection of the answer we drop.
      await response.body?.cancel().catch(() => undefined);
      await clock.sleep(wait, request.signal);
      current = spare;
    }
  };
}
