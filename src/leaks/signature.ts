/**
 * Signatures of secret-scanning partner reports (SPEC §13): GitHub signs the raw request body with
 * ECDSA P-256 / SHA-256 and sends the key's id in `Github-Public-Key-Identifier` and the signature
 * (DER, base64) in `Github-Public-Key-Signature`. The public keys come from configuration
 * (PAYGATE_SECRET_SCANNING_KEYS, key id -> PEM), never fetched at request time: a report verifies
 * against what the operator installed, or not at all.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

export const KEY_ID_HEADER = 'github-public-key-identifier';
export const SIGNATURE_HEADER = 'github-public-key-signature';

/** A DER ECDSA P-256 signature is at most 72 bytes (96 base64 characters); anything far longer is junk. */
const MAX_SIGNATURE_CHARS = 256;

export class PartnerKeys {
  private readonly keys: Map<string, KeyObject>;

  /** @param pems key id -> PEM, as src/config.ts checked them (ECDSA P-256 public keys). */
  constructor(pems: Record<string, string>) {
    this.keys = new Map(Object.entries(pems).map(([id, pem]) => [id, createPublicKey(pem)]));
  }

  get size(): number {
    return this.keys.size;
  }

  /**
   * Whether `body` carries a valid signature of one of the configured keys. Never throws: a missing
   * header, an unknown key id, a signature that is not base64 DER or does not verify are all false.
   */
  verify(body: Buffer, keyId: unknown, signature: unknown): boolean {
    if (typeof keyId !== 'string' || typeof signature !== 'string') return false;
    if (signature.length === 0 || signature.length > MAX_SIGNATURE_CHARS) return false;
    const key = this.keys.get(keyId);
    if (!key) return false;
    try {
      return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }
}
