/**
 * The API key token format (SPEC §1):
 *
 *   sk_ XXXXXXXXXXXXXXXXXXXX . ssssssssssssssssssssssssssssssssssssssssssscccccc
 *   |   |<------ id ------>| | |<------------ 43 random ------------->||<cs->|
 *   3   20 chars [0-9A-Za-z]  1 43 chars (256+ bits)                    6 chars
 *
 * The checksum is CRC-32 (IEEE, as in zlib) of the ASCII bytes before it, in base62 (0-9A-Za-z),
 * left-padded with '0' to 6 characters. Published regex: sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}
 *
 * The id itself is 12 random characters followed by an 8-character tag: a keyed MAC of those 12,
 * computed with a server secret. The id still looks random, and the format is unchanged, but only
 * Paygate can mint an id whose tag verifies, so a forged token with a fresh random id is refused
 * without a database lookup or a cache entry (a negative cache cannot help against fresh ids).
 */
import { hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { BASE62, isBase62, randomBase62 } from '../ids.js';

export const TOKEN_PREFIX = 'sk_';
export const KEY_ID_LENGTH = 20;
const ID_RANDOM_LENGTH = 12;
const ID_TAG_LENGTH = KEY_ID_LENGTH - ID_RANDOM_LENGTH;
const SECRET_RANDOM_LENGTH = 43; // 43 * log2(62) = 256.0 bits
const CHECKSUM_LENGTH = 6;
export const SECRET_LENGTH = SECRET_RANDOM_LENGTH + CHECKSUM_LENGTH;
export const TOKEN_LENGTH = TOKEN_PREFIX.length + KEY_ID_LENGTH + 1 + SECRET_LENGTH;
export const TOKEN_REGEX = /^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/;

export interface ParsedToken {
  id: string;
  token: string;
}

/** `value` (an integer below 2^53) in base62, left-padded with '0' to exactly `width` digits. */
function toBase62(value: number, width: number): string {
  let out = '';
  let n = value;
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/** CRC-32 of the token body in 6 base62 characters (62^6 > 2^32, so nothing is lost). */
export function checksum(body: string): string {
  return toBase62(crc32(body) >>> 0, CHECKSUM_LENGTH);
}

const TAG_SPACE = 62 ** ID_TAG_LENGTH; // ~2^47.6, below the 48 bits taken from the digest

/**
 * The id tag: SHA-256 of (secret key || the id's 12 random characters), truncated. With a secret
 * prefix and a fixed-length message this is a PRF (length extension needs a chosen longer message),
 * and one-shot hashing costs a third of an HMAC on the request path.
 */
let tagKeyText: { key: Buffer; text: string } | null = null;

function idTag(tagKey: Buffer, random: string): string {
  if (tagKeyText?.key !== tagKey) tagKeyText = { key: tagKey, text: tagKey.toString('latin1') };
  // The first 48 bits of the digest, read from its hex form: a Buffer result costs Node more than the
  // hash itself (this runs for every forged token).
  const digest = hash('sha256', tagKeyText.text + random, 'hex');
  return toBase62(parseInt(digest.slice(0, 12), 16) % TAG_SPACE, ID_TAG_LENGTH);
}

/** A new key id: 12 random base62 characters and their 8-character tag. */
export function newKeyId(tagKey: Buffer): string {
  const random = randomBase62(ID_RANDOM_LENGTH);
  return random + idTag(tagKey, random);
}

/** True when the id's tag verifies: Paygate minted it. Not constant-time: the tag is not secret-bearing. */
export function isMintedKeyId(tagKey: Buffer, id: string): boolean {
  return id.length === KEY_ID_LENGTH && idTag(tagKey, id.slice(0, ID_RANDOM_LENGTH)) === id.slice(ID_RANDOM_LENGTH);
}

/** The whole token for an id, with a fresh secret. */
export function formatToken(id: string): string {
  const body = `${TOKEN_PREFIX}${id}.${randomBase62(SECRET_RANDOM_LENGTH)}`;
  return body + checksum(body);
}

export type ParseOutcome = { ok: true; token: ParsedToken } | { ok: false; reason: 'malformed' | 'bad_checksum' };

/**
 * Parses a presented token. Never throws and never backtracks: a length check and one pass over the
 * characters, so arbitrary input costs O(1) beyond the fixed token length.
 */
export function parseToken(value: string): ParseOutcome {
  if (value.length !== TOKEN_LENGTH || !value.startsWith(TOKEN_PREFIX)) return { ok: false, reason: 'malformed' };
  const dot = TOKEN_PREFIX.length + KEY_ID_LENGTH;
  if (value[dot] !== '.') return { ok: false, reason: 'malformed' };
  const id = value.slice(TOKEN_PREFIX.length, dot);
  const secret = value.slice(dot + 1);
  if (!isBase62(id) || !isBase62(secret)) return { ok: false, reason: 'malformed' };
  const body = value.slice(0, value.length - CHECKSUM_LENGTH);
  if (checksum(body) !== value.slice(-CHECKSUM_LENGTH)) return { ok: false, reason: 'bad_checksum' };
  return { ok: true, token: { id, token: value } };
}

/** The last 4 characters, shown as `hint` so people can tell keys apart. */
export function tokenHint(token: string): string {
  return token.slice(-4);
}
