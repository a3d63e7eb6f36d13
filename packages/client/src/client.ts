/**
 * `createPaygateClient(options)`: Paygate's API over openapi-fetch, typed by the generated `paths`.
 *
 * Two surfaces over one transport:
 * - `paygate.api`: the openapi-fetch client itself, every path of the document (`paygate.api.GET(
 *   '/v1/api-keys/{id}', { params: { path: { id } } })` answers `{ data, error, response }`);
 * - resources (`paygate.apiKeys.create(...)`, `paygate.invoices.finalize(id)`, ...), which answer the
 *   object itself, throw a PaygateError for any answer that is not 2xx, and page lists for you.
 *
 * What the transport does for both: the Bearer credential; with `organizationId`, organization
 * routes go to `/v1/organizations/{orgId}/...` (SPEC §2: how a session names its organization); a
 * random `Idempotency-Key` on every operation that honours one, unless the call gives its own; and
 * retries of 429/503 after `Retry-After` for requests safe to repeat (retry.ts).
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { paths } from './generated/openapi.js';
import { IDEMPOTENT_OPERATIONS, ORGANIZATION_PATHS } from './generated/operations.js';
import { PaygateError } from './errors.js';
import { Paginated } from './pagination.js';
import { DEFAULT_RETRY, retryingFetch, type FetchLike, type RetryOptions } from './retry.js';
import type { HttpMethod, PathsWith, QueryParams, RequestBody, ResponseBody } from './types.js';
import { randomUuid } from './uuid.js';

export interface PaygateClientOptions {
  /** Where Paygate answers, e.g. `https://paygate.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** The Bearer credential: an API key (`sk_<id>.<secret>`) or an admin session token (a JWT). */
  token?: string;
  /**
   * The organization to act in, for a session (an API key acts in its own): organization routes
   * are then called as `/v1/organizations/{organizationId}/...`.
   */
  organizationId?: string;
  /** Retries of 429 and 503 (default: 3 attempts within 30 s); `false`: none. */
  retry?: RetryOptions | false;
  /** The fetch to send requests with (default: the global fetch). */
  fetch?: FetchLike;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** Per call. */
export interface CallOptions {
  /**
   * The Idempotency-Key to send (operations that honour one; else a random one is generated). Give
   * your own to retry a create safely across process restarts: the same key replays the outcome.
   */
  idempotencyKey?: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
}

const ORGANIZATION_TEMPLATE = '/v1/organizations/{orgId}';

/** `/v1/organizations/{orgId}/x` -> `/v1/x` (the key of the generated run-time facts). */
function shortPath(schemaPath: string): string {
  return schemaPath.startsWith(`${ORGANIZATION_TEMPLATE}/`) ? `/v1${schemaPath.slice(ORGANIZATION_TEMPLATE.length)}` : schemaPath;
}

/** True when `METHOD path` (either mount) honours Idempotency-Key. */
export function honoursIdempotencyKey(method: string, schemaPath: string): boolean {
  return IDEMPOTENT_OPERATIONS.has(`${method.toUpperCase()} ${shortPath(schemaPath)}`);
}

type Init = {
  params?: { path?: Record<string, unknown>; query?: Record<string, unknown>; [part: string]: unknown };
  [option: string]: unknown;
};

/** The path and init of a call made in `organizationId`: organization routes move under its mount. */
function placeInOrganization(organizationId: string | undefined, path: string, init: Init | undefined): [string, Init | undefined] {
  if (organizationId === undefined || !ORGANIZATION_PATHS.has(path)) return [path, init];
  const params = init?.params ?? {};
  return [`${ORGANIZATION_TEMPLATE}${path.slice('/v1'.length)}`, { ...init, params: { ...params, path: { ...params.path, orgId: organizationId } } }];
}

/** The data of an openapi-fetch answer, or a PaygateError for one that is not 2xx. */
export function unwrap<R extends { data?: unknown; error?: unknown; response: Response }>(result: R): R extends { data: infer D } ? D : never {
  if (!result.response.ok) throw new PaygateError(result.response.status, result.response.headers, result.error);
  return result.data as R extends { data: infer D } ? D : never;
}

interface CallParts {
  path?: Record<string, string>;
  query?: unknown;
  body?: unknown;
  /** Send the body as it is with this Content-Type (not JSON). */
  rawBodyType?: string;
}

