/**
 * The CLI's HTTP client: fetch against one Paygate URL with one bearer credential. Every answer
 * that is not 2xx becomes an ApiError carrying the problem+json `code` and `detail`; a server that
 * cannot be reached (refused, unknown host, TLS, no answer in time) becomes an UnreachableError.
 *
 * Each request carries an `X-Request-Id` of our own (`cli-<run>-<n>`), which the server records
 * beside its own request id (`clientRequestId` in its log line and audit events); the server's id
 * comes back in the `X-Request-Id` response header and the problem's `requestId`: errors name it,
 * so an operator can find the request in the server's log, and `audit list --follow` recognises the
 * `audit.read` events its own polling causes.
 */
import { randomBytes } from 'node:crypto';
import { ApiError, CliError, EXIT, UnreachableError, messageOf, type Problem } from './errors.js';

export interface ListPage<T> {
  object: 'list';
  data: T[];
  hasMore: boolean;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Aborts the request (audit --follow on Ctrl-C). */
  signal?: AbortSignal;
}

export interface ApiResponse<T> {
  body: T;
  status: number;
  /** The id the server gave the request (its own; ours is recorded beside it as clientRequestId). */
  requestId: string | null;
}

export interface ApiClientOptions {
  baseUrl: string;
  token: string | null;
  userAgent: string;
  timeoutMs?: number;
  /** A hint to add to the error line of a problem (what the user can do about it), or null. */
  hintFor?: (problem: Problem) => string | null;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** The problem+json fields, from whatever the server answered. */
function problemOf(status: number, statusText: string, headers: Headers, text: string): Problem {
  const requestId = headers.get('x-request-id');
  const retryAfter = headers.get('retry-after');
  let body: Record<string, unknown> | null = null;
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
  } catch {
    /* not JSON: a proxy's page, or not a Paygate server at all */
  }
  if (body && typeof body.code === 'string') {
    return {
      status,
      code: body.code,
      detail: typeof body.detail === 'string' ? body.detail : typeof body.title === 'string' ? body.title : statusText,
      requestId: typeof body.requestId === 'string' ? body.requestId : requestId,
      retryAfter,
    };
  }
  const detail = `HTTP ${status} ${statusText}`.trim() + (body ? '' : ' (the answer is not Paygate problem+json: is the URL right?)');
  return { status, code: null, detail, requestId, retryAfter };
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return messageOf(cause);
  return error instanceof Error ? messageOf(error) : String(error);
}

export class ApiClient {
  private readonly run = randomBytes(4).toString('hex');
  private sequence = 0;

  constructor(private readonly options: ApiClientOptions) {}

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  /** The request id the next request will carry. */
  private nextRequestId(): string {
    this.sequence += 1;
    return `cli-${this.run}-${this.sequence}`;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const url = new URL(`${this.options.baseUrl}/v1${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = {
      accept: 'application/json, application/problem+json',
      'user-agent': this.options.userAgent,
      'x-request-id': this.nextRequestId(),
    };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

    let response: Response;
    let text: string;
    try {
      response = await fetch(url, { method, headers, body, signal, redirect: 'manual' });
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      if (timeout.aborted) throw new UnreachableError(`no answer from ${this.options.baseUrl} within ${timeoutMs / 1000} s`);
      throw new UnreachableError(`cannot reach ${this.options.baseUrl}: ${describeNetworkError(error)}`);
    }

    if (response.status < 200 || response.status > 299) {
      const problem = problemOf(response.status, response.statusText, response.headers, text);
      throw new ApiError(problem, this.options.hintFor?.(problem) ?? null);
    }
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ApiError({
          status: response.status,
          code: null,
          detail: `${url.origin} answered ${method} ${url.pathname} with something other than JSON: is it a Paygate server?`,
          requestId: response.headers.get('x-request-id'),
          retryAfter: null,
        });
      }
    }
    return { body: parsed as T, status: response.status, requestId: response.headers.get('x-request-id') };
  }

  async get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return (await this.request<T>('GET', path, { query, signal })).body;
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return (await this.request<T>('POST', path, { body })).body;
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    return (await this.request<T>('PATCH', path, { body })).body;
  }

  async delete<T>(path: string): Promise<T> {
    return (await this.request<T>('DELETE', path)).body;
  }
}

/** Every Paygate id (`org_...`, `usr_...`, a key's 20 characters) is of these characters. */
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * An id from the command line as one path segment. Checked rather than only encoded: WHATWG URLs
 * resolve `..` (and `%2E%2E`) segments, so `key delete ..` must not become `DELETE /v1/`.
 */
export function segment(value: string, what = 'id'): string {
  if (!ID.test(value)) throw new CliError(`${JSON.stringify(value)} is not ${what === 'id' ? 'an id' : `a ${what}`}`, EXIT.usage);
  return value;
}
