/**
 * Webhook endpoints and their deliveries (SPEC §16, docs/webhooks.md) as the panel calls them:
 * through `api` (session cookie, CSRF header, problem+json as ApiError), always with the
 * organization in the path. The event types are the server's own list, bundled (as scopes.ts does
 * with the scope catalogue); the server remains the judge of every request.
 */
import type { components } from '../../packages/client/src/generated/openapi';
import { api, orgPath, type ListPage } from './api';
// The server's own list of event types (src/webhooks/events.ts; only the constants are bundled).
import { TEST_EVENT_TYPE, WEBHOOK_EVENT_TYPES } from '../../src/webhooks/events';

export { TEST_EVENT_TYPE, WEBHOOK_EVENT_TYPES };

type Schemas = components['schemas'];

/** An endpoint; `secret` only in the create and rotate-secret answers (WebhookEndpointWithSecret). */
export type WebhookEndpoint = Schemas['WebhookEndpoint'] & Partial<Pick<Schemas['WebhookEndpointWithSecret'], 'secret'>>;
export type WebhookDelivery = Schemas['WebhookDelivery'];
export type WebhookAttempt = WebhookDelivery['recentAttempts'][number];

/** At most 20 endpoints per organization: one page holds them all. */
export const MAX_ENDPOINTS = 20;
/** Secret grace: 0 .. 10080 minutes (7 days), default 1440. */
export const MAX_GRACE_MINUTES = 10_080;

const endpoints = (organizationId: string) => orgPath(organizationId, '/webhook-endpoints');
const one = (organizationId: string, id: string) => `${endpoints(organizationId)}/${encodeURIComponent(id)}`;

export const webhooksApi = {
  list: (organizationId: string) => api.get<ListPage<WebhookEndpoint>>(endpoints(organizationId), { limit: 100 }),
  get: (organizationId: string, id: string) => api.get<WebhookEndpoint>(one(organizationId, id)),
  create: (organizationId: string, body: { url: string; events: string[]; description?: string }) =>
    api.post<WebhookEndpoint>(endpoints(organizationId), body),
  update: (organizationId: string, id: string, body: Partial<Pick<WebhookEndpoint, 'url' | 'events' | 'description' | 'status'>>) =>
    api.patch<WebhookEndpoint>(one(organizationId, id), body),
  remove: (organizationId: string, id: string) => api.delete(one(organizationId, id)),
  rotateSecret: (organizationId: string, id: string, gracePeriodMinutes: number) =>
    api.post<WebhookEndpoint>(`${one(organizationId, id)}/rotate-secret`, { gracePeriodMinutes }),
  deliveries: (organizationId: string, id: string, query: { status?: WebhookDelivery['status']; startingAfter?: string; limit?: number } = {}) =>
    api.get<ListPage<WebhookDelivery>>(`${one(organizationId, id)}/deliveries`, { limit: 25, ...query }),
  retry: (organizationId: string, id: string, deliveryId: string) =>
    api.post<WebhookDelivery>(`${one(organizationId, id)}/deliveries/${encodeURIComponent(deliveryId)}/retry`),
  sendTest: (organizationId: string, id: string) => api.post<WebhookDelivery>(`${one(organizationId, id)}/test`),
};
