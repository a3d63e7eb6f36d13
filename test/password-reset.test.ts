/**
 * Password reset (SPEC §7) over HTTP, with a real SMTP receiver: the request always answers 202 and
 * says nothing about the account; the mailed link works once, for 30 minutes; confirming sets the
 * password and ends every session of the user on every node; requests are rate-limited per source
 * address and per account.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, createUser, expectProblem, expectStatus, login, startPaygate, type TestApp, type TestDatabase } from './harness.js';
import { linkIn, startMailReceiver, type MailReceiver } from './mail-receiver.js';

let t: TestApp;
let mail: MailReceiver;
let database: TestDatabase;
beforeAll(async () => {
  mail = await startMailReceiver();
  database = await createTestDatabase();
  // The per-address limit is counted per client address: trusted proxies let a test be several.
  t = await startPaygate({ database, env: { ...mail.env, PAYGATE_TRUSTED_PROXIES: '127.0.0.1' } });
});
afterAll(async () => {
  await t?.close();
  await mail?.close();
  await database?.drop();
});

let nextAddress = 1;
/** A client address of its own for each test, so the per-address limit of one never meets another's. */
const client = () => ({ 'x-forwarded-for': `198.51.100.${nextAddress++}` });

async function requestReset(email: string, headers = client()) {
  const result = await t.request('POST', '/v1/auth/password-reset', { body: { email }, headers });
  await t.services.passwordResets.idle();
  await t.services.mailer!.idle();
  return result;
}

async function resetLink(email: string): Promise<string> {
  expectStatus(await requestReset(email), 202);
  return linkIn(await mail.next(email), '/admin/reset-password').searchParams.get('token')!;
}

async function auditRows(action: string, where: string, params: unknown[]) {
  return t.db.query<{ actor_id: string | null; target: { id: string } | null; details: Record<string, unknown> }>(
    `SELECT actor_id, target, details FROM audit_events WHERE action = $1 AND ${where} ORDER BY seq`,
    [action, ...params],
  );
}

