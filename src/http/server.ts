/**
 * buildServer(services) assembles the Fastify app. It never listens: main.ts and the tests do.
 */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex, Writable } from 'node:stream';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type onResponseHookHandler } from 'fastify';
import type { Logger } from 'pino';
import swagger from '@fastify/swagger';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { Services } from '../services.js';
import { registerAuth } from '../auth/plugin.js';
import { problemBody, registerErrorHandling, sendProblem, serviceUnavailable } from './error-handler.js';
import { AppError, validationError } from '../errors.js';
import { UNSTORABLE_TEXT_MESSAGE, findUnstorableText, hasUnstorableText, isStorableDateTime } from '../storable.js';
import { registerHealthRoutes } from './health-routes.js';
import { registerDocsRoutes } from './docs-routes.js';
import { registerAdminRoutes } from './admin-routes.js';
import { registerAuthRoutes } from '../auth/routes.js';
import { registerKeyRoutes } from '../keys/routes.js';
import { registerUsageRoutes } from '../usage/routes.js';
import { registerOrganizationRoutes } from '../organizations/routes.js';
import { registerSettingsRoutes } from '../settings/routes.js';
import { registerAuditRoutes } from '../audit/routes.js';
import { registerPaymentRoutes } from '../payments/routes.js';
import { registerWebhookRoutes } from '../webhooks/routes.js';
import { registerReportRoutes } from '../reports/routes.js';
import { registerLeakRoutes } from '../leaks/routes.js';
import { registerCookies } from './cookies.js';
import { LOG_REDACTION, logDestination, makeRequestChildrenLazy } from '../logging.js';
import { registerComponents, swaggerOptions } from './openapi.js';

export interface ServerOptions {
  /** Where logs go (tests capture them); default stdout. */
  logStream?: Writable;
  logLevel?: string;
  /** False when this process can no longer serve (the embedded PostgreSQL is gone): /healthz answers 503. */
  liveness?: () => boolean;
  /** False while the process is still starting (its first admin not yet bootstrapped): /readyz answers 503. */
  readiness?: () => boolean;
}

/**
 * Removes secrets that may ride in a URL before it is logged: portal and invitation tokens, and
 * whatever a careless client puts there (`?access_token=`, `?api_key=`, an API key in the path).
 */
