/**
 * The admin panel's first minutes, in a real browser against a real Paygate (no SMTP, so
 * invitation answers carry their link): a member of one organization lands in it; changes to
 * members are confirmed first and the API's refusals are shown; invitations are listed apart from
 * members; deleting an organization needs its name typed; keys can be edited; what a person cannot
 * grant is shown disabled with the reason; settings never changed say so; a new secret is shown
 * whole. Each test checks over HTTP what the panel did.
 */
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { createOrgKey, createOrgWithKey, createUser, expectStatus, login, type OrgWithKey } from '../harness.js';
import type { Role } from '../../src/scopes/catalog.js';
import { describeInBrowser, signIn, startPanel, type PanelHarness } from './support.js';

const TOKEN_PATTERN = /^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/;

type User = Awaited<ReturnType<typeof createUser>>;

describeInBrowser("the admin panel's first minutes", () => {
  let h: PanelHarness;
  let admin: User;
  let pageErrors: string[] = [];
  let currentPage: Page | null = null;

  beforeAll(async () => {
    h = await startPanel();
    admin = await createUser(h.t, { globalAdmin: true });
  }, 240_000);

  afterAll(async () => {
    await h?.close();
  });

  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail' && currentPage) {
      const file = path.join(os.tmpdir(), `paygate-e2e-${task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await currentPage.screenshot({ path: file, fullPage: true }).then(
        () => process.stderr.write(`[e2e] screenshot of the failed page: ${file}\n`),
        () => undefined,
      );
    }
    currentPage = null;
    const errors = pageErrors;
    pageErrors = [];
    expect(errors, 'uncaught errors in the page').toEqual([]);
  });

  async function open(viewport?: { width: number; height: number }): Promise<Page> {
    const opened = await h.newPage(viewport);
    pageErrors = opened.pageErrors;
    currentPage = opened.page;
    await opened.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.t.url });
    return opened.page;
  }

  /** A fresh organization (its key reads keys, for checking over HTTP) with one member of `role`. */
  async function orgWith(role: Role): Promise<{ org: OrgWithKey; name: string; user: User }> {
    const name = `Org ${randomBytes(3).toString('hex')}`;
    const org = await createOrgWithKey(h.t, ['api_key:read'], name);
    const user = await createUser(h.t, { organizationId: org.organizationId, role });
    return { org, name, user };
  }

  function nav(page: Page): Locator {
    return page.getByRole('navigation', { name: 'Main', exact: true });
  }

  async function goTo(page: Page, link: string, heading = link): Promise<void> {
    await nav(page).getByRole('link', { name: link, exact: true }).click();
    await page.getByRole('heading', { name: heading, exact: true, level: 1 }).waitFor();
  }

  const clipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText());

  async function membersOf(org: OrgWithKey): Promise<{ object: string; email: string; role: string; status: string }[]> {
    const session = await login(h.t, admin.email, admin.password);
    const list = await h.t.request('GET', `/v1/organizations/${org.organizationId}/members`, { token: session.token });
    expectStatus(list, 200);
    return list.body.data;
  }

  async function keyOf(org: OrgWithKey, id: string) {
    const key = await h.t.request('GET', `/v1/api-keys/${id}`, { token: org.token });
    expectStatus(key, 200);
    return key.body;
  }

  it('a member of a single organization lands in it, selected for them, without choosing', async () => {
    const { org, name, user } = await orgWith('developer');
    const page = await open();
    await signIn(page, h.t.url, user.email, user.password);
    await page.getByRole('heading', { name: 'API keys', exact: true, level: 1 }).waitFor();
    expect(await page.getByText('Choose an organization', { exact: true }).count()).toBe(0);
    const select = page.getByRole('banner').getByLabel('Organization', { exact: true });
    expect(await select.inputValue()).toBe(org.organizationId);
    expect(await select.locator('option:checked').textContent()).toBe(name);
    // Paygate stored the choice (the cookie that organization-scoped requests use).
    const cookies = await page.context().cookies(h.t.url);
    expect(cookies.find((c) => c.name === 'selectedOrganization')?.value).toBe(org.organizationId);
  });

  it("changing a member's role asks first, naming the member and the change; Cancel and Escape keep the role", async () => {
    const { org, name, user: owner } = await orgWith('owner');
    const dev = await createUser(h.t, { organizationId: org.organizationId, role: 'developer' });
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await goTo(page, 'Members');
    const role = page.getByRole('combobox', { name: `Role for ${dev.email}`, exact: true });
    const dialog = page.getByRole('dialog', { name: 'Change role', exact: true });

    await role.selectOption('admin');
    await dialog.waitFor();
    const text = await dialog.textContent();
    for (const part of [dev.email, name, 'Developer', 'Admin']) expect(text, part).toContain(part);
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    expect(await role.inputValue()).toBe('developer');
    // Focus goes back to the select the change was proposed in.
    expect(await role.evaluate((el) => el === document.activeElement)).toBe(true);

    await role.selectOption('viewer');
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await role.inputValue()).toBe('developer');
    expect((await membersOf(org)).find((m) => m.email === dev.email)?.role).toBe('developer');

    await role.selectOption('admin');
    await dialog.getByRole('button', { name: 'Change role', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: `${dev.email} is admin now.` }).waitFor();
    expect(await role.inputValue()).toBe('admin');
    expect((await membersOf(org)).find((m) => m.email === dev.email)?.role).toBe('admin');
  });

  it('removing a member asks first; the last owner can be neither demoted nor removed, and the dialog shows the API saying so', async () => {
    const { org, user: owner } = await orgWith('owner');
    const dev = await createUser(h.t, { organizationId: org.organizationId, role: 'developer' });
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await goTo(page, 'Members');

    const remove = page.getByRole('button', { name: `Remove ${dev.email}`, exact: true });
    const dialog = page.getByRole('dialog', { name: 'Remove member', exact: true });
    await remove.click();
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(dev.email);
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await membersOf(org)).some((m) => m.email === dev.email)).toBe(true);

    await remove.click();
    await dialog.getByRole('button', { name: 'Remove member', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: `${dev.email} was removed.` }).waitFor();
    await page.getByRole('row').filter({ hasText: dev.email }).waitFor({ state: 'detached' });
    expect((await membersOf(org)).some((m) => m.email === dev.email)).toBe(false);

    // The only owner demoting themselves: the API refuses (409), the dialog stays open and says why.
    await page.getByRole('combobox', { name: `Role for ${owner.email}`, exact: true }).selectOption('admin');
    const change = page.getByRole('dialog', { name: 'Change role', exact: true });
    await change.getByRole('button', { name: 'Change role', exact: true }).click();
    await change.getByRole('alert').filter({ hasText: 'An organization must keep at least one owner' }).waitFor();
    await change.getByRole('button', { name: 'Cancel', exact: true }).click();
    await change.waitFor({ state: 'detached' });
    expect(await page.getByRole('combobox', { name: `Role for ${owner.email}`, exact: true }).inputValue()).toBe('owner');

    await page.getByRole('button', { name: `Remove ${owner.email}`, exact: true }).click();
    await dialog.getByRole('button', { name: 'Remove member', exact: true }).click();
    await dialog.getByRole('alert').filter({ hasText: 'An organization must keep at least one owner' }).waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await membersOf(org)).toEqual([expect.objectContaining({ email: owner.email, role: 'owner', status: 'active' })]);
  });

  it('invitations are listed apart from members, with their expiry, a Copy for the link, and a Cancel that asks first', async () => {
    const { org, user: owner } = await orgWith('owner');
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await goTo(page, 'Members');
    const email = `invitee-${randomBytes(3).toString('hex')}@example.com`;
    await page.getByLabel('Email', { exact: true }).fill(email);
    await page.getByLabel('Role', { exact: true }).selectOption('viewer');
    await page.getByRole('button', { name: 'Invite', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `${email} is invited as viewer` }).waitFor();

    const invitations = page.getByRole('table', { name: 'Pending invitations', exact: true });
    const members = page.getByRole('table', { name: 'Current members', exact: true });
    const row = invitations.getByRole('row').filter({ hasText: email });
    await row.waitFor();
    expect(await members.getByRole('row').filter({ hasText: email }).count()).toBe(0);
    expect(await page.getByRole('combobox', { name: `Role for ${email}` }).count()).toBe(0);
    const [invitation] = (await membersOf(org)).filter((m) => m.object === 'invitation') as unknown as { expiresAt: string }[];
    const expires = await page.evaluate(
      (iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)),
      invitation!.expiresAt,
    );
    expect(await row.textContent()).toContain(expires);
    expect(await row.textContent()).toContain('in 7 days');
    expect(await row.textContent()).toContain('Viewer');

    // Without SMTP the answer carried the link: the row copies it.
    const shown = await page.locator('.invitation-url').textContent();
    expect(shown).toContain('/admin/accept-invitation');
    await row.getByRole('button', { name: `Copy invitation link for ${email}`, exact: true }).click();
    await expect.poll(() => clipboard(page)).toBe(shown);

    const cancel = row.getByRole('button', { name: `Cancel invitation for ${email}`, exact: true });
    const dialog = page.getByRole('dialog', { name: 'Cancel invitation', exact: true });
    await cancel.click();
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain(email);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect((await membersOf(org)).some((m) => m.email === email)).toBe(true);

    await cancel.click();
    await dialog.getByRole('button', { name: 'Cancel invitation', exact: true }).click();
    await page.getByRole('status').filter({ hasText: `Invitation for ${email} cancelled.` }).waitFor();
    await row.waitFor({ state: 'detached' });
    expect((await membersOf(org)).some((m) => m.email === email)).toBe(false);
  });

  it("deleting an organization needs its name typed; provisioning one with an owner offers the owner's invitation link with Copy", async () => {
    const page = await open();
    await signIn(page, h.t.url, admin.email, admin.password);
    await goTo(page, 'Organizations');

    const name = `Gamma ${randomBytes(3).toString('hex')}`;
    const ownerEmail = `owner-${randomBytes(3).toString('hex')}@example.com`;
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel('Owner email', { exact: true }).fill(ownerEmail);
    await page.getByRole('button', { name: 'Provision', exact: true }).click();
    await page.getByText(`Invitation link for the owner, ${ownerEmail}`).waitFor();
    const link = await page.locator('.invitation-url').textContent();
    expect(link).toContain('/admin/accept-invitation');
    await page.getByRole('button', { name: `Copy invitation link for ${ownerEmail}`, exact: true }).click();
    await expect.poll(() => clipboard(page)).toBe(link);

    await page.getByRole('button', { name: `Delete ${name}`, exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete organization', exact: true });
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Delete organization', exact: true });
    const typed = dialog.getByLabel('Type the organization name to confirm', { exact: true });
    expect(await typed.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill(name.slice(0, -1));
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill(name.toUpperCase());
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill(name);
    await confirm.click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Organization deleted.' }).waitFor();

    const session = await login(h.t, admin.email, admin.password);
    const orgs = await h.t.request('GET', '/v1/system/organizations?limit=100', { token: session.token });
    expect(orgs.body.data.find((o: { name: string }) => o.name === name)?.status).toBe('deleted');
  });

  it('editing a key changes its name, description, scopes, expiry, allowed IPs and rate limit, as the API then reports', async () => {
    const { org, user: owner } = await orgWith('owner');
    const key = await createOrgKey(h.t, org.organizationId, ['client:read'], { name: 'reporting', description: 'nightly' });
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await page.getByRole('row').filter({ hasText: 'reporting' }).waitFor();

    const edit = page.getByRole('button', { name: 'Edit reporting', exact: true });
    await edit.click();
    const dialog = page.getByRole('dialog', { name: 'Edit API key', exact: true });
    await dialog.waitFor();
    // The form shows the key as it is.
    expect(await dialog.getByLabel('Name', { exact: true }).inputValue()).toBe('reporting');
    expect(await dialog.getByLabel('Description', { exact: true }).inputValue()).toBe('nightly');
    expect(await dialog.getByRole('checkbox', { name: 'client:read', exact: true }).isChecked()).toBe(true);
    // Escape closes without a change, and focus returns to the Edit button.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await edit.evaluate((el) => el === document.activeElement)).toBe(true);

    await edit.click();
    await dialog.getByLabel('Name', { exact: true }).fill('reporting v2');
    await dialog.getByLabel('Description', { exact: true }).fill('nightly and weekly');
    await dialog.getByRole('checkbox', { name: 'invoice:read', exact: true }).check();
    await dialog.getByLabel('Expires at', { exact: true }).fill('2031-05-06T07:08');
    await dialog.getByLabel('Allowed IPs', { exact: true }).fill('203.0.113.0/24\n198.51.100.7');
    await dialog.getByLabel('Rate limit requests', { exact: true }).fill('100');
    await dialog.getByLabel('Rate limit window (seconds)', { exact: true }).fill('60');
    await dialog.getByRole('button', { name: 'Save changes', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Saved reporting v2.' }).waitFor();
    await page.getByRole('row').filter({ hasText: 'reporting v2' }).filter({ hasText: 'invoice:read' }).waitFor();

    const expected = await page.evaluate(() => new Date('2031-05-06T07:08').toISOString());
    expect(await keyOf(org, key.id)).toMatchObject({
      name: 'reporting v2',
      description: 'nightly and weekly',
      scopes: ['client:read', 'invoice:read'],
      expiresAt: expected,
      allowedIps: ['203.0.113.0/24', '198.51.100.7/32'],
      rateLimit: { requests: 100, windowSeconds: 60 },
    });

    // The API's refusal, in the form's words; the dialog stays open with what was typed.
    await page.getByRole('button', { name: 'Edit reporting v2', exact: true }).click();
    await dialog.getByLabel('Allowed IPs', { exact: true }).fill('not-an-ip');
    await dialog.getByRole('button', { name: 'Save changes', exact: true }).click();
    const alert = dialog.getByRole('alert');
    await alert.filter({ hasText: 'Allowed IPs, entry 1: "not-an-ip" is not an IP address or CIDR range' }).waitFor();
    expect(await alert.textContent()).not.toContain('/allowedIps');

    // Emptied restrictions are removed.
    await dialog.getByLabel('Allowed IPs', { exact: true }).fill('');
    await dialog.getByLabel('Rate limit requests', { exact: true }).fill('');
    await dialog.getByLabel('Rate limit window (seconds)', { exact: true }).fill('');
    await dialog.getByLabel('Expires at', { exact: true }).fill('');
    await dialog.getByRole('button', { name: 'Save changes', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Saved reporting v2.' }).waitFor();
    expect(await keyOf(org, key.id)).toMatchObject({ allowedIps: null, rateLimit: null, expiresAt: null, scopes: ['client:read', 'invoice:read'] });
  });

  it('a developer sees the presets and scopes their role cannot grant disabled, with why, and creates a key with those it can', async () => {
    const { org, name, user: dev } = await orgWith('developer');
    const page = await open();
    await signIn(page, h.t.url, dev.email, dev.password);
    await page.getByRole('button', { name: 'Create key', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Create API key', exact: true });
    await dialog.waitFor();

    const presets = dialog.getByRole('group', { name: 'Presets', exact: true });
    const checkout = presets.getByRole('button', { name: 'Create checkout links', exact: true });
    expect(await checkout.isDisabled()).toBe(true);
    const why = await checkout.getAttribute('aria-describedby');
    expect(await dialog.locator(`[id="${why}"]`).textContent()).toBe('Needs checkout:create, which you cannot grant');
    expect(await presets.getByRole('button', { name: 'Recurring schedule management', exact: true }).isDisabled()).toBe(true);

    const note = dialog.getByText(`As developer in ${name} you can grant only the scopes your role holds`);
    await note.waitFor();
    for (const scope of ['checkout:create', 'invoice:*', 'client:create', 'audit:*']) {
      const box = dialog.getByRole('checkbox', { name: scope, exact: true });
      expect(await box.isDisabled(), scope).toBe(true);
      expect(await dialog.locator(`[id="${await box.getAttribute('aria-describedby')}"]`).textContent(), scope).toContain('you can grant only');
    }
    for (const scope of ['api_key:*', 'api_key:create', 'invoice:read', 'client:read', 'audit:read']) {
      expect(await dialog.getByRole('checkbox', { name: scope, exact: true }).isEnabled(), scope).toBe(true);
    }

    await dialog.getByLabel('Name', { exact: true }).fill('reader');
    await dialog.getByRole('checkbox', { name: 'invoice:read', exact: true }).check();
    await dialog.getByRole('checkbox', { name: 'client:read', exact: true }).check();
    await dialog.getByRole('button', { name: 'Create key', exact: true }).click();
    const secret = page.getByRole('dialog', { name: 'Your new API key', exact: true });
    await secret.waitFor();
    const token = await secret.getByLabel('Secret', { exact: true }).inputValue();
    const who = await h.t.request('GET', '/v1/auth/whoami', { token });
    expect(who.body).toMatchObject({ organizationId: org.organizationId, scopes: ['client:read', 'invoice:read'] });
  });

  it('a developer cannot edit or rotate a key holding scopes they cannot grant, and the dialog says why; a key within their role they can', async () => {
    const { org, user: dev } = await orgWith('developer');
    await createOrgKey(h.t, org.organizationId, ['checkout:create'], { name: 'checkout bot' });
    const reader = await createOrgKey(h.t, org.organizationId, ['client:read'], { name: 'reader' });
    const page = await open();
    await signIn(page, h.t.url, dev.email, dev.password);
    await page.getByRole('row').filter({ hasText: 'checkout bot' }).waitFor();

    await page.getByRole('button', { name: 'Edit checkout bot', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit API key', exact: true });
    const reason = dialog.getByText('This key holds scopes you cannot grant (checkout:create)');
    await reason.waitFor();
    // The reason is what the dialog opens on, not a disabled form.
    expect(await reason.evaluate((el) => el.closest('[tabindex="-1"]') === document.activeElement)).toBe(true);
    expect(await dialog.getByLabel('Name', { exact: true }).isDisabled()).toBe(true);
    expect(await dialog.getByRole('button', { name: 'Save changes', exact: true }).isDisabled()).toBe(true);
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });

    await page.getByRole('button', { name: 'Rotate checkout bot', exact: true }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate API key', exact: true });
    await rotate.getByText('This key holds scopes you cannot grant (checkout:create)').waitFor();
    expect(await rotate.getByRole('button', { name: 'Rotate', exact: true }).isDisabled()).toBe(true);
    await page.keyboard.press('Escape');
    await rotate.waitFor({ state: 'detached' });

    await page.getByRole('button', { name: 'Edit reader', exact: true }).click();
    await dialog.getByLabel('Name', { exact: true }).fill('client reader');
    await dialog.getByRole('button', { name: 'Save changes', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await keyOf(org, reader.id)).name).toBe('client reader');
  });

  it('system settings never changed say so; once saved, the page says when and by whom', async () => {
    const page = await open();
    await signIn(page, h.t.url, admin.email, admin.password);
    await goTo(page, 'System settings');
    await page.getByText('Never changed: these are the values Paygate started with.').waitFor();
    expect(await page.getByText(/Last changed/).count()).toBe(0);

    await page.getByLabel('Rotation grace default (minutes)', { exact: true }).fill('60');
    await page.getByRole('button', { name: 'Save settings', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved' }).waitFor();
    await page.getByText(`by you (${admin.email})`).waitFor();
    expect(await page.getByText('Never changed', { exact: false }).count()).toBe(0);

    // After a reload the page learns it from the audit log.
    await page.reload();
    await page.getByText(/^Last changed .+ by you \(/).waitFor();
  });

  for (const viewport of [
    { width: 1280, height: 800 },
    { width: 390, height: 844 },
  ]) {
    it(`the new secret is shown whole, its sk_ start included, at ${viewport.width} px, with Copy and the shown-once warning`, async () => {
      const { user: owner } = await orgWith('owner');
      const page = await open(viewport);
      await signIn(page, h.t.url, owner.email, owner.password);
      await page.getByRole('button', { name: 'Create key', exact: true }).click();
      const create = page.getByRole('dialog', { name: 'Create API key', exact: true });
      await create.getByLabel('Name', { exact: true }).fill('whole secret');
      await create.getByRole('checkbox', { name: 'client:read', exact: true }).check();
      await create.getByRole('button', { name: 'Create key', exact: true }).click();

      const dialog = page.getByRole('dialog', { name: 'Your new API key', exact: true });
      const field = dialog.getByLabel('Secret', { exact: true });
      const secret = await field.inputValue();
      expect(secret).toMatch(TOKEN_PATTERN);
      // Nothing of it is scrolled away or cut: the field is as large as its text, and inside the screen.
      const box = await field.evaluate((el) => {
        const rect = el.getBoundingClientRect();
        return { scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, scrollHeight: el.scrollHeight, clientHeight: el.clientHeight, scrollLeft: el.scrollLeft, left: rect.left, right: rect.right };
      });
      expect(box.scrollWidth, JSON.stringify(box)).toBeLessThanOrEqual(box.clientWidth);
      expect(box.scrollHeight, JSON.stringify(box)).toBeLessThanOrEqual(box.clientHeight);
      expect(box.scrollLeft).toBe(0);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.right).toBeLessThanOrEqual(viewport.width);
      expect(await field.isEditable()).toBe(false);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);

      await dialog.getByText(/will not be shown again/).waitFor();
      await dialog.getByRole('button', { name: 'Copy', exact: true }).click();
      await dialog.getByRole('status').filter({ hasText: 'Copied to the clipboard.' }).waitFor();
      await expect.poll(() => clipboard(page)).toBe(secret);
    });
  }
});
