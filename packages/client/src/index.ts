/**
 * @paygate/client: a typed client of Paygate's HTTP API (types generated from its OpenAPI
 * document), with webhook signature verification. README.md beside this package shows the API.
 */
export { createPaygateClient, honoursIdempotencyKey, unwrap, type CallOptions, type PaygateClient, type PaygateClientOptions } from './client.js';
export { PaygateError, isPaygateError, retryAfterSeconds, UNEXPECTED_RESPONSE, type ValidationIssue } from './errors.js';
export { Paginated, type ListPage } from './pagination.js';
export { DEFAULT_RETRY, type RetryOptions } from './retry.js';
export {
  verifyWebhook,
  WebhookVerificationError,
  DEFAULT_TOLERANCE_SECONDS,
  type VerifyWebhookOptions,
  type WebhookEvent,
  type WebhookEventType,
  type WebhookObject,
  type WebhookVerificationReason,
} from './webhooks.js';
export type { components, HttpMethod, ItemOf, ListItem, Operation, operations, paths, PathsWith, QueryParams, RequestBody, ResponseBody } from './types.js';
