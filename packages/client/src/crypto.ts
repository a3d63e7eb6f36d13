/**
 * The one place the client touches cryptography: Web Crypto (`globalThis.crypto.subtle`), which
 * Node 20, 22 and 24 and every current browser provide, so no `node:crypto` import keeps the
 * package out of browsers. (In a browser, `crypto.subtle` exists only on https:// pages and
 * localhost; webhooks are verified on servers anyway.)
 */
function subtle(): SubtleCrypto {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('@paygate/client: Web Crypto (crypto.subtle) is not available here; Node 20+ or a browser on a secure (https) page is needed');
  return subtle;
}

/** HMAC-SHA256 of the concatenated `parts`, keyed with `key`'s UTF-8 bytes. */
export async function hmacSha256(key: string, parts: readonly Uint8Array[]): Promise<Uint8Array> {
  const crypto = subtle();
  const cryptoKey = await crypto.importKey('raw', new TextEncoder().encode(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const length = parts.reduce((sum, part) => sum + part.byteLength, 0);
  const message = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    message.set(part, offset);
    offset += part.byteLength;
  }
  return new Uint8Array(await crypto.sign('HMAC', cryptoKey, message));
}

/**
 * Equal byte strings, in time that depends only on the length (public: 32 for SHA-256), never on
 * where the first difference is: no timing oracle on a signature.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let difference = 0;
  for (let i = 0; i < a.byteLength; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}
