/**
 * Every answer that is not 2xx becomes a `PaygateError`. Paygate answers errors as problem+json
 * (RFC 9457): `{ type, title, status, detail, code, requestId, ... }`, `errors` on
 * `validation_error`, `requiredScope` on `insufficient_scope`, and `Retry-After` on `429`/`503`.
 * Branch on `code`; quote `requestId` when reporting a problem.
 */

/** One field a `validation_error` names: a JSON pointer into the request and what is wrong there. */
export interface ValidationIssue {
  path: string;
  message: string;
}

/** `code` of an answer that is not Paygate problem+json (a proxy's error page, the wrong URL). */
export const UNEXPECTED_RESPONSE = 'unexpected_response';

export class PaygateError extends Error {
  override readonly name = 'PaygateError';
  /** The HTTP status. */
  readonly status: number;
  /** The problem's code (`insufficient_scope`, `validation_error`, ...), or `unexpected_response`. */
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  /** Paygate's id of the request (the problem's, else the `X-Request-Id` header). */
  readonly requestId: string | null;
  /** On `insufficient_scope`: the scope the call needs. */
  readonly requiredScope: string | null;
  /** On `validation_error`: each field that was refused. */
  readonly errors: readonly ValidationIssue[];
  /** Seconds to wait before trying again (`Retry-After`, on 429 and 503), or null. */
  readonly retryAfter: number | null;
  /** The whole problem body (extra members included), or null when the answer was not one. */
  readonly problem: Readonly<Record<string, unknown>> | null;
  readonly headers: Headers;

  constructor(status: number, headers: Headers, body: unknown) {
    const problem = isProblem(body) ? body : null;
    const text = typeof body === 'string' ? body.trim().slice(0, 200) : '';
    const code = problem ? (problem.code as string) : UNEXPECTED_RESPONSE;
    const detail = problem
      ? stringOr(problem.detail, stringOr(problem.title, `HTTP ${status}`))
      : `HTTP ${status}: the answer is not Paygate problem+json${text ? ` (${text})` : ''}`;
    const requestId = problem && typeof problem.requestId === 'string' ? problem.requestId : headers.get('x-request-id');
    super(`${code}: ${detail}${requestId ? ` (request ${requestId})` : ''}`);
    this.status = status;
    this.code = code;
    this.title = problem ? stringOr(problem.title, '') : '';
    this.detail = detail;
    this.requestId = requestId;
    this.requiredScope = problem && typeof problem.requiredScope === 'string' ? problem.requiredScope : null;
    this.errors = problem && Array.isArray(problem.errors) ? problem.errors.filter(isIssue) : [];
    this.retryAfter = retryAfterSeconds(headers.get('retry-after'));
    this.problem = problem;
    this.headers = headers;
  }
}

/** True when `error` is a PaygateError, with this `code` when one is given. */
export function isPaygateError(error: unknown, code?: string): error is PaygateError {
  return error instanceof PaygateError && (code === undefined || error.code === code);
}

function isProblem(body: unknown): body is Record<string, unknown> & { code: string } {
  return typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string';
}

function isIssue(value: unknown): value is ValidationIssue {
  return typeof value === 'object' && value !== null && typeof (value as ValidationIssue).path === 'string' && typeof (value as ValidationIssue).message === 'string';
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' && value !== '' ? value : fallback;
}

/**
 * `Retry-After` in seconds: delta-seconds, or an HTTP date (RFC 9110 §10.2.3) counted from now;
 * null when absent or unreadable.
 */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