describe('password reset', () => {
  it('answers 202 with the same body whether or not an account uses the address, and mails only an existing account', async () => {
    const user = await createUser(t);
    const nobody = `nobody-${randomBytes(4).toString('hex')}@example.com`;
    const known = await requestReset(user.email.toUpperCase());
    const unknown = await requestReset(nobody);
    expect([known.status, unknown.status]).toEqual([202, 202]);
    expect(known.text).toBe(unknown.text);
    const message = await mail.next(user.email);
    expect(message.subject).toBe('Reset your Paygate password');
    expect(mail.to(nobody)).toHaveLength(0);
    expect(linkIn(message, '/admin/reset-password').searchParams.get('token')).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const requested = await auditRows('password_reset.requested', "target->>'id' = $2", [user.id]);
    expect(requested).toEqual([expect.objectContaining({ details: { email: user.email, mailed: true } })]);
    const unknownRows = await auditRows('password_reset.requested', "details->>'email' = $2", [nobody]);
    expect(unknownRows).toEqual([expect.objectContaining({ target: null, details: { email: nobody, mailed: false } })]);
  });

  it('the link sets the new password once, and the old password stops working', async () => {
    const user = await createUser(t);
    const token = await resetLink(user.email);
    const confirmed = await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'brand-new-password-1' } });
    expectStatus(confirmed, 200);
    expect(confirmed.body).toMatchObject({ email: user.email, completed: true });
    await login(t, user.email, 'brand-new-password-1');
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 401, 'invalid_session');
    expectProblem(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'another-password-22' } }), 404, 'not_found');
    await login(t, user.email, 'brand-new-password-1');
    const completed = await auditRows('password_reset.completed', "target->>'id' = $2", [user.id]);
    expect(completed).toEqual([expect.objectContaining({ actor_id: user.id })]);
  });

  it('using one link ends every other link of the account', async () => {
    const user = await createUser(t);
    const first = await resetLink(user.email);
    const second = await resetLink(user.email);
    expectStatus(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token: second, password: 'brand-new-password-1' } }), 200);
    expectProblem(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token: first, password: 'brand-new-password-2' } }), 404, 'not_found');
  });

  it('a new password must pass the policy, and a refused one leaves the link usable', async () => {
    const user = await createUser(t);
    const token = await resetLink(user.email);
    for (const password of ['short', '            ', 'Password123']) {
      const refused = await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password } });
      expectProblem(refused, 400, 'validation_error');
      expect(refused.body.errors).toEqual([expect.objectContaining({ path: '/password' })]);
    }
    expectStatus(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'brand-new-password-1' } }), 200);
  });

  it('the link expires after 30 minutes, and only its hash is stored', async () => {
    const user = await createUser(t);
    const token = await resetLink(user.email);
    const [row] = await t.db.query<{ token_hash: Buffer; ttl: number }>(
      'SELECT token_hash, extract(epoch FROM expires_at - created_at)::int AS ttl FROM password_resets WHERE user_id = $1',
      [user.id],
    );
    expect(Math.abs(row!.ttl - 1800)).toBeLessThanOrEqual(2);
    expect(row!.token_hash.toString('base64url')).not.toBe(token);
    expect(t.logs.text()).not.toContain(token);
    await t.db.query("UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE user_id = $1", [user.id]);
    expectProblem(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'brand-new-password-1' } }), 404, 'not_found');
  });

  it('completing a reset ends every session of the user on every node', async () => {
    const second = await startPaygate({ database, env: mail.env });
    try {
      const user = await createUser(t);
      const here = await login(t, user.email, user.password);
      const there = await login(second, user.email, user.password);
      // Used on both nodes, by Bearer and cookie, so each node's cache holds them.
      expectStatus(await t.request('GET', '/v1/auth/me', { token: here.token }), 200);
      expectStatus(await second.request('GET', '/v1/auth/me', { token: there.token }), 200);
      expectStatus(await second.request('GET', '/v1/auth/me', { cookies: here.cookies }), 200);

      const token = await resetLink(user.email);
      expectStatus(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'brand-new-password-1' } }), 200);

      for (const [node, session] of [[t, here], [second, there], [second, here]] as const) {
        expectProblem(await node.request('GET', '/v1/auth/me', { token: session.token }), 401, 'invalid_session');
      }
      expectProblem(await second.request('GET', '/v1/auth/me', { cookies: there.cookies }), 401, 'invalid_session');
      const ended = await t.db.query('SELECT 1 FROM sessions WHERE user_id = $1 AND ended_at IS NULL', [user.id]);
      expect(ended).toHaveLength(0);
      const [completed] = await auditRows('password_reset.completed', "target->>'id' = $2", [user.id]);
      expect(completed!.details).toEqual({ sessionsEnded: 2 });
    } finally {
      await second.close();
    }
  });

  it('a reset through the mailbox ends a lockout by wrong guesses', async () => {
    const user = await createUser(t);
    for (let i = 0; i < 5; i++) await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: `wrong-guess-${i}` }, headers: client() });
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 429, 'rate_limited');
    const token = await resetLink(user.email);
    expectStatus(await t.request('POST', '/v1/auth/password-reset/confirm', { body: { token, password: 'brand-new-password-1' } }), 200);
    await login(t, user.email, 'brand-new-password-1');
  });

  it('an account is mailed at most three links an hour per source and ten from all sources together; the answer stays 202', async () => {
    const user = await createUser(t);
    const one = client();
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push((await requestReset(user.email, one)).status);
    expect(answers).toEqual([202, 202, 202, 202, 202]);
    expect(mail.to(user.email)).toHaveLength(3);
    // Other sources still get theirs (one source cannot use up the account's mail), up to ten in all.
    for (let i = 0; i < 8; i++) expectStatus(await requestReset(user.email), 202);
    expect(mail.to(user.email)).toHaveLength(10);
  });

  it("strangers' requests cannot starve the owner's own: a source the account signed in from keeps its three links", async () => {
    const user = await createUser(t);
    const home = client();
    expectStatus(await t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password }, headers: home }), 200);
    // Strangers from many sources use up the account's ten.
    for (let i = 0; i < 12; i++) await requestReset(user.email);
    expect(mail.to(user.email)).toHaveLength(10);
    // The owner, from where they signed in, still gets a link.
    expectStatus(await requestReset(user.email, home), 202);
    expect(mail.to(user.email)).toHaveLength(11);
  });

  it('requests for unknown addresses are audited per source and minute: a flood writes two rows, with the count and the addresses asked for', async () => {
    const source = client();
    const asked = Array.from({ length: 12 }, (_, i) => `flood-${i}-${randomBytes(3).toString('hex')}@example.com`);
    for (const email of asked) expectStatus(await requestReset(email, source), 202);
    await t.services.audit.bursts.flush(true);
    const rows = await auditRows('password_reset.requested', "ip = $2 AND target IS NULL", [source['x-forwarded-for']]);
    expect(rows).toEqual([
      expect.objectContaining({ details: { email: asked[0], mailed: false } }),
      expect.objectContaining({ details: expect.objectContaining({ attempts: 11, aggregated: true, emails: asked.slice(1) }) }),
    ]);
  });

  it('one source address gets 429 rate_limited after twenty requests an hour, whatever the addresses it asks for', async () => {
    const source = client();
    const statuses = [];
    for (let i = 0; i < 21; i++) statuses.push((await requestReset(`spray-${i}-${randomBytes(3).toString('hex')}@example.com`, source)).status);
    expect(statuses.slice(0, 20).every((s) => s === 202)).toBe(true);
    const refused = await requestReset(`spray-last@example.com`, source);
    expectProblem(refused, 429, 'rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another source is not affected.
    expectStatus(await requestReset(`other-${randomBytes(3).toString('hex')}@example.com`), 202);
  });

  it('without SMTP a request answers the same 202 and leaves no link behind', async () => {
    const plain = await startPaygate();
    try {
      const user = await createUser(plain);
      const result = await plain.request('POST', '/v1/auth/password-reset', { body: { email: user.email } });
      expectStatus(result, 202);
      await plain.services.passwordResets.idle();
      expect(await plain.db.query('SELECT 1 FROM password_resets WHERE user_id = $1', [user.id])).toHaveLength(0);
    } finally {
      await plain.close();
    }
  });
});
