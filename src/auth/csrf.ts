/**
 * CSRF tokens bound to their session (SPEC §7). The token is HMAC-SHA256(key, session id), the key
 * derived from the session secret for this one purpose, so a token is valid for exactly one session:
 * an attacker who can plant cookies (a sibling subdomain, a network attacker on plain http) can set a
 * `csrf` cookie and send the same value in the header, but cannot compute the token of the victim's
 * session. The `csrf` cookie stays as the panel's way to read the token (it must echo it).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export class CsrfTokens {
  private readonly key: Buffer;

  constructor(sessionSecret: string) {
    // A key of its own: the session secret signs JWTs, and one key should serve one purpose.
    this.key = createHmac('sha256', sessionSecret).update('paygate csrf token v1').digest();
  }

  /** The CSRF token of a session. */
  tokenFor(sessionId: string): string {
    return createHmac('sha256', this.key).update(sessionId).digest('base64url');
  }

  /** Whether `sent` is the token of `sessionId`; constant-time. */
  verify(sessionId: string, sent: string): boolean {
    return safeEqual(sent, this.tokenFor(sessionId));
  }
}

/** Constant-time string comparison: no timing oracle on how much of a token matched. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
