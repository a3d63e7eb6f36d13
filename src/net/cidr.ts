/** CIDR parsing and matching for `allowedIps`, IPv4 and IPv6, via ipaddr.js. Pure. */
import ipaddr from 'ipaddr.js';

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses "a.b.c.d/n", "x::/n" or a bare address (as a host route); null when invalid. */
export function parseCidr(value: string): Cidr | null {
  try {
    if (value.includes('/')) {
      const [address, bits] = ipaddr.parseCIDR(value);
      return [address, bits];
    }
    const address = ipaddr.parse(value);
    return [address, address.kind() === 'ipv4' ? 32 : 128];
  } catch {
    return null;
  }
}

/** Canonical text of a CIDR (network address, explicit prefix), so stored lists compare cleanly. */
export function normalizeCidr(value: string): string | null {
  const cidr = parseCidr(value);
  if (!cidr) return null;
  const [address, bits] = cidr;
  const network =
    address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${bits}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${bits}`);
  return `${network.toString()}/${bits}`;
}

export function parseAddress(value: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  try {
    const address = ipaddr.parse(value);
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
      return (address as ipaddr.IPv6).toIPv4Address();
    }
    return address;
  } catch {
    return null;
  }
}

export function addressAllowed(address: string, allowed: readonly Cidr[]): boolean {
  const parsed = parseAddress(address);
  if (!parsed) return false;
  return allowed.some(([network, bits]) => parsed.kind() === network.kind() && parsed.match(network, bits));
}
