/**
 * Secret hashing. Secrets carry 256 bits of entropy, so a keyed fast hash (HMAC-SHA256 with a
 * server-side pepper) is the right tool: a slow KDF adds nothing against brute force of a 256-bit
 * value and would only cap request throughput. Keys are looked up by id, never by scanning.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export interface Pepper {
  version: number;
  key: Buffer;
}

export interface Peppers {
  current: Pepper;
  /** Older peppers kept so hashes made with them still verify during a pepper rotation. */
  byVersion: Map<number, Pepper>;
  /** Key for the id tag of keys/token.ts, derived from the first pepper so it never changes. */
  idTagKey: Buffer;
  /** Key of the audit log's hash chain (audit/record.ts), derived the same way. */
  auditChainKey: Buffer;
}

export function makePeppers(secrets: string[]): Peppers {
  if (secrets.length === 0) throw new Error('at least one pepper is needed');
  const list = secrets.map((secret, index) => ({ version: index + 1, key: Buffer.from(secret, 'utf8') }));
  const first = list[0]!;
  return {
    current: list[list.length - 1]!,
    byVersion: new Map(list.map((p) => [p.version, p])),
    idTagKey: Buffer.from(hkdfSync('sha256', first.key, Buffer.alloc(0), 'paygate key-id tag v1', 32)),
    auditChainKey: Buffer.from(hkdfSync('sha256', first.key, Buffer.alloc(0), 'paygate audit chain v1', 32)),
  };
}

export function hashToken(pepper: Pepper, token: string): Buffer {
  return createHmac('sha256', pepper.key).update(token).digest();
}

/** Constant-time: no timing oracle on the secret. Both digests are 32 bytes. */
export function tokenMatches(peppers: Peppers, token: string, hash: Buffer, pepperVersion: number): boolean {
  const pepper = peppers.byVersion.get(pepperVersion);
  if (!pepper || hash.length !== 32) return false;
  return timingSafeEqual(hashToken(pepper, token), hash);
}
