/**
 * The panel's only way to talk to Paygate: its public HTTP API, with the session cookie (HttpOnly,
 * sent by the browser) and, on unsafe methods, the X-CSRF-Token header echoing the `csrf` cookie.
 * Errors arrive as problem+json and become ApiError values carrying title, detail and field errors.
 */
import type { components } from '../../packages/client/src/generated/openapi';

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string | null;
  readonly code: string | null;
  readonly errors: FieldError[];

  constructor(status: number, body: { title?: unknown; detail?: unknown; code?: unknown; errors?: unknown }) {
    const title = typeof body.title === 'string' ? body.title : `Request failed (${status})`;
    const detail = typeof body.detail === 'string' ? body.detail : null;
    super(detail ?? title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.code = typeof body.code === 'string' ? body.code : null;
    this.errors = Array.isArray(body.errors)
      ? body.errors
          .filter((e): e is { path?: unknown; message?: unknown } => typeof e === 'object' && e !== null)
          .map((e) => ({ path: typeof e.path === 'string' ? e.path : '', message: typeof e.message === 'string' ? e.message : String(e.message) }))
      : [];
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

type Listener = (error: ApiError) => void;
let onSessionLost: Listener | null = null;

/** Called when the API says the session is missing or ended, so the shell can show the sign-in page. */
export function setSessionLostHandler(listener: Listener | null): void {
  onSessionLost = listener;
}

export type Query = Record<string, string | number | undefined | null>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function request<T>(method: string, path: string, options: { body?: unknown; query?: Query; quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (UNSAFE.has(method)) {
    const csrf = readCookie('csrf');
    if (csrf) headers['x-csrf-token'] = csrf;
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'Paygate could not be reached. Check your connection and try again.' });
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, (body && typeof body === 'object' ? body : {}) as Record<string, unknown>);
    if (response.status === 401 && !options.quiet401 && (error.code === 'invalid_session' || error.code === 'missing_credentials')) {
      onSessionLost?.(error);
    }
    throw error;
  }
  return body as T;
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>('GET', path, { query }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, { body: body ?? {} }),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, { body }),
  patch: <T>(path: string, body?: unknown) => request<T>('PATCH', path, { body }),
  delete: <T = void>(path: string) => request<T>('DELETE', path),
};

// ---- Shapes of the API: the server's own OpenAPI document, as packages/client generates its types ----
// (`npm run generate:client`); nothing here is copied by hand, so a field the server changes shows
// up as a type error in the panel.

type Schemas = components['schemas'];

export type Role = Schemas['Member']['role'];
export type Tier = Schemas['ApiKey']['tier'];
export type Me = Schemas['Me'];

/** Every list answer (SPEC §11): `{ object: "list", data, hasMore }`. */
export type ListPage<T> = Omit<Schemas['ApiKeyList'], 'data'> & { data: T[] };

/**
 * A key as reads return it; create and rotate answers also hold `secret` (ApiKeyWithSecret). Flags
 * are read as strings: a flag this panel does not know yet still shows, by its code.
 */
export type ApiKey = Omit<Schemas['ApiKey'], 'flags'> & { flags?: string[] } & Partial<Pick<Schemas['ApiKeyWithSecret'], 'secret'>>;
export type ApiKeyWithSecret = Schemas['ApiKeyWithSecret'];
export type Member = Schemas['Member'];
/** SPEC §7: adding a member makes an invitation ("pending" when made, "invited" in the list). */
export type Invitation = Schemas['Invitation'];
/** What an invitation link's page learns from POST /v1/auth/invitations/inspect. */
export type InvitationSummary = Schemas['InvitationSummary'];
export type Organization = Schemas['Organization'];
export type ProvisionResult = Schemas['ProvisionedOrganization'];
export type SystemSettings = Schemas['SystemSettings'];
export type AuditEvent = Schemas['AuditEvent'];
export type IntegrityReport = Schemas['AuditIntegrity'];
export type SystemHealth = Schemas['SystemHealth'];

/** Where an organization's routes live: always with the organization in the path (SPEC §2). */
export const orgPath = (organizationId: string, path: string) => `/v1/organizations/${encodeURIComponent(organizationId)}${path}`;
