/** The flag rules at their boundaries, without a server (src/keys/flags.ts). */
import { describe, expect, it } from 'vitest';
import { KEY_FLAGS, keyFlags, NO_THRESHOLDS, secretAgeDays, unusedDays, type FlagSubject } from './flags.js';

const DAY = 86_400_000;
const now = new Date('2030-06-01T12:00:00.000Z');
const ago = (ms: number) => new Date(now.getTime() - ms);
const key = (over: Partial<FlagSubject> = {}): FlagSubject => ({
  scopes: ['client:read'],
  createdAt: now,
  rotatedAt: null,
  lastUsedAt: now,
  expiresAt: new Date(now.getTime() + 365 * DAY),
  revokedAt: null,
  leakedAt: null,
  creatorIsMember: null,
  ...over,
});
const all = { apiKeyRotationMaxAgeDays: 30, apiKeyInactiveDays: 10, apiKeyExpiryWarningDays: 7 };

describe('key flags', () => {
  it('rotation_due from exactly the threshold, counted from the rotation when there is one', () => {
    expect(keyFlags(key({ createdAt: ago(30 * DAY) }), all, now)).toContain('rotation_due');
    expect(keyFlags(key({ createdAt: ago(30 * DAY - 1) }), all, now)).not.toContain('rotation_due');
    expect(keyFlags(key({ createdAt: ago(300 * DAY), rotatedAt: ago(29 * DAY) }), all, now)).not.toContain('rotation_due');
  });

  it('inactive from exactly the threshold, counted from the creation when never used', () => {
    expect(keyFlags(key({ lastUsedAt: ago(10 * DAY) }), all, now)).toContain('inactive');
    expect(keyFlags(key({ lastUsedAt: ago(10 * DAY - 1) }), all, now)).not.toContain('inactive');
    expect(keyFlags(key({ createdAt: ago(11 * DAY), lastUsedAt: null }), all, now)).toContain('inactive');
  });

  it('expiring_soon within the window, inclusive', () => {
    expect(keyFlags(key({ expiresAt: new Date(now.getTime() + 7 * DAY) }), all, now)).toContain('expiring_soon');
    expect(keyFlags(key({ expiresAt: new Date(now.getTime() + 7 * DAY + 1) }), all, now)).not.toContain('expiring_soon');
  });

  it('null thresholds raise nothing; the rest need no threshold', () => {
    const risky = key({ createdAt: ago(900 * DAY), lastUsedAt: null, expiresAt: null, scopes: ['invoice:*'], creatorIsMember: false, leakedAt: now });
    expect(keyFlags(risky, NO_THRESHOLDS, now)).toEqual(['no_expiry', 'broad_scopes', 'creator_removed', 'leaked']);
    expect(keyFlags(risky, all, now)).toEqual(['rotation_due', 'inactive', 'no_expiry', 'broad_scopes', 'creator_removed', 'leaked']);
    expect(keyFlags(key({ creatorIsMember: null }), all, now)).toEqual([]);
  });

  it('a revoked or expired key keeps only leaked', () => {
    const risky = { createdAt: ago(900 * DAY), lastUsedAt: null, scopes: ['invoice:*'], creatorIsMember: false, leakedAt: now };
    expect(keyFlags(key({ ...risky, revokedAt: now }), all, now)).toEqual(['leaked']);
    expect(keyFlags(key({ ...risky, expiresAt: now }), all, now)).toEqual(['leaked']);
  });

  it('lists flags in one order and counts whole days', () => {
    expect(KEY_FLAGS).toEqual(['rotation_due', 'inactive', 'expiring_soon', 'no_expiry', 'broad_scopes', 'creator_removed', 'leaked']);
    expect(secretAgeDays({ createdAt: ago(2 * DAY - 1), rotatedAt: null }, now)).toBe(1);
    expect(unusedDays({ createdAt: ago(9 * DAY), lastUsedAt: ago(3 * DAY) }, now)).toBe(3);
  });
});
