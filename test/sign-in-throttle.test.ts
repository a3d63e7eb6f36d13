/**
 * The sign-in throttle and the limiters under attack (issue 9): a flood of junk logins from many
 * addresses must neither give a locked account fresh guesses nor hand an exhausted key a fresh
 * quota; a refused source opens no per-account windows; IPv6 sources are counted per /64, and a /48
 * opens only so many of them; junk for unknown addresses opens no account windows at all, so it
 * cannot fill the fail-closed table and lock everyone out; a Unicode case variant of an address is
 * not a second bucket for the same account. One tenant cannot fill the key limiter either.
 *
 * The floods run against the in-memory limiters with a small table (the attack of the issue needed
 * a table full of junk; a small one makes that a few dozen requests), so REDIS_URL is unset here.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, createUser, expectProblem, expectStatus, startPaygate, type TestApp } from './harness.js';
import { MemoryRateLimiter } from '../src/rate-limit/limiter.js';
import { newId } from '../src/ids.js';
import { hashPassword } from '../src/users/passwords.js';
import { NEW_SOURCES_PER_NETWORK } from '../src/auth/throttle.js';

const MEMORY = { REDIS_URL: '', PAYGATE_TRUSTED_PROXIES: '127.0.0.1' };
let t: TestApp;
afterEach(async () => {
  await t?.close();
});

const from = (ip: string) => ({ 'x-forwarded-for': ip });
const signIn = (email: string, password: string, ip = '192.0.2.1') => t.request('POST', '/v1/auth/login', { body: { email, password }, headers: from(ip) });

/** Junk logins with fresh emails, `perAddress` from each of `addresses` distinct sources. */
async function flood(addresses: number, perAddress: number) {
  for (let a = 0; a < addresses; a++) {
    const ip = `203.0.113.${a + 1}`;
    await Promise.all(Array.from({ length: perAddress }, (_, i) => signIn(`junk-${a}-${i}-${randomBytes(3).toString('hex')}@example.com`, 'junk-password', ip)));
  }
}

async function lockedAccount() {
  const user = await createUser(t);
  for (let i = 0; i < 5; i++) expectProblem(await signIn(user.email, `wrong-guess-${i}`), 401, 'invalid_session');
  expectProblem(await signIn(user.email, user.password), 429, 'rate_limited');
  return user;
}

describe('the sign-in throttle under a flood of junk logins', () => {
  it('a locked account gets no fresh guesses, however many junk logins fill the table', async () => {
    t = await startPaygate({ env: MEMORY, services: { limiterCapacity: 40 } });
    const victim = await lockedAccount();
    await flood(30, 3);
    // The table is full of live windows now: the victim's lockout is one of them, and holds.
    for (const ip of ['192.0.2.1', '192.0.2.77']) {
      expectProblem(await signIn(victim.email, victim.password, ip), 429, 'rate_limited');
    }
    expect((t.services.signInLimiters.addresses as MemoryRateLimiter).size).toBeLessThanOrEqual(40);
  });

  it("an exhausted key's window survives the flood: the key serves no more requests", async () => {
    t = await startPaygate({ env: MEMORY, services: { limiterCapacity: 40 } });
    const org = await createOrgWithKey(t, ['organization:read']);
    const key = await createOrgKey(t, org.organizationId, ['organization:read'], { rateLimit: { requests: 3, windowSeconds: 86_400 } });
    for (let i = 0; i < 3; i++) expectStatus(await t.request('GET', '/v1/organization', { token: key.secret! }), 200);
    expectProblem(await t.request('GET', '/v1/organization', { token: key.secret! }), 429, 'rate_limited');
    await flood(30, 3);
    expectProblem(await t.request('GET', '/v1/organization', { token: key.secret! }), 429, 'rate_limited');
  });

  it('a source over its limit opens no per-account windows', async () => {
    t = await startPaygate({ env: MEMORY });
    const limiter = t.services.signInLimiters.addresses as MemoryRateLimiter;
    const ip = '198.51.100.9';
    for (let i = 0; i < 50; i++) await signIn(`spray-${i}@example.com`, 'junk-password', ip);
    const before = limiter.size;
    const refused = await Promise.all(Array.from({ length: 20 }, (_, i) => signIn(`more-${i}-${randomBytes(3).toString('hex')}@example.com`, 'junk-password', ip)));
    expect(refused.every((r) => r.status === 429), refused.map((r) => r.status).join(',')).toBe(true);
    expect(limiter.size).toBe(before);
  });
});

