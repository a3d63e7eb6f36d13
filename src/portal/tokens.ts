/**
 * Portal secrets: magic-link tokens, portal-session tokens and the session's CSRF token. Pure.
 *
 * Tokens are 32 random bytes in base64url (43 characters, 256 bits). Only their SHA-256 is stored:
 * a plain fast hash is right here because the input has full entropy, so there is nothing to
 * brute-force and a slow KDF would only cost CPU per request; a database leak still yields no
 * usable link or session.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Cheap shape check: garbage never reaches SQL and is simply "unknown". */
export function isTokenShaped(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_SHAPE.test(value);
}

/** The stored form (bytea) of a link or session token. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/**
 * The CSRF token of a portal session, derived from the session token (synchronizer token without
 * server state): it is printed into the session's own pages and checked on every portal POST. A
 * cross-site page can neither read our pages (no CORS, frame-ancestors 'none') nor the HttpOnly
 * cookie, so it cannot produce it; the session token is a 256-bit secret, so it is a sound HMAC key.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('paygate portal csrf v1').digest('base64url');
}

/** Constant-time: no timing oracle on the expected value. */
export function csrfMatches(sessionToken: string, sent: unknown): boolean {
  if (typeof sent !== 'string') return false;
  const expected = Buffer.from(csrfTokenFor(sessionToken));
  const given = Buffer.from(sent);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
