/**
 * E-mail (SPEC §7) against a real SMTP receiver the test starts: invitations are mailed once they
 * have committed and the link in the message completes the flow over HTTP; a failed delivery never
 * undoes the invitation; PAYGATE_SMTP_URL and PAYGATE_MAIL_FROM are checked at start.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { createOrgWithKey, createSystemKey, createUser, expectProblem, expectStatus, login, startPaygate, type TestApp } from './harness.js';
import { linkIn, startMailReceiver, type MailReceiver } from './mail-receiver.js';

let t: TestApp;
let mail: MailReceiver;
const logged: Array<{ msg: string; obj: object }> = [];
const capture = {
  info: (obj: object, msg: string) => void logged.push({ obj, msg }),
  warn: (obj: object, msg: string) => void logged.push({ obj, msg }),
  error: (obj: object, msg: string) => void logged.push({ obj, msg }),
};

beforeAll(async () => {
  mail = await startMailReceiver();
  t = await startPaygate({ env: mail.env, logger: capture });
});
afterAll(async () => {
  await t?.close();
  await mail?.close();
});

const address = (label: string) => `${label}-${randomBytes(4).toString('hex')}@example.com`;

async function ownerOf(name = `Org ${randomBytes(3).toString('hex')}`) {
  const org = await createOrgWithKey(t, ['organization:read'], name);
  const user = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
  const session = await login(t, user.email, user.password);
  return { organizationId: org.organizationId, user, token: session.token };
}

describe('invitations by e-mail', () => {
  it('the invitation is mailed to the address, not handed to the inviter, and its link completes the flow over HTTP', async () => {
    const owner = await ownerOf('Mailed Org');
    const to = address('invitee');
    const invited = await t.request('POST', `/v1/organizations/${owner.organizationId}/members`, { token: owner.token, body: { email: to, role: 'developer' } });
    expectStatus(invited, 201);
    expect(invited.body).toMatchObject({ object: 'invitation', email: to, role: 'developer', status: 'pending' });
    expect(invited.body).not.toHaveProperty('url');

    const message = await mail.next(to);
    expect(message.from).toBe('paygate@example.com');
    expect(message.subject).toBe('Join Mailed Org on Paygate');
    expect(message.text).toContain(`${owner.user.email} invited you to join the organization "Mailed Org" on Paygate as developer.`);
    const link = linkIn(message, '/admin/accept-invitation');
    expect(link.origin).toBe(t.config.publicUrl);
    const token = link.searchParams.get('token')!;

    expectStatus(await t.request('POST', '/v1/auth/invitations/accept', { body: { token, password: 'mailed-password-1' } }), 200);
    const session = await login(t, to, 'mailed-password-1');
    const me = await t.request('GET', '/v1/auth/me', { token: session.token });
    expect(me.body.memberships).toEqual([expect.objectContaining({ organizationId: owner.organizationId, role: 'developer' })]);
    // The mail went out after the commit and is not in the audit log or the answer.
    const audit = await t.db.query<{ details: Record<string, unknown> }>("SELECT details FROM audit_events WHERE action = 'invitation.created' AND target->>'id' = $1", [invited.body.id]);
    expect(audit[0]!.details).toMatchObject({ delivery: 'email' });
    expect(JSON.stringify(audit)).not.toContain(token);
  });

  it('an existing account gets the same mail as a new address, and signs in to accept it', async () => {
    const owner = await ownerOf('Same Mail Org');
    const existing = await createUser(t);
    const fresh = address('fresh');
    for (const to of [existing.email, fresh]) {
      expectStatus(await t.request('POST', `/v1/organizations/${owner.organizationId}/members`, { token: owner.token, body: { email: to, role: 'viewer' } }), 201);
    }
    const [forExisting, forFresh] = [await mail.next(existing.email), await mail.next(fresh)];
    const shape = (text: string) => text.replace(/token=[A-Za-z0-9_-]+/, 'token=…').replace(/until \S+/, 'until …');
    expect(shape(forExisting.text)).toBe(shape(forFresh.text));
    expect(forExisting.subject).toBe(forFresh.subject);

    const token = linkIn(forExisting, '/admin/accept-invitation').searchParams.get('token')!;
    const session = await login(t, existing.email, existing.password);
    expectStatus(await t.request('POST', '/v1/auth/invitations/join', { token: session.token, body: { token } }), 200);
  });

  it('a delivery that fails leaves the invitation committed and logged without its link; inviting again sends a fresh one', async () => {
    const owner = await ownerOf();
    const to = address('bounce');
    mail.refuse(to);
    const invited = await t.request('POST', `/v1/organizations/${owner.organizationId}/members`, { token: owner.token, body: { email: to, role: 'viewer' } });
    expectStatus(invited, 201);
    await t.services.mailer!.idle();
    expect(t.services.mailer!.stats.failed).toBeGreaterThanOrEqual(1);
    const failure = logged.find((l) => l.msg === 'mail could not be delivered' && (l.obj as { to?: string }).to === to);
    expect(failure?.obj).toMatchObject({ purpose: 'invitation', responseCode: 550 });
    expect(JSON.stringify(failure)).not.toMatch(/token=/);
    // Still there, still listed as invited.
    const list = await t.request('GET', `/v1/organizations/${owner.organizationId}/members`, { token: owner.token });
    expect(list.body.data).toEqual(expect.arrayContaining([expect.objectContaining({ id: invited.body.id, status: 'invited' })]));

    mail.allow(to);
    const again = await t.request('POST', `/v1/organizations/${owner.organizationId}/members`, { token: owner.token, body: { email: to, role: 'viewer' } });
    expectStatus(again, 201);
    const token = linkIn(await mail.next(to), '/admin/accept-invitation').searchParams.get('token')!;
    expectStatus(await t.request('POST', '/v1/auth/invitations/accept', { body: { token, password: 'second-try-password' } }), 200);
  });

  it("provisioning an organization with an owner mails the owner's invitation (POST /v1/system/organizations)", async () => {
    const root = await createSystemKey(t, ['organization:create']);
    const to = address('owner');
    const result = await t.request('POST', '/v1/system/organizations', { token: root.token, body: { name: 'Provisioned Mail Org', owner: { email: to } } });
    expectStatus(result, 201);
    expect(result.body.owner).toMatchObject({ object: 'invitation', email: to, role: 'owner', status: 'pending' });
    expect(result.body.owner).not.toHaveProperty('url');
    const token = linkIn(await mail.next(to), '/admin/accept-invitation').searchParams.get('token')!;
    expectStatus(await t.request('POST', '/v1/auth/invitations/accept', { body: { token, password: 'owner-password-1' } }), 200);
    const session = await login(t, to, 'owner-password-1');
    expectStatus(await t.request('GET', `/v1/organizations/${result.body.id}/members`, { token: session.token }), 200);
  });
});

describe('mail configuration', () => {
  const base = { PORT: '0' };

  it('PAYGATE_SMTP_URL must be an smtp:// or smtps:// URL, and the error never repeats it', () => {
    for (const url of ['http://mail.example.com', 'not a url', 'smtp://', 'mailto:a@example.com']) {
      expect(() => loadConfig({ ...base, PAYGATE_SMTP_URL: url, PAYGATE_MAIL_FROM: 'paygate@example.com' }), url).toThrow(ConfigError);
    }
    try {
      loadConfig({ ...base, PAYGATE_SMTP_URL: 'ftp://user:s3cret-pass@mail.example.com', PAYGATE_MAIL_FROM: 'paygate@example.com' });
    } catch (error) {
      expect((error as Error).message).not.toContain('s3cret-pass');
    }
    expect(loadConfig({ ...base, PAYGATE_SMTP_URL: 'smtps://u:p@mail.example.com:465', PAYGATE_MAIL_FROM: 'paygate@example.com' }).smtpUrl).toBe('smtps://u:p@mail.example.com:465');
  });

  it('PAYGATE_MAIL_FROM is required with SMTP and must be an address or "Name <address>"', () => {
    const smtp = { ...base, PAYGATE_SMTP_URL: 'smtp://127.0.0.1:2525' };
    expect(() => loadConfig(smtp)).toThrow(/PAYGATE_MAIL_FROM must be set/);
    for (const from of ['paygate', 'Paygate <nope>', 'a@b.example\r\nBcc: victim@example.com', '<>']) {
      expect(() => loadConfig({ ...smtp, PAYGATE_MAIL_FROM: from }), from).toThrow(ConfigError);
    }
    expect(loadConfig({ ...smtp, PAYGATE_MAIL_FROM: 'Paygate <paygate@example.com>' }).mailFrom).toBe('Paygate <paygate@example.com>');
    expect(loadConfig(base)).toMatchObject({ smtpUrl: null, mailFrom: null });
  });

  it('without SMTP there is no mailer: the link is in the answer', async () => {
    const plain = await startPaygate();
    try {
      expect(plain.services.mailer).toBeNull();
      const org = await createOrgWithKey(plain, ['organization:read']);
      const owner = await createUser(plain, { organizationId: org.organizationId, role: 'owner' });
      const session = await login(plain, owner.email, owner.password);
      const invited = await plain.request('POST', `/v1/organizations/${org.organizationId}/members`, { token: session.token, body: { email: address('x'), role: 'viewer' } });
      expect(invited.body.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/admin\/accept-invitation\?token=[A-Za-z0-9_-]{43}$/);
      expectProblem(await plain.request('POST', '/v1/auth/invitations/accept', { body: { token: 'x'.repeat(43), password: 'long-enough-password' } }), 404, 'not_found');
    } finally {
      await plain.close();
    }
  });
});
