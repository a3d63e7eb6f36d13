/** HTTP for recurring schedules (SPEC §3: invoice:* scopes; there is no recurring:*). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';
import { organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { IdParams, NoContent } from '../../http/openapi.js';
import { sendIdempotent } from '../http.js';
import { PAYMENT_TAGS } from '../tags.js';
import {
  CreateRecurringScheduleBody,
  InvoiceRef,
  ListRecurringSchedulesQuery,
  RecurringScheduleListRef,
  RecurringScheduleRef,
  UpdateRecurringScheduleBody,
} from '../schemas.js';

export function registerRecurringRoutes(app: FastifyInstance, services: Services): void {
  const { recurring, idempotency } = services.payments;
  const tags = [PAYMENT_TAGS.recurring];

  organizationRoute(app, {
    method: 'GET', path: '/recurring-schedules', operationId: 'listRecurringSchedules', auth: { kind: 'organization', scope: 'invoice:read' },
    summary: 'List recurring schedules, newest first', tags,
    description: 'Cursor-paginated; filter by `status` and `clientId`.',
    schema: { querystring: ListRecurringSchedulesQuery, response: { 200: RecurringScheduleListRef } },
    errors: ['not_found'],
    handler: async (request) => {
      const { status, clientId } = request.query;
      return recurring.list(organizationOf(request), { ...pageOf(request), status, clientId });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/recurring-schedules', operationId: 'createRecurringSchedule', auth: { kind: 'organization', scope: 'invoice:create' },
    summary: 'Create a recurring schedule', tags,
    description: 'The first run is at `startAt` (default now); each run issues an open invoice from `template`. Honours `Idempotency-Key`.',
    schema: { body: CreateRecurringScheduleBody, response: { 201: RecurringScheduleRef } },
    errors: ['not_found', 'idempotency_conflict'],
    idempotent: true,
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await recurring.create(tx, organizationOf(request), request.body),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/recurring-schedules/:id', operationId: 'getRecurringSchedule', auth: { kind: 'organization', scope: 'invoice:read' },
    summary: 'Get a recurring schedule', tags,
    schema: { params: IdParams, response: { 200: RecurringScheduleRef } },
    errors: ['not_found'],
    handler: async (request) => recurring.get(services.db, organizationOf(request), request.params.id),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/recurring-schedules/:id', operationId: 'updateRecurringSchedule', auth: { kind: 'organization', scope: 'invoice:update' },
    summary: 'Change a recurring schedule', tags,
    description: '`status` `paused` pauses the schedule and `active` resumes it; a schedule whose client was deleted cannot be resumed (`409 conflict`).',
    schema: { params: IdParams, body: UpdateRecurringScheduleBody, response: { 200: RecurringScheduleRef } },
    errors: ['not_found', 'conflict'],
    handler: async (request) => recurring.update(organizationOf(request), request.params.id, request.body),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/recurring-schedules/:id', operationId: 'deleteRecurringSchedule', auth: { kind: 'organization', scope: 'invoice:delete' },
    summary: 'Delete a recurring schedule', tags,
    description: 'It issues nothing more; the invoices it issued stay.',
    schema: { params: IdParams, response: { 204: NoContent } },
    errors: ['not_found'],
    handler: async (request, reply) => {
      await recurring.delete(organizationOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/recurring-schedules/:id/run', operationId: 'runRecurringSchedule', auth: { kind: 'organization', scope: 'invoice:execute' },
    summary: 'Issue the next invoice now', tags,
    description:
      'Issues the next period\'s invoice (open) and advances `nextRunAt`: `201` with the invoice this request issued, or `200` with the one a concurrent run issued for the same period. A paused schedule, or one whose client was deleted, is `409 conflict`. Honours `Idempotency-Key`.',
    schema: { params: IdParams, response: { 200: InvoiceRef, 201: InvoiceRef } },
    errors: ['not_found', 'conflict', 'idempotency_conflict'],
    idempotent: true,
    handler: async (request, reply) => {
      const organizationId = organizationOf(request);
      const scheduleId = request.params.id;
      const header = request.headers['idempotency-key'];
      // Not sendIdempotent: that keys on the route pattern and the body, and a run has no body, so
      // one key reused on two schedules would replay the first schedule's invoice. The schedule id
      // is part of what the key stands for here.
      const result = await idempotency.run(
        { organizationId, key: typeof header === 'string' ? header : undefined, method: 'POST', path: `/v1/recurring-schedules/${scheduleId}/run`, body: null },
        async (tx) => {
          const run = await recurring.run(tx, organizationId, scheduleId);
          return { status: run.status, body: run.invoice };
        },
      );
      if (result.replayed) reply.header('Idempotent-Replayed', 'true');
      // A run answers 201 (issued now) or 200 (a concurrent run had issued it); a replay, what it answered then.
      return reply.code(result.status === 200 ? 200 : 201).send(result.body);
    },
  });
}
