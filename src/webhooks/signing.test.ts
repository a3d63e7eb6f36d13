import { describe, expect, it } from 'vitest';
import { SECRET_PATTERN, newWebhookSecret, signPayload, signatureHeader } from './signing.js';
import { retryDelaySeconds } from './worker.js';

// Computed independently: printf '%s' '1700000000.{"id":"wev_1","object":"event"}' | openssl dgst -sha256 -hmac '<secret>'
const BODY = '{"id":"wev_1","object":"event"}';
const CURRENT = 'whsec_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg';
const PREVIOUS = 'whsec_zyxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJ';

describe('webhook signatures', () => {
  it('v1 is the hex HMAC-SHA256 of "<t>.<raw body>" keyed with the whole secret (docs/webhooks.md worked example)', () => {
    expect(signPayload(CURRENT, 1700000000, BODY)).toBe('54d9c5e1ab411b09138559c73cc851ee87596b8da0be121e544f841d741e3ffa');
  });

  it('the header carries t and one v1 per live secret, the current one first', () => {
    expect(signatureHeader([CURRENT], 1700000000, BODY)).toBe('t=1700000000,v1=54d9c5e1ab411b09138559c73cc851ee87596b8da0be121e544f841d741e3ffa');
    expect(signatureHeader([CURRENT, PREVIOUS], 1700000000, BODY)).toBe(
      't=1700000000,v1=54d9c5e1ab411b09138559c73cc851ee87596b8da0be121e544f841d741e3ffa,v1=87a35ca6076c1aa7ddde327c1316b1f6460fe53183ba2be8ce48cb0a454d9e45',
    );
  });

  it('secrets are whsec_ and 43 base62 characters, fresh every time', () => {
    const secrets = new Set(Array.from({ length: 50 }, () => newWebhookSecret()));
    expect(secrets.size).toBe(50);
    for (const secret of secrets) expect(secret).toMatch(SECRET_PATTERN);
  });
});

describe('retry delays', () => {
  it('the first retry is 30 to 60 seconds away', () => {
    expect(retryDelaySeconds(1, () => 0)).toBe(30);
    expect(retryDelaySeconds(1, () => 0.999)).toBeLessThan(60);
  });

  it('double with every attempt, with up to as much again as jitter, and stop growing at 6 hours', () => {
    expect(retryDelaySeconds(2, () => 0)).toBe(60);
    expect(retryDelaySeconds(5, () => 0)).toBe(480);
    expect(retryDelaySeconds(5, () => 0.5)).toBe(720);
    expect(retryDelaySeconds(20, () => 0)).toBe(6 * 3600);
    expect(retryDelaySeconds(20, () => 0.999)).toBeLessThan(12 * 3600);
  });

  it('over 3 days make about 15 to 25 attempts', () => {
    for (const jitter of [0, 0.5, 0.999]) {
      let elapsed = 0;
      let attempts = 1;
      while (elapsed < 3 * 86_400) elapsed += retryDelaySeconds(attempts++, () => jitter);
      expect(attempts).toBeGreaterThanOrEqual(15);
      expect(attempts).toBeLessThanOrEqual(25);
    }
  });
});
