/**
 * The cross-organization account takeover of issue 9, told as an attacker would try it (SPEC §7).
 * Accounts are instance-wide: the owner of organization A adds cfo@b.example, tries every way to
 * learn, set or receive that person's credentials, then removes them; later organization B adds the
 * same address. A must not be able to sign in as B's member or mint B's keys.
 *
 * Told twice: with SMTP (the invitation goes to the address, the inviter never sees a link) and
 * without (the inviter is handed the link, so A can at most make an account of its own under that
 * address, which B's invitation can never join without B's link).
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, createUser, expectProblem, expectStatus, login, startPaygate, type TestApp } from './harness.js';
import { linkIn, startMailReceiver, type MailReceiver } from './mail-receiver.js';
import { newId } from '../src/ids.js';

async function ownerOf(t: TestApp, name: string) {
  const org = await createOrgWithKey(t, ['organization:read'], name);
  const user = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
  const session = await login(t, user.email, user.password);
  return { organizationId: org.organizationId, user, token: session.token };
}

/** Everything A can read about the invitation it made: none of it may hold a credential or a link. */
async function everythingAcanRead(t: TestApp, a: { organizationId: string; token: string }) {
  const members = await t.request('GET', `/v1/organizations/${a.organizationId}/members`, { token: a.token });
  const audit = await t.request('GET', `/v1/organizations/${a.organizationId}/audit-events?limit=100`, { token: a.token });
  return `${members.text}\n${audit.text}`;
}

/** What B's new member could do, tried with a session: read and mint B's keys. */
async function expectNoAccessToB(t: TestApp, token: string, b: { organizationId: string }) {
  expectProblem(await t.request('GET', `/v1/organizations/${b.organizationId}/api-keys`, { token }), 403, 'forbidden');
  expectProblem(
    await t.request('POST', `/v1/organizations/${b.organizationId}/api-keys`, { token, body: { name: 'stolen', scopes: ['api_key:*'] } }),
    403,
    'forbidden',
  );
  const me = await t.request('GET', '/v1/auth/me', { token });
  expect(me.body.memberships.map((m: { organizationId: string }) => m.organizationId)).not.toContain(b.organizationId);
  expect(await t.db.query("SELECT 1 FROM api_keys WHERE organization_id = $1 AND name = 'stolen'", [b.organizationId])).toHaveLength(0);
}