describe('the per-address throttle', () => {
  beforeEach(async () => {
    t = await startPaygate({ env: MEMORY });
  });

  it('counts an IPv6 source per /64: fifty failures across one /64 throttle all of it, and not the next /64', async () => {
    const user = await createUser(t);
    for (let i = 0; i < 50; i++) await signIn(`spray-${i}@example.com`, 'junk-password', `2001:db8:1:2::${(i + 1).toString(16)}`);
    expectProblem(await signIn(user.email, user.password, '2001:db8:1:2:ffff:ffff:ffff:ffff'), 429, 'rate_limited');
    expectStatus(await signIn(user.email, user.password, '2001:db8:1:3::1'), 200);
  });

  it('counts an IPv4-mapped IPv6 client as its IPv4 address', async () => {
    const user = await createUser(t);
    for (let i = 0; i < 50; i++) await signIn(`spray-${i}@example.com`, 'junk-password', '192.0.2.200');
    expectProblem(await signIn(user.email, user.password, '::ffff:192.0.2.200'), 429, 'rate_limited');
  });
});

describe('one normal form of an address for the throttle and the lookup', () => {
  beforeEach(async () => {
    t = await startPaygate({ env: MEMORY });
  });

  it('a Unicode case variant of a locked address is neither a second bucket nor a way to sign in', async () => {
    // An address with an "i": "İ" (U+0130) lower-cases to "i̇" in JavaScript but to "i" in
    // PostgreSQL's lower() under a UTF-8 locale, which made it a new bucket for the same account.
    const email = `victim-${randomBytes(3).toString('hex')}@example.com`;
    const password = 'victim-password-1';
    await t.db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [newId('user'), email, await hashPassword(password)]);
    for (let i = 0; i < 5; i++) expectProblem(await signIn(email, `wrong-guess-${i}`), 401, 'invalid_session');
    for (const variant of [email.replace('i', 'İ'), email.replaceAll('i', 'İ'), email.replace('victim', 'VİCTİM')]) {
      const result = await signIn(variant, password);
      expect(result.status, `${variant}: ${result.text}`).not.toBe(200);
    }
    // Plain case variants are the same account, and so the same (locked) bucket.
    expectProblem(await signIn(email.toUpperCase(), password), 429, 'rate_limited');
    expectProblem(await signIn(` ${email} `, password), 429, 'rate_limited');
  });
});

