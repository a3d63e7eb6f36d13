/**
 * The error catalogue: every error code of the contract (SPEC.md §8 and the codes named elsewhere),
 * with its HTTP status and title. docs/errors.md lists the same codes; a test keeps them in step.
 */
export const ERRORS = {
  validation_error: { status: 400, title: 'The request is not valid' },
  organization_required: { status: 400, title: 'An organization must be selected' },
  missing_credentials: { status: 401, title: 'No credentials were sent' },
  invalid_api_key: { status: 401, title: 'The API key is not valid' },
  api_key_revoked: { status: 401, title: 'The API key has been revoked' },
  api_key_expired: { status: 401, title: 'The API key has expired' },
  invalid_session: { status: 401, title: 'The session is not valid' },
  invalid_signature: { status: 401, title: 'The request signature is not valid' },
  forbidden: { status: 403, title: 'Not allowed' },
  insufficient_scope: { status: 403, title: 'The credential lacks the required scope' },
  organization_mismatch: { status: 403, title: 'The credential belongs to another organization' },
  wrong_key_tier: { status: 403, title: 'This key tier cannot use this route' },
  ip_not_allowed: { status: 403, title: 'The client address is not allowed for this key' },
  api_key_quarantined: { status: 403, title: 'The API key is quarantined' },
  csrf_failed: { status: 403, title: 'The CSRF token is missing or wrong' },
  not_found: { status: 404, title: 'Not found' },
  conflict: { status: 409, title: 'Conflict' },
  idempotency_conflict: { status: 409, title: 'The Idempotency-Key was used with a different request' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'The content type is not supported' },
  request_header_too_large: { status: 431, title: 'The request headers are too large' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal_error: { status: 500, title: 'Internal server error' },
  service_unavailable: { status: 503, title: 'The service is not available' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface FieldError {
  path: string;
  message: string;
}

/** The extra fields and headers of an error that has none: one shared object, known at a glance. */
export const NO_EXTRA: Readonly<Record<string, unknown>> = Object.freeze({});
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** The one error class that routes throw; the error handler renders it as problem+json. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    // Client errors are expected outcomes, answered by the thousand under attack (forged tokens): a
    // stack trace would cost more than the rest of the refusal and is never shown. 5xx keep theirs.
    const limit = Error.stackTraceLimit;
    if (ERRORS[code].status < 500) Error.stackTraceLimit = 0;
    super(detail ?? ERRORS[code].title);
    Error.stackTraceLimit = limit;
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.extra = options.extra ?? NO_EXTRA;
    this.headers = options.headers ?? NO_HEADERS;
  }
}

export function validationError(errors: FieldError[], detail?: string): AppError {
  return new AppError('validation_error', detail ?? errors.map((e) => `${e.path}: ${e.message}`).join('; '), {
    extra: { errors },
  });
}

export function notFound(what = 'resource'): AppError {
  return new AppError('not_found', `No such ${what}`);
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERRORS, value);
}
