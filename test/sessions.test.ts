/**
 * Admin sessions over real HTTP (SPEC §1, §2, §7): login and its throttle, session tokens as Bearer
 * and as cookie, logout, CSRF, identity routes and how a session picks its organization.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_SECRETS,
  createOrgKey,
  createOrgWithKey,
  createUser,
  expectProblem,
  expectStatus,
  login,
  startPaygate,
  type HttpResult,
  type TestApp,
} from './harness.js';
import { newId } from '../src/ids.js';

let t: TestApp;
beforeAll(async () => {
  t = await startPaygate();
});
afterAll(async () => t?.close());

interface SetCookie {
  value: string;
  attributes: string[];
}

/** The Set-Cookie headers of a response by cookie name, attributes lower-cased. */
function setCookies(result: HttpResult): Record<string, SetCookie> {
  const out: Record<string, SetCookie> = {};
  for (const header of result.headers.getSetCookie()) {
    const [pair, ...attributes] = header.split(';').map((s) => s.trim());
    const eq = pair!.indexOf('=');
    out[pair!.slice(0, eq)] = { value: pair!.slice(eq + 1), attributes: attributes.map((a) => a.toLowerCase()) };
  }
  return out;
}

async function auditRows(where: string, params: unknown[]) {
  return t.db.query<{ action: string; actor_type: string; actor_id: string | null; organization_id: string | null; target: { type: string; id: string } | null; outcome: string; details: Record<string, unknown> }>(
    `SELECT action, actor_type, actor_id, organization_id, target, outcome, details FROM audit_events WHERE ${where} ORDER BY seq`,
    params,
  );
}

/** A session JWT signed with the server's own secret, for forging tests. */
function signSession(claims: { sid: string; sub: string }, expiresInSeconds = 3600, secret = TEST_SECRETS.sessionSecret) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sid: claims.sid })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(now - 10)
    .setExpirationTime(now + expiresInSeconds)
    .setIssuer('paygate')
    .sign(new TextEncoder().encode(secret));
}