describe('the cross-organization takeover, with SMTP configured', () => {
  let t: TestApp;
  let mail: MailReceiver;
  beforeAll(async () => {
    mail = await startMailReceiver();
    t = await startPaygate({ env: mail.env });
  });
  afterAll(async () => {
    await t?.close();
    await mail?.close();
  });

  it("A's owner can neither set, learn nor receive cfo@b.example's credentials, and never becomes B's member or mints B's keys", async () => {
    const a = await ownerOf(t, 'Org A');
    const b = await ownerOf(t, 'Org B');
    const cfo = `cfo-${randomBytes(3).toString('hex')}@b.example`;
    const chosen = 'a-chose-this-password';
    const membersOfA = `/v1/organizations/${a.organizationId}/members`;

    // 1. Set a password for the person: refused, nothing created.
    expectProblem(await t.request('POST', membersOfA, { token: a.token, body: { email: cfo, role: 'admin', password: chosen } }), 400, 'validation_error');
    expect(await t.db.query('SELECT 1 FROM users WHERE email = $1', [cfo])).toHaveLength(0);

    // 2. Invite: the link goes to the address, not to A.
    const invited = await t.request('POST', membersOfA, { token: a.token, body: { email: cfo, role: 'admin' } });
    expectStatus(invited, 201);
    expect(invited.body).toMatchObject({ object: 'invitation', email: cfo, status: 'pending' });
    expect(invited.body.url).toBeUndefined();
    const aMail = await mail.next(cfo);
    const aToken = linkIn(aMail, '/admin/accept-invitation').searchParams.get('token')!;
    // Nothing A can read holds the token.
    expect(await everythingAcanRead(t, a)).not.toContain(aToken);
    expect(t.logs.text()).not.toContain(aToken);

    // 3. Receive credentials some other way: a password reset for the address mails the address only.
    expectStatus(await t.request('POST', '/v1/auth/password-reset', { token: a.token, body: { email: cfo } }), 202);
    await t.services.passwordResets.idle();
    // (No account exists yet, so nothing is mailed at all.)
    await t.services.mailer!.idle();
    expect(mail.to(cfo)).toHaveLength(1);

    // 4. Guess at the invitation: tokens are 256 random bits; a guess is an unknown invitation.
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token: randomBytes(32).toString('base64url'), password: chosen } }), 404, 'not_found');

    // 5. A gives up on the person and withdraws (no membership exists to remove: it never was accepted).
    const listed = await t.request('GET', membersOfA, { token: a.token });
    expect(listed.body.data.filter((m: { object: string }) => m.object === 'member').map((m: { email: string }) => m.email)).not.toContain(cfo);
    expectStatus(await t.request('DELETE', `${membersOfA}/${invited.body.id}`, { token: a.token }), 204);
    // A's link is dead now, whoever holds it.
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token: aToken, password: chosen } }), 404, 'not_found');

    // 6. B adds the same address: an invitation, the same answer as for any address.
    const forB = await t.request('POST', `/v1/organizations/${b.organizationId}/members`, { token: b.token, body: { email: cfo, role: 'admin' } });
    expectStatus(forB, 201);
    expect(forB.body.url).toBeUndefined();
    const bToken = linkIn(await mail.next(cfo), '/admin/accept-invitation').searchParams.get('token')!;

    // 7. A tries to sign in as cfo@b.example: there is no password A knows.
    for (const password of [chosen, 'long-enough-password']) {
      expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: cfo, password } }), 401, 'invalid_session');
    }
    // ... nor can A's own session join B with a link A never had, or with the one it had.
    for (const token of [aToken, randomBytes(32).toString('base64url')]) {
      expectProblem(await t.request('POST', '/v1/auth/invitations/join', { token: a.token, body: { token } }), 404, 'not_found');
    }

    // 8. The real person opens B's link from their mailbox, chooses a password, and is B's admin.
    const accepted = await t.request('POST', '/v1/auth/invitations/accept', { body: { token: bToken, password: 'the-cfo-chose-this-one' } });
    expectStatus(accepted, 200);
    const cfoSession = await login(t, cfo, 'the-cfo-chose-this-one');
    expectStatus(await t.request('GET', `/v1/organizations/${b.organizationId}/api-keys`, { token: cfoSession.token }), 200);

    // 9. And A still has nothing in B.
    await expectNoAccessToB(t, a.token, b);
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: cfo, password: chosen } }), 401, 'invalid_session');
  });
});

