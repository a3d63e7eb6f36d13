/**
 * HTTP for data import/export (SPEC §3: data_io:execute to start jobs, data_io:read to see and
 * download them). Registered in an encapsulated plugin: the `text/csv` body parser exists for these
 * routes only, and every other /v1 route keeps answering 415 to CSV.
 *
 * - `POST /v1/data-io/exports` `{ resource, format }` -> `202` with the queued job (`Location` names it).
 * - `POST /v1/data-io/imports` with `Content-Type: text/csv` and the file as the body (at most
 *   50 MiB, streamed to the database, never held whole) -> `202` with the queued job.
 * - `GET /v1/data-io/jobs[/{id}]`; `GET /v1/data-io/jobs/{id}/download` streams a completed
 *   export (`409 conflict` before then; an import has no file: `404`).
 *
 * Jobs are not billable or money-moving objects (SPEC §11), so these POSTs take no Idempotency-Key.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { AppError } from '../../errors.js';
import { ID_PARAM, PAGE_QUERY, authOf, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { MAX_IMPORT_BYTES } from './service.js';
import type { ExportFormat, ExportResource } from './exporters.js';

const EXPORT_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['resource', 'format'],
  properties: {
    resource: { type: 'string', enum: ['clients', 'invoices', 'transactions'] },
    format: { type: 'string', enum: ['csv', 'json'] },
  },
} as const;

export function registerDataIoRoutes(app: FastifyInstance, services: Services): void {
  const { dataIo } = services.payments;
  const tags = ['Data import and export'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;
  const location = (request: FastifyRequest, jobId: string) =>
    (request.params as { orgId?: string }).orgId ? `/v1/organizations/${organizationOf(request)}/data-io/jobs/${jobId}` : `/v1/data-io/jobs/${jobId}`;

  void app.register(async (scope) => {
    // The body stays a stream: the service writes it to the database chunk by chunk and enforces
    // MAX_IMPORT_BYTES itself (Fastify's bodyLimit applies only to bodies it buffers).
    scope.addContentTypeParser('text/csv', (request, payload, done) => {
      const declared = Number(request.headers['content-length']);
      if (declared > MAX_IMPORT_BYTES) {
        return done(new AppError('payload_too_large', `An import file may hold at most ${MAX_IMPORT_BYTES} bytes`, { headers: { Connection: 'close' } }), undefined);
      }
      const encoding = request.headers['content-encoding'];
      if (encoding !== undefined && encoding !== 'identity') {
        return done(new AppError('unsupported_media_type', 'Send the CSV file uncompressed (no Content-Encoding)'), undefined);
      }
      return done(null, payload);
    });

    organizationRoute(scope, {
      method: 'POST', path: '/data-io/exports', auth: { kind: 'organization', scope: 'data_io:execute' }, summary: 'Start an export (202 with the queued job)', tags,
      schema: { body: EXPORT_BODY },
      handler: async (request, reply) => {
        const body = request.body as { resource: ExportResource; format: ExportFormat };
        const job = await dataIo.createExport(authOf(request).ctx, organizationOf(request), body);
        return reply.code(202).header('Location', location(request, job.id)).send(job);
      },
    });
    organizationRoute(scope, {
      method: 'POST', path: '/data-io/imports', auth: { kind: 'organization', scope: 'data_io:execute' },
      summary: 'Import clients from a CSV file sent as the body with Content-Type: text/csv (at most 50 MiB; 202 with the queued job)', tags,
      handler: async (request, reply) => {
        if (!(request.body instanceof Readable)) {
          throw new AppError('unsupported_media_type', 'Send the CSV file as the request body with Content-Type: text/csv');
        }
        const job = await dataIo.createImport(authOf(request).ctx, organizationOf(request), request.body);
        return reply.code(202).header('Location', location(request, job.id)).send(job);
      },
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs', auth: { kind: 'organization', scope: 'data_io:read' }, summary: 'List data I/O jobs, newest first', tags,
      schema: { querystring: PAGE_QUERY },
      handler: async (request) => dataIo.list(organizationOf(request), pageOf(request)),
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs/:id', auth: { kind: 'organization', scope: 'data_io:read' }, summary: 'Get a data I/O job', tags,
      schema: { params: ID_PARAM },
      handler: async (request) => dataIo.get(organizationOf(request), id(request)),
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs/:id/download', auth: { kind: 'organization', scope: 'data_io:read' },
      summary: "Download a completed export's file (streamed; 409 until completed, 404 for imports)", tags,
      schema: { params: ID_PARAM },
      handler: async (request, reply) => {
        const file = await dataIo.openDownload(organizationOf(request), id(request));
        return reply
          .header('Content-Type', file.contentType)
          .header('Content-Disposition', `attachment; filename="${file.filename}"`)
          .header('Content-Length', String(file.bytes))
          .send(file.stream);
      },
    });
  });
}