describe('login', () => {
  it('login sets an HttpOnly SameSite=Lax session cookie and a csrf cookie, and answers the user and token', async () => {
    const user = await createUser(t);
    const result = await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } });
    expectStatus(result, 200);
    expect(result.body.user).toMatchObject({ id: user.id, email: user.email, isGlobalAdmin: false });
    expect(result.body.token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    // Nothing about the password leaves the server.
    expect(result.text).not.toContain(user.password);
    expect(result.text).not.toMatch(/argon2|passwordHash|password_hash/);

    const cookies = setCookies(result);
    expect(cookies.session?.value).toBe(result.body.token);
    expect(cookies.session?.attributes).toEqual(expect.arrayContaining(['httponly', 'samesite=lax', 'path=/']));
    // Plain http here: no Secure flag (it would stop the browser sending the cookie at all).
    expect(cookies.session?.attributes).not.toContain('secure');
    expect(cookies.csrf?.value).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(cookies.csrf?.attributes).toEqual(expect.arrayContaining(['samesite=lax', 'path=/']));
    // The admin page must read the csrf cookie to echo it.
    expect(cookies.csrf?.attributes).not.toContain('httponly');
  });

  it('behind https the session and csrf cookies are Secure (SPEC §7)', async () => {
    const https = await startPaygate({ env: { PAYGATE_PUBLIC_URL: 'https://pay.example.com' } });
    try {
      const user = await createUser(https);
      const result = await https.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } });
      expectStatus(result, 200);
      const cookies = setCookies(result);
      expect(cookies.session?.attributes).toEqual(expect.arrayContaining(['secure', 'httponly', 'samesite=lax']));
      expect(cookies.csrf?.attributes).toContain('secure');
    } finally {
      await https.close();
    }
  });

  it('login is audited as session.created', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    const rows = await auditRows("action = 'session.created' AND actor_id = $1", [user.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor_type: 'user', actor_id: session.userId, outcome: 'success', target: { type: 'session' } });
  });

  it('the email is matched without regard to case', async () => {
    const user = await createUser(t);
    const result = await t.request('POST', '/v1/auth/login', { body: { email: user.email.toUpperCase(), password: user.password } });
    expectStatus(result, 200);
    expect(result.body.user.id).toBe(user.id);
  });

  it('a wrong password gets 401 problem+json and is audited as login.failed without the password', async () => {
    const user = await createUser(t);
    const result = await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: 'not-the-password-1' } });
    expectProblem(result, 401, 'invalid_session');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(setCookies(result).session).toBeUndefined();

    const rows = await auditRows("action = 'login.failed' AND target->>'id' = $1", [user.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'failure', target: { type: 'user', id: user.id }, details: { email: user.email } });
    expect(JSON.stringify(rows[0])).not.toContain('not-the-password-1');
  });

  it('an unknown email gets the same 401 as a wrong password and is audited as login.failed', async () => {
    const email = `nobody-${randomBytes(4).toString('hex')}@example.com`;
    const result = await t.request('POST', '/v1/auth/login', { body: { email, password: 'whatever-password' } });
    expectProblem(result, 401, 'invalid_session');
    const rows = await auditRows("action = 'login.failed' AND details->>'email' = $1", [email]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'failure', target: null });
  });

  it('login.failed keeps the typed email only when it is an address: a password typed into the email field is not kept', async () => {
    const typedPassword = `Tr0ub4dor&3-${randomBytes(4).toString('hex')}`;
    const result = await t.request('POST', '/v1/auth/login', { body: { email: typedPassword, password: 'whatever-password' } });
    expectProblem(result, 401, 'invalid_session');
    const rows = await auditRows("action = 'login.failed' AND request_id = $1", [result.body.requestId]);
    expect(rows).toEqual([expect.objectContaining({ outcome: 'failure', target: null, details: { email: null, emailMalformed: true } })]);
    const anywhere = await t.db.query("SELECT 1 FROM audit_events WHERE details::text LIKE '%' || $1 || '%'", [typedPassword]);
    expect(anywhere).toHaveLength(0);
    // An account's address is kept even when it is not a dotted domain (the first admin's admin@localhost).
    const local = `admin-${randomBytes(3).toString('hex')}@localhost`;
    await t.services.users.createGlobalAdmin(local, 'local-admin-password-1');
    const wrong = await t.request('POST', '/v1/auth/login', { body: { email: local, password: 'not-the-password-1' } });
    const [kept] = await auditRows("action = 'login.failed' AND request_id = $1", [wrong.body.requestId]);
    expect(kept!.details).toEqual({ email: local });
  });

  it('an address is stored and matched in one normal form: trimmed, lower-cased, NFC', async () => {
    const decomposed = `Jose\u0301-${randomBytes(3).toString('hex')}@Example.COM`;
    const { user } = await t.services.users.createGlobalAdmin(` ${decomposed} `, 'normal-form-password-1');
    expect(user.email).toBe(decomposed.normalize('NFC').toLowerCase());
    for (const typed of [decomposed, decomposed.normalize('NFC'), decomposed.toUpperCase(), `\t${decomposed.toLowerCase()} `]) {
      const result = await t.request('POST', '/v1/auth/login', { body: { email: typed, password: 'normal-form-password-1' } });
      expect(result.status, typed).toBe(200);
      expect(result.body.user.id).toBe(user.id);
    }
  });

  it('a login body without a password gets 400 validation_error', async () => {
    const result = await t.request('POST', '/v1/auth/login', { body: { email: 'someone@example.com' } });
    expectProblem(result, 400, 'validation_error');
    expect(result.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: '/password' })]));
  });

  it('after five failed attempts the account gets 429 rate_limited with Retry-After, even with the right password', async () => {
    const user = await createUser(t);
    for (let i = 0; i < 5; i++) {
      expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `wrong-password-${i}` } }), 401, 'invalid_session');
    }
    const blocked = await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } });
    expectProblem(blocked, 429, 'rate_limited');
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(setCookies(blocked).session).toBeUndefined();

    // Per account: another account from the same address still signs in.
    const other = await createUser(t);
    await login(t, other.email, other.password);
  });

  it('parallel wrong guesses cannot slip past the throttle', async () => {
    const user = await createUser(t);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `parallel-guess-${i}` } })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 401 || s === 429), statuses.join(',')).toBe(true);
    // The throttle allows five failures per account; no burst may get more guesses checked than that.
    expect(statuses.filter((s) => s === 401).length, statuses.join(',')).toBeLessThanOrEqual(5);
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 429, 'rate_limited');
  });

  it('after fifty failures from one address every account is throttled from it, and X-Forwarded-For does not get around that', async () => {
    // A server of its own: this throttles 127.0.0.1 for every other test on the node.
    const node = await startPaygate();
    try {
      const victim = await createUser(node);
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          Array.from({ length: 5 }, (_, i) =>
            node.request('POST', '/v1/auth/login', { body: { email: `spray-${round}-${i}@example.com`, password: 'Summer2024!x' } }),
          ),
        );
      }
      const blocked = await node.request('POST', '/v1/auth/login', { body: { email: victim.email, password: victim.password } });
      expectProblem(blocked, 429, 'rate_limited');
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      // Without trusted proxies configured, a forwarded-for header is the client's own claim and is ignored.
      const spoofed = await node.request('POST', '/v1/auth/login', {
        body: { email: victim.email, password: victim.password },
        headers: { 'x-forwarded-for': '203.0.113.9' },
      });
      expectProblem(spoofed, 429, 'rate_limited');
    } finally {
      await node.close();
    }
  });

  it('a successful login clears the account\'s earlier failures', async () => {
    const user = await createUser(t);
    for (let i = 0; i < 4; i++) {
      expectStatus(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `wrong-password-${i}` } }), 401);
    }
    await login(t, user.email, user.password);
    for (let i = 0; i < 4; i++) {
      expectStatus(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `wrong-again-${i}` } }), 401);
    }
    await login(t, user.email, user.password);
  });
});

