/** A random (version 4) UUID: Web Crypto's randomUUID where it exists, else one built from getRandomValues. */
export function randomUuid(): string {
  const crypto = globalThis.crypto;
  // randomUUID exists in Node 20+ and in browsers' secure contexts; getRandomValues everywhere.
  if (typeof crypto?.randomUUID === 'function') return crypto.randomUUID();
  if (typeof crypto?.getRandomValues !== 'function') throw new Error('@paygate/client needs Web Crypto (crypto.getRandomValues) for Idempotency-Key values');
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