describe('the cross-organization takeover, without SMTP (the inviter is handed the link)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => t?.close());

  it("A can at most make an account of its own under cfo@b.example; B's invitation never joins it, and A never mints B's keys", async () => {
    const a = await ownerOf(t, 'Org A');
    const b = await ownerOf(t, 'Org B');
    const cfo = `cfo-${randomBytes(3).toString('hex')}@b.example`;
    const chosen = 'a-chose-this-password';
    const membersOfA = `/v1/organizations/${a.organizationId}/members`;

    expectProblem(await t.request('POST', membersOfA, { token: a.token, body: { email: cfo, role: 'admin', password: chosen } }), 400, 'validation_error');

    // Without SMTP the link is A's to hand over, so A can redeem it itself: the account it makes
    // is A's own creation, with A's password, a member of A only.
    const invited = await t.request('POST', membersOfA, { token: a.token, body: { email: cfo, role: 'admin' } });
    expectStatus(invited, 201);
    const aToken = new URL(invited.body.url).searchParams.get('token')!;
    const redeemed = await t.request('POST', '/v1/auth/invitations/accept', { body: { token: aToken, password: chosen } });
    expectStatus(redeemed, 200);
    const cfoUserId = redeemed.body.userId as string;

    // A removes the membership: the account stays, as accounts are instance-wide.
    expectStatus(await t.request('DELETE', `${membersOfA}/${cfoUserId}`, { token: a.token }), 204);

    // B adds the same address: the same answer as for an address no account uses.
    const fresh = await t.request('POST', `/v1/organizations/${b.organizationId}/members`, { token: b.token, body: { email: `someone-${randomBytes(3).toString('hex')}@b.example`, role: 'admin' } });
    const forB = await t.request('POST', `/v1/organizations/${b.organizationId}/members`, { token: b.token, body: { email: cfo, role: 'admin' } });
    expectStatus(forB, 201);
    expect(Object.keys(forB.body).sort()).toEqual(Object.keys(fresh.body).sort());
    expect(forB.body.status).toBe(fresh.body.status);
    // The account is not attached: no membership until B's link is accepted by that account.
    expect(await t.db.query('SELECT 1 FROM memberships WHERE organization_id = $1 AND user_id = $2', [b.organizationId, cfoUserId])).toHaveLength(0);

    // A signs in as the account it made: that works, and gives nothing in B.
    const asCfo = await login(t, cfo, chosen);
    await expectNoAccessToB(t, asCfo.token, b);
    // Joining B needs B's link, which went to B's owner; A's old link is used up, guesses are unknown.
    for (const token of [aToken, randomBytes(32).toString('base64url')]) {
      expectProblem(await t.request('POST', '/v1/auth/invitations/join', { token: asCfo.token, body: { token } }), 404, 'not_found');
    }
    // Nor does a reset hand A anything without SMTP.
    const reset = await t.request('POST', '/v1/auth/password-reset', { body: { email: cfo } });
    expectStatus(reset, 202);
    expect(reset.text).not.toMatch(/token|url/i);
    await t.services.passwordResets.idle();
    expect(await t.db.query('SELECT 1 FROM password_resets WHERE user_id = $1', [cfoUserId])).toHaveLength(0);

    // When B's owner hands the link to the real person, the link cannot set the password of the
    // account A made: it must sign in (which only A can), so B's invitation stays pending and the
    // takeover fails closed.
    const bToken = new URL(forB.body.url).searchParams.get('token')!;
    const inspected = await t.request('POST', '/v1/auth/invitations/inspect', { body: { token: bToken } });
    expect(inspected.body).toMatchObject({ organizationId: b.organizationId, accountExists: true });
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token: bToken, password: 'the-cfo-chose-this-one' } }), 409, 'conflict');
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: cfo, password: 'the-cfo-chose-this-one' } }), 401, 'invalid_session');
    await expectNoAccessToB(t, asCfo.token, b);
    await expectNoAccessToB(t, a.token, b);
  });
});

