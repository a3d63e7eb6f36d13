/**
 * Verifying Paygate's webhook deliveries (docs/webhooks.md, "Verifying a signature"):
 *
 *   Paygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">[,v1=<...>]
 *
 * keyed with the endpoint's secret, the whole `whsec_...` string as its bytes. During a secret
 * rotation's grace period a delivery carries one `v1=` per live secret, so a receiver holding
 * either secret verifies it. `t` is signed with the body: refusing a `t` outside the tolerance
 * (default 5 minutes) means a captured delivery cannot be replayed later.
 */
import { constantTimeEqual, hmacSha256 } from './crypto.js';
import type { RequestBody } from './types.js';

export const DEFAULT_TOLERANCE_SECONDS = 300;

/** Why a delivery was refused. */
export type WebhookVerificationReason =
  /** No Paygate-Signature header. */
  | 'missing_signature'
  /** The header has no decimal `t`, or no `v1`. */
  | 'malformed_signature'
  /** `t` is further from now than the tolerance. */
  | 'timestamp_outside_tolerance'
  /** No `v1` is the HMAC under any of the secrets. */
  | 'signature_mismatch'
  /** Signed correctly, but the body is not a JSON event. */
  | 'invalid_payload';

export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
  constructor(
    readonly reason: WebhookVerificationReason,
    message: string,
  ) {
    super(message);
  }
}

type SubscribableType = RequestBody<'/v1/webhook-endpoints', 'post'> extends { events: ReadonlyArray<infer T> } ? T : string;

/** The event types (what an endpoint subscribes to, and the test event `POST .../test` sends). */
export type WebhookEventType = Exclude<SubscribableType, '*'> | 'webhook_endpoint.test';

/** An event as delivered: `data.object` is the object as the API returns it at the change. */
export interface WebhookEvent<Type extends string = WebhookEventType, Data = WebhookObject> {
  id: string;
  object: 'event';
  type: Type;
  createdAt: string;
  organizationId: string;
  data: { object: Data };
}

export interface WebhookObject {
  id: string;
  object: string;
  [field: string]: unknown;
}

export interface VerifyWebhookOptions {
  /** How far `t` may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** The current time in ms since the epoch (default Date.now()): for tests. */
  now?: number;
}

const encoder = new TextEncoder();

function bytesOf(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === 'string') return encoder.encode(body);
  return body instanceof Uint8Array ? body : new Uint8Array(body);
}

/** The bytes of a hex string, or null when it is not one. */
function fromHex(hex: string): Uint8Array | null {
  if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return null;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/**
 * Verifies a delivery and returns its event; throws a WebhookVerificationError otherwise.
 *
 * @param rawBody the request body exactly as received (a string, a Buffer or other bytes), before
 *   any JSON parsing: a re-serialised body no longer matches its signature.
 * @param signatureHeader the `Paygate-Signature` header.
 * @param secrets the endpoint's secret, or every secret you hold while rotating.
 */
export async function verifyWebhook<Event = WebhookEvent>(
  rawBody: string | Uint8Array | ArrayBuffer,
  signatureHeader: string | readonly string[] | null | undefined,
  secrets: string | readonly string[],
  options: VerifyWebhookOptions = {},
): Promise<Event> {
  const keys = (typeof secrets === 'string' ? [secrets] : [...secrets]).filter((secret) => secret !== '');
  if (keys.length === 0) throw new TypeError('verifyWebhook: no secret given');
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  // Node gives a repeated header as an array; Paygate sends one.
  const header = typeof signatureHeader === 'string' ? signatureHeader : signatureHeader?.join(',');
  if (!header) throw new WebhookVerificationError('missing_signature', 'The request has no Paygate-Signature header');

  const timestamps: string[] = [];
  const signatures: Uint8Array[] = [];
  for (const element of header.split(',')) {
    const eq = element.indexOf('=');
    if (eq < 0) continue;
    const key = element.slice(0, eq).trim();
    const value = element.slice(eq + 1).trim();
    if (key === 't') timestamps.push(value);
    else if (key === 'v1') {
      const bytes = fromHex(value);
      if (bytes) signatures.push(bytes);
    }
    // Other keys (a future scheme) are ignored, as the contract says.
  }
  const t = timestamps[0];
  if (timestamps.length !== 1 || t === undefined || !/^\d{1,12}$/.test(t)) {
    throw new WebhookVerificationError('malformed_signature', 'Paygate-Signature has no single decimal t=');
  }
  if (signatures.length === 0) throw new WebhookVerificationError('malformed_signature', 'Paygate-Signature has no v1= signature');

  const age = Math.abs((options.now ?? Date.now()) / 1000 - Number(t));
  if (!(age <= tolerance)) {
    throw new WebhookVerificationError('timestamp_outside_tolerance', `The signature's timestamp is ${Math.round(age)} s from now, more than the ${tolerance} s allowed`);
  }

  const body = bytesOf(rawBody);
  const signedPrefix = encoder.encode(`${t}.`);
  let matched = false;
  for (const secret of keys) {
    const expected = await hmacSha256(secret, [signedPrefix, body]);
    // Every signature is compared (no early exit inside one secret's comparisons).
    for (const given of signatures) if (constantTimeEqual(given, expected)) matched = true;
    if (matched) break;
  }
  if (!matched) throw new WebhookVerificationError('signature_mismatch', 'No Paygate-Signature v1= matches the body under the secrets given');

  let event: unknown;
  try {
    event = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new WebhookVerificationError('invalid_payload', 'The signed body is not JSON');
  }
  if (typeof event !== 'object' || event === null || (event as { object?: unknown }).object !== 'event') {
    throw new WebhookVerificationError('invalid_payload', 'The signed body is not a Paygate event');
  }
  return event as Event;
}
