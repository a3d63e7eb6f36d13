/**
 * Webhook secrets and signatures (SPEC §16).
 *
 * A secret is `whsec_` followed by 43 random base62 characters (about 256 bits). The HMAC key is the
 * whole secret, `whsec_` included, as its ASCII bytes: a receiver pastes the string it was shown and
 * needs no decoding step to get wrong.
 *
 *   Paygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=<...>]
 *
 * One `v1=` per live secret: during a rotation's grace period the current secret's first, then the
 * previous one's, so a receiver still holding the old secret keeps verifying (the same zero-downtime
 * idea as API key rotation). The timestamp is signed with the body, so a captured delivery cannot be
 * replayed later with a fresh `t`; receivers refuse a `t` older than 5 minutes.
 */
import { createHmac } from 'node:crypto';
import { randomBase62 } from '../ids.js';

export const SECRET_PREFIX = 'whsec_';
export const SECRET_PATTERN = /^whsec_[0-9A-Za-z]{43}$/;

export function newWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBase62(43)}`;
}

/** The hex HMAC-SHA256 of `<t>.<body>` under one secret. */
export function signPayload(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`${timestamp}.`).update(body, 'utf8').digest('hex');
}

/** The Paygate-Signature header value for a body, signed with every live secret (current first). */
export function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((secret) => `v1=${signPayload(secret, timestamp, body)}`)].join(',');
}
