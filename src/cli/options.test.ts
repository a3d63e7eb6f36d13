/** The CLI's option parsers and URL rule: form only (the server checks meaning), as usage errors. */
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CLEAR, parseExpiry, parseIpList, parseLimit, parseRateLimit, parseScopeList, parseTime } from './options.js';
import { normalizeBaseUrl } from './connection.js';
import { CliError } from './errors.js';

describe('option parsers', () => {
  it('a rate limit is requests per window, in seconds or with a unit; "none" clears it', () => {
    expect(parseRateLimit('100/60')).toEqual({ requests: 100, windowSeconds: 60 });
    expect(parseRateLimit('100/1m')).toEqual({ requests: 100, windowSeconds: 60 });
    expect(parseRateLimit('5000/1h')).toEqual({ requests: 5000, windowSeconds: 3600 });
    expect(parseRateLimit(' none ')).toBe(CLEAR);
    for (const bad of ['100', '0/60', '100/0', '100/1d', 'x/y', '']) expect(() => parseRateLimit(bad), bad).toThrow(InvalidArgumentError);
  });

  it('scope and address lists are comma-separated and trimmed; an empty address list is refused', () => {
    expect(parseScopeList(' client:read, ,checkout:create ')).toEqual(['client:read', 'checkout:create']);
    expect(parseIpList('10.0.0.0/8, 2001:db8::1')).toEqual(['10.0.0.0/8', '2001:db8::1']);
    expect(parseIpList('none')).toBe(CLEAR);
    expect(() => parseIpList(' , ')).toThrow(InvalidArgumentError);
  });

  it('times are ISO 8601 or a duration before now, sent as UTC', () => {
    expect(parseTime('2026-01-31T12:00:00+01:00')).toBe('2026-01-31T11:00:00.000Z');
    expect(parseTime('2026-01-31')).toBe('2026-01-31T00:00:00.000Z');
    const twoHoursAgo = Date.parse(parseTime('2h'));
    expect(Math.abs(Date.now() - 2 * 3600_000 - twoHoursAgo)).toBeLessThan(60_000);
    for (const bad of ['yesterday', '2h ago', '31/01/2026', '12']) expect(() => parseTime(bad), bad).toThrow(InvalidArgumentError);
    expect(parseExpiry('none')).toBe(CLEAR);
    expect(() => parseExpiry('soon')).toThrow(InvalidArgumentError);
  });

  it('a page size is 1 to 100', () => {
    expect(parseLimit('1')).toBe(1);
    expect(parseLimit('100')).toBe(100);
    for (const bad of ['0', '101', '2.5', '-1', 'ten']) expect(() => parseLimit(bad), bad).toThrow(InvalidArgumentError);
  });
});

describe('the server URL', () => {
  it('is normalised to origin and path without a trailing slash, the form the credentials file is keyed by', () => {
    expect(normalizeBaseUrl('http://127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(normalizeBaseUrl(' HTTPS://GW.Example.com/paygate// ')).toBe('https://gw.example.com/paygate');
  });

  it('refuses other schemes, credentials, queries and garbage as usage errors', () => {
    for (const bad of ['ftp://host', 'http://user:pw@host', 'http://host/?x=1', 'http://host/#x', 'localhost:8080', 'not a url']) {
      expect(() => normalizeBaseUrl(bad), bad).toThrow(CliError);
    }
  });
});
