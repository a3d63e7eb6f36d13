/**
 * The audit signing key (SPEC §15): an Ed25519 key that signs checkpoints of the audit chain's head
 * (and any other statement Paygate makes about its audit log, such as compliance evidence).
 *
 * The key never touches the database: whoever can rewrite the database (its owner, a superuser)
 * but does not hold this key cannot forge a checkpoint, so a truncated or replaced chain no longer
 * matches the checkpoints taken before. Verifiers need only the public key.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Reads an Ed25519 private key in PEM (PKCS#8, `-----BEGIN PRIVATE KEY-----`). Environment files
 * often cannot hold newlines, so `\n` escapes stand for them. Returns null for anything else.
 */
export function parseSigningKey(text: string): KeyObject | null {
  const pem = text.includes('\\n') ? text.replace(/\\n/g, '\n') : text;
  try {
    const key = createPrivateKey({ key: pem.trim(), format: 'pem' });
    return key.asymmetricKeyType === 'ed25519' ? key : null;
  } catch {
    return null;
  }
}

/** A new Ed25519 private key in PEM (PKCS#8): embedded mode keeps one in its data directory. */
export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export class AuditSigner {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  /** The public key in PEM (SPKI, `-----BEGIN PUBLIC KEY-----`), as `GET .../public-key` serves it. */
  readonly publicKeyPem: string;
  /** `sha256:` and the hex SHA-256 of the public key's DER (SPKI): names the key in logs. */
  readonly fingerprint: string;

  /** @param pem an Ed25519 private key in PEM; the configuration has already checked it. */
  constructor(pem: string) {
    const key = parseSigningKey(pem);
    if (!key) throw new Error('the audit signing key is not an Ed25519 private key in PEM');
    this.privateKey = key;
    this.publicKey = createPublicKey(key);
    this.publicKeyPem = this.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    this.fingerprint = `sha256:${createHash('sha256').update(this.publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
  }

  /** The Ed25519 signature of `payload`, in base64 (standard alphabet, padded: 88 characters). */
  sign(payload: Buffer): string {
    return sign(null, payload, this.privateKey).toString('base64');
  }

  /** Whether `signature` (base64) is this key's signature of `payload`. Never throws. */
  verify(payload: Buffer, signature: string): boolean {
    const bytes = Buffer.from(signature, 'base64');
    if (bytes.length !== 64 || bytes.toString('base64') !== signature) return false;
    try {
      return verify(null, payload, this.publicKey, bytes);
    } catch {
      return false;
    }
  }
}