/** `GET P` as a paginated list. */
export type ListMethod<P extends PathsWith<'get'>> = (query?: QueryParams<P, 'get'>, callOptions?: CallOptions) => Paginated<ResponseBody<P, 'get'>>;
/** `POST P` with a JSON body. */
export type CreateMethod<P extends PathsWith<'post'>> = (body: RequestBody<P, 'post'>, callOptions?: CallOptions) => Promise<ResponseBody<P, 'post'>>;
/** `GET P` of one object by `{id}`. */
export type RetrieveMethod<P extends PathsWith<'get'>> = (id: string, callOptions?: CallOptions) => Promise<ResponseBody<P, 'get'>>;
/** `PATCH P` of one object by `{id}`. */
export type UpdateMethod<P extends PathsWith<'patch'>> = (id: string, body: RequestBody<P, 'patch'>, callOptions?: CallOptions) => Promise<ResponseBody<P, 'patch'>>;
/** `DELETE P` of one object by `{id}`. */
export type DeleteMethod<P extends PathsWith<'delete'>> = (id: string, callOptions?: CallOptions) => Promise<ResponseBody<P, 'delete'>>;
/** `POST P` on one object by `{id}` (`/rotate`, `/finalize`, ...); the body, when it takes one, is optional. */
export type ActionMethod<P extends PathsWith<'post'>> = (id: string, body?: RequestBody<P, 'post'>, callOptions?: CallOptions) => Promise<ResponseBody<P, 'post'>>;
/** `GET P` of a path without parameters. */
export type ReadMethod<P extends PathsWith<'get'>> = (callOptions?: CallOptions) => Promise<ResponseBody<P, 'get'>>;

export interface PaygateClient extends PaygateResources {
  /** The openapi-fetch client: every path of the document, typed; answers `{ data, error, response }` (see `unwrap`). */
  readonly api: Client<paths>;
  /** The organization this client acts in (`organizationId`), if it was given. */
  readonly organizationId: string | undefined;
  /** The same client acting in another organization (a session's calls). */
  withOrganization(organizationId: string): PaygateClient;
}

