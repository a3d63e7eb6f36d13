/**
 * HTTP for key hygiene reports (SPEC §14; docs/key-hygiene.md):
 *
 * - `GET /v1/api-keys/report?format=csv|json` (`api_key:read`, both mounts): the organization's keys.
 *   A static path: Fastify's router prefers it to `/v1/api-keys/:id` on both mounts.
 * - `GET /v1/system/credential-report?format=csv|json` (system `audit:read`, or a global admin):
 *   every key of the instance, organization and system tiers.
 * - `GET /v1/system/compliance-evidence` (system `audit:read`, or a global admin): the signed bundle.
 *
 * Each read is audited as `audit.read` (details: the report, its scope and format), the first of each
 * reader per minute written before the answer starts (a report whose read cannot be recorded is not
 * sent), the rest of that minute aggregated, as audit-log reads are (src/audit/service.ts).
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import type { RequestContext } from '../auth/context.js';
import type { AuditInput } from '../audit/events.js';
import { authOf, organizationOf, organizationRoute, route } from '../http/routes.js';
import { DateTime, Nullable, NullableDateTime, addTag, component } from '../http/openapi.js';
import { KEY_FLAGS } from '../keys/flags.js';
import { reportStream, type ReportFormat, type ReportScope } from './credential-report.js';
import { buildComplianceEvidence } from './evidence.js';

const FormatQuery = Type.Object(
  {
    format: Type.Optional(Type.String({ enum: ['csv', 'json'], default: 'csv', description: '`csv` (default; formula-safe RFC 4180) or `json`' })),
  },
  { additionalProperties: false },
);

const ReportRowSchema = Type.Object(
  {
    id: Type.String(),
    tier: Type.String({ enum: ['organization', 'system'] }),
    organizationId: Nullable(Type.String()),
    name: Type.String(),
    status: Type.String({ enum: ['active', 'revoked', 'expired', 'quarantined'] }),
    scopes: Type.Array(Type.String()),
    createdAt: DateTime(),
    createdBy: Type.Object({ type: Type.String(), id: Nullable(Type.String()) }),
    creatorIsMember: Nullable(Type.Boolean(), { description: 'Whether the creating user is still a member of the organization (or a global admin); null when an API key or Paygate created it' }),
    secretAgeDays: Type.Integer({ description: 'Whole days since the last rotation, else since creation' }),
    rotatedAt: NullableDateTime(),
    expiresAt: NullableDateTime(),
    lastUsedAt: NullableDateTime(),
    lastUsedIp: Nullable(Type.String()),
    unusedDays: Type.Integer({ description: 'Whole days since the last use, else since creation' }),
    allowedIps: Nullable(Type.Array(Type.String())),
    rateLimit: Nullable(Type.Object({ requests: Type.Integer(), windowSeconds: Type.Integer() })),
    flags: Type.Array(Type.String({ enum: [...KEY_FLAGS] })),
  },
  { additionalProperties: false },
);

const CredentialReportRef = component(
  'CredentialReport',
  Type.Object(
    {
      object: Type.Literal('credential_report'),
      generatedAt: DateTime(),
      scope: Type.String({ enum: ['organization', 'system'] }),
      organizationId: Nullable(Type.String()),
      data: Type.Array(ReportRowSchema, { description: 'One row per key (deleted keys excluded); in CSV, the same columns in this order, lists space-separated' }),
    },
    { additionalProperties: false, description: 'The credential report (format=json); with format=csv, a CSV file of the same rows' },
  ),
);

const ComplianceEvidenceRef = component(
  'ComplianceEvidence',
  Type.Object(
    {
      object: Type.Literal('compliance_evidence'),
      generatedAt: DateTime(),
      settings: Type.Object({}, { additionalProperties: true, description: 'The system settings, as GET /v1/system/settings shows them' }),
      keys: Type.Object({
        total: Type.Integer(),
        byStatus: Type.Object({}, { additionalProperties: Type.Integer() }),
        byFlag: Type.Object({}, { additionalProperties: Type.Integer() }),
      }),
      audit: Type.Object({
        oldestEventAt: NullableDateTime(),
        events: Type.Integer(),
        chainVerified: Type.Boolean({ description: 'The hash chain recomputed and checked against the newest checkpoint' }),
        checkpoint: Nullable(Type.Object({}, { additionalProperties: true, description: 'The newest audit checkpoint' })),
      }),
      signature: Type.String({ description: 'Ed25519 (the audit checkpoint key), base64, over the canonical JSON of the bundle without `signature` (docs/key-hygiene.md)' }),
    },
    { additionalProperties: false, description: 'Signed compliance evidence' },
  ),
);

const REPORT_PRODUCES = ['text/csv', 'application/json'];

export function registerReportRoutes(app: FastifyInstance, services: Services): void {
  addTag('Reports', 'Key hygiene: the credential report and the signed compliance evidence.');
  const tags = ['Reports'];

  /** audit.read for a report, as audit-log reads are recorded (first per reader and minute now, the rest aggregated). */
  const auditRead = async (ctx: RequestContext, organizationId: string | null, details: { report: string; scope: string; format: string }) => {
    const input: AuditInput = { action: 'audit.read', actor: ctx.actor, organizationId, ip: ctx.ip, requestId: ctx.requestId, details };
    const key = `audit.read|${ctx.actor.type}:${ctx.actor.id}|${details.report}|${details.scope}|${organizationId}`;
    const now = services.audit.bursts.note(key, input, { recordAt: 1, sample: { field: 'formats', value: details.format } });
    if (now) await services.work.run(async (tx) => tx.audit(now));
  };

  const send = async (
    reply: import('fastify').FastifyReply,
    ctx: RequestContext,
    scope: ReportScope,
    format: ReportFormat,
  ) => {
    const organizationId = scope.kind === 'organization' ? scope.organizationId : null;
    await auditRead(ctx, organizationId, { report: 'credential_report', scope: scope.kind, format });
    const now = new Date();
    // The flags' thresholds from the settings cache (no round trip while it is trusted).
    const thresholds = await services.settings.get();
    const stamp = now.toISOString().slice(0, 10);
    const name = scope.kind === 'organization' ? `credential-report-${scope.organizationId}-${stamp}` : `credential-report-system-${stamp}`;
    return reply
      .header('Content-Type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
      .header('Content-Disposition', `attachment; filename="${name}.${format}"`)
      .header('Cache-Control', 'no-store')
      .send(reportStream({ db: services.db, scope, format, thresholds, now }));
  };

  organizationRoute(app, {
    method: 'GET', path: '/api-keys/report', operationId: 'getCredentialReport',
    auth: { kind: 'organization', scope: 'api_key:read' },
    summary: "The organization's credential report",
    description: "One row per API key of the organization (deleted keys excluded) with its age, use, restrictions and hygiene flags; streamed. The CSV is formula-safe. Audited as `audit.read`.",
    tags,
    schema: { querystring: FormatQuery, response: { 200: CredentialReportRef }, produces: REPORT_PRODUCES },
    handler: async (request, reply) => {
      const format = (request.query.format ?? 'csv') as ReportFormat;
      return send(reply, authOf(request).ctx, { kind: 'organization', organizationId: organizationOf(request) }, format);
    },
  });

  route(app, {
    method: 'GET', path: '/system/credential-report', operationId: 'getSystemCredentialReport',
    auth: { kind: 'system', scope: 'audit:read' },
    summary: 'The credential report of every key',
    description: 'One row per API key of the instance, organization and system keys (deleted keys excluded); streamed. The CSV is formula-safe. Audited as `audit.read`.',
    tags,
    schema: { querystring: FormatQuery, response: { 200: CredentialReportRef }, produces: REPORT_PRODUCES },
    handler: async (request, reply) => {
      const format = (request.query.format ?? 'csv') as ReportFormat;
      return send(reply, authOf(request).ctx, { kind: 'system' }, format);
    },
  });

  route(app, {
    method: 'GET', path: '/system/compliance-evidence', operationId: 'getComplianceEvidence',
    auth: { kind: 'system', scope: 'audit:read' },
    summary: 'Signed compliance evidence',
    description:
      'Settings, key counts by status and flag, and the audit log’s state (chain verified against the newest checkpoint), signed with the audit checkpoint key (Ed25519 over the canonical JSON of the bundle without `signature`; public key at `GET /v1/system/audit-checkpoints/public-key`). Audited as `audit.read`.',
    tags,
    schema: { response: { 200: ComplianceEvidenceRef } },
    handler: async (request, reply) => {
      await auditRead(authOf(request).ctx, null, { report: 'compliance_evidence', scope: 'system', format: 'json' });
      const bundle = await buildComplianceEvidence({
        db: services.db,
        settings: await services.settings.get(),
        audit: services.audit,
        signer: services.auditSigner,
        now: new Date(),
      });
      // Serialised here: a response serialiser must not drop a field the signature covers.
      return reply.header('Content-Type', 'application/json; charset=utf-8').header('Cache-Control', 'no-store').send(JSON.stringify(bundle) as never);
    },
  });
}
