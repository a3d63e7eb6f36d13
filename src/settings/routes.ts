/** HTTP for system settings (SPEC §6, §13, §14). */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import { authOf, route } from '../http/routes.js';
import { DateTime, Nullable, StringEnum, component } from '../http/openapi.js';
import { LEAKED_KEY_ACTIONS, SETTINGS_BOUNDS } from './service.js';

const b = SETTINGS_BOUNDS;

const FIELDS = {
  portalMagicLinkTtlMinutes: Type.Integer({ minimum: b.portalMagicLinkTtlMinutes.min, maximum: b.portalMagicLinkTtlMinutes.max, description: 'Longest lifetime of a portal magic link (default 15)' }),
  apiKeyRotationGraceMinutes: Type.Integer({ minimum: b.apiKeyRotationGraceMinutes.min, maximum: b.apiKeyRotationGraceMinutes.max, description: 'Default grace period of a rotation (default 1440)' }),
  apiKeyMaxLifetimeDays: Nullable(Type.Integer({ minimum: b.apiKeyMaxLifetimeDays.min, maximum: b.apiKeyMaxLifetimeDays.max }), { description: 'null: no limit; else keys are created with an expiresAt no later than that' }),
  apiKeyRotationMaxAgeDays: Nullable(Type.Integer({ minimum: b.apiKeyRotationMaxAgeDays.min, maximum: b.apiKeyRotationMaxAgeDays.max }), { description: 'null: off; a key whose secret is that many days old (or older) gets the flag rotation_due' }),
  apiKeyInactiveDays: Nullable(Type.Integer({ minimum: b.apiKeyInactiveDays.min, maximum: b.apiKeyInactiveDays.max }), { description: 'null: off; a key unused that long (since its last use, else its creation) gets the flag inactive' }),
  apiKeyExpiryWarningDays: Nullable(Type.Integer({ minimum: b.apiKeyExpiryWarningDays.min, maximum: b.apiKeyExpiryWarningDays.max }), { description: 'null: off; a key expiring within that many days gets expiring_soon, and its owners are warned once' }),
  leakedKeyAction: StringEnum(LEAKED_KEY_ACTIONS, { description: 'What happens to a key whose token is reported leaked (POST /v1/leaked-keys): revoke (default) or quarantine (:read routes only until rotated)' }),
};

const SystemSettingsRef = component(
  'SystemSettings',
  Type.Object(
    { ...FIELDS, leakedKeyAction: Type.Optional(FIELDS.leakedKeyAction), updatedAt: DateTime() },
    { additionalProperties: false, description: 'Instance-wide settings' },
  ),
);

const UpdateBody = Type.Partial(Type.Object(FIELDS), {
  additionalProperties: false,
  minProperties: 1,
  examples: [{ apiKeyRotationGraceMinutes: 60, apiKeyMaxLifetimeDays: 365 }],
});

export function registerSettingsRoutes(app: FastifyInstance, services: Services): void {
  const tags = ['System settings'];
  route(app, {
    method: 'GET', path: '/system/settings', operationId: 'getSystemSettings', auth: { kind: 'system', scope: 'system_settings:read' }, summary: 'Read system settings', tags,
    schema: { response: { 200: SystemSettingsRef } },
    handler: async () => services.settings.get(),
  });
  route(app, {
    method: 'PATCH', path: '/system/settings', operationId: 'updateSystemSettings', auth: { kind: 'system', scope: 'system_settings:update' }, summary: 'Change system settings', tags,
    description: 'Takes effect on every node; audited as `system_settings.updated` with each change.',
    schema: { body: UpdateBody, response: { 200: SystemSettingsRef } },
    handler: async (request) => services.settings.update(authOf(request).ctx, request.body),
  });
}
