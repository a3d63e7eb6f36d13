/** HTTP for recurring schedules (SPEC §3: invoice:* scopes; there is no recurring:*). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { ID_PARAM, PAGE_QUERY, organizationOf, organizationRoute, pageOf } from '../../http/routes.js';
import { CURRENCY_SCHEMA } from '../money.js';
import { sendIdempotent } from '../http.js';
import { LINES_SCHEMA } from '../invoices/lines.js';
import type { ScheduleChanges, ScheduleInput, SchedulePage } from './service.js';

const INTERVAL = { type: 'string', enum: ['day', 'week', 'month', 'year'] } as const;
const INTERVAL_COUNT = { type: 'integer', minimum: 1, maximum: 1000, description: 'runs every intervalCount intervals; default 1' } as const;
const STATUS = { type: 'string', enum: ['active', 'paused'] } as const;
const TEMPLATE = {
  type: 'object',
  additionalProperties: false,
  required: ['currency', 'lines'],
  properties: { currency: CURRENCY_SCHEMA, lines: LINES_SCHEMA },
} as const;

export function registerRecurringRoutes(app: FastifyInstance, services: Services): void {
  const { recurring, idempotency } = services.payments;
  const tags = ['Recurring schedules'];
  const id = (request: FastifyRequest) => (request.params as { id: string }).id;

  organizationRoute(app, {
    method: 'GET', path: '/recurring-schedules', auth: { kind: 'organization', scope: 'invoice:read' }, summary: 'List recurring schedules, newest first', tags,
    schema: {
      querystring: {
        ...PAGE_QUERY,
        properties: { ...PAGE_QUERY.properties, status: STATUS, clientId: { type: 'string', minLength: 1, maxLength: 64 } },
      },
    },
    handler: async (request) => {
      const { status, clientId } = request.query as Pick<SchedulePage, 'status' | 'clientId'>;
      return recurring.list(organizationOf(request), { ...pageOf(request), status, clientId });
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/recurring-schedules', auth: { kind: 'organization', scope: 'invoice:create' },
    summary: 'Create a recurring schedule (honours Idempotency-Key)', tags,
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['clientId', 'interval', 'template'],
        properties: {
          clientId: { type: 'string', minLength: 1, maxLength: 64 },
          interval: INTERVAL,
          intervalCount: INTERVAL_COUNT,
          template: TEMPLATE,
          startAt: { type: 'string', format: 'date-time', description: 'the first run; default now' },
        },
      },
    },
    handler: async (request, reply) =>
      sendIdempotent(request, reply, idempotency, async (tx) => ({
        status: 201,
        body: await recurring.create(tx, organizationOf(request), request.body as ScheduleInput),
      })),
  });
  organizationRoute(app, {
    method: 'GET', path: '/recurring-schedules/:id', auth: { kind: 'organization', scope: 'invoice:read' }, summary: 'Get a recurring schedule', tags,
    schema: { params: ID_PARAM },
    handler: async (request) => recurring.get(services.db, organizationOf(request), id(request)),
  });
  organizationRoute(app, {
    method: 'PATCH', path: '/recurring-schedules/:id', auth: { kind: 'organization', scope: 'invoice:update' },
    summary: 'Change a recurring schedule; status paused/active pauses and resumes it', tags,
    schema: {
      params: ID_PARAM,
      body: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        properties: { interval: INTERVAL, intervalCount: INTERVAL_COUNT, template: TEMPLATE, status: STATUS, nextRunAt: { type: 'string', format: 'date-time' } },
      },
    },
    handler: async (request) => recurring.update(organizationOf(request), id(request), request.body as ScheduleChanges),
  });
  organizationRoute(app, {
    method: 'DELETE', path: '/recurring-schedules/:id', auth: { kind: 'organization', scope: 'invoice:delete' }, summary: 'Delete a recurring schedule', tags,
    schema: { params: ID_PARAM },
    handler: async (request, reply) => {
      await recurring.delete(organizationOf(request), id(request));
      return reply.code(204).send();
    },
  });
  organizationRoute(app, {
    method: 'POST', path: '/recurring-schedules/:id/run', auth: { kind: 'organization', scope: 'invoice:execute' },
    summary: 'Issue the next invoice now (open) and advance nextRunAt (honours Idempotency-Key)', tags,
    schema: { params: ID_PARAM },
    handler: async (request, reply) => {
      const organizationId = organizationOf(request);
      const scheduleId = id(request);
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
      return reply.code(result.status).send(result.body);
    },
  });
}