export function redactUrl(url: string): string {
  return url
    .replace(/([?&;][^=&#;]*?(?:token|secret|password|api_?key)=)[^&#;]*/gi, '$1[REDACTED]')
    .replace(/sk_([0-9A-Za-z]{20})(?:\.|%2e)[0-9A-Za-z]*/gi, 'sk_$1.[REDACTED]');
}

function makeAjv(coerce: boolean): Ajv {
  // Bodies are validated strictly: no type coercion and unknown fields refused, never silently dropped.
  // Query strings and path parameters are text on the wire, so they are coerced.
  const ajv = new Ajv({
    allErrors: true,
    coerceTypes: coerce ? 'array' : false,
    removeAdditional: false,
    useDefaults: true,
    strict: false,
  });
  addFormats.default(ajv);
  // Every `format: "date-time"` of every schema means a date PostgreSQL stores as sent (SPEC §8):
  // RFC 3339 with a time zone, a real calendar date, years 1..9999. One rule, in src/storable.ts.
  ajv.addFormat('date-time', { type: 'string', validate: isStorableDateTime });
  return ajv;
}

/**
 * Text PostgreSQL cannot store (a NUL, a lone surrogate) in any path parameter, query parameter or
 * body field of any route, with a schema or without: `400 validation_error` naming each field
 * (SPEC §8), once the body is parsed and before the schema.
 */
function unstorableIn(params: unknown, query: unknown, body: unknown): AppError | null {
  // The common case first: nothing to report, found without building a pointer per field.
  if (!hasUnstorableText(params) && !hasUnstorableText(query) && !hasUnstorableText(body)) return null;
  const parts: Array<[string, unknown]> = [['/params', params], ['/querystring', query], ['', body]];
  return validationError(parts.flatMap(([base, value]) => findUnstorableText(value, base)).map((path) => ({ path, message: UNSTORABLE_TEXT_MESSAGE })));
}

/**
 * Errors the router raises before any route or hook runs (a malformed percent-encoding, a path
 * parameter over its length limit) are problem+json like every other error (SPEC §8).
 */
function answerFrameworkError(error: { code?: string }, _request: unknown, reply: FastifyReply): void {
  reply.header('x-request-id', reply.request.id).header('x-content-type-options', 'nosniff');
  const problem =
    error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? validationError([{ path: '/url', message: error.code === 'FST_ERR_BAD_URL' ? 'is not a valid URL (malformed percent-encoding)' : 'has a path segment that is too long' }], 'The URL is not valid')
      : new AppError('internal_error', 'Something went wrong on our side; quote the requestId when reporting it');
  if (problem.status >= 500) reply.log.error({ err: error }, 'router error');
  void sendProblem(reply, problem);
}

const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The caller's X-Request-Id when it is a safe value (`[A-Za-z0-9_-]{1,64}`), as `{ clientRequestId }`; else `{}`. */
function clientRequestIdOf(headers: Record<string, string | string[] | undefined>): { clientRequestId?: string } {
  const given = headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? { clientRequestId: given } : {};
}
const requestIdPrefix = randomBytes(6).toString('base64url');
let requestCounter = 0;

/** Unique without a random draw per request: a random per-process prefix and a counter. */
function nextRequestId(): string {
  return `req_${requestIdPrefix}${(requestCounter++).toString(36)}`;
}

/**
 * Errors of Node's HTTP parser (a malformed request line, headers over the limit) never reach a
 * route: they are answered here, on the raw socket, still as problem+json (SPEC §8).
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError('request_header_too_large', 'The request line and headers exceed 16 KiB')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('validation_error', 'The request was not received completely in time', { extra: { errors: [] } })
        : new AppError('validation_error', 'The request is not valid HTTP', { extra: { errors: [] } });
  const requestId = nextRequestId();
  const body = JSON.stringify(problemBody(problem, requestId));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

/**
 * Fastify compiles a serialiser per route and status; most routes share their response schemas
 * (every organization route is mounted twice, views such as ApiKey answer many routes), and each
 * compilation validates and resolves the schema anew. One serialiser per schema object keeps
 * start-up from growing with the number of mounts. The cache spans the factory's calls: Fastify
 * calls it again for every route of a context that has shared schemas (ours has, the components).
 * The shared schemas are all added before the first route (openapi.ts registerComponents) and only
 * ever grow, so a serialiser compiled earlier still resolves every reference it has.
 */
function sharedSerializers(): SerializerSelector.SerializerFactory {
  const build = SerializerSelector();
  const compiled = new WeakMap<object, SerializerSelector.Serializer>();
  return (externalSchemas, options) => {
    const compile = build(externalSchemas, options);
    return (route) => {
      const schema = route.schema;
      if (typeof schema !== 'object' || schema === null) return compile(route);
      let serializer = compiled.get(schema);
      if (!serializer) {
        serializer = compile(route);
        compiled.set(schema, serializer);
      }
      return serializer;
    };
  };
}

/**
 * Fastify's request lines ("incoming request", "request completed") are written at info. At the
 * production level (warn) each still built its object and argument list for a call that writes
 * nothing, twice a request; asked first whether the request's logger writes info, they are not
 * built at all. A request that ended in an error is still logged as Fastify logs it.
 */
class RequestLineController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if ((request.log as Logger).isLevelEnabled('info')) super.incomingRequest(request, reply);
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error || (request.log as Logger).isLevelEnabled('info')) super.requestCompleted(error, request, reply);
  }
}