describe('the cross-organization takeover of a legacy account without a password (no SMTP)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => t?.close());

  /**
   * What migrations 10 and 13 leave of an account the old flow made: no password, a member of B,
   * and B's old set-password link turned into an invitation tied to that account.
   */
  async function legacyMemberOf(b: { organizationId: string }, email: string) {
    const userId = newId('user');
    await t.db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, NULL)', [userId, email]);
    await t.db.query("INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'admin')", [b.organizationId, userId]);
    const token = randomBytes(32).toString('base64url');
    await t.db.query(
      `INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_by, sets_password_of)
       VALUES ($1, $2, $3, 'admin', $4, now() + interval '7 days', '{"type": "system", "id": null}', $5)`,
      [newId('invitation'), b.organizationId, email, createHash('sha256').update(token).digest(), userId],
    );
    return { userId, legacyToken: token };
  }

  it("A's invitation link never sets the password of B's member who has none; only B's own old link does", async () => {
    const a = await ownerOf(t, 'Org A');
    const b = await ownerOf(t, 'Org B');
    const cfo = `cfo-${randomBytes(3).toString('hex')}@b.example`;
    const chosen = 'a-chose-this-password';
    const legacy = await legacyMemberOf(b, cfo);

    // A (no SMTP: it is handed the link) invites the address and accepts with a password it chose.
    const invited = await t.request('POST', `/v1/organizations/${a.organizationId}/members`, { token: a.token, body: { email: cfo, role: 'viewer' } });
    expectStatus(invited, 201);
    const aToken = new URL(invited.body.url).searchParams.get('token')!;
    const inspected = await t.request('POST', '/v1/auth/invitations/inspect', { body: { token: aToken } });
    expect(inspected.body).toMatchObject({ organizationId: a.organizationId, accountExists: true });
    const accepted = await t.request('POST', '/v1/auth/invitations/accept', { body: { token: aToken, password: chosen } });
    expectProblem(accepted, 409, 'conflict');
    expect(accepted.body.signInRequired).toBe(true);

    // Nothing changed: no password, A's invitation still pending, and A cannot sign in as B's member.
    const [row] = await t.db.query<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE id = $1', [legacy.userId]);
    expect(row!.password_hash).toBeNull();
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: cfo, password: chosen } }), 401, 'invalid_session');
    await expectNoAccessToB(t, a.token, b);
    expect(await t.db.query('SELECT 1 FROM memberships WHERE organization_id = $1 AND user_id = $2', [a.organizationId, legacy.userId])).toHaveLength(0);

    // B's own old link (the one the old flow sent the person) still sets the password, once.
    const legacyInspected = await t.request('POST', '/v1/auth/invitations/inspect', { body: { token: legacy.legacyToken } });
    expect(legacyInspected.body).toMatchObject({ organizationId: b.organizationId, accountExists: false });
    const own = await t.request('POST', '/v1/auth/invitations/accept', { body: { token: legacy.legacyToken, password: 'the-cfo-chose-this-one' } });
    expectStatus(own, 200);
    expect(own.body).toMatchObject({ userId: legacy.userId, organizationId: b.organizationId });
    const cfoSession = await login(t, cfo, 'the-cfo-chose-this-one');
    expectStatus(await t.request('GET', `/v1/organizations/${b.organizationId}/api-keys`, { token: cfoSession.token }), 200);
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token: legacy.legacyToken, password: 'another-password-22' } }), 404, 'not_found');

    // And A's link still cannot replace the password now that it exists.
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token: aToken, password: chosen } }), 409, 'conflict');
    expectProblem(await t.request('POST', '/v1/auth/login', { body: { email: cfo, password: chosen } }), 401, 'invalid_session');
  });

  it("an old set-password link works only for its own account: tied to another organization's member, it sets nothing", async () => {
    const b = await ownerOf(t, 'Org B');
    const c = await ownerOf(t, 'Org C');
    const cfo = `cfo-${randomBytes(3).toString('hex')}@b.example`;
    const legacy = await legacyMemberOf(b, cfo);
    // C's invitation for the address, even if it were marked like an old link, is not tied to this account.
    const token = randomBytes(32).toString('base64url');
    await t.db.query(
      `INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_by)
       VALUES ($1, $2, $3, 'admin', $4, now() + interval '7 days', '{"type": "system", "id": null}')`,
      [newId('invitation'), c.organizationId, cfo, createHash('sha256').update(token).digest()],
    );
    expectProblem(await t.request('POST', '/v1/auth/invitations/accept', { body: { token, password: 'c-chose-this-password' } }), 409, 'conflict');
    const [row] = await t.db.query<{ password_hash: string | null }>('SELECT password_hash FROM users WHERE id = $1', [legacy.userId]);
    expect(row!.password_hash).toBeNull();
  });
});
