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
import { Type } from 'typebox';
import type { Services } from '../../services.js';
import { AppError } from '../../errors.js';
import { authOf, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams, PageQuery } from '../../http/openapi.js';
import { PAYMENT_TAGS } from '../tags.js';
import { CreateExportBody, DataIoJobListRef, DataIoJobRef } from '../schemas.js';
import { MAX_IMPORT_BYTES } from './service.js';

/**
 * The import body as the document shows it. It is a stream when the handler sees it (the parser
 * below), so the schema carries no `type` that the validator could hold against a stream.
 */
const ImportBody = Type.Unsafe<unknown>({
  contentMediaType: 'text/csv',
  description:
    'A CSV file of clients (UTF-8): a header line naming the columns `name` (required), `email` and `metadata.<key>`, then one client per line. At most 50 MiB, uncompressed.',
  examples: ['name,email,metadata.crmId\nAda Lovelace,ada@example.com,1042\n'],
});

/** The download as the document shows it: streamed, never serialised through a schema. */
const ExportFile = Type.Unsafe<unknown>({
  description: "The export's file",
  content: {
    'text/csv': {
      schema: { type: 'string', description: 'CSV: a header line, then one object per line; metadata as one `metadata.<key>` column per key' },
    },
    'application/json': {
      schema: { type: 'array', items: { type: 'object' }, description: "JSON: an array of the resource's objects" },
    },
  },
});

export function registerDataIoRoutes(app: FastifyInstance, services: Services): void {
  const { dataIo } = services.payments;
  const tags = [PAYMENT_TAGS.dataIo];
  // The job's URL under the mount the request used.
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
      method: 'POST', path: '/data-io/exports', operationId: 'createExport', auth: { kind: 'organization', scope: 'data_io:execute' },
      summary: 'Start an export', tags,
      description:
        'Queues an export of every client, invoice or transaction as CSV or JSON: `202` with the job (`Location` names it). Download the file once the job has completed. An organization past its storage quota gets `429 rate_limited`.',
      schema: { body: CreateExportBody, response: { 202: DataIoJobRef } },
      errors: ['rate_limited'],
      handler: async (request, reply) => {
        const job = await dataIo.createExport(authOf(request).ctx, organizationOf(request), request.body);
        return reply.code(202).header('Location', location(request, job.id)).send(job);
      },
    });
    organizationRoute(scope, {
      method: 'POST', path: '/data-io/imports', operationId: 'createImport', auth: { kind: 'organization', scope: 'data_io:execute' },
      summary: 'Import clients from a CSV file', tags,
      description:
        'Send the file as the request body with `Content-Type: text/csv` (at most 50 MiB, uncompressed): `202` with the queued job (`Location` names it). The import is all or nothing: a failed job lists its bad lines in `errors`.',
      schema: { body: ImportBody, consumes: ['text/csv'], response: { 202: DataIoJobRef } },
      errors: ['rate_limited'],
      handler: async (request, reply) => {
        if (!(request.body instanceof Readable)) {
          throw new AppError('unsupported_media_type', 'Send the CSV file as the request body with Content-Type: text/csv');
        }
        const job = await dataIo.createImport(authOf(request).ctx, organizationOf(request), request.body);
        return reply.code(202).header('Location', location(request, job.id)).send(job);
      },
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs', operationId: 'listDataIoJobs', auth: { kind: 'organization', scope: 'data_io:read' },
      summary: 'List data I/O jobs, newest first', tags,
      description: 'Cursor-paginated.',
      schema: { querystring: PageQuery, response: { 200: DataIoJobListRef } },
      errors: ['not_found'],
      handler: async (request) => dataIo.list(organizationOf(request), pageOf(request)),
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs/:id', operationId: 'getDataIoJob', auth: { kind: 'organization', scope: 'data_io:read' },
      summary: 'Get a data I/O job', tags,
      schema: { params: IdParams, response: { 200: DataIoJobRef } },
      errors: ['not_found'],
      handler: async (request) => dataIo.get(organizationOf(request), request.params.id),
    });
    organizationRoute(scope, {
      method: 'GET', path: '/data-io/jobs/:id/download', operationId: 'downloadDataIoJob', auth: { kind: 'organization', scope: 'data_io:read' },
      summary: "Download a completed export's file", tags,
      description:
        'Streams the file (`text/csv` or `application/json`, as the export asked). `409 conflict` until the job has completed; `404` for an import (it has no file) and once the file has expired.',
      schema: { params: IdParams, response: { 200: ExportFile } },
      errors: ['not_found', 'conflict'],
      handler: async (request, reply) => {
        const file = await dataIo.openDownload(organizationOf(request), request.params.id);
        return reply
          .header('Content-Type', file.contentType)
          .header('Content-Disposition', `attachment; filename="${file.filename}"`)
          .header('Content-Length', String(file.bytes))
          .send(file.stream);
      },
    });
  });
}
