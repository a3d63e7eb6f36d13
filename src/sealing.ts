/**
 * Sealing: AES-256-GCM under a key derived from the pepper (HKDF-SHA256, one `info` per use), for
 * the few secrets Paygate must be able to read back rather than only verify: an idempotent response
 * that holds a magic link (payments/idempotency.ts), a webhook endpoint's signing secret
 * (webhooks/). The database alone then holds nothing usable; whoever also holds the pepper can
 * open them, which is why the pepper never lives in the database.
 *
 * Each sealed value is bound to its row by associated data (the caller's `aad`): moved to another
 * row, it no longer opens.
 *
 * Layout: version (1 byte), pepper version (2 bytes, big endian), IV (12), GCM tag (16), ciphertext.
 * The pepper version picks the key, so values sealed before a pepper rotation still open.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Peppers } from './keys/hash.js';

const SEAL_VERSION = 1;
const HEADER_BYTES = 3;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class Sealer {
  private readonly keys = new Map<number, Buffer>();

  /** @param info the HKDF info string of this use; two uses never share a key. */
  constructor(
    private readonly peppers: Peppers,
    private readonly info: string,
  ) {}

  /** The key of a pepper version, derived once. */
  private key(version: number): Buffer | null {
    let key = this.keys.get(version);
    if (!key) {
      const pepper = this.peppers.byVersion.get(version);
      if (!pepper) return null;
      key = Buffer.from(hkdfSync('sha256', pepper.key, Buffer.alloc(0), this.info, 32));
      this.keys.set(version, key);
    }
    return key;
  }

  /** Seals `plaintext` under the current pepper, bound to `aad`. */
  seal(plaintext: Buffer | string, aad: Buffer | string): Buffer {
    const { version } = this.peppers.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key(version)!, iv);
    cipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt8(SEAL_VERSION, 0);
    header.writeUInt16BE(version, 1);
    return Buffer.concat([header, iv, cipher.getAuthTag(), ciphertext]);
  }

  /** The plaintext, or null when it cannot be opened (another pepper, another row, or tampered with). */
  unseal(sealed: Buffer, aad: Buffer | string): Buffer | null {
    const start = HEADER_BYTES + IV_BYTES + TAG_BYTES;
    if (sealed.length < start || sealed.readUInt8(0) !== SEAL_VERSION) return null;
    const key = this.key(sealed.readUInt16BE(1));
    if (!key) return null;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(HEADER_BYTES, HEADER_BYTES + IV_BYTES));
      decipher.setAAD(typeof aad === 'string' ? Buffer.from(aad, 'utf8') : aad);
      decipher.setAuthTag(sealed.subarray(HEADER_BYTES + IV_BYTES, start));
      return Buffer.concat([decipher.update(sealed.subarray(start)), decipher.final()]);
    } catch {
      return null;
    }
  }
}
