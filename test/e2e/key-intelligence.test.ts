/**
 * The operators' panel for key intelligence (issue 12 §5) in a real browser against a real Paygate:
 * the key list's tabs, search, flag filter, sorting, sparklines and badges; a key's page (requests
 * by outcome, refusals by code, audit trail, actions); a rotation whose old secret is still used,
 * then idle, then retired by the server itself; "End grace now"; the usage overview and the
 * credential report; the system reports and the signed evidence. What the panel shows is checked
 * against what the HTTP API says.
 */
import { createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { formatToken } from '../../src/keys/token.js';
import { evidencePayload } from '../../src/reports/evidence.js';
import { createOrgKey, createOrgWithKey, createSystemKey, createUser, expectProblem, expectStatus, type OrgWithKey } from '../harness.js';
import { describeInBrowser, selectOrganization, signIn, startPanel, type PanelHarness } from './support.js';

const ORG = 'Usage Works';
const TOKEN_PATTERN = /^sk_[0-9A-Za-z]{20}\.[0-9A-Za-z]{49}$/;

type User = Awaited<ReturnType<typeof createUser>>;
type Key = Awaited<ReturnType<typeof createOrgKey>>;

describeInBrowser('key intelligence in the admin panel', () => {
  let h: PanelHarness;
  let org: OrgWithKey;
  let owner: User;
  let admin: User;
  let busy: Key;
  let quiet: Key;
  let broad: Key;
  let leaked: Key;
  let expiring: Key;
  let revoked: Key;
  let systemSettings: string;
  let pageErrors: string[] = [];
  let currentPage: Page | null = null;
  const BUSY_OK = 5;
  const BUSY_SCOPE_REFUSALS = 2;
  const BUSY_WRONG_SECRET = 1;

  const request = (method: string, url: string, options: Parameters<PanelHarness['t']['request']>[2] = {}) => h.t.request(method, url, options);
  /** A request from a given address and client (the test server trusts the loopback proxy). */
  const from = (ip: string, userAgent: string) => ({ 'x-forwarded-for': ip, 'user-agent': userAgent });

  beforeAll(async () => {
    h = await startPanel({ env: { PAYGATE_TRUSTED_PROXIES: 'loopback' } });
    const { t } = h;
    org = await createOrgWithKey(t, ['api_key:read', 'audit:read'], ORG);
    owner = await createUser(t, { organizationId: org.organizationId, role: 'owner' });
    admin = await createUser(t, { globalAdmin: true });
    systemSettings = (await createSystemKey(t, ['system_settings:*'])).token;
    expectStatus(
      await request('PATCH', '/v1/system/settings', { token: systemSettings, body: { leakedKeyAction: 'quarantine', apiKeyExpiryWarningDays: 7 } }),
      200,
    );

    quiet = await createOrgKey(t, org.organizationId, ['invoice:read'], { name: 'quiet reporter' });
    broad = await createOrgKey(t, org.organizationId, ['client:*'], { name: 'broad importer' });
    expiring = await createOrgKey(t, org.organizationId, ['checkout:read'], {
      name: 'expiring bridge',
      expiresAt: new Date(Date.now() + 2 * 86_400_000).toISOString(),
    });
    revoked = await createOrgKey(t, org.organizationId, ['checkout:read'], { name: 'old revoked' });
    expectStatus(await request('POST', orgKeys(`/${revoked.id}/revoke`), { token: await ownerToken() }), 200);
    leaked = await createOrgKey(t, org.organizationId, ['checkout:read', 'client:create'], { name: 'leaked webshop' });
    expectStatus(await request('POST', '/v1/leaked-keys', { body: { tokens: [leaked.secret], source: 'e2e' }, headers: { 'x-forwarded-for': '192.0.2.77' } }), 202);

    // The busy key: let through, refused for a scope it lacks, and one wrong secret for its id; used last.
    busy = await createOrgKey(t, org.organizationId, ['checkout:read'], { name: 'busy checkout' });
    for (let i = 0; i < BUSY_SCOPE_REFUSALS; i++) expectProblem(await request('GET', '/v1/clients', { token: busy.secret! }), 403, 'insufficient_scope');
    for (let i = 0; i < BUSY_WRONG_SECRET; i++) expectProblem(await request('GET', '/v1/auth/whoami', { token: formatToken(busy.id) }), 401, 'invalid_api_key');
    for (let i = 0; i < BUSY_OK; i++) expectStatus(await request('GET', '/v1/auth/whoami', { token: busy.secret!, headers: from('10.9.8.7', 'shop/1.0') }), 200);
    await t.services.usage.flush();
  }, 240_000);

  afterAll(async () => {
    await h?.close();
  });

  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail' && currentPage) {
      const file = path.join(os.tmpdir(), `paygate-e2e-ki-${task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}.png`);
      await currentPage.screenshot({ path: file, fullPage: true }).then(
        () => process.stderr.write(`[e2e] screenshot of the failed page: ${file}\n`),
        () => undefined,
      );
    }
    currentPage = null;
    const errors = pageErrors;
    pageErrors = [];
    expect(errors, 'uncaught errors or CSP violations in the page').toEqual([]);
  });

  /** An organization route with the organization in the path (a session token names none by itself). */
  const orgKeys = (rest: string) => `/v1/organizations/${org.organizationId}/api-keys${rest}`;
  let ownerSession: string | null = null;
  async function ownerToken(): Promise<string> {
    if (ownerSession) return ownerSession;
    const result = await h.t.request('POST', '/v1/auth/login', { body: { email: owner.email, password: owner.password } });
    expectStatus(result, 200);
    ownerSession = result.body.token as string;
    return ownerSession;
  }

  async function open(): Promise<Page> {
    const opened = await h.newPage();
    pageErrors = opened.pageErrors;
    currentPage = opened.page;
    return opened.page;
  }

  const nav = (page: Page) => page.getByRole('navigation', { name: 'Main', exact: true });
  const rowOf = (page: Page, name: string): Locator => page.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });
  const keyNames = (page: Page) => page.locator('tbody tr .cell-title a').allTextContents();

  async function ownerOnKeys(): Promise<Page> {
    const page = await open();
    await signIn(page, h.t.url, owner.email, owner.password);
    await selectOrganization(page, ORG);
    await nav(page).getByRole('link', { name: 'API keys', exact: true }).click();
    await page.getByRole('heading', { name: 'API keys', exact: true }).waitFor();
    await rowOf(page, 'busy checkout').waitFor();
    return page;
  }

  async function openKeyPage(page: Page, name: string, id: string): Promise<void> {
    await rowOf(page, name).getByRole('link', { name, exact: true }).click();
    await page.waitForURL((url) => url.pathname === `/admin/keys/${id}`);
    await page.getByRole('heading', { name, exact: true, level: 1 }).waitFor();
  }

  it('lists keys in status tabs, finds them by name, id or hint, filters by flag, sorts, and draws 24 h sparklines only for keys with traffic', async () => {
    const usageRequests: string[] = [];
    const page = await open();
    page.on('request', (r) => {
      const match = /\/api-keys\/([0-9A-Za-z]{20})\/usage/.exec(new URL(r.url()).pathname);
      if (match) usageRequests.push(match[1]!);
    });
    await signIn(page, h.t.url, owner.email, owner.password);
    await selectOrganization(page, ORG);
    await nav(page).getByRole('link', { name: 'API keys', exact: true }).click();
    await rowOf(page, 'busy checkout').waitFor();

    // Tabs by status, with counts; "All" is the default.
    const tab = (name: RegExp) => page.getByRole('tab', { name });
    expect(await tab(/^All/).getAttribute('aria-selected')).toBe('true');
    expect(await tab(/^Quarantined/).textContent()).toBe('Quarantined 1');
    await tab(/^Quarantined/).click();
    await expect.poll(() => keyNames(page)).toEqual(['leaked webshop']);
    await rowOf(page, 'leaked webshop').getByText('quarantined', { exact: true }).waitFor();
    await tab(/^Revoked/).click();
    await expect.poll(() => keyNames(page)).toEqual(['old revoked']);
    // Arrow keys move between tabs.
    await tab(/^Revoked/).focus();
    await page.keyboard.press('ArrowLeft');
    expect(await tab(/^Expired/).getAttribute('aria-selected')).toBe('true');
    await page.getByText('No keys match.', { exact: true }).waitFor();
    await tab(/^Active/).click();
    await rowOf(page, 'busy checkout').waitFor();
    expect(await keyNames(page)).not.toContain('old revoked');
    expect(await keyNames(page)).not.toContain('leaked webshop');
    await tab(/^All/).click();

    // Search by name, id and hint.
    const search = page.getByLabel('Search keys', { exact: true });
    await search.fill('IMPORTER');
    await expect.poll(() => keyNames(page)).toEqual(['broad importer']);
    await search.fill(quiet.id);
    await expect.poll(() => keyNames(page)).toEqual(['quiet reporter']);
    await search.fill(expiring.hint);
    await expect.poll(() => keyNames(page)).toContain('expiring bridge');
    expect((await keyNames(page)).length).toBeLessThanOrEqual(2);
    await search.fill('');

    // Badges, and the flag filter.
    await rowOf(page, 'leaked webshop').getByText('leaked', { exact: true }).waitFor();
    await rowOf(page, 'broad importer').getByText('broad scopes', { exact: true }).waitFor();
    await rowOf(page, 'expiring bridge').getByText('expiring soon', { exact: true }).waitFor();
    const flag = page.getByLabel('Flag', { exact: true });
    await flag.selectOption({ label: 'leaked' });
    await expect.poll(() => keyNames(page)).toEqual(['leaked webshop']);
    await flag.selectOption({ label: 'broad scopes' });
    await expect.poll(() => keyNames(page)).toEqual(['broad importer']);
    await flag.selectOption({ label: 'expiring soon' });
    await expect.poll(() => keyNames(page)).toEqual(['expiring bridge']);
    await flag.selectOption({ label: 'Any' });

    // Sorting.
    const sort = page.getByLabel('Sort by', { exact: true });
    await sort.selectOption({ label: 'Expiring first' });
    await expect.poll(async () => (await keyNames(page))[0]).toBe('expiring bridge');
    await sort.selectOption({ label: 'Last used' });
    await expect.poll(async () => (await keyNames(page))[0]).toBe('busy checkout');
    const byUse = await keyNames(page);
    expect(byUse.indexOf('busy checkout')).toBeLessThan(byUse.indexOf('quiet reporter'));
    await sort.selectOption({ label: 'Oldest secret first' });
    await expect.poll(async () => (await keyNames(page))[0]).toBe('test key');

    // The sparkline of the busy key carries its figures; a key without traffic draws a flat line without asking.
    const total = BUSY_OK + BUSY_SCOPE_REFUSALS + BUSY_WRONG_SECRET;
    const refused = BUSY_SCOPE_REFUSALS + BUSY_WRONG_SECRET;
    await rowOf(page, 'busy checkout').getByRole('img', { name: `${total} requests in the last 24 hours, ${refused} refused`, exact: true }).waitFor();
    await rowOf(page, 'quiet reporter').getByRole('img', { name: 'No requests in the last 24 hours', exact: true }).waitFor();
    expect(usageRequests).toContain(busy.id);
    expect(usageRequests).not.toContain(quiet.id);
    expect(usageRequests).not.toContain(broad.id);

    // The figures are the API's.
    const usage = await request('GET', `/v1/api-keys/${busy.id}/usage`, { token: org.token });
    expectStatus(usage, 200);
    expect(usage.body.totals).toMatchObject({ total, outcomes: { ok: BUSY_OK, insufficient_scope: BUSY_SCOPE_REFUSALS, invalid_api_key: BUSY_WRONG_SECRET } });
  });

  it("a key's page shows its requests by outcome, refusals by code, last use, and its audit trail; editing there is what the API returns", async () => {
    const page = await ownerOnKeys();
    await openKeyPage(page, 'busy checkout', busy.id);

    await page.getByText('from 10.9.8.7 (shop/1.0)', { exact: true }).waitFor();
    const requests = page.getByRole('region', { name: 'Requests', exact: true });
    await requests.getByRole('img', { name: /^Requests by outcome, last 24 hours, per hour$/ }).waitFor();
    expect(await requests.locator('canvas').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('usage-total').textContent()).toBe(String(BUSY_OK + BUSY_SCOPE_REFUSALS + BUSY_WRONG_SECRET));
    await requests.getByText('Figures', { exact: true }).click();
    const figures = requests.getByRole('table');
    for (const header of ['Total', 'ok', 'insufficient_scope', 'invalid_api_key', 'Current secret', 'Previous secret']) {
      expect(await figures.getByRole('columnheader', { name: header, exact: true }).count(), header).toBe(1);
    }

    const refusals = page.getByRole('region', { name: 'Recent refusals', exact: true });
    const refusalRow = (code: string) => refusals.getByRole('row').filter({ hasText: code });
    await refusalRow('insufficient_scope').waitFor();
    expect(await refusalRow('insufficient_scope').getByRole('cell').nth(1).textContent()).toBe(String(BUSY_SCOPE_REFUSALS));
    expect(await refusalRow('invalid_api_key').getByRole('cell').nth(1).textContent()).toBe(String(BUSY_WRONG_SECRET));
    expect(await refusalRow('ip_not_allowed').count()).toBe(0);

    // A shorter range asks again, by the minute.
    await requests.getByLabel('Range', { exact: true }).selectOption({ label: 'Last hour' });
    await requests.getByRole('img', { name: /^Requests by outcome, last hour, per minute$/ }).waitFor();

    // The audit trail: its creation (target) and its refusals (actor).
    const trail = page.getByRole('region', { name: 'Audit trail', exact: true });
    await trail.getByRole('row').filter({ hasText: 'api_key.created' }).waitFor();
    await trail.getByRole('row').filter({ hasText: 'auth.insufficient_scope' }).first().waitFor();

    // Edit from the key's page.
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit API key', exact: true });
    await dialog.getByLabel('Description', { exact: true }).fill('The web shop checkout');
    await dialog.getByRole('button', { name: 'Save changes', exact: true }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByText('The web shop checkout', { exact: true }).waitFor();
    const after = await request('GET', `/v1/api-keys/${busy.id}`, { token: org.token });
    expectStatus(after, 200);
    expect(after.body.description).toBe('The web shop checkout');
  });

  it('a rotation whose old secret is still in use shows where it was last used, then, once the old secret is idle, retires it by itself', async () => {
    const worker = await createOrgKey(h.t, org.organizationId, ['checkout:read'], { name: 'rotating worker' });
    const page = await ownerOnKeys();
    await openKeyPage(page, 'rotating worker', worker.id);

    await page.getByRole('button', { name: 'Rotate', exact: true }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate API key', exact: true });
    await rotate.getByRole('radio', { name: 'In 1 hour', exact: true }).check();
    await rotate.getByRole('checkbox', { name: 'End when the old secret is idle', exact: true }).check();
    await rotate.getByLabel('Idle minutes', { exact: true }).fill('1');
    const rotated = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/api-keys/${worker.id}/rotate`));
    await rotate.getByRole('button', { name: 'Rotate', exact: true }).click();
    expect(JSON.parse((await rotated).request().postData() ?? '{}')).toEqual({ gracePeriodMinutes: 60, retireWhenIdleMinutes: 1 });
    const secretDialog = page.getByRole('dialog', { name: 'Your new API key', exact: true });
    await secretDialog.getByText(/^It stops sooner once it has not been used for 1 minute after the new secret's first use\.$/).waitFor();
    const fresh = await secretDialog.getByLabel('Secret', { exact: true }).inputValue();
    expect(fresh).toMatch(TOKEN_PATTERN);
    await secretDialog.getByRole('button', { name: 'Done', exact: true }).click();

    const grace = page.getByRole('region', { name: 'Grace period', exact: true });
    await grace.getByText('Previous secret not used since the rotation.', { exact: true }).waitFor();

    // The integration moves to the new secret, but one client still uses the old one.
    expectStatus(await request('GET', '/v1/auth/whoami', { token: fresh, headers: from('10.1.2.4', 'worker/2.0') }), 200);
    expectStatus(await request('GET', '/v1/auth/whoami', { token: worker.secret!, headers: from('10.1.2.3', 'curl/8.5') }), 200);
    const usedAt = Date.now();
    // The page refreshes itself: the sighting arrives with the next flush (2 s) and refresh (5 s).
    await grace.getByText(/^Previous secret last used (now|\d+ seconds? ago) from 10\.1\.2\.3 \(curl\/8\.5\)/).waitFor({ timeout: 20_000 });
    const during = await request('GET', `/v1/api-keys/${worker.id}`, { token: org.token });
    expect(during.body).toMatchObject({ previousSecretLastUsedIp: '10.1.2.3' });
    expect(during.body.previousSecretExpiresAt).not.toBeNull();

    // Nothing uses the old secret any more: a minute later the server ends the grace itself, and the page shows it.
    await grace.waitFor({ state: 'detached', timeout: 100_000 });
    expect(Date.now() - usedAt).toBeGreaterThanOrEqual(55_000);
    expectProblem(await request('GET', '/v1/auth/whoami', { token: worker.secret! }), 401, 'invalid_api_key');
    expectStatus(await request('GET', '/v1/auth/whoami', { token: fresh }), 200);
    const ended = await request('GET', `/v1/api-keys/${worker.id}`, { token: org.token });
    expect(ended.body).toMatchObject({ previousSecretExpiresAt: null, previousSecretLastUsedAt: null });

    // The audit trail says why it ended.
    await page.reload();
    const trail = page.getByRole('region', { name: 'Audit trail', exact: true });
    await trail.getByRole('row').filter({ hasText: 'graceEnded: idle' }).waitFor();
    await trail.getByRole('row').filter({ hasText: 'api_key.rotated' }).waitFor();
  }, 180_000);

  it('"End grace now" ends the previous secret at once', async () => {
    const legacy = await createOrgKey(h.t, org.organizationId, ['checkout:read'], { name: 'legacy poller' });
    const rotation = await request('POST', orgKeys(`/${legacy.id}/rotate`), { token: await ownerToken(), body: { gracePeriodMinutes: 60 } });
    expectStatus(rotation, 200);
    expectStatus(await request('GET', '/v1/auth/whoami', { token: legacy.secret!, headers: from('10.5.5.5', 'poller/0.9') }), 200);
    await h.t.services.usage.flush();

    const page = await ownerOnKeys();
    await openKeyPage(page, 'legacy poller', legacy.id);
    const grace = page.getByRole('region', { name: 'Grace period', exact: true });
    await grace.getByText(/^Previous secret last used .* from 10\.5\.5\.5 \(poller\/0\.9\)/).waitFor();
    await grace.getByRole('button', { name: 'End grace now', exact: true }).click();
    const confirm = page.getByRole('dialog', { name: 'End the grace period', exact: true });
    await confirm.getByRole('button', { name: 'End grace now', exact: true }).click();
    await confirm.waitFor({ state: 'detached' });
    await grace.waitFor({ state: 'detached' });
    await page.getByRole('status').filter({ hasText: 'Grace period ended' }).waitFor();

    expectProblem(await request('GET', '/v1/auth/whoami', { token: legacy.secret! }), 401, 'invalid_api_key');
    expectStatus(await request('GET', '/v1/auth/whoami', { token: rotation.body.secret }), 200);
    // Ending it again is a conflict: there is no previous secret any more.
    expectProblem(await request('POST', orgKeys(`/${legacy.id}/end-grace`), { token: await ownerToken() }), 409, 'conflict');
    await page.reload();
    await page.getByRole('region', { name: 'Audit trail', exact: true }).getByRole('row').filter({ hasText: 'graceEnded: by request' }).waitFor();
  });

  it('a quarantined key says so on its page, and rotating it there returns it to active without the leaked secret', async () => {
    const page = await ownerOnKeys();
    await openKeyPage(page, 'leaked webshop', leaked.id);
    await page.getByText('This key is quarantined: a token of it was reported leaked.', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Rotate', exact: true }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate API key', exact: true });
    await rotate.getByRole('radio', { name: 'Now', exact: true }).check();
    // No grace: nothing to retire on evidence.
    expect(await rotate.getByRole('checkbox', { name: 'End when the old secret is idle', exact: true }).count()).toBe(0);
    await rotate.getByRole('button', { name: 'Rotate', exact: true }).click();
    const secretDialog = page.getByRole('dialog', { name: 'Your new API key', exact: true });
    const fresh = await secretDialog.getByLabel('Secret', { exact: true }).inputValue();
    await secretDialog.getByRole('button', { name: 'Done', exact: true }).click();
    await page.getByText('This key is quarantined: a token of it was reported leaked.', { exact: true }).waitFor({ state: 'detached' });
    await page.locator('.key-status-line').getByText('active', { exact: true }).waitFor();

    expectProblem(await request('GET', '/v1/auth/whoami', { token: leaked.secret! }), 401, 'invalid_api_key');
    const who = await request('GET', '/v1/auth/whoami', { token: fresh });
    expectStatus(who, 200);
    expect(who.body.keyId).toBe(leaked.id);
  });

  it('the usage overview ranks keys by requests with refusal rates, and downloads the credential report as CSV and JSON', async () => {
    // The earlier tests' requests are all counted before the page and the API are compared.
    await h.t.services.usage.flush();
    const page = await ownerOnKeys();
    await nav(page).getByRole('link', { name: 'Usage', exact: true }).click();
    await page.getByRole('heading', { name: 'Usage', exact: true, level: 1 }).waitFor();
    const region = page.getByRole('region', { name: 'Keys by requests', exact: true });
    const busyRow = rowOf(page, 'busy checkout');
    await busyRow.waitFor();
    const overview = await request('GET', '/v1/usage', { token: org.token });
    expectStatus(overview, 200);
    const mine = overview.body.data.find((r: { keyId: string }) => r.keyId === busy.id);
    const cells = await busyRow.getByRole('cell').allTextContents();
    expect(cells[1]).toBe(String(mine.total));
    expect(cells[2]).toBe(String(mine.total - mine.outcomes.ok));
    expect(cells[3]).toMatch(/^\d+(\.\d)? %$/);
    expect(cells[4]).toContain('insufficient_scope');
    // Busiest first, as the API ranks them.
    const names = await region.locator('tbody tr .cell-title a').allTextContents();
    expect(names).toEqual(overview.body.data.map((r: { name: string }) => r.name));

    const csv = await download(page, 'Download CSV');
    expect(csv.name).toMatch(/^credential-report-.*\.csv$/);
    const [header, ...lines] = csv.text.trim().split(/\r?\n/);
    expect(header!.split(',').slice(0, 5)).toEqual(['id', 'tier', 'organizationId', 'name', 'status']);
    expect(lines.some((l) => l.includes(busy.id))).toBe(true);
    expect(lines.some((l) => l.includes(revoked.id))).toBe(true);
    await page.getByRole('status').filter({ hasText: 'Credential report downloaded (CSV).' }).waitFor();

    const json = await download(page, 'Download JSON');
    const report = JSON.parse(json.text);
    expect(report).toMatchObject({ object: 'credential_report', scope: 'organization', organizationId: org.organizationId });
    expect(report.data.find((r: { id: string }) => r.id === broad.id).flags).toContain('broad_scopes');
  });

  it('a global admin downloads the system credential report and the signed evidence bundle; other people see no system reports', async () => {
    const page = await open();
    await signIn(page, h.t.url, admin.email, admin.password);
    await nav(page).getByRole('link', { name: 'Reports', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/admin/system/reports');
    await page.getByRole('heading', { name: 'Reports', exact: true, level: 1 }).waitFor();

    const csv = await download(page, 'Download CSV');
    expect(csv.name).toMatch(/^credential-report-system-.*\.csv$/);
    expect(csv.text).toContain(busy.id);
    expect(csv.text).toMatch(/\nsystem|,system,/);

    await page.getByRole('button', { name: 'Generate evidence', exact: true }).click();
    const evidence = page.getByRole('region', { name: 'Compliance evidence', exact: true });
    await evidence.getByText('verified', { exact: true }).or(evidence.getByText('not verified', { exact: true })).waitFor();
    const saved = await download(page, 'Download evidence (JSON)');
    const bundle = JSON.parse(saved.text);
    expect(bundle).toMatchObject({ object: 'compliance_evidence' });
    expect(typeof bundle.signature).toBe('string');
    expect(bundle.keys.total).toBeGreaterThanOrEqual(8);
    // The saved bundle's signature verifies with Paygate's audit key.
    const system = await createSystemKey(h.t, ['audit:read']);
    const pem = await request('GET', '/v1/system/audit-checkpoints/public-key', { token: system.token });
    expectStatus(pem, 200);
    expect(verify(null, evidencePayload(bundle), createPublicKey(pem.text), Buffer.from(bundle.signature, 'base64'))).toBe(true);
    const byStatus = evidence.getByRole('heading', { name: 'By status', exact: true });
    await byStatus.waitFor();

    // A system key's page, from the system keys list: its requests and its audit trail (the system log).
    await nav(page).getByRole('link', { name: 'System API keys', exact: true }).click();
    const systemKeyLink = page.getByRole('link', { name: 'system key', exact: true }).first();
    await systemKeyLink.click();
    await page.waitForURL((url) => /^\/admin\/system\/keys\/[0-9A-Za-z]{20}$/.test(url.pathname));
    const systemKeyId = new URL(page.url()).pathname.split('/').pop()!;
    await page.getByRole('heading', { name: 'system key', exact: true, level: 1 }).waitFor();
    await page.getByRole('region', { name: 'Requests', exact: true }).getByRole('img', { name: /^Requests by outcome/ }).waitFor();
    await page.getByRole('region', { name: 'Audit trail', exact: true }).getByRole('row').filter({ hasText: 'system_key.created' }).waitFor();
    expect([system.keyId, (await request('GET', '/v1/auth/whoami', { token: systemSettings })).body.keyId]).toContain(systemKeyId);

    // Not a global admin: no Reports link, and the page itself says it is for global admins.
    const ownerPage = await ownerOnKeys();
    expect(await nav(ownerPage).getByRole('link', { name: 'Reports', exact: true }).count()).toBe(0);
    await ownerPage.goto(`${h.t.url}/admin/system/reports`);
    await ownerPage.getByText('System pages are for global admins.', { exact: true }).waitFor();
  });

  /** Clicks a download button and returns the saved file's name and text. */
  async function download(page: Page, button: string): Promise<{ name: string; text: string }> {
    const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: button, exact: true }).click()]);
    const saved = await file.path();
    return { name: file.suggestedFilename(), text: await fs.readFile(saved, 'utf8') };
  }
});
