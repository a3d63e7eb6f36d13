/** HTTP for system settings (SPEC §6). */
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { authOf, route } from '../http/routes.js';
import { SETTINGS_BOUNDS, type SettingsChanges } from './service.js';

const b = SETTINGS_BOUNDS;

export function registerSettingsRoutes(app: FastifyInstance, services: Services): void {
  const tags = ['System: settings'];
  route(app, {
    method: 'GET', path: '/system/settings', auth: { kind: 'system', scope: 'system_settings:read' }, summary: 'Read system settings', tags,
    handler: async () => services.settings.get(),
  });
  route(app, {
    method: 'PATCH', path: '/system/settings', auth: { kind: 'system', scope: 'system_settings:update' }, summary: 'Change system settings', tags,
    schema: {
      body: {
        type: 'object', additionalProperties: false, minProperties: 1,
        properties: {
          portalMagicLinkTtlMinutes: { type: 'integer', minimum: b.portalMagicLinkTtlMinutes.min, maximum: b.portalMagicLinkTtlMinutes.max },
          apiKeyRotationGraceMinutes: { type: 'integer', minimum: b.apiKeyRotationGraceMinutes.min, maximum: b.apiKeyRotationGraceMinutes.max },
          apiKeyMaxLifetimeDays: { type: ['integer', 'null'], minimum: b.apiKeyMaxLifetimeDays.min, maximum: b.apiKeyMaxLifetimeDays.max },
        },
      },
    },
    handler: async (request) => services.settings.update(authOf(request).ctx, request.body as SettingsChanges),
  });
}
