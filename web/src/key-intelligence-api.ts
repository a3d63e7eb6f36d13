/**
 * Key intelligence as the panel calls it (SPEC §12 usage and rotation evidence, §13 quarantine,
 * §14 hygiene and the credential report): through `api` (session cookie, CSRF header, problem+json
 * as ApiError), organization routes always with the organization in the path, system keys under
 * /v1/system. The server remains the judge of every request; these are only its shapes.
 */
import type { components } from '../../packages/client/src/generated/openapi';
import { api, ApiError, orgPath, type ApiKey, type AuditEvent, type ListPage, type Tier } from './api';

/** SPEC §12 outcomes, in the order the API lists them. */
export const USAGE_OUTCOMES = [
  'ok',
  'invalid_api_key',
  'api_key_revoked',
  'api_key_expired',
  'ip_not_allowed',
  'rate_limited',
  'insufficient_scope',
  'api_key_quarantined',
] as const;

export type UsageOutcome = (typeof USAGE_OUTCOMES)[number];
export type RefusalCode = Exclude<UsageOutcome, 'ok'>;
export const REFUSAL_CODES = USAGE_OUTCOMES.filter((o): o is RefusalCode => o !== 'ok');

/** SPEC §12 flags, with what the panel calls them; a flag the panel does not know yet shows by its code. */
export const FLAG_LABELS: Record<string, string> = {
  rotation_due: 'rotation due',
  inactive: 'inactive',
  expiring_soon: 'expiring soon',
  no_expiry: 'no expiry',
  broad_scopes: 'broad scopes',
  creator_removed: 'creator removed',
  leaked: 'leaked',
};
export const KEY_FLAGS = Object.keys(FLAG_LABELS);

/** Why each flag is raised, for the badge's title (src/keys/flags.ts). */
export const FLAG_WHY: Record<string, string> = {
  rotation_due: 'The secret is older than the rotation age set in the system settings.',
  inactive: 'Not used for longer than the inactivity limit set in the system settings.',
  expiring_soon: 'Expires within the warning period set in the system settings.',
  no_expiry: 'The key never expires.',
  broad_scopes: 'Holds a resource:* scope.',
  creator_removed: 'The person who created it is no longer a member.',
  leaked: 'A token of this key was reported leaked; rotate or revoke it.',
};

export const FLAG_TONE: Record<string, 'bad' | 'warn' | 'neutral'> = {
  leaked: 'bad',
  rotation_due: 'warn',
  expiring_soon: 'warn',
  creator_removed: 'warn',
  inactive: 'neutral',
  no_expiry: 'neutral',
  broad_scopes: 'neutral',
};

type Schemas = components['schemas'];

/** The key object with the SPEC §12 fields (optional: a server without usage counting omits them). */
export type KeyView = ApiKey;

export type UsageCounts = Schemas['UsageCounts'];
export type Outcomes = UsageCounts['outcomes'];
export type KeyUsage = Schemas['ApiKeyUsage'];
export type UsageBucket = KeyUsage['buckets'][number];
export type Granularity = KeyUsage['granularity'];
export type UsageOverview = Schemas['UsageOverview'];
export type UsageOverviewRow = UsageOverview['data'][number];
export type ComplianceEvidence = Schemas['ComplianceEvidence'];

/** Where a tier's keys live: system keys under /v1/system, organization keys with the organization in the path. */
export function keysBase(tier: Tier, organizationId: string | null): string {
  return tier === 'system' ? '/v1/system/api-keys' : orgPath(organizationId!, '/api-keys');
}

/** The panel's address of a key's page. */
export function keyPagePath(tier: Tier, id: string): string {
  return tier === 'system' ? `/system/keys/${encodeURIComponent(id)}` : `/keys/${encodeURIComponent(id)}`;
}

const one = (tier: Tier, organizationId: string | null, id: string) => `${keysBase(tier, organizationId)}/${encodeURIComponent(id)}`;

/** Ranges the pages offer: the span and the bucket size that shows it best. */
export const RANGES = [
  { id: '1h', label: 'Last hour', ms: 3_600_000, granularity: 'minute' },
  { id: '24h', label: 'Last 24 hours', ms: 86_400_000, granularity: 'hour' },
  { id: '7d', label: 'Last 7 days', ms: 7 * 86_400_000, granularity: 'hour' },
  { id: '30d', label: 'Last 30 days', ms: 30 * 86_400_000, granularity: 'day' },
] as const satisfies readonly { id: string; label: string; ms: number; granularity: Granularity }[];

