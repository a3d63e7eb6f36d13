/**
 * Turns every error into application/problem+json (RFC 9457): ours (AppError), Fastify's own
 * (validation, body parsing, size, media type, 404) and unknown ones (logged with the request id,
 * answered as a bare 500 that reveals nothing).
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify';
import { AppError, ERRORS, NO_EXTRA, type ErrorCode, type FieldError } from '../errors.js';
import { isDatabaseUnavailable } from '../db/database.js';

/** Seconds a client should wait before retrying a 503: a pool reconnect or a failover is about this quick. */
export const RETRY_AFTER_UNAVAILABLE_SECONDS = 2;

/** The 503 for a dependency that cannot be reached in time (SPEC §8): retryable, and says when. */
export function serviceUnavailable(detail = 'The database cannot be reached right now; retry shortly'): AppError {
  return new AppError('service_unavailable', detail, { headers: { 'Retry-After': String(RETRY_AFTER_UNAVAILABLE_SECONDS) } });
}

export const PROBLEM_TYPE_BASE = 'https://paygate.dev/errors/';

export function problemBody(error: AppError, requestId: string) {
  return {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: ERRORS[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
    requestId,
    ...error.extra,
  };
}

/**
 * The JSON of problems without extra fields, up to the request id, by code and detail: refusals by
 * the thousand (forged or malformed tokens under attack) differ only in their request id. Details are
 * fixed strings of the code base; the cache stops growing at MAX_FIXED_PROBLEMS all the same.
 */
const fixedProblems = new Map<ErrorCode, Map<string, string>>();
const MAX_FIXED_PROBLEMS = 1_000;
let fixedProblemCount = 0;

/** Paygate's own request ids (server.ts nextRequestId) need no escaping in JSON. */
const PLAIN_ID = /^[A-Za-z0-9_-]*$/;

/** The problem's JSON text: field for field what JSON.stringify(problemBody(...)) gives. */
export function problemJson(error: AppError, requestId: string): string {
  if (error.extra !== NO_EXTRA) for (const _ in error.extra) return JSON.stringify(problemBody(error, requestId));
  let byDetail = fixedProblems.get(error.code);
  let prefix = byDetail?.get(error.message);
  if (prefix === undefined) {
    // `..."requestId":""}` without its last three characters.
    prefix = JSON.stringify(problemBody(error, '')).slice(0, -3);
    if (fixedProblemCount < MAX_FIXED_PROBLEMS) {
      if (!byDetail) fixedProblems.set(error.code, (byDetail = new Map()));
      byDetail.set(error.message, prefix);
      fixedProblemCount++;
    }
  }
  return PLAIN_ID.test(requestId) ? `${prefix}"${requestId}"}` : `${prefix}${JSON.stringify(requestId)}}`;
}

const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export function sendProblem(reply: FastifyReply, error: AppError): FastifyReply {
  if (error.status === 401) reply.header('www-authenticate', 'Bearer error="invalid_token"');
  for (const name in error.headers) reply.header(name, error.headers[name]);
  // Sent as JSON text, not through the route's response schema: a problem's extra fields (errors,
  // requiredScope, ...) are never dropped, and a problem holds no secret by construction. The
  // charset is given, so Fastify need not parse the type again to add it.
  return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(problemJson(error, reply.request.id));
}

function fromValidation(error: FastifyError): AppError {
  const errors: FieldError[] = (error.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    let path = `${error.validationContext === 'body' ? '' : `/${error.validationContext}`}${v.instancePath}`;
    let message = v.message ?? 'is invalid';
    if (v.keyword === 'required') path += `/${String(params.missingProperty)}`;
    if (v.keyword === 'additionalProperties') {
      path += `/${String(params.additionalProperty)}`;
      message = 'is not a recognised field';
    }
    return { path: path || '/', message };
  });
  return new AppError('validation_error', errors.map((e) => `${e.path} ${e.message}`).join('; '), { extra: { errors } });
}

/** Maps Fastify's own error codes to ours. */
function fromFastify(error: FastifyError): AppError | null {
  if (error.validation) return fromValidation(error);
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new AppError('unsupported_media_type', 'Send JSON with Content-Type: application/json')
        : new AppError('validation_error', 'Content-Length does not match the body', { extra: { errors: [] } });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('validation_error', 'The JSON body is empty', { extra: { errors: [{ path: '/', message: 'body required' }] } });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_BAD_URL':
      return new AppError('validation_error', 'The body is not valid JSON', { extra: { errors: [{ path: '/', message: 'malformed JSON' }] } });
  }
  if (error instanceof SyntaxError) {
    return new AppError('validation_error', 'The body is not valid JSON', { extra: { errors: [{ path: '/', message: 'malformed JSON' }] } });
  }
  const status = error.statusCode ?? 500;
  if (status < 400 || status >= 500) return null;
  // A plugin's client error (a static file path it refuses, a range it cannot serve) is the
  // client's, never a 500: the closest code of the catalogue, any other 4xx as a malformed request.
  const byStatus: Record<number, ErrorCode> = { 403: 'forbidden', 404: 'not_found', 413: 'payload_too_large', 415: 'unsupported_media_type', 429: 'rate_limited' };
  const code = byStatus[status] ?? 'validation_error';
  return new AppError(code, code === 'validation_error' ? 'The request is malformed' : undefined, code === 'validation_error' ? { extra: { errors: [] } } : {});
}

/**
 * The error handler and the 404 handler. `onUnmatchedResponse` runs once each unmatched request (a
 * 404, or a URL the router refused) is answered: the only requests no route's own hooks see.
 */
export function registerErrorHandling(app: FastifyInstance, onUnmatchedResponse?: onResponseHookHandler): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const appError = error instanceof AppError ? error : isDatabaseUnavailable(error) ? serviceUnavailable() : fromFastify(error);
    if (appError) {
      // An outage answers many requests at once: one line each, without a stack.
      if (appError.code === 'service_unavailable') request.log.warn({ reason: error.message }, 'request failed: a dependency is unavailable');
      else if (appError.status >= 500) request.log.error({ err: error }, 'request failed');
      return sendProblem(reply, appError);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(reply, new AppError('internal_error', 'Something went wrong on our side; quote the requestId when reporting it'));
  });
  // Fastify gives the 404 context every lifecycle hook named in these options (its types list only
  // preValidation and preHandler).
  const notFoundOptions = (onUnmatchedResponse ? { onResponse: onUnmatchedResponse } : {}) as Parameters<FastifyInstance['setNotFoundHandler']>[0];
  app.setNotFoundHandler(notFoundOptions, (request, reply) => sendProblem(reply, new AppError('not_found', `No route ${request.method} ${request.url.split('?')[0]}`)));
}