export async function buildServer(services: Services, options: ServerOptions = {}): Promise<FastifyInstance> {
  // The tests' capture, else JSON on stdout or, for people, pino-pretty (src/logging.ts).
  const logStream = options.logStream ?? logDestination(services.config.logFormat);
  const app = Fastify({
    logger: {
      level: options.logLevel ?? services.config.logLevel,
      ...(logStream ? { stream: logStream } : {}),
      redact: LOG_REDACTION,
      serializers: {
        req: (request) => ({ method: request.method, url: redactUrl(request.url), remoteAddress: request.ip, ...clientRequestIdOf(request.headers) }),
      },
    },
    trustProxy: services.config.trustedProxies === false ? false : services.config.trustedProxies,
    bodyLimit: 1024 * 1024,
    // Always Paygate's own id (as a payment platform's request ids are): a caller must not choose the
    // id that audit events and logs are correlated by. The caller's own X-Request-Id is kept apart.
    genReqId: () => nextRequestId(),
    logController: new RequestLineController(),
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    // A node shutting down answers requests that still arrive (pipelined, or on a kept-alive
    // connection) with our own 503 below rather than Fastify's JSON.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: true },
    schemaController: { compilersFactory: { buildSerializer: sharedSerializers() } },
  });

  // Each request's child logger is made when it first writes a line (most never do at warn).
  makeRequestChildrenLazy(app.log as Logger);

  const bodyAjv = makeAjv(false);
  const paramAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : paramAjv).compile(schema));

  // An empty JSON body is treated as absent, so `POST .../revoke` with a JSON content type and no body works.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (typeof body === 'string' && body.trim() === '') return done(null, undefined);
    return defaultJson(request, body as string, done);
  });
  // Fastify parses text/plain by default; our bodies are JSON, so any other type is 415 unsupported_media_type
  // rather than a string that then fails the body schema as a confusing 400.
  app.removeContentTypeParser('text/plain');

  // Cookies without a plugin and its onSend hook on every route (http/cookies.ts).
  registerCookies(app);
  // Named schema components (src/http/openapi.ts) for the serialisers, the validators and the document.
  registerComponents(app, [bodyAjv, paramAjv]);
  await app.register(swagger, swaggerOptions(services.config));

  // The caller's X-Request-Id is remembered for the request's audit events (onRequest, below) and
  // forgotten when the response is done, by the route's own onResponse hook or the 404's.
  const forgetClientRequestId = (request: FastifyRequest) => {
    if (request.headers['x-request-id'] !== undefined) services.chain.forgetClientRequestId(request.id);
  };
  // Requests no route matched (404s, URLs the router refused); every route counts its own below.
  registerErrorHandling(app, (request, reply, done) => {
    forgetClientRequestId(request);
    services.metrics.observeRequest(request.method, 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Before auth: refusals carry the request id and no-store too. Hooks that need not wait for
  // anything are callback-style: an async hook costs a promise and a microtask per request.
  // Header names in lower case, here and on other hot paths: Fastify lower-cases every name it is
  // given, and a name already in lower case stays the same interned string (about 1 % of a bare
  // request side by side, bench/ANALYSIS.md); on the wire they were lower case already.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // The caller's own id, when it sent a valid one: in the audit events of this request (the chain
    // adds it to their details as clientRequestId) and in its log line, never as the request's id.
    if (request.headers['x-request-id'] !== undefined) {
      const client = clientRequestIdOf(request.headers).clientRequestId;
      if (client) services.chain.noteClientRequestId(request.id, client);
    }
    if (closing) {
      reply.header('Connection', 'close');
      sendProblem(reply, serviceUnavailable('This node is shutting down; retry on another'));
      return;
    }
    // No response of this origin is ever run as a script or style by content sniffing: /docs and
    // /admin allow this origin's scripts (docs/security.md, "/docs beside /admin").
    reply.header('x-content-type-options', 'nosniff');
    if (request.url.startsWith('/v1')) {
      // Responses may hold a secret exactly once; no cache may keep a copy.
      reply.header('cache-control', 'no-store');
    }
    done();
  });
  registerAuth(app, services);
  // After authentication (which reads only the organization id, compares it and never puts it in
  // SQL unchecked: a cross-tenant attempt with a NUL is still refused and audited as one), before
  // the schema. Body paths are JSON Pointers into the body itself, as the schema's errors are.
  app.addHook('preValidation', (request, _reply, done) => {
    const refusal = unstorableIn(request.params, request.query, request.body);
    if (refusal) done(refusal);
    else done();
  });

  // Each route counts its requests under its pattern, bound as the route is added (never raw URLs:
  // label cardinality stays bounded whatever clients send). Reading request.routeOptions instead
  // builds an object of 13 fields on every request. No global onResponse hook: it would be one more
  // hook in every route's chain, for what only unmatched requests need (registerErrorHandling above).
  app.addHook('onRoute', (route) => {
    const pattern = route.url;
    const own = route.onResponse === undefined ? [] : Array.isArray(route.onResponse) ? route.onResponse : [route.onResponse];
    const observe: onResponseHookHandler = (request, reply, done) => {
      forgetClientRequestId(request);
      services.metrics.observeRequest(request.method, pattern, reply.statusCode, reply.elapsedTime / 1000);
      done();
    };
    route.onResponse = [...own, observe];
  });

  registerHealthRoutes(app, services, options.liveness, options.readiness);
  await registerDocsRoutes(app);
  await registerAdminRoutes(app, services);
  registerAuthRoutes(app, services);
  registerKeyRoutes(app, services);
  registerUsageRoutes(app, services);
  registerOrganizationRoutes(app, services);
  registerSettingsRoutes(app, services);
  registerAuditRoutes(app, services);
  registerPaymentRoutes(app, services);
  registerWebhookRoutes(app, services);
  registerLeakRoutes(app, services);
  registerReportRoutes(app, services);

  await app.ready();
  return app;
}
