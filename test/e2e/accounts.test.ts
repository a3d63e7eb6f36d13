/**
 * Accounts in the admin panel, in a real browser (SPEC §7): an owner invites a member, the invitee
 * accepts through the link (a new person chooses a password; someone with an account signs in
 * there), an owner cancels an invitation, and "Forgot password?" mails a link that sets a new one.
 * With a real SMTP receiver, so the links come out of real mails.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { createOrgWithKey, createUser, expectProblem, login, type OrgWithKey } from '../harness.js';
import { linkIn, startMailReceiver, type MailReceiver } from '../mail-receiver.js';
import { describeInBrowser, selectOrganization, signIn, startPanel, type PanelHarness } from './support.js';

const ORG = 'Invite Works';

describeInBrowser('accounts in the admin panel', () => {
  let h: PanelHarness;
  let mail: MailReceiver;
  let org: OrgWithKey;
  let owner: Awaited<ReturnType<typeof createUser>>;
  let pageErrors: string[] = [];

  beforeAll(async () => {
    mail = await startMailReceiver();
    h = await startPanel({ env: mail.env });
    org = await createOrgWithKey(h.t, ['organization:read'], ORG);
    owner = await createUser(h.t, { organizationId: org.organizationId, role: 'owner' });
  }, 240_000);

  afterAll(async () => {
    await h?.close();
    await mail?.close();
  });

  afterEach(() => {
    const errors = pageErrors;
    pageErrors = [];
    expect(errors, 'uncaught errors in the page').toEqual([]);
  });

  /** A mailed link, on the server under test (its public URL has port 0 in tests). */
  const here = (link: URL) => `${h.t.url}${link.pathname}${link.search}`;

  async function open(): Promise<Page> {
    const opened = await h.newPage();
    pageErrors = opened.pageErrors;
    return opened.page;
  }

  async function invite(page: Page, email: string, role: string) {
    await signIn(page, h.t.url, owner.email, owner.password);
    await selectOrganization(page, ORG);
    await page.getByRole('navigation', { name: 'Main', exact: true }).getByRole('link', { name: 'Members', exact: true }).click();
    await page.getByRole('heading', { name: 'Members', exact: true }).waitFor();
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Role', { exact: true }).selectOption(role);
    // An owner sets no password for anyone: the form has no such field.
    expect(await page.getByLabel('Password', { exact: true }).count()).toBe(0);
    await page.getByRole('button', { name: 'Invite', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `Invitation e-mailed to ${email}` }).waitFor();
    await page.getByRole('table', { name: 'Pending invitations', exact: true }).getByRole('row').filter({ hasText: email }).waitFor();
  }

  it('an owner invites a new person, who opens the mailed link, chooses a password and is a signed-in member', async () => {
    const page = await open();
    const email = `new-${randomBytes(3).toString('hex')}@example.com`;
    await invite(page, email, 'developer');

    const link = linkIn(await mail.next(email), '/admin/accept-invitation');
    const invitee = await open();
    await invitee.goto(here(link));
    await invitee.getByText(`You are invited to join ${ORG} as developer`).waitFor();
    // The token leaves the address bar at once.
    expect(new URL(invitee.url()).search).toBe('');
    await invitee.getByLabel('New password', { exact: true }).fill('password123');
    await invitee.getByLabel('Repeat the password', { exact: true }).fill('password123');
    await invitee.getByRole('button', { name: 'Set password and join', exact: true }).click();
    await invitee.getByRole('alert').filter({ hasText: 'commonly used password' }).waitFor();
    await invitee.getByLabel('New password', { exact: true }).fill('invitee-chose-this-1');
    await invitee.getByLabel('Repeat the password', { exact: true }).fill('invitee-chose-this-1');
    await invitee.getByRole('button', { name: 'Set password and join', exact: true }).click();
    await invitee.getByRole('status').filter({ hasText: `You are a member of ${ORG} now, as developer.` }).waitFor();
    await invitee.getByRole('link', { name: 'Open Paygate', exact: true }).click();
    await invitee.getByRole('button', { name: 'Sign out', exact: true }).waitFor();

    // The owner's list now shows a member where the invitation was.
    await page.reload();
    await page.getByRole('combobox', { name: `Role for ${email}`, exact: true }).waitFor();
  });

  it('someone who already has an account signs in on the link page and joins', async () => {
    const existing = await createUser(h.t);
    const page = await open();
    await invite(page, existing.email, 'viewer');
    const link = linkIn(await mail.next(existing.email), '/admin/accept-invitation');
    const invitee = await open();
    await invitee.goto(here(link));
    await invitee.getByText('This address already has a Paygate account: sign in to accept.').waitFor();
    expect(await invitee.getByLabel('New password', { exact: true }).count()).toBe(0);
    await invitee.getByLabel('Password', { exact: true }).fill(existing.password);
    await invitee.getByRole('button', { name: 'Sign in and accept', exact: true }).click();
    await invitee.getByRole('status').filter({ hasText: `You are a member of ${ORG} now, as viewer.` }).waitFor();
    const session = await login(h.t, existing.email, existing.password);
    const me = await h.t.request('GET', '/v1/auth/me', { token: session.token });
    expect(me.body.memberships).toEqual([expect.objectContaining({ organizationId: org.organizationId, role: 'viewer' })]);
  });

  it('an owner cancels an invitation, and its link then says so', async () => {
    const page = await open();
    const email = `cancel-${randomBytes(3).toString('hex')}@example.com`;
    await invite(page, email, 'viewer');
    const link = linkIn(await mail.next(email), '/admin/accept-invitation');
    await page.getByRole('button', { name: `Cancel invitation for ${email}`, exact: true }).click();
    await page.getByRole('dialog', { name: 'Cancel invitation', exact: true }).getByRole('button', { name: 'Cancel invitation', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `Invitation for ${email} cancelled.` }).waitFor();
    await page.getByRole('row').filter({ hasText: email }).waitFor({ state: 'detached' });

    const invitee = await open();
    await invitee.goto(here(link));
    await invitee.getByRole('alert').filter({ hasText: 'The invitation is unknown, used, cancelled or expired' }).waitFor();
  });

  it('"Forgot password?" mails a link whose page sets a new password; the old one stops working', async () => {
    const user = await createUser(h.t);
    const page = await open();
    await page.goto(`${h.t.url}/admin`);
    await page.getByRole('link', { name: 'Forgot password?', exact: true }).click();
    await page.getByRole('heading', { name: 'Reset password', exact: true }).waitFor();
    await page.getByLabel('Email', { exact: true }).fill(user.email);
    await page.getByRole('button', { name: 'Send reset link', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `If an account uses ${user.email}` }).waitFor();

    const link = linkIn(await mail.next(user.email), '/admin/reset-password');
    await page.goto(here(link));
    await page.getByLabel('New password', { exact: true }).fill('reset-in-the-browser-1');
    // The token leaves the address bar at once.
    expect(new URL(page.url()).search).toBe('');
    await page.getByLabel('Repeat the password', { exact: true }).fill('reset-in-the-browser-1');
    await page.getByRole('button', { name: 'Set new password', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Your password is changed' }).waitFor();

    await signIn(page, h.t.url, user.email, 'reset-in-the-browser-1');
    expectProblem(await h.t.request('POST', '/v1/auth/login', { body: { email: user.email, password: user.password } }), 401, 'invalid_session');
  });
});
