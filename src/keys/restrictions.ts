/**
 * "No looser restrictions" (SPEC §3): an API key that creates or changes a key (itself included)
 * cannot hand out more than it has, for each restriction it has:
 *
 * - expiresAt: the key expires no later than the caller; no expiry at all is looser than any;
 * - allowedIps: every range of the key lies inside one range of the caller's (same address family,
 *   a prefix at least as long, the same network); no allowlist at all is looser than any;
 * - rateLimit: never more requests in one window than the caller's (`requests <= R`), and never a
 *   higher sustained rate (`requests / windowSeconds <= R / W`, compared as `requests * W <= R *
 *   windowSeconds`, in integers). So "100 per day" is looser than "10 per minute" (100 at once),
 *   "1 per second" is looser than "10 per minute" (60 a minute), "5 per 30 s" is not. No limit at
 *   all is looser than any.
 *
 * Pure: neither Fastify nor the database.
 */
import { parseCidr } from '../net/cidr.js';
import type { KeyRestrictions } from '../auth/context.js';

export type RestrictionName = 'expiresAt' | 'allowedIps' | 'rateLimit';

export interface LooserRestriction {
  restriction: RestrictionName;
  /** Why, for the problem's detail: what the key would have, and what the caller allows. */
  reason: string;
}

/** True when CIDR `inner` lies entirely inside CIDR `outer`. Unparseable ranges are never inside. */
export function cidrWithin(inner: string, outer: string): boolean {
  const a = parseCidr(inner);
  const b = parseCidr(outer);
  if (!a || !b) return false;
  const [address, bits] = a;
  const [network, networkBits] = b;
  return address.kind() === network.kind() && bits >= networkBits && address.match(network, networkBits);
}

/** Each restriction of `key` that is looser than the caller's (empty: the key is no looser). */
export function looserRestrictions(caller: KeyRestrictions, key: KeyRestrictions): LooserRestriction[] {
  const out: LooserRestriction[] = [];
  if (caller.expiresAt) {
    if (!key.expiresAt) out.push({ restriction: 'expiresAt', reason: `it must expire, no later than ${caller.expiresAt.toISOString()}` });
    else if (key.expiresAt > caller.expiresAt) out.push({ restriction: 'expiresAt', reason: `it must expire no later than ${caller.expiresAt.toISOString()}` });
  }
  if (caller.allowedIps) {
    const outer = caller.allowedIps;
    if (!key.allowedIps) out.push({ restriction: 'allowedIps', reason: `it must allow only addresses inside ${outer.join(', ')}` });
    else {
      const outside = key.allowedIps.filter((cidr) => !outer.some((o) => cidrWithin(cidr, o)));
      if (outside.length > 0) out.push({ restriction: 'allowedIps', reason: `${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'} not inside ${outer.join(', ')}` });
    }
  }
  if (caller.rateLimit) {
    const { requests: R, windowSeconds: W } = caller.rateLimit;
    const limit = key.rateLimit;
    const allowed = `at most ${R} requests per ${W} s, and no higher rate`;
    if (!limit) out.push({ restriction: 'rateLimit', reason: `it must have a rate limit of ${allowed}` });
    else if (limit.requests > R || limit.requests * W > R * limit.windowSeconds) {
      out.push({ restriction: 'rateLimit', reason: `${limit.requests} per ${limit.windowSeconds} s is looser than ${allowed}` });
    }
  }
  return out;
}