describe('the fail-closed sign-in table cannot be filled by anyone', () => {
  const addresses = () => t.services.signInLimiters.addresses as MemoryRateLimiter;
  const accounts = () => t.services.signInLimiters.accounts as MemoryRateLimiter;
  const resetFrom = (email: string, ip: string) => t.request('POST', '/v1/auth/password-reset', { body: { email }, headers: from(ip) });

  it('junk password resets from many /64s of one /48 fill neither table: every sign-in from elsewhere still works', async () => {
    // The review's reproduction: capacity 60, resets for made-up addresses from 200 /64s.
    t = await startPaygate({ env: MEMORY, services: { limiterCapacity: 60 } });
    const user = await createUser(t);
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) statuses.push((await resetFrom(`junk-${i}-${randomBytes(3).toString('hex')}@example.com`, `2001:db8:aaaa:${i.toString(16)}::1`)).status);
    await t.services.passwordResets.idle();
    // The /48 opens sixteen /64 windows; the rest of it waits (429), and nothing else does.
    expect(statuses.filter((s) => s === 202)).toHaveLength(NEW_SOURCES_PER_NETWORK);
    expect(statuses.filter((s) => s === 429)).toHaveLength(200 - NEW_SOURCES_PER_NETWORK);
    expect(addresses().size).toBeLessThanOrEqual(NEW_SOURCES_PER_NETWORK + 1);
    // Made-up addresses opened no account window at all.
    expect(accounts().size).toBe(0);
    // New sources, IPv4 and another /48, still sign in.
    expectStatus(await signIn(user.email, user.password, '192.0.2.50'), 200);
    expectStatus(await signIn(user.email, user.password, '2001:db8:bbbb:1::1'), 200);
  });

  it('junk logins for unknown addresses open no account windows, yet answer as an account would: 401 five times, then 429', async () => {
    t = await startPaygate({ env: MEMORY, services: { limiterCapacity: 60 } });
    const nobody = `nobody-${randomBytes(3).toString('hex')}@example.com`;
    const user = await createUser(t);
    const answers = { nobody: [] as number[], user: [] as number[] };
    for (let i = 0; i < 6; i++) {
      answers.nobody.push((await signIn(nobody, `guess-${i}-password`, '192.0.2.10')).status);
      answers.user.push((await signIn(user.email, `guess-${i}-password`, '192.0.2.11')).status);
    }
    expect(answers.nobody).toEqual([401, 401, 401, 401, 401, 429]);
    expect(answers.user).toEqual(answers.nobody);
    // Only the real account holds a window; a thousand junk addresses from many sources add none.
    expect(accounts().size).toBe(1);
    for (let a = 0; a < 20; a++) {
      await Promise.all(Array.from({ length: 5 }, (_, i) => signIn(`junk-${a}-${i}-${randomBytes(3).toString('hex')}@example.com`, 'junk-password', `198.51.100.${a + 1}`)));
    }
    expect(accounts().size).toBe(1);
  });
});

describe('the key limiter: each organization holds a bounded share', () => {
  it("one tenant's many rate-limited keys cannot switch off another tenant's limits, and its own extra keys wait", async () => {
    // 40 windows in all, 4 per organization.
    t = await startPaygate({ env: MEMORY, services: { limiterCapacity: 40 } });
    const flooder = await createOrgWithKey(t, ['organization:read']);
    const keys = [];
    for (let i = 0; i < 40; i++) keys.push(await createOrgKey(t, flooder.organizationId, ['organization:read'], { rateLimit: { requests: 1000, windowSeconds: 86_400 } }));
    const answers = [];
    for (const key of keys) answers.push((await t.request('GET', '/v1/organization', { token: key.secret! })).status);
    // The flooder's own share holds four windows; its other keys are refused (fail closed), not let through.
    expect(answers.filter((s) => s === 200)).toHaveLength(4);
    expect(answers.filter((s) => s === 429)).toHaveLength(36);
    expect((t.services.rateLimiter as MemoryRateLimiter).sizeOf(flooder.organizationId)).toBe(4);
    // Another tenant's limited key is still counted: its limit holds.
    const victim = await createOrgWithKey(t, ['organization:read']);
    const limited = await createOrgKey(t, victim.organizationId, ['organization:read'], { rateLimit: { requests: 2, windowSeconds: 86_400 } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await t.request('GET', '/v1/organization', { token: limited.secret! })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('an organization holds at most its number of active keys: past it, creating one is 409 conflict until one is revoked', async () => {
    t = await startPaygate({ env: MEMORY, services: { maxKeysPerOrganization: 3 } });
    const org = await createOrgWithKey(t, ['api_key:*']);
    const create = (name: string) => t.request('POST', '/v1/api-keys', { token: org.token, body: { name, scopes: ['api_key:read'] } });
    expectStatus(await create('second'), 201);
    const third = await create('third');
    expectStatus(third, 201);
    const refused = await create('fourth');
    expectProblem(refused, 409, 'conflict');
    expect(refused.body).toMatchObject({ limit: 3 });
    expectStatus(await t.request('POST', `/v1/api-keys/${third.body.id}/revoke`, { token: org.token }), 200);
    expectStatus(await create('fourth'), 201);
  });
});
