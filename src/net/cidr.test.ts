import { describe, expect, it } from 'vitest';
import { addressAllowed, normalizeCidr, parseCidr, type Cidr } from './cidr.js';

const list = (...values: string[]) => values.map((v) => parseCidr(v)!) as Cidr[];

describe('CIDR matching', () => {
  it.each([
    ['10.0.0.0/8', '10.1.2.3', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7', '192.168.1.8', false],
    ['127.0.0.1/32', '::ffff:127.0.0.1', true],
    ['2001:db8::/32', '2001:db8:1::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['::1', '::1', true],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '2001:db8::1', false],
  ])('%s allows %s: %s', (cidr, address, allowed) => {
    expect(addressAllowed(address, list(cidr))).toBe(allowed);
  });

  it('an unparseable client address is never allowed', () => {
    expect(addressAllowed('not-an-ip', list('0.0.0.0/0'))).toBe(false);
  });

  it('normalises to the network address with an explicit prefix', () => {
    expect(normalizeCidr('10.1.2.3/8')).toBe('10.0.0.0/8');
    expect(normalizeCidr('192.168.0.1')).toBe('192.168.0.1/32');
    expect(normalizeCidr('2001:db8::1/32')).toBe('2001:db8::/32');
  });

  it.each(['10.0.0.0/33', '300.1.1.1', 'abc', '', '10.0.0.0/-1', '::/129'])('refuses %j', (value) => {
    expect(normalizeCidr(value)).toBeNull();
  });
});
