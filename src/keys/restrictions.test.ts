import { describe, expect, it } from 'vitest';
import { cidrWithin, looserRestrictions } from './restrictions.js';
import type { KeyRestrictions } from '../auth/context.js';

const none: KeyRestrictions = { expiresAt: null, allowedIps: null, rateLimit: null };
const at = (iso: string) => new Date(iso);
const names = (caller: Partial<KeyRestrictions>, key: Partial<KeyRestrictions>) =>
  looserRestrictions({ ...none, ...caller }, { ...none, ...key }).map((l) => l.restriction);

describe('no looser restrictions (SPEC §3)', () => {
  it('a caller without restrictions may hand out anything', () => {
    expect(names({}, {})).toEqual([]);
    expect(names({}, { expiresAt: at('2030-01-01T00:00:00Z'), allowedIps: ['10.0.0.0/8'], rateLimit: { requests: 1, windowSeconds: 1 } })).toEqual([]);
  });

  it.each([
    ['no expiry', null, ['expiresAt']],
    ['a later expiry', '2031-01-01T00:00:01Z', ['expiresAt']],
    ['the same expiry', '2031-01-01T00:00:00Z', []],
    ['an earlier expiry', '2030-06-01T00:00:00Z', []],
  ])('expiresAt: %s', (_label, expiresAt, expected) => {
    expect(names({ expiresAt: at('2031-01-01T00:00:00Z') }, { expiresAt: expiresAt ? at(expiresAt) : null })).toEqual(expected);
  });

  it.each([
    ['no allowlist', null, ['allowedIps']],
    ['the same ranges', ['10.0.0.0/8', '2001:db8::/32'], []],
    ['narrower ranges inside either', ['10.1.2.0/24', '10.9.9.9/32', '2001:db8:1::/48'], []],
    ['a wider range', ['10.0.0.0/7'], ['allowedIps']],
    ['a range elsewhere', ['192.168.0.0/16'], ['allowedIps']],
    ['one range inside, one outside', ['10.1.0.0/16', '11.0.0.0/8'], ['allowedIps']],
    ['the other address family', ['::ffff:10.0.0.1/128'], ['allowedIps']],
  ])('allowedIps: %s', (_label, allowedIps, expected) => {
    expect(names({ allowedIps: ['10.0.0.0/8', '2001:db8::/32'] }, { allowedIps })).toEqual(expected);
  });

  it.each([
    ['no limit', null, ['rateLimit']],
    ['the same', { requests: 10, windowSeconds: 60 }, []],
    ['fewer per window', { requests: 5, windowSeconds: 60 }, []],
    ['the same rate in a shorter window', { requests: 5, windowSeconds: 30 }, []],
    ['the same burst over a longer window', { requests: 10, windowSeconds: 120 }, []],
    ['a higher rate (1 per second is 60 a minute)', { requests: 1, windowSeconds: 1 }, ['rateLimit']],
    ['a bigger burst at a lower rate (100 a day can all come at once)', { requests: 100, windowSeconds: 86_400 }, ['rateLimit']],
    ['more per window', { requests: 11, windowSeconds: 60 }, ['rateLimit']],
  ])('rateLimit against 10 per 60 s: %s', (_label, rateLimit, expected) => {
    expect(names({ rateLimit: { requests: 10, windowSeconds: 60 } }, { rateLimit })).toEqual(expected);
  });

  it('names every looser restriction at once, with a reason each', () => {
    const looser = looserRestrictions(
      { expiresAt: at('2031-01-01T00:00:00Z'), allowedIps: ['10.0.0.0/8'], rateLimit: { requests: 10, windowSeconds: 60 } },
      none,
    );
    expect(looser.map((l) => l.restriction)).toEqual(['expiresAt', 'allowedIps', 'rateLimit']);
    expect(looser[0]!.reason).toContain('2031-01-01T00:00:00.000Z');
    expect(looser[1]!.reason).toContain('10.0.0.0/8');
    expect(looser[2]!.reason).toContain('10 requests per 60 s');
  });

  it('cidrWithin compares prefix length and network, never across families or on garbage', () => {
    expect(cidrWithin('10.1.0.0/16', '10.0.0.0/8')).toBe(true);
    expect(cidrWithin('10.0.0.0/8', '10.1.0.0/16')).toBe(false);
    expect(cidrWithin('10.0.0.5', '10.0.0.0/24')).toBe(true);
    expect(cidrWithin('2001:db8::1', '2001:db8::/32')).toBe(true);
    expect(cidrWithin('10.0.0.1', '::/0')).toBe(false);
    expect(cidrWithin('nonsense', '0.0.0.0/0')).toBe(false);
  });
});
