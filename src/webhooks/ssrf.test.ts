import { describe, expect, it } from 'vitest';
import { checkTarget, parseTargetUrl, refusedAddress } from './ssrf.js';

describe('refusedAddress', () => {
  const table: Array<[string, string | null, string | null]> = [
    // address, refused without the allow flag, refused with it
    ['8.8.8.8', null, null],
    ['203.0.113.7', null, null],
    ['2606:4700:4700::1111', null, null],
    ['127.0.0.1', 'a loopback address', null],
    ['127.255.0.9', 'a loopback address', null],
    ['::1', 'a loopback address', null],
    ['10.0.0.1', 'a private address', null],
    ['172.16.0.1', 'a private address', null],
    ['172.31.255.255', 'a private address', null],
    ['172.32.0.1', null, null],
    ['192.168.100.1', 'a private address', null],
    ['100.64.0.1', 'a carrier-grade NAT address', null],
    ['100.127.255.255', 'a carrier-grade NAT address', null],
    ['100.128.0.1', null, null],
    ['169.254.1.1', 'a link-local address', null],
    ['fe80::1', 'a link-local address', null],
    ['fc00::1', 'a unique local address', null],
    ['fd12:3456:789a::1', 'a unique local address', null],
    ['fec0::1', 'a site-local address', null],
    ['169.254.169.254', 'a cloud metadata address', 'a cloud metadata address'],
    ['fd00:ec2::254', 'a cloud metadata address', 'a cloud metadata address'],
    ['0.0.0.0', 'an unspecified address', 'an unspecified address'],
    ['0.1.2.3', 'an unspecified address', 'an unspecified address'],
    ['::', 'an unspecified address', 'an unspecified address'],
    ['224.0.0.251', 'a multicast address', 'a multicast address'],
    ['ff02::fb', 'a multicast address', 'a multicast address'],
    ['255.255.255.255', 'a broadcast address', 'a broadcast address'],
    ['240.0.0.1', 'a reserved address', 'a reserved address'],
    // IPv6 forms of IPv4 addresses are judged by the IPv4 address.
    ['::ffff:127.0.0.1', 'a loopback address', null],
    ['::ffff:7f00:1', 'a loopback address', null],
    ['::ffff:169.254.169.254', 'a cloud metadata address', 'a cloud metadata address'],
    ['::ffff:a9fe:a9fe', 'a cloud metadata address', 'a cloud metadata address'],
    ['::ffff:8.8.8.8', null, null],
    ['::127.0.0.1', 'a loopback address', null],
    ['::ffff:0:10.0.0.1', 'a private address', null],
    ['64:ff9b::10.0.0.1', 'a private address', null],
    ['64:ff9b::8.8.8.8', null, null],
    ['64:ff9b:1::1', 'a private address (local NAT64)', null],
    ['2002:a9fe:a9fe::1', 'a cloud metadata address', 'a cloud metadata address'],
    ['2002:0808:0808::1', null, null],
    ['[::1]', 'a loopback address', null],
    ['fe80::1%eth0', 'a link-local address', null],
    ['localhost', 'not an IP address', 'not an IP address'],
  ];
  for (const [address, strict, open] of table) {
    it(`${address}: ${strict ?? 'allowed'}; with PAYGATE_WEBHOOK_ALLOW_PRIVATE: ${open ?? 'allowed'}`, () => {
      expect(refusedAddress(address, false)).toBe(strict);
      expect(refusedAddress(address, true)).toBe(open);
    });
  }
});

describe('parseTargetUrl', () => {
  it('takes absolute http(s) URLs and normalises them as WHATWG does', () => {
    expect(parseTargetUrl('https://Hooks.Example.com:8443/a?b=c')).toEqual({ url: new URL('https://hooks.example.com:8443/a?b=c') });
    const decimal = parseTargetUrl('http://2130706433/x');
    expect('url' in decimal && decimal.url.hostname).toBe('127.0.0.1');
  });
  it.each([
    ['ftp://example.com/', 'must be an http or https URL'],
    ['file:///etc/passwd', 'must be an http or https URL'],
    ['javascript:alert(1)', 'must be an http or https URL'],
    ['/relative', 'must be an absolute http or https URL'],
    ['https://user:pw@example.com/', 'must not contain credentials (the signature authenticates Paygate)'],
    ['https://example.com/#part', 'must not contain a fragment'],
    [`https://example.com/${'x'.repeat(2048)}`, 'must be at most 2048 characters'],
  ])('refuses %s', (value, error) => {
    expect(parseTargetUrl(value)).toEqual({ error });
  });
});

describe('checkTarget', () => {
  const resolver = (answers: Record<string, string[]>) => async (host: string) => {
    const found = answers[host];
    if (!found) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return found;
  };

  it('refuses a name when any of its addresses is refused, without naming the address', async () => {
    const result = await checkTarget(new URL('https://mixed.test/'), false, resolver({ 'mixed.test': ['8.8.8.8', '10.0.0.7'] }));
    expect(result).toEqual({ ok: false, reason: 'mixed.test resolves to a private address' });
  });
  it('passes a name whose addresses are all public, with those addresses', async () => {
    expect(await checkTarget(new URL('https://public.test/'), false, resolver({ 'public.test': ['8.8.8.8', '2606:4700:4700::1111'] }))).toEqual({ ok: true, addresses: ['8.8.8.8', '2606:4700:4700::1111'] });
  });
  it('passes a name that does not resolve, with no address (the delivery then fails and retries)', async () => {
    expect(await checkTarget(new URL('https://nowhere.test/'), false, resolver({}))).toEqual({ ok: true, addresses: [], lookupError: 'ENOTFOUND' });
  });
  it('judges an IP literal without DNS', async () => {
    const never = async () => {
      throw new Error('no lookup expected');
    };
    expect(await checkTarget(new URL('http://[::ffff:127.0.0.1]/'), false, never)).toEqual({ ok: false, reason: '::ffff:7f00:1 is a loopback address' });
    expect(await checkTarget(new URL('http://8.8.8.8/'), false, never)).toEqual({ ok: true, addresses: ['8.8.8.8'] });
  });
});