export function createPaygateClient(options: PaygateClientOptions): PaygateClient {
  const { organizationId } = options;
  const baseFetch: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  // Requests this client may send again: GET and HEAD, and those the middleware below marks.
  const repeatable = new WeakSet<Request>();
  const transport =
    options.retry === false
      ? baseFetch
      : retryingFetch(baseFetch, { ...DEFAULT_RETRY, ...options.retry }, (request) => request.method === 'GET' || request.method === 'HEAD' || repeatable.has(request));

  const inner = createClient<paths>({
    baseUrl: options.baseUrl,
    fetch: transport,
    headers: { accept: 'application/json', ...options.headers, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
  });
  const idempotency: Middleware = {
    onRequest({ request, schemaPath }) {
      if (!honoursIdempotencyKey(request.method, schemaPath)) return;
      // One key per call, kept by every retry of it (the transport resends this same request).
      if (!request.headers.has('idempotency-key')) request.headers.set('Idempotency-Key', randomUuid());
      repeatable.add(request);
    },
  };
  inner.use(idempotency);

  // The generated-path client, with calls placed in `organizationId` like the resources' calls.
  const place = (path: string, init: unknown) => placeInOrganization(organizationId, path, init as Init | undefined);
  const untyped = inner as unknown as Record<string, (path: string, init?: Init) => Promise<unknown>> & {
    request(method: string, path: string, init?: Init): Promise<unknown>;
  };
  const api = {
    ...inner,
    request: (method: string, path: string, init?: Init) => untyped.request(method, ...place(path, init)),
    ...Object.fromEntries(
      (['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'TRACE'] as const).map((method) => [method, (path: string, init?: Init) => untyped[method]!(...place(path, init))]),
    ),
  } as unknown as Client<paths>;

  async function send(method: HttpMethod, path: string, parts: CallParts, call: CallOptions | undefined): Promise<{ data?: unknown; error?: unknown; response: Response }> {
    const headers: Record<string, string> = { ...call?.headers };
    if (call?.idempotencyKey !== undefined) headers['Idempotency-Key'] = call.idempotencyKey;
    if (parts.rawBodyType) headers['content-type'] = parts.rawBodyType;
    const init: Init = {
      params: { ...(parts.path ? { path: parts.path } : {}), ...(parts.query ? { query: parts.query as Record<string, unknown> } : {}) },
      ...(parts.body !== undefined ? { body: parts.body } : {}),
      ...(parts.rawBodyType ? { bodySerializer: (body: unknown) => body } : {}),
      headers,
      ...(call?.signal ? { signal: call.signal } : {}),
    };
    return (await api.request(method as never, path as never, init as never)) as { data?: unknown; error?: unknown; response: Response };
  }

  /** `M P`, answering the success body (typed from the document) or throwing a PaygateError. */
  async function call<M extends HttpMethod, P extends PathsWith<M>>(method: M, path: P, parts: CallParts = {}, callOptions?: CallOptions): Promise<ResponseBody<P, M>> {
    return unwrap(await send(method, path, parts, callOptions)) as ResponseBody<P, M>;
  }

  function paginate<P extends PathsWith<'get'>>(path: P, pathParams: Record<string, string> | undefined, query: object | undefined, callOptions?: CallOptions) {
    const given = (query ?? {}) as { startingAfter?: string };
    return new Paginated<ResponseBody<P, 'get'>>(
      (after) => call('get', path, { ...(pathParams ? { path: pathParams } : {}), query: { ...given, ...(after !== undefined ? { startingAfter: after } : {}) } }, callOptions),
      given.startingAfter,
    );
  }

  // Resource methods, each bound to one generated path; their argument and result types come from it.
  return {
    api,
    organizationId,
    withOrganization: (id: string) => createPaygateClient({ ...options, organizationId: id }),
    ...resources({ call, send, paginate }),
  };
}

interface Transport {
  call<M extends HttpMethod, P extends PathsWith<M>>(method: M, path: P, parts?: CallParts, callOptions?: CallOptions): Promise<ResponseBody<P, M>>;
  send(method: HttpMethod, path: string, parts: CallParts, callOptions: CallOptions | undefined): Promise<{ data?: unknown; error?: unknown; response: Response }>;
  paginate<P extends PathsWith<'get'>>(path: P, pathParams: Record<string, string> | undefined, query: object | undefined, callOptions?: CallOptions): Paginated<ResponseBody<P, 'get'>>;
}

export type PaygateResources = ReturnType<typeof resources>;

/** The resource methods, each bound to one generated path; their argument and result types come from it. */
function resources({ call, send, paginate }: Transport) {
  const list = <P extends PathsWith<'get'>>(path: P): ListMethod<P> => (query, callOptions) => paginate(path, undefined, query as object | undefined, callOptions);
  const create = <P extends PathsWith<'post'>>(path: P): CreateMethod<P> => (body, callOptions) => call('post', path, { body }, callOptions);
  const retrieve = <P extends PathsWith<'get'>>(path: P): RetrieveMethod<P> => (id, callOptions) => call('get', path, { path: { id } }, callOptions);
  const update = <P extends PathsWith<'patch'>>(path: P): UpdateMethod<P> => (id, body, callOptions) => call('patch', path, { path: { id }, body }, callOptions);
  const remove = <P extends PathsWith<'delete'>>(path: P): DeleteMethod<P> => (id, callOptions) => call('delete', path, { path: { id } }, callOptions);
  const action = <P extends PathsWith<'post'>>(path: P): ActionMethod<P> => (id, body, callOptions) => call('post', path, { path: { id }, body }, callOptions);
  const read = <P extends PathsWith<'get'>>(path: P): ReadMethod<P> => (callOptions) => call('get', path, {}, callOptions);

  return {
    auth: {
      /** What the credential is (needs no scope): `type`, `keyId`, `tier`, `organizationId`, `scopes`. */
      whoami: read('/v1/auth/whoami'),
      /** Sign in; the answer's `token` is a session token for `createPaygateClient({ token })`. */
      login: create('/v1/auth/login'),
      logout: (callOptions?: CallOptions) => call('post', '/v1/auth/logout', {}, callOptions),
      me: read('/v1/auth/me'),
    },
    apiKeys: {
      list: list('/v1/api-keys'),
      /** Create a key; the answer holds its `secret`, shown this once. */
      create: create('/v1/api-keys'),
      get: retrieve('/v1/api-keys/{id}'),
      update: update('/v1/api-keys/{id}'),
      delete: remove('/v1/api-keys/{id}'),
      /** A new secret, same id; the previous one works for `gracePeriodMinutes`. */
      rotate: action('/v1/api-keys/{id}/rotate'),
      /** Irreversible, at once on every node. */
      revoke: action('/v1/api-keys/{id}/revoke'),
    },
    organization: {
      get: read('/v1/organization'),
      update: (body: RequestBody<'/v1/organization', 'patch'>, callOptions?: CallOptions) => call('patch', '/v1/organization', { body }, callOptions),
    },
    members: {
      list: list('/v1/members'),
      /** Invite someone by e-mail with a role (the membership exists once they accept). */
      invite: create('/v1/members'),
      update: (userId: string, body: RequestBody<'/v1/members/{userId}', 'patch'>, callOptions?: CallOptions) =>
        call('patch', '/v1/members/{userId}', { path: { userId }, body }, callOptions),
      remove: (userId: string, callOptions?: CallOptions) => call('delete', '/v1/members/{userId}', { path: { userId } }, callOptions),
    },
    auditEvents: { list: list('/v1/audit-events') },
    clients: {
      list: list('/v1/clients'),
      create: create('/v1/clients'),
      get: retrieve('/v1/clients/{id}'),
      update: update('/v1/clients/{id}'),
      delete: remove('/v1/clients/{id}'),
    },
    invoices: {
      list: list('/v1/invoices'),
      /** A draft invoice; its total is computed from the lines. */
      create: create('/v1/invoices'),
      get: retrieve('/v1/invoices/{id}'),
      update: update('/v1/invoices/{id}'),
      delete: remove('/v1/invoices/{id}'),
      /** Draft to open. */
      finalize: action('/v1/invoices/{id}/finalize'),
      void: action('/v1/invoices/{id}/void'),
    },
    recurringSchedules: {
      list: list('/v1/recurring-schedules'),
      create: create('/v1/recurring-schedules'),
      get: retrieve('/v1/recurring-schedules/{id}'),
      update: update('/v1/recurring-schedules/{id}'),
      delete: remove('/v1/recurring-schedules/{id}'),
      /** Issue the next invoice now. */
      run: action('/v1/recurring-schedules/{id}/run'),
    },
    checkouts: {
      list: list('/v1/checkouts'),
      /** A checkout; its `url` is Paygate's hosted pay page. */
      create: create('/v1/checkouts'),
      get: retrieve('/v1/checkouts/{id}'),
    },
    transactions: {
      list: list('/v1/transactions'),
      get: retrieve('/v1/transactions/{id}'),
      update: update('/v1/transactions/{id}'),
    },
    refunds: {
      /** Refund a succeeded transaction: `amount` (default: what remains). */
      create: action('/v1/transactions/{id}/refunds'),
    },
    portal: {
      /** A single-use portal magic link for a client. */
      createMagicLink: create('/v1/portal/magic-links'),
    },
    webhookEndpoints: {
      list: list('/v1/webhook-endpoints'),
      /** An endpoint; the answer holds its signing `secret`, shown this once. */
      create: create('/v1/webhook-endpoints'),
      get: retrieve('/v1/webhook-endpoints/{id}'),
      update: update('/v1/webhook-endpoints/{id}'),
      delete: remove('/v1/webhook-endpoints/{id}'),
      /** A new secret (in the answer); the previous one keeps signing for `gracePeriodMinutes`. */
      rotateSecret: action('/v1/webhook-endpoints/{id}/rotate-secret'),
      /** The endpoint's deliveries, newest first (`status` filters). */
      deliveries: (id: string, query?: QueryParams<'/v1/webhook-endpoints/{id}/deliveries', 'get'>, callOptions?: CallOptions) =>
        paginate('/v1/webhook-endpoints/{id}/deliveries', { id }, query as object | undefined, callOptions),
      /** Attempt a delivery again now. */
      retryDelivery: (id: string, deliveryId: string, callOptions?: CallOptions) =>
        call('post', '/v1/webhook-endpoints/{id}/deliveries/{deliveryId}/retry', { path: { id, deliveryId } }, callOptions),
      /** Queue a `webhook_endpoint.test` event to this endpoint. */
      sendTest: action('/v1/webhook-endpoints/{id}/test'),
    },
    dataIo: {
      createExport: create('/v1/data-io/exports'),
      /** Import clients from CSV text (`Content-Type: text/csv`). */
      createImport: (csv: string | Blob | Uint8Array, callOptions?: CallOptions) => call('post', '/v1/data-io/imports', { body: csv, rawBodyType: 'text/csv' }, callOptions),
      listJobs: list('/v1/data-io/jobs'),
      getJob: retrieve('/v1/data-io/jobs/{id}'),
      /** A completed job's result, as the raw Response (stream or read it as you like). */
      download: async (id: string, callOptions?: CallOptions): Promise<Response> => {
        const result = await send('get', '/v1/data-io/jobs/{id}/download', { path: { id } }, { ...callOptions, headers: { accept: '*/*', ...callOptions?.headers } });
        unwrap(result);
        return result.response;
      },
    },
    system: {
      health: read('/v1/system/health'),
      organizations: {
        list: list('/v1/system/organizations'),
        /** Provision an organization (an owner invitation and a first key optional). */
        create: create('/v1/system/organizations'),
      },
      apiKeys: {
        list: list('/v1/system/api-keys'),
        create: create('/v1/system/api-keys'),
        get: retrieve('/v1/system/api-keys/{id}'),
        update: update('/v1/system/api-keys/{id}'),
        delete: remove('/v1/system/api-keys/{id}'),
        rotate: action('/v1/system/api-keys/{id}/rotate'),
        revoke: action('/v1/system/api-keys/{id}/revoke'),
      },
      settings: {
        get: read('/v1/system/settings'),
        update: (body: RequestBody<'/v1/system/settings', 'patch'>, callOptions?: CallOptions) => call('patch', '/v1/system/settings', { body }, callOptions),
      },
      auditEvents: { list: list('/v1/system/audit-events') },
    },
  };
}

