import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { checksum, formatToken, isMintedKeyId, newKeyId, parseToken, tokenHint, TOKEN_REGEX, TOKEN_LENGTH } from './token.js';

/** Bitwise CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320): an independent reference for zlib's. */
function referenceCrc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'ascii')) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function referenceBase62(n: number): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let out = '';
  do {
    out = alphabet[n % 62] + out;
    n = Math.floor(n / 62);
  } while (n > 0);
  return out.padStart(6, '0');
}

const tagKey = randomBytes(32);

describe('token format', () => {
  it('the checksum is CRC-32 of the ASCII body in zero-padded base62', () => {
    expect(referenceCrc32('123456789')).toBe(0xcbf43926); // the standard check value
    expect(checksum('123456789')).toBe(referenceBase62(0xcbf43926));
    expect(checksum('')).toBe('000000');
    for (let i = 0; i < 200; i++) {
      const body = `sk_${randomBytes(10).toString('hex')}.${randomBytes(20).toString('base64url')}`;
      expect(checksum(body)).toBe(referenceBase62(referenceCrc32(body)));
    }
  });

  it('a minted token matches the published regex and parses back to its id', () => {
    for (let i = 0; i < 500; i++) {
      const id = newKeyId(tagKey);
      const token = formatToken(id);
      expect(token).toMatch(TOKEN_REGEX);
      expect(token).toHaveLength(TOKEN_LENGTH);
      expect(token.slice(-6)).toBe(referenceBase62(referenceCrc32(token.slice(0, -6))));
      const parsed = parseToken(token);
      expect(parsed).toEqual({ ok: true, token: { id, token } });
      expect(tokenHint(token)).toBe(token.slice(-4));
    }
  });

  it('the id tag is what earlier releases minted: ids already issued keep verifying', () => {
    // Computed once with the tag's first implementation (SHA-256 as a Buffer, readUIntBE(0, 6)).
    const key = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
    expect(isMintedKeyId(key, 'abcdefghijklABNEFmWo')).toBe(true);
    expect(isMintedKeyId(key, '0123456789ABv4MCaiJP')).toBe(true);
    expect(isMintedKeyId(key, 'abcdefghijklABNEFmWp')).toBe(false);
  });

  it('ids are 20 base62 characters and rotate never changes them', () => {
    const id = newKeyId(tagKey);
    expect(id).toMatch(/^[0-9A-Za-z]{20}$/);
    const a = formatToken(id);
    const b = formatToken(id);
    expect(a).not.toBe(b);
    expect(a.slice(3, 23)).toBe(id);
    expect(b.slice(3, 23)).toBe(id);
  });

  it('a single changed character fails the checksum', () => {
    const token = formatToken(newKeyId(tagKey));
    let caught = 0;
    for (let i = 24; i < token.length; i++) {
      const c = token[i] === 'a' ? 'b' : 'a';
      const mutated = token.slice(0, i) + c + token.slice(i + 1);
      const parsed = parseToken(mutated);
      if (!parsed.ok && parsed.reason === 'bad_checksum') caught++;
    }
    expect(caught).toBe(token.length - 24);
  });

  it.each([
    ['empty', ''],
    ['no prefix', 'pk_' + 'a'.repeat(70)],
    ['too short', 'sk_short'],
    ['too long', formatToken('A'.repeat(20)) + 'x'],
    ['no dot', 'sk_' + 'a'.repeat(70)],
    ['non-base62 id', 'sk_' + '-'.repeat(20) + '.' + 'a'.repeat(49)],
    ['non-base62 secret', 'sk_' + 'a'.repeat(20) + '.' + '+'.repeat(49)],
    ['unicode', 'sk_' + 'é'.repeat(20) + '.' + 'a'.repeat(49)],
  ])('a malformed value (%s) is refused without throwing', (_name, value) => {
    const parsed = parseToken(value);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toBe('malformed');
  });

  it('parses huge inputs in constant time (length check first)', () => {
    const huge = 'sk_' + 'a'.repeat(5_000_000);
    expect(parseToken(huge)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('only ids minted with the tag key verify; random ids with valid checksums do not', () => {
    const minted = newKeyId(tagKey);
    expect(isMintedKeyId(tagKey, minted)).toBe(true);
    expect(isMintedKeyId(randomBytes(32), minted)).toBe(false);
    let forgedAccepted = 0;
    for (let i = 0; i < 10_000; i++) {
      const id = randomBytes(15).toString('base64').replace(/[^0-9A-Za-z]/g, 'x').slice(0, 20);
      if (isMintedKeyId(tagKey, id)) forgedAccepted++;
    }
    expect(forgedAccepted).toBe(0);
  });
});
