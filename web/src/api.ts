/**
 * The panel's only way to talk to Paygate: its public HTTP API, with the session cookie (HttpOnly,
 * sent by the browser) and, on unsafe methods, the X-CSRF-Token header echoing the `csrf` cookie.
 * Errors arrive as problem+json and become ApiError values carrying title, detail and field errors.
 */

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

// ---- Shapes of the API (SPEC §4, §6, §7, §9) ----

export type Role = 'owner' | 'admin' | 'developer' | 'viewer';
export type Tier = 'organization' | 'system';

export interface Me {
  user: { id: string; email: string; isGlobalAdmin: boolean };
  memberships: { organizationId: string; organizationName: string; role: Role }[];
  selectedOrganization: { id: string; name: string | null; role: Role | null } | null;
}

export interface ListPage<T> {
  object: 'list';
  data: T[];
  hasMore: boolean;
}

export interface ApiKey {
  id: string;
  object: 'api_key';
  tier: Tier;
  organizationId: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  status: 'active' | 'revoked' | 'expired' | 'quarantined';
  createdAt: string;
  createdBy: { type: string; id: string | null };
  updatedAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  rotatedAt: string | null;
  previousSecretExpiresAt: string | null;
  allowedIps: string[] | null;
  rateLimit: { requests: number; windowSeconds: number } | null;
  hint: string;
  secret?: string;
}

export interface Member {
  object: 'member';
  organizationId: string;
  userId: string;
  email: string;
  role: Role;
  status: 'active';
  createdAt: string;
}

/** SPEC §7: adding a member makes an invitation ("pending" when made, "invited" in the list). */
export interface Invitation {
  id: string;
  object: 'invitation';
  organizationId: string;
  email: string;
  role: Role;
  status: 'pending' | 'invited' | 'accepted';
  expiresAt: string;
  createdAt: string;
  /** Only when Paygate sends no mail: the link to hand over. */
  url?: string;
}

/** What an invitation link's page learns from POST /v1/auth/invitations/inspect. */
export interface InvitationSummary {
  object: 'invitation';
  email: string;
  role: Role;
  organizationId: string;
  organizationName: string;
  expiresAt: string;
  accountExists: boolean;
}

export interface Organization {
  id: string;
  object: 'organization';
  name: string;
  status: 'active' | 'deleted';
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
}

export interface ProvisionResult extends Organization {
  owner?: Invitation;
  initialApiKey?: ApiKey;
}

export interface SystemSettings {
  portalMagicLinkTtlMinutes: number;
  apiKeyRotationGraceMinutes: number;
  apiKeyMaxLifetimeDays: number | null;
  updatedAt: string;
}

export interface AuditEvent {
  id: string;
  object: 'audit_event';
  at: string;
  action: string;
  actor: { type: string; id: string | null };
  organizationId: string | null;
  target: { type: string; id: string } | null;
  ip: string | null;
  requestId: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

export interface IntegrityReport {
  ok: boolean;
  checked: number;
  headMatches: boolean;
  firstBrokenEventId: string | null;
  reason: string | null;
}

/** Where an organization's routes live: always with the organization in the path (SPEC §2). */
export const orgPath = (organizationId: string, path: string) => `/v1/organizations/${encodeURIComponent(organizationId)}${path}`;