describe('session tokens', () => {
  it('the session JWT works as a Bearer token', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    const me = await t.request('GET', '/v1/auth/me', { token: session.token });
    expectStatus(me, 200);
    expect(me.body.user).toEqual({ id: user.id, email: user.email, isGlobalAdmin: false });
  });

  it('the session cookie works on its own', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    const me = await t.request('GET', '/v1/auth/me', { cookies: session.cookies });
    expectStatus(me, 200);
    expect(me.body.user.id).toBe(user.id);
  });

  it('a tampered session JWT gets 401 invalid_session', async () => {
    const user = await createUser(t);
    const other = await createUser(t);
    const session = await login(t, user.email, user.password);
    const [header, payload, signature] = session.token.split('.') as [string, string, string];

    // Another subject with the original signature.
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const swapped = Buffer.from(JSON.stringify({ ...claims, sub: other.id })).toString('base64url');
    // One signature character changed.
    const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
    // alg "none".
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.x`;

    for (const token of [`${header}.${swapped}.${signature}`, `${header}.${payload}.${flipped}`, none, 'aaaa.bbbb.cccc']) {
      const result = await t.request('GET', '/v1/auth/me', { token });
      expectProblem(result, 401, 'invalid_session');
      expect(result.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    // The same garbage as a cookie.
    expectProblem(await t.request('GET', '/v1/auth/me', { cookies: { session: 'aaaa.bbbb.cccc' } }), 401, 'invalid_session');
    expectProblem(await t.request('GET', '/v1/auth/me', { cookies: { session: `${header}.${payload}.${flipped}` } }), 401, 'invalid_session');
  });

  it('a session JWT signed with another secret, naming an unknown session, or past its expiry gets 401 invalid_session', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    const [, payload] = session.token.split('.') as [string, string];
    const sid = JSON.parse(Buffer.from(payload, 'base64url').toString()).sid as string;

    const otherSecret = await signSession({ sid, sub: user.id }, 3600, 'another-secret-0123456789abcdefghijklmnopqrstuvwxyz');
    const unknownSession = await signSession({ sid: newId('session'), sub: user.id });
    const expired = await signSession({ sid, sub: user.id }, -60);
    for (const token of [otherSecret, unknownSession, expired]) {
      expectProblem(await t.request('GET', '/v1/auth/me', { token }), 401, 'invalid_session');
    }
    // The real token still works: none of the above touched the session.
    expectStatus(await t.request('GET', '/v1/auth/me', { token: session.token }), 200);
  });

  it('a Bearer value that is neither an API key nor JWT-shaped gets 401 invalid_api_key', async () => {
    for (const token of ['not-a-token', 'aaaa.bbbb', 'a.b.c.d']) {
      expectProblem(await t.request('GET', '/v1/auth/whoami', { token }), 401, 'invalid_api_key');
    }
  });

  it('the Bearer header wins over the session cookie', async () => {
    const alice = await createUser(t);
    const bob = await createUser(t);
    const aliceSession = await login(t, alice.email, alice.password);
    const bobSession = await login(t, bob.email, bob.password);

    const me = await t.request('GET', '/v1/auth/me', { token: aliceSession.token, cookies: bobSession.cookies });
    expectStatus(me, 200);
    expect(me.body.user.id).toBe(alice.id);

    // A bad Bearer value is refused even when a good cookie rides along: no falling back.
    expectProblem(await t.request('GET', '/v1/auth/me', { token: 'aaaa.bbbb.cccc', cookies: bobSession.cookies }), 401, 'invalid_session');
  });

  it('no credential at all gets 401 missing_credentials', async () => {
    const result = await t.request('GET', '/v1/auth/me');
    expectProblem(result, 401, 'missing_credentials');
    expect(result.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('an API key cannot use the session routes', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    expectProblem(await t.request('GET', '/v1/auth/me', { token: org.token }), 403, 'forbidden');
    expectProblem(await t.request('POST', '/v1/auth/logout', { token: org.token }), 403, 'forbidden');
  });

  it('logout ends the session at once, for the Bearer token and the cookie alike', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    // Used once on each path first, so any cache holds it.
    expectStatus(await t.request('GET', '/v1/auth/me', { token: session.token }), 200);
    expectStatus(await t.request('GET', '/v1/auth/me', { cookies: session.cookies }), 200);

    const logout = await t.request('POST', '/v1/auth/logout', { token: session.token });
    expectStatus(logout, 204);
    const cleared = setCookies(logout);
    for (const name of ['session', 'csrf']) {
      expect(cleared[name]?.value, name).toBe('');
    }

    expectProblem(await t.request('GET', '/v1/auth/me', { token: session.token }), 401, 'invalid_session');
    expectProblem(await t.request('GET', '/v1/auth/me', { cookies: session.cookies }), 401, 'invalid_session');
    expectProblem(await t.request('POST', '/v1/auth/logout', { token: session.token }), 401, 'invalid_session');

    const rows = await auditRows("action = 'session.ended' AND actor_id = $1", [user.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.target?.type).toBe('session');
  });

  it('logout ends only its own session', async () => {
    const user = await createUser(t);
    const first = await login(t, user.email, user.password);
    const second = await login(t, user.email, user.password);
    expectStatus(await t.request('POST', '/v1/auth/logout', { token: first.token }), 204);
    expectProblem(await t.request('GET', '/v1/auth/me', { token: first.token }), 401, 'invalid_session');
    expectStatus(await t.request('GET', '/v1/auth/me', { token: second.token }), 200);
  });

  it('logout by cookie with the CSRF header ends the session', async () => {
    const user = await createUser(t);
    const session = await login(t, user.email, user.password);
    expectStatus(await t.request('POST', '/v1/auth/logout', { cookies: session.cookies, headers: { 'x-csrf-token': session.csrf } }), 204);
    expectProblem(await t.request('GET', '/v1/auth/me', { cookies: session.cookies }), 401, 'invalid_session');
  });
});

describe('CSRF', () => {
  async function ownerSession() {
    const org = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const session = await login(t, user.email, user.password);
    return { org, user, session, path: `/v1/organizations/${org.organizationId}/organization` };
  }

  async function organizationName(org: { token: string }) {
    const result = await t.request('GET', '/v1/organization', { token: org.token });
    expectStatus(result, 200);
    return result.body.name as string;
  }

  it('an unsafe request by cookie without X-CSRF-Token gets 403 csrf_failed and changes nothing', async () => {
    const { org, session, path } = await ownerSession();
    const before = await organizationName(org);
    expectProblem(await t.request('PATCH', path, { cookies: session.cookies, body: { name: 'Changed by a forged form' } }), 403, 'csrf_failed');
    expect(await organizationName(org)).toBe(before);
  });

  it('an unsafe request by cookie with a wrong X-CSRF-Token gets 403 csrf_failed and changes nothing', async () => {
    const { org, session, path } = await ownerSession();
    const other = await ownerSession();
    const before = await organizationName(org);
    const sameLength = session.csrf.slice(0, -1) + (session.csrf.endsWith('A') ? 'B' : 'A');
    // Another session's csrf value is just as wrong.
    for (const wrong of [sameLength, 'short', '', other.session.csrf]) {
      const result = await t.request('PATCH', path, { cookies: session.cookies, headers: { 'x-csrf-token': wrong }, body: { name: 'Changed' } });
      expectProblem(result, 403, 'csrf_failed');
    }
    // The header alone, with no csrf cookie to match, is not enough either.
    const withoutCsrfCookie = await t.request('PATCH', path, {
      cookies: { session: session.cookies.session! },
      headers: { 'x-csrf-token': session.csrf },
      body: { name: 'Changed' },
    });
    expectProblem(withoutCsrfCookie, 403, 'csrf_failed');
    expect(await organizationName(org)).toBe(before);
  });

  it('a csrf cookie and header pair the attacker chose gets 403 csrf_failed: the token is bound to the session', async () => {
    const { org, session, path } = await ownerSession();
    const before = await organizationName(org);
    // An attacker who can plant cookies (a sibling subdomain, plain http) sets both to one value.
    const planted = randomBytes(32).toString('base64url');
    const forged = await t.request('PATCH', path, {
      cookies: { session: session.cookies.session!, csrf: planted },
      headers: { 'x-csrf-token': planted },
      body: { name: 'Changed by a planted cookie' },
    });
    expectProblem(forged, 403, 'csrf_failed');
    // Nor does another session's genuine token, with its own cookie.
    const other = await ownerSession();
    const borrowed = await t.request('PATCH', path, {
      cookies: { session: session.cookies.session!, csrf: other.session.csrf },
      headers: { 'x-csrf-token': other.session.csrf },
      body: { name: 'Changed with a borrowed token' },
    });
    expectProblem(borrowed, 403, 'csrf_failed');
    expect(await organizationName(org)).toBe(before);
    // The token is the session's own, the same on every login response of it.
    expect(session.csrf).toBe(t.services.sessions.csrf.tokenFor(JSON.parse(Buffer.from(session.token.split('.')[1]!, 'base64url').toString()).sid));
  });

  it('an unsafe request by cookie with the right X-CSRF-Token goes through', async () => {
    const { org, session, path } = await ownerSession();
    const result = await t.request('PATCH', path, { cookies: session.cookies, headers: { 'x-csrf-token': session.csrf }, body: { name: 'Renamed by cookie' } });
    expectStatus(result, 200);
    expect(await organizationName(org)).toBe('Renamed by cookie');
  });

  it('a Bearer-authenticated request needs no CSRF token', async () => {
    const { org, session, path } = await ownerSession();
    expectStatus(await t.request('PATCH', path, { token: session.token, body: { name: 'Renamed by bearer' } }), 200);
    expect(await organizationName(org)).toBe('Renamed by bearer');
  });

  it('a GET by cookie needs no CSRF token', async () => {
    const { org, session } = await ownerSession();
    const result = await t.request('GET', `/v1/organizations/${org.organizationId}/api-keys`, { cookies: session.cookies });
    expectStatus(result, 200);
  });

  it('logout by cookie without the CSRF header gets 403 csrf_failed and the session lives on', async () => {
    const { session } = await ownerSession();
    expectProblem(await t.request('POST', '/v1/auth/logout', { cookies: session.cookies }), 403, 'csrf_failed');
    expectStatus(await t.request('GET', '/v1/auth/me', { cookies: session.cookies }), 200);
  });
});

describe('identity and organization selection', () => {
  it('/v1/auth/me answers the user, memberships and no selected organization after login', async () => {
    const orgA = await createOrgWithKey(t, ['organization:read'], 'Alpha Org');
    const orgB = await createOrgWithKey(t, ['organization:read'], 'Beta Org');
    const user = await createUser(t, { organizationId: orgA.organizationId, role: 'developer' });
    await t.db.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [orgB.organizationId, user.id, 'viewer']);
    const session = await login(t, user.email, user.password);
    const me = await t.request('GET', '/v1/auth/me', { token: session.token });
    expectStatus(me, 200);
    expect(me.body).toEqual({
      user: { id: user.id, email: user.email, isGlobalAdmin: false },
      memberships: [
        { organizationId: orgA.organizationId, organizationName: 'Alpha Org', role: 'developer' },
        { organizationId: orgB.organizationId, organizationName: 'Beta Org', role: 'viewer' },
      ],
      selectedOrganization: null,
    });
  });

  it('whoami describes a user session with its roles', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: org.organizationId, role: 'admin' });
    const session = await login(t, user.email, user.password);
    const who = await t.request('GET', '/v1/auth/whoami', { token: session.token });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({
      type: 'user',
      keyId: null,
      tier: null,
      userId: user.id,
      organizationId: null,
      roles: [{ organizationId: org.organizationId, role: 'admin' }],
    });
  });

  it('selecting an organization the user belongs to sets the selectedOrganization cookie, and organization routes then work by cookie alone', async () => {
    const org = await createOrgWithKey(t, ['organization:read'], 'Selected Org');
    const user = await createUser(t, { organizationId: org.organizationId, role: 'developer' });
    const session = await login(t, user.email, user.password);

    const select = await t.request('PUT', '/v1/auth/selected-organization', {
      cookies: session.cookies,
      headers: { 'x-csrf-token': session.csrf },
      body: { organizationId: org.organizationId },
    });
    expectStatus(select, 200);
    expect(select.body.selectedOrganization).toEqual({ id: org.organizationId, name: 'Selected Org', role: 'developer' });
    const cookie = setCookies(select).selectedOrganization;
    expect(cookie?.value).toBe(org.organizationId);
    expect(cookie?.attributes).toEqual(expect.arrayContaining(['samesite=lax', 'path=/']));

    const cookies = { ...session.cookies, selectedOrganization: cookie!.value };
    const keys = await t.request('GET', '/v1/api-keys', { cookies });
    expectStatus(keys, 200);
    expect(keys.body.object).toBe('list');
    expect(keys.body.data.map((k: { id: string }) => k.id)).toContain(org.keyId);
    expect(keys.body.data.every((k: { organizationId: string }) => k.organizationId === org.organizationId)).toBe(true);

    const me = await t.request('GET', '/v1/auth/me', { cookies });
    expect(me.body.selectedOrganization).toEqual({ id: org.organizationId, name: 'Selected Org', role: 'developer' });
    const who = await t.request('GET', '/v1/auth/whoami', { cookies });
    expect(who.body).toMatchObject({ type: 'user', organizationId: org.organizationId });
    expect(who.body.scopes).toContain('api_key:*');
  });

  it('selecting an organization the user does not belong to gets 403 forbidden and sets no cookie', async () => {
    const own = await createOrgWithKey(t, ['organization:read']);
    const foreign = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: own.organizationId, role: 'owner' });
    const session = await login(t, user.email, user.password);
    for (const organizationId of [foreign.organizationId, newId('organization'), 'not-an-id']) {
      const result = await t.request('PUT', '/v1/auth/selected-organization', { token: session.token, body: { organizationId } });
      expectProblem(result, 403, 'forbidden');
      expect(setCookies(result).selectedOrganization).toBeUndefined();
    }
  });

  it('an organization route with neither an orgId in the path nor a selected organization gets 400 organization_required', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    const session = await login(t, user.email, user.password);
    expectProblem(await t.request('GET', '/v1/api-keys', { token: session.token }), 400, 'organization_required');
    expectProblem(await t.request('GET', '/v1/api-keys', { cookies: session.cookies }), 400, 'organization_required');
    expectProblem(await t.request('GET', '/v1/organization', { token: session.token }), 400, 'organization_required');
  });

  it('the orgId in the path works for a member and gets 403 forbidden for a non-member', async () => {
    const own = await createOrgWithKey(t, ['organization:read']);
    const foreign = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: own.organizationId, role: 'developer' });
    const session = await login(t, user.email, user.password);

    const mine = await t.request('GET', `/v1/organizations/${own.organizationId}/api-keys`, { token: session.token });
    expectStatus(mine, 200);
    expect(mine.body.data.map((k: { id: string }) => k.id)).toEqual([own.keyId]);

    expectProblem(await t.request('GET', `/v1/organizations/${foreign.organizationId}/api-keys`, { token: session.token }), 403, 'forbidden');
    // The path wins over the selected organization: a valid selection does not open another tenant.
    const cookies = { ...session.cookies, selectedOrganization: own.organizationId };
    expectProblem(await t.request('GET', `/v1/organizations/${foreign.organizationId}/api-keys`, { cookies }), 403, 'forbidden');
    // An organization that does not exist looks the same as one the user is not in.
    expectProblem(await t.request('GET', `/v1/organizations/${newId('organization')}/api-keys`, { token: session.token }), 403, 'forbidden');
  });

  it('a forged selectedOrganization cookie naming another organization gets 403 forbidden', async () => {
    const own = await createOrgWithKey(t, ['organization:read']);
    const foreign = await createOrgWithKey(t, ['organization:read']);
    const user = await createUser(t, { organizationId: own.organizationId, role: 'owner' });
    const session = await login(t, user.email, user.password);
    const cookies = { ...session.cookies, selectedOrganization: foreign.organizationId };
    expectProblem(await t.request('GET', '/v1/api-keys', { cookies }), 403, 'forbidden');
    expectProblem(await t.request('GET', '/v1/api-keys', { token: session.token, cookies: { selectedOrganization: foreign.organizationId } }), 403, 'forbidden');
    const me = await t.request('GET', '/v1/auth/me', { cookies });
    expect(me.body.selectedOrganization).toBeNull();
  });

  it('login chooses no organization: it clears a selectedOrganization cookie left from before', async () => {
    const user = await createUser(t);
    const result = await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password }, cookies: { selectedOrganization: newId('organization') } });
    expectStatus(result, 200);
    expect(setCookies(result).selectedOrganization?.value).toBe('');
  });

  it('a global admin can act in any organization', async () => {
    const org = await createOrgWithKey(t, ['organization:read'], 'Tenant Org');
    const admin = await createUser(t, { globalAdmin: true });
    const session = await login(t, admin.email, admin.password);

    const keys = await t.request('GET', `/v1/organizations/${org.organizationId}/api-keys`, { token: session.token });
    expectStatus(keys, 200);
    expect(keys.body.data.map((k: { id: string }) => k.id)).toEqual([org.keyId]);

    const created = await t.request('POST', `/v1/organizations/${org.organizationId}/api-keys`, { token: session.token, body: { name: 'by admin', scopes: ['client:create'] } });
    expectStatus(created, 201);
    expect(created.body.organizationId).toBe(org.organizationId);
    const rows = await auditRows("action = 'api_key.created' AND target->>'id' = $1", [created.body.id]);
    expect(rows[0]).toMatchObject({ actor_type: 'user', actor_id: admin.id, organization_id: org.organizationId });

    const select = await t.request('PUT', '/v1/auth/selected-organization', { token: session.token, body: { organizationId: org.organizationId } });
    expectStatus(select, 200);
    const cookies = { ...session.cookies, selectedOrganization: org.organizationId };
    const organization = await t.request('GET', '/v1/organization', { cookies });
    expectStatus(organization, 200);
    expect(organization.body.name).toBe('Tenant Org');

    // A global admin learns that an organization does not exist rather than being refused.
    expectProblem(await t.request('PUT', '/v1/auth/selected-organization', { token: session.token, body: { organizationId: newId('organization') } }), 404, 'not_found');
    expectProblem(await t.request('GET', `/v1/organizations/${newId('organization')}/api-keys`, { token: session.token }), 404, 'not_found');
  });

  it('whoami for a global admin in a selected organization reports every organization scope', async () => {
    const org = await createOrgWithKey(t, ['organization:read']);
    const admin = await createUser(t, { globalAdmin: true });
    // A global admin who is also a viewer there still acts with every scope (SPEC §3).
    await t.db.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [org.organizationId, admin.id, 'viewer']);
    const session = await login(t, admin.email, admin.password);
    const who = await t.request('GET', '/v1/auth/whoami', { cookies: { ...session.cookies, selectedOrganization: org.organizationId } });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ type: 'user', isGlobalAdmin: true, organizationId: org.organizationId });
    expect(who.body.scopes).toEqual(expect.arrayContaining(['api_key:*', 'client:*', 'organization:*', 'audit:*']));
    expectStatus(await t.request('PATCH', '/v1/organization', { token: session.token, cookies: { selectedOrganization: org.organizationId }, body: { name: 'Admin renamed' } }), 200);
    const none = await t.request('GET', '/v1/auth/whoami', { token: session.token });
    expect(none.body).toMatchObject({ organizationId: null, scopes: [] });
  });

  it('an organization key naming another organization in the path gets 403 organization_mismatch', async () => {
    const own = await createOrgWithKey(t, ['api_key:read']);
    const foreign = await createOrgWithKey(t, ['api_key:read']);
    expectStatus(await t.request('GET', `/v1/organizations/${own.organizationId}/api-keys`, { token: own.token }), 200);
    expectProblem(await t.request('GET', `/v1/organizations/${foreign.organizationId}/api-keys`, { token: own.token }), 403, 'organization_mismatch');
    // And a second key of the same organization is still only that organization's.
    const extra = await createOrgKey(t, own.organizationId, ['api_key:read']);
    const list = await t.request('GET', '/v1/api-keys', { token: extra.secret! });
    expect(list.body.data.map((k: { id: string }) => k.id).sort()).toEqual([own.keyId, extra.id].sort());
  });
});
