/**
 * The admin panel in a real browser against a real Paygate: what a person does with API keys, and
 * what the HTTP API says afterwards. Locators are the accessible names of the UI contract, so a
 * renamed button or label fails here rather than drifting silently.
 */
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { createOrgKey, createOrgWithKey, createUser, expectProblem, expectStatus, login, type OrgWithKey } from '../harness.js';
import { describeInBrowser, selectOrganization, signIn, startPanel, type PanelHarness } from './support.js';

const TOKEN_PATTERN = /^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/;
const ACME = 'Acme Studio';
const BETA = 'Beta Works';

type User = Awaited<ReturnType<typeof createUser>>;

describeInBrowser('admin panel', () => {
  let h: PanelHarness;
  let acme: OrgWithKey;
  let beta: OrgWithKey;
  let owner: User;
  let viewer: User;
  let admin: User;
  let pageErrors: string[] = [];
  let currentPage: Page | null = null;

  beforeAll(async () => {
    h = await startPanel();
    const { t } = h;
    // Each organization's initial key can read keys, so the tests can check over HTTP what the panel did.
    acme = await createOrgWithKey(t, ['api_key:read'], ACME);
    beta = await createOrgWithKey(t, ['api_key:read'], BETA);
    await createOrgKey(t, acme.organizationId, ['checkout:read'], { name: 'alpha reporting' });
    await createOrgKey(t, beta.organizationId, ['checkout:read'], { name: 'beta reporting' });
    owner = await createUser(t, { organizationId: acme.organizationId, role: 'owner' });
    await t.db.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [beta.organizationId, owner.id, 'developer']);
    viewer = await createUser(t, { organizationId: acme.organizationId, role: 'viewer' });
    admin = await createUser(t, { globalAdmin: true });
  }, 240_000);

  afterAll(async () => {
    await h?.close();
  });

  afterEach(async ({ task }) => {
    // A failed test leaves a picture of the page behind, named in the output.
    if (task.result?.state === 'fail' && currentPage) {
      const file = path.join(os.tmpdir(), `paygate-e2e-${task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await currentPage.screenshot({ path: file, fullPage: true }).then(
        () => process.stderr.write(`[e2e] screenshot of the failed page: ${file}\n`),
        () => undefined,
      );
    }
    currentPage = null;
    // An uncaught exception in the page is a bug even when the flow under test happened to finish.
    const errors = pageErrors;
    pageErrors = [];
    expect(errors, 'uncaught errors in the page').toEqual([]);
  });

  async function open(viewport?: { width: number; height: number }): Promise<Page> {
    const opened = await h.newPage(viewport);
    pageErrors = opened.pageErrors;
    currentPage = opened.page;
    return opened.page;
  }

  function nav(page: Page): Locator {
    return page.getByRole('navigation', { name: 'Main', exact: true });
  }

  /** Follows the "API keys" link (the page's heading shows only once an organization is selected). */
  async function openKeysPage(page: Page): Promise<void> {
    await nav(page).getByRole('link', { name: 'API keys', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/admin/keys');
  }

  async function keysHeading(page: Page): Promise<void> {
    await page.getByRole('heading', { name: 'API keys', exact: true }).waitFor();
  }

  function keyRow(page: Page, name: string): Locator {
    return page.getByRole('row').filter({ hasText: name });
  }

  async function whoami(token: string) {
    return h.t.request('GET', '/v1/auth/whoami', { token });
  }

  it('shows the API error when the password is wrong, and stays on the sign-in page', async () => {
    const page = await open();
    await page.goto(`${h.t.url}/admin`);
    await page.getByRole('heading', { name: 'Sign in to Paygate', exact: true }).waitFor();
    await page.getByText("First start? The admin email and password were printed once in the server's console.").waitFor();
    await page.getByLabel('Email', { exact: true }).fill(owner.email);
    await page.getByLabel('Password', { exact: true }).fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    const alert = page.getByRole('alert').filter({ hasText: 'The email or password is wrong' });
    await alert.waitFor();
    expect(await page.getByRole('button', { name: 'Sign out', exact: true }).count()).toBe(0);
    expect(await page.getByLabel('Password', { exact: true }).isVisible()).toBe(true);
  });

  it('creates a key from a preset, shows its secret once, and the key works with exactly the preset scopes; rotating now refuses the old secret; revoking refuses the key', async () => {
    const page = await open();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.t.url });
    await signIn(page, h.t.url, owner.email, owner.password);
    await openKeysPage(page);
    // Login chooses no organization: the page says so and shows nothing else.
    await page.getByText('Choose an organization', { exact: true }).waitFor();
    expect(await page.getByRole('table').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Create key', exact: true }).count()).toBe(0);
    await selectOrganization(page, ACME);
    await keysHeading(page);
    await keyRow(page, 'alpha reporting').waitFor();
    for (const header of ['Name', 'Hint', 'Scopes', 'Status', 'Created by', 'Last used', 'Expires']) {
      expect(await page.getByRole('columnheader', { name: header, exact: true }).count(), `column ${header}`).toBe(1);
    }

    // The create dialog takes focus, gives it back to its opener, and closes on Escape.
    const opener = page.getByRole('button', { name: 'Create key', exact: true });
    await opener.click();
    const createDialog = page.getByRole('dialog', { name: 'Create API key', exact: true });
    await createDialog.waitFor();
    expect(await createDialog.evaluate((dialog) => dialog.contains(document.activeElement))).toBe(true);
    await page.keyboard.press('Escape');
    await createDialog.waitFor({ state: 'detached' });
    expect(await opener.evaluate((button) => button === document.activeElement)).toBe(true);

    await opener.click();
    await createDialog.waitFor();
    for (const label of ['Name', 'Description', 'Expires at', 'Allowed IPs', 'Rate limit requests', 'Rate limit window (seconds)']) {
      expect(await createDialog.getByLabel(label, { exact: true }).count(), `input ${label}`).toBe(1);
    }
    expect(await createDialog.getByLabel('Expires at', { exact: true }).getAttribute('type')).toBe('datetime-local');
    // Scope checkboxes are grouped by resource.
    expect(await createDialog.getByRole('group', { name: 'checkout', exact: true }).getByRole('checkbox', { name: 'checkout:create', exact: true }).count()).toBe(1);
    expect(await createDialog.getByRole('checkbox', { name: 'checkout:*', exact: true }).count()).toBe(1);

    // A preset checks exactly its scopes, replacing whatever was checked before.
    const presets = createDialog.getByRole('group', { name: 'Presets', exact: true });
    for (const preset of ['Create checkout links', 'Website billing bridge auto-provisioning', 'Recurring schedule management', 'Background customer portal direct-login links']) {
      expect(await presets.getByRole('button', { name: preset, exact: true }).count(), `preset ${preset}`).toBe(1);
    }
    const checked = createDialog.getByRole('checkbox', { checked: true });
    await presets.getByRole('button', { name: 'Recurring schedule management', exact: true }).click();
    expect(await checked.count()).toBe(3);
    for (const scope of ['invoice:read', 'invoice:create', 'invoice:execute']) {
      expect(await createDialog.getByRole('checkbox', { name: scope, exact: true }).isChecked(), scope).toBe(true);
    }
    await presets.getByRole('button', { name: 'Create checkout links', exact: true }).click();
    expect(await checked.count()).toBe(1);
    expect(await createDialog.getByRole('checkbox', { name: 'checkout:create', exact: true }).isChecked()).toBe(true);

    const name = 'storefront checkout';
    await createDialog.getByLabel('Name', { exact: true }).fill(name);
    await createDialog.getByRole('button', { name: 'Create key', exact: true }).click();

    // The secret, once.
    const secretDialog = page.getByRole('dialog', { name: 'Your new API key', exact: true });
    await secretDialog.waitFor();
    const secretInput = secretDialog.getByLabel('Secret', { exact: true });
    const secret = await secretInput.inputValue();
    expect(secret).toMatch(TOKEN_PATTERN);
    expect(await secretInput.isEditable()).toBe(false);
    await secretDialog.getByText(/will not be shown again/).waitFor();
    await secretDialog.getByRole('button', { name: 'Copy', exact: true }).click();
    await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await secretDialog.getByRole('button', { name: 'Done', exact: true }).click();
    await secretDialog.waitFor({ state: 'detached' });
    const secretInDom = (value: string) =>
      page.evaluate(
        (s) => document.documentElement.outerHTML.includes(s) || [...document.querySelectorAll('input, textarea')].some((e) => (e as HTMLInputElement).value === s),
        value,
      );
    expect(await secretInDom(secret)).toBe(false);

    // The list shows the key by name, hint and scopes, never the secret.
    const row = keyRow(page, name);
    await row.waitFor();
    expect(await row.textContent()).toContain(secret.slice(-4));
    expect(await row.textContent()).toContain('checkout:create');

    // The key works over HTTP with exactly the preset's scopes.
    const who = await whoami(secret);
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ type: 'api_key', tier: 'organization', organizationId: acme.organizationId, scopes: ['checkout:create'] });
    const keyId: string = who.body.keyId;

    // Rotate, ending the previous secret now.
    await page.getByRole('button', { name: `Rotate ${name}`, exact: true }).click();
    const rotateDialog = page.getByRole('dialog', { name: 'Rotate API key', exact: true });
    await rotateDialog.waitFor();
    const grace = rotateDialog
      .getByRole('radiogroup', { name: 'Previous secret stops working', exact: true })
      .or(rotateDialog.getByRole('group', { name: 'Previous secret stops working', exact: true }));
    for (const option of ['Now', 'In 1 hour', 'In 24 hours', 'In 7 days']) {
      expect(await grace.getByRole('radio', { name: option, exact: true }).count(), `radio ${option}`).toBe(1);
    }
    await grace.getByRole('radio', { name: 'Now', exact: true }).check();
    await rotateDialog.getByRole('button', { name: 'Rotate', exact: true }).click();
    await secretDialog.waitFor();
    await secretDialog.getByText(/^The previous secret stops working/).waitFor();
    const rotated = await secretDialog.getByLabel('Secret', { exact: true }).inputValue();
    expect(rotated).toMatch(TOKEN_PATTERN);
    expect(rotated).not.toBe(secret);
    expect(rotated.startsWith(`sk_${keyId}.`)).toBe(true);
    await secretDialog.getByRole('button', { name: 'Done', exact: true }).click();
    await secretDialog.waitFor({ state: 'detached' });
    expect(await secretInDom(rotated)).toBe(false);

    expectProblem(await whoami(secret), 401, 'invalid_api_key');
    const afterRotate = await whoami(rotated);
    expectStatus(afterRotate, 200);
    expect(afterRotate.body.keyId).toBe(keyId);

    // Revoke.
    await page.getByRole('button', { name: `Revoke ${name}`, exact: true }).click();
    const revokeDialog = page.getByRole('dialog', { name: 'Revoke API key', exact: true });
    await revokeDialog.waitFor();
    expect(await revokeDialog.textContent()).toMatch(/irreversible|cannot be undone|can't be undone|can not be undone/i);
    await revokeDialog.getByRole('button', { name: 'Revoke key', exact: true }).click();
    await revokeDialog.waitFor({ state: 'detached' });
    await row.getByText(/revoked/i).waitFor();
    // A revoked key can only be deleted.
    expect(await page.getByRole('button', { name: `Rotate ${name}`, exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: `Revoke ${name}`, exact: true }).count()).toBe(0);
    expect(await page.getByRole('button', { name: `Delete ${name}`, exact: true }).count()).toBe(1);

    expectProblem(await whoami(rotated), 401, 'api_key_revoked');
  });

  it('deletes a key only once its name has been typed', async () => {
    const name = 'legacy importer';
    const key = await createOrgKey(h.t, acme.organizationId, ['client:read'], { name });
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await selectOrganization(page, ACME);
    await openKeysPage(page);
    await keysHeading(page);
    await keyRow(page, name).waitFor();

    await page.getByRole('button', { name: `Delete ${name}`, exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete API key', exact: true });
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Delete key', exact: true });
    const typed = dialog.getByLabel('Type the key name to confirm', { exact: true });
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill('legacy importe');
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill(`${name} `);
    expect(await confirm.isDisabled()).toBe(true);
    await typed.fill(name);
    expect(await confirm.isEnabled()).toBe(true);
    await confirm.click();
    await dialog.waitFor({ state: 'detached' });
    await keyRow(page, name).waitFor({ state: 'detached' });

    expectProblem(await h.t.request('GET', `/v1/api-keys/${key.id}`, { token: acme.token }), 404, 'not_found');
  });

  it('switching the organization shows that organization\'s keys', async () => {
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    // Not a global admin: no system pages.
    await nav(page).getByRole('link', { name: 'API keys', exact: true }).waitFor();
    expect(await nav(page).getByRole('link', { name: 'System settings', exact: true }).count()).toBe(0);
    await openKeysPage(page);

    await selectOrganization(page, ACME);
    await keysHeading(page);
    await keyRow(page, 'alpha reporting').waitFor();
    expect(await keyRow(page, 'beta reporting').count()).toBe(0);

    await selectOrganization(page, BETA);
    await keyRow(page, 'beta reporting').waitFor();
    await keyRow(page, 'alpha reporting').waitFor({ state: 'detached' });

    // A developer in Beta may still create keys.
    expect(await page.getByRole('button', { name: 'Create key', exact: true }).count()).toBe(1);
  });

  it('a viewer sees neither the key table nor a "Create key" button', async () => {
    const page = await open();
    await signIn(page, h.t.url, viewer.email, viewer.password);
    await selectOrganization(page, ACME);
    await openKeysPage(page);
    await keysHeading(page);
    await page.getByText("You don't have access to API keys in this organization.", { exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Create key', exact: true }).count()).toBe(0);
    expect(await page.getByRole('table').count()).toBe(0);
  });

  it('a system setting saved in the panel is what GET /v1/system/settings returns', async () => {
    const page = await open();
    await signIn(page, h.t.url, admin.email, admin.password);
    await nav(page).getByRole('link', { name: 'System settings', exact: true }).click();
    await page.getByRole('heading', { name: 'System settings', exact: true }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/admin/system/settings');

    const ttl = page.getByLabel('Portal magic link TTL (minutes)', { exact: true });
    await expect.poll(() => ttl.inputValue()).toBe('15');
    await ttl.fill('37');
    await page.getByRole('button', { name: 'Save settings', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Settings saved' }).waitFor();

    const session = await login(h.t, admin.email, admin.password);
    const settings = await h.t.request('GET', '/v1/system/settings', { token: session.token });
    expectStatus(settings, 200);
    expect(settings.body).toMatchObject({ portalMagicLinkTtlMinutes: 37, apiKeyRotationGraceMinutes: 1440, apiKeyMaxLifetimeDays: null });

    // What the page shows after a reload comes from the server.
    await page.reload();
    await expect.poll(() => page.getByLabel('Portal magic link TTL (minutes)', { exact: true }).inputValue()).toBe('37');
    expect(await page.getByLabel('Maximum key lifetime (days)', { exact: true }).inputValue()).toBe('');
  });

  it('the audit log shows the organization\'s events, their details, and the chain status to a global admin', async () => {
    const page = await open();
    await signIn(page, h.t.url, admin.email, admin.password);
    await selectOrganization(page, ACME);
    await nav(page).getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { name: 'Audit log', exact: true }).waitFor();
    await page.getByText(/^Audit chain intact \(\d+ events checked\)/).waitFor();

    const created = page.getByRole('row').filter({ hasText: 'api_key.created' }).first();
    await created.waitFor();
    await created.getByRole('button', { name: 'Details' }).click();
    const details = page.getByRole('dialog', { name: 'Event details', exact: true });
    await details.waitFor();
    expect(await details.textContent()).toContain('"api_key.created"');
    await page.keyboard.press('Escape');
    await details.waitFor({ state: 'detached' });

    // Filtering by action keeps only that action.
    await page.getByLabel('Action', { exact: true }).selectOption('organization.created');
    await page.getByRole('button', { name: 'Apply filters', exact: true }).click();
    await page.getByRole('row').filter({ hasText: 'api_key.created' }).first().waitFor({ state: 'detached' });
    await page.getByRole('row').filter({ hasText: 'organization.created' }).first().waitFor();
  });

  it('at 390 px the navigation folds behind the "Menu" button and the page does not scroll sideways', async () => {
    const page = await open({ width: 390, height: 844 });
    await signIn(page, h.t.url, owner.email, owner.password);
    const menu = page.getByRole('button', { name: 'Menu', exact: true });
    await menu.waitFor();
    const auditLink = page.getByRole('link', { name: 'Audit log', exact: true });
    expect(await auditLink.isVisible()).toBe(false);
    await menu.click();
    expect(await menu.getAttribute('aria-expanded')).toBe('true');
    await auditLink.click();
    await page.waitForURL((url) => url.pathname === '/admin/audit');
    // Choosing a page folds the navigation again.
    await auditLink.waitFor({ state: 'hidden' });
    expect(await menu.getAttribute('aria-expanded')).toBe('false');

    await menu.click();
    await page.getByRole('link', { name: 'API keys', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/admin/keys');
    await selectOrganization(page, ACME);
    await keysHeading(page);
    await keyRow(page, 'alpha reporting').waitFor();
    expect(await page.getByRole('button', { name: 'Create key', exact: true }).isVisible()).toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  });
});
