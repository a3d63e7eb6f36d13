/**
 * The SSRF guard of webhook targets (SPEC §16). A merchant chooses where Paygate sends requests, so
 * without a guard an endpoint could make Paygate's own network reach its database, its admin ports
 * or the cloud's metadata service (which hands out credentials).
 *
 * Refused always, whatever PAYGATE_WEBHOOK_ALLOW_PRIVATE says:
 *   cloud metadata (169.254.169.254, fd00:ec2::254), unspecified (0.0.0.0/8, ::), multicast,
 *   broadcast and reserved (240.0.0.0/4) addresses
 * Refused unless PAYGATE_WEBHOOK_ALLOW_PRIVATE=true:
 *   loopback (127.0.0.0/8, ::1), private (10/8, 172.16/12, 192.168/16, 192.0.0/24), carrier-grade NAT
 *   (100.64/10), link-local (169.254/16, fe80::/10), unique local (fc00::/7), site-local (fec0::/10)
 * IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
 * SIIT ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address; the
 * local-use NAT64 prefix 64:ff9b:1::/48 counts as private.
 *
 * The check runs when an endpoint is created or its URL changes, and again before every delivery,
 * against the addresses the host name resolves to then. The delivery connects to exactly the address
 * that was checked (deliver.ts), so a name that resolves to a public address for the check and to a
 * private one a moment later (DNS rebinding) cannot slip through. A name with any refused address
 * is refused.
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

type Verdict = 'always' | 'private';

interface Rule {
  network: ipaddr.IPv4 | ipaddr.IPv6;
  bits: number;
  what: string;
  verdict: Verdict;
}

function rules(list: Array<[string, string, Verdict]>): Rule[] {
  return list.map(([cidr, what, verdict]) => {
    const [network, bits] = ipaddr.parseCIDR(cidr);
    return { network, bits, what, verdict };
  });
}

// First match wins: the metadata hosts come before the ranges that contain them.
const V4_RULES = rules([
  ['169.254.169.254/32', 'a cloud metadata address', 'always'],
  ['0.0.0.0/8', 'an unspecified address', 'always'],
  ['224.0.0.0/4', 'a multicast address', 'always'],
  ['255.255.255.255/32', 'a broadcast address', 'always'],
  ['240.0.0.0/4', 'a reserved address', 'always'],
  ['127.0.0.0/8', 'a loopback address', 'private'],
  ['10.0.0.0/8', 'a private address', 'private'],
  ['172.16.0.0/12', 'a private address', 'private'],
  ['192.168.0.0/16', 'a private address', 'private'],
  ['192.0.0.0/24', 'a private address', 'private'],
  ['100.64.0.0/10', 'a carrier-grade NAT address', 'private'],
  ['169.254.0.0/16', 'a link-local address', 'private'],
]);

const V6_RULES = rules([
  ['fd00:ec2::254/128', 'a cloud metadata address', 'always'],
  ['::/128', 'an unspecified address', 'always'],
  ['ff00::/8', 'a multicast address', 'always'],
  ['::1/128', 'a loopback address', 'private'],
  ['64:ff9b:1::/48', 'a private address (local NAT64)', 'private'],
  ['fc00::/7', 'a unique local address', 'private'],
  ['fe80::/10', 'a link-local address', 'private'],
  ['fec0::/10', 'a site-local address', 'private'],
]);

/** The IPv4 address an IPv6 address stands for, when it is one of the forms that embed one. */
function embeddedIPv4(address: ipaddr.IPv6): ipaddr.IPv4 | null {
  const p = address.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; not :: and ::1, which have rules of their own)
  if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0 && (p[5] === 0xffff || (p[5] === 0 && (p[6] !== 0 || p[7]! > 1)))) {
    return v4(p[6]!, p[7]!);
  }
  // ::ffff:0:a.b.c.d (SIIT, RFC 6145)
  if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0xffff && p[5] === 0) return v4(p[6]!, p[7]!);
  // 64:ff9b::a.b.c.d (NAT64, RFC 6052)
  if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) return v4(p[6]!, p[7]!);
  // 2002:aabb:ccdd::/48 (6to4)
  if (p[0] === 0x2002) return v4(p[1]!, p[2]!);
  return null;
}

/**
 * Why Paygate must not send to this address (a phrase such as "a loopback address"), or null when
 * it may. `allowPrivate` is PAYGATE_WEBHOOK_ALLOW_PRIVATE. Anything that is not an IP address is refused.
 */
export function refusedAddress(address: string, allowPrivate: boolean): string | null {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  } catch {
    return 'not an IP address';
  }
  if (parsed.kind() === 'ipv6') {
    const inner = embeddedIPv4(parsed as ipaddr.IPv6);
    if (inner) return refusedAddress(inner.toString(), allowPrivate);
  }
  const list = parsed.kind() === 'ipv4' ? V4_RULES : V6_RULES;
  const rule = list.find((r) => r.network.kind() === parsed.kind() && parsed.match(r.network, r.bits));
  if (!rule) return null;
  if (rule.verdict === 'private' && allowPrivate) return null;
  return rule.what;
}

const MAX_URL_LENGTH = 2048;

/** A webhook URL as stored and used (absolute http(s), no credentials, no fragment), or why it is not one. */
export function parseTargetUrl(value: string): { url: URL } | { error: string } {
  if (value.length > MAX_URL_LENGTH) return { error: `must be at most ${MAX_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { error: 'must be an absolute http or https URL' };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { error: 'must be an http or https URL' };
  // The URL is shown in every endpoint view and audit event: a password in it would leak there.
  if (url.username || url.password) return { error: 'must not contain credentials (the signature authenticates Paygate)' };
  if (url.hash) return { error: 'must not contain a fragment' };
  if (!url.hostname) return { error: 'must name a host' };
  return { url };
}

/** The host of a URL without IPv6 brackets. The WHATWG parser already turned 2130706433 or 0x7f.1 into 127.0.0.1. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

export type Resolver = (hostname: string) => Promise<string[]>;

/** Every address a name resolves to, within `timeoutMs`. */
export function systemResolver(timeoutMs: number): Resolver {
  return async (hostname) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`DNS lookup of ${hostname} timed out`), { code: 'ETIMEOUT' })), timeoutMs);
    });
    try {
      const found = await Promise.race([dns.lookup(hostname, { all: true }), timeout]);
      return found.map((entry) => entry.address);
    } finally {
      clearTimeout(timer);
    }
  };
}

export type TargetCheck =
  /** Every address is allowed; `addresses` is empty when the name did not resolve (`lookupError`). */
  | { ok: true; addresses: string[]; lookupError?: string }
  | { ok: false; reason: string };

/**
 * Checks a target now: an IP literal directly, a name by resolving it. A name that does not resolve
 * passes with no address (the caller decides: an endpoint may be created before its DNS exists, a
 * delivery fails and is retried).
 */
export async function checkTarget(url: URL, allowPrivate: boolean, resolve: Resolver): Promise<TargetCheck> {
  const host = hostOf(url);
  if (net.isIP(host) !== 0) {
    const reason = refusedAddress(host, allowPrivate);
    return reason ? { ok: false, reason: `${host} is ${reason}` } : { ok: true, addresses: [host] };
  }
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (error) {
    return { ok: true, addresses: [], lookupError: (error as { code?: string }).code ?? (error as Error).message };
  }
  for (const address of addresses) {
    const reason = refusedAddress(address, allowPrivate);
    // The address itself stays out of the message: it would tell a tenant what our DNS says about internal names.
    if (reason) return { ok: false, reason: `${host} resolves to ${reason}` };
  }
  return { ok: true, addresses };
}