export type RangeId = (typeof RANGES)[number]['id'];

export function rangeOf(id: RangeId, now = Date.now()): { from: string; to: string; granularity: Granularity } {
  const range = RANGES.find((r) => r.id === id) ?? RANGES[1];
  return { from: new Date(now - range.ms).toISOString(), to: new Date(now).toISOString(), granularity: range.granularity };
}

export const keyIntelligenceApi = {
  getKey: (tier: Tier, organizationId: string | null, id: string) => api.get<KeyView>(one(tier, organizationId, id)),
  usage: (tier: Tier, organizationId: string | null, id: string, query: { from?: string; to?: string; granularity?: Granularity } = {}) =>
    api.get<KeyUsage>(`${one(tier, organizationId, id)}/usage`, query),
  overview: (tier: Tier, organizationId: string | null, query: { from?: string; to?: string; limit?: number } = {}) =>
    api.get<UsageOverview>(tier === 'system' ? '/v1/system/usage' : orgPath(organizationId!, '/usage'), query),
  endGrace: (tier: Tier, organizationId: string | null, id: string) => api.post<KeyView>(`${one(tier, organizationId, id)}/end-grace`),
  /** One page of audit events, the organization's or (system keys) every event. */
  auditPage: (tier: Tier, organizationId: string | null, query: { limit: number; startingAfter?: string; actorType?: string; actorId?: string; targetId?: string }) =>
    api.get<ListPage<AuditEvent>>(tier === 'system' ? '/v1/system/audit-events' : orgPath(organizationId!, '/audit-events'), query),
  complianceEvidence: () => fetchFile('/v1/system/compliance-evidence'),
  credentialReport: (scope: { tier: Tier; organizationId: string | null }, format: 'csv' | 'json') =>
    fetchFile(scope.tier === 'system' ? `/v1/system/credential-report?format=${format}` : `${orgPath(scope.organizationId!, '/api-keys/report')}?format=${format}`),
};

export interface FetchedFile {
  /** The exact bytes Paygate sent (a signed bundle must be saved as received). */
  blob: Blob;
  text: string;
  filename: string | null;
  contentType: string;
}

/**
 * A GET whose body is a file to save (a streamed report, the signed evidence): the same cookie and
 * problem+json handling as `api`, but the body is kept as sent rather than parsed and re-serialised.
 */
async function fetchFile(path: string): Promise<FetchedFile> {
  let response: Response;
  try {
    response = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'text/csv, application/json' } });
  } catch {
    throw new ApiError(0, { title: 'Network error', detail: 'Paygate could not be reached. Check your connection and try again.' });
  }
  const blob = await response.blob();
  const text = await blob.text();
  if (!response.ok) {
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // Not problem+json: the status alone says it.
    }
    throw new ApiError(response.status, body);
  }
  const disposition = response.headers.get('content-disposition') ?? '';
  const match = /filename="([^"]+)"/.exec(disposition);
  return { blob, text, filename: match?.[1] ?? null, contentType: response.headers.get('content-type') ?? 'application/octet-stream' };
}

/** Hands a fetched file to the browser's download (a blob: URL, revoked once the click is done). */
export function saveFile(file: { blob: Blob; filename: string | null }, fallbackName: string): void {
  const url = URL.createObjectURL(file.blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = file.filename ?? fallbackName;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** True when the API does not have the route (a server from before SPEC §12/§14): the panel hides that part. */
export function isMissingRoute(error: unknown): boolean {
  // Paygate's not-found handler says "No route GET /v1/..." (src/http/error-handler.ts); a missing key says otherwise.
  return error instanceof ApiError && error.status === 404 && /^No route /.test(error.detail ?? '');
}

/** Refused verifications in a set of counts. */
export function refusals(counts: UsageCounts): number {
  return counts.total - counts.outcomes.ok;
}

/** "12.5 %", "0 %", "—" when there were no requests. */
export function formatRate(part: number, whole: number): string {
  if (whole === 0) return '—';
  const rate = (part / whole) * 100;
  return `${rate === 0 || rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} %`;
}

export const formatCount = (n: number) => new Intl.NumberFormat().format(n);
