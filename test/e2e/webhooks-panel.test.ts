/**
 * Settings > Webhooks in a real browser against a real Paygate delivering to a real HTTP receiver on
 * 127.0.0.1 (PAYGATE_WEBHOOK_ALLOW_PRIVATE=true): add an endpoint with the event picker, see its
 * secret once, send a test event and see it delivered (signed with that secret), make the receiver
 * fail, see the failed attempt, and retry it once the receiver recovers; rotate, disable, enable,
 * delete; the API's refusals in words; read-only roles see no buttons that change anything.
 */
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { WEBHOOK_EVENT_TYPES } from '../../src/webhooks/events.js';
import { createOrgWithKey, createUser, expectStatus, type OrgWithKey } from '../harness.js';
import { signaturesOf, startWebhookReceiver, verifySignature, type WebhookReceiver } from '../webhook-receiver.js';
import { describeInBrowser, selectOrganization, signIn, startPanel, type PanelHarness } from './support.js';

const SHOP = 'Hook Shop';
const SECRET_PATTERN = /^whsec_[0-9A-Za-z]{43}$/;

type User = Awaited<ReturnType<typeof createUser>>;

describeInBrowser('admin panel: webhooks', () => {
  let h: PanelHarness;
  let receiver: WebhookReceiver;
  let shop: OrgWithKey;
  let owner: User;
  let developer: User;
  let pageErrors: string[] = [];
  let currentPage: Page | null = null;

  beforeAll(async () => {
    h = await startPanel({ env: { PAYGATE_WEBHOOK_ALLOW_PRIVATE: 'true' } });
    receiver = await startWebhookReceiver();
    shop = await createOrgWithKey(h.t, ['webhook:read'], SHOP);
    owner = await createUser(h.t, { organizationId: shop.organizationId, role: 'owner' });
    developer = await createUser(h.t, { organizationId: shop.organizationId, role: 'developer' });
  }, 240_000);

  afterAll(async () => {
    await h?.close();
    await receiver?.close();
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

  async function open(user: User): Promise<Page> {
    const opened = await h.newPage();
    pageErrors = opened.pageErrors;
    currentPage = opened.page;
    const { page } = opened;
    await signIn(page, h.t.url, user.email, user.password);
    // A member of one organization has it selected at sign-in; choosing it again is harmless.
    if (!(await page.getByRole('banner').getByLabel('Organization', { exact: true }).inputValue())) await selectOrganization(page, SHOP);
    await page.getByRole('navigation', { name: 'Main', exact: true }).getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/admin/webhooks');
    await page.getByRole('heading', { name: 'Webhooks', exact: true, level: 1 }).waitFor();
    return page;
  }

  const endpointRow = (page: Page, url: string): Locator =>
    page.getByRole('table', { name: 'Webhook endpoints' }).getByRole('row').filter({ hasText: url });
  const deliveryRows = (page: Page, url: string): Locator => page.getByRole('table', { name: `Deliveries of ${url}`, exact: true }).locator('tbody > tr[data-delivery-id]');
  /** A delivery row's cells: event, status, attempts, last answer, next attempt, actions. */
  const cell = (row: Locator, index: number): Locator => row.locator(':scope > td').nth(index);
  const api = (method: string, p: string, body?: unknown) => h.t.request(method, p, { token: shop.token, body });

  /** Adds an endpoint through the dialog and returns the secret it shows (after checking Copy gives the same). */
  async function addEndpoint(page: Page, url: string, events: string[]): Promise<string> {
    await page.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Add webhook endpoint' });
    await dialog.getByLabel('Endpoint URL', { exact: true }).fill(url);
    await dialog.getByLabel('Description (optional)', { exact: true }).fill('panel test');
    for (const type of events) await dialog.getByLabel(type, { exact: true }).check();
    await dialog.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    const secretDialog = page.getByRole('dialog', { name: 'Signing secret' });
    const secret = await secretDialog.getByLabel('Signing secret', { exact: true }).inputValue();
    expect(secret).toMatch(SECRET_PATTERN);
    await secretDialog.getByRole('button', { name: 'Copy signing secret', exact: true }).click();
    await secretDialog.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await secretDialog.getByRole('button', { name: 'Done', exact: true }).click();
    await secretDialog.waitFor({ state: 'detached' });
    return secret;
  }

  it('adds an endpoint with the event picker and shows its secret once; a test event is delivered, signed with it; a failed delivery shows its attempt and is retried after the receiver recovers', async () => {
    const page = await open(owner);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.t.url });
    await page.getByText('No webhook endpoints yet.').waitFor();
    const url = receiver.urlFor('panel');

    // The picker offers exactly the server's event types.
    await page.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    const picker = page.getByRole('dialog', { name: 'Add webhook endpoint' });
    for (const type of WEBHOOK_EVENT_TYPES) expect(await picker.getByLabel(type, { exact: true }).count(), type).toBe(1);
    expect(await picker.getByRole('group', { name: 'Event types' }).getByRole('checkbox').count()).toBe(WEBHOOK_EVENT_TYPES.length);
    await picker.getByRole('button', { name: 'Cancel', exact: true }).click();

    const secret = await addEndpoint(page, url, ['checkout.completed', 'api_key.created']);
    const row = endpointRow(page, url);
    await row.waitFor();
    await row.getByText('checkout.completed', { exact: true }).waitFor();
    // Shown once: not on the page any more, and no API read holds it.
    expect(await page.content()).not.toContain(secret);
    const listed = await api('GET', '/v1/webhook-endpoints');
    expectStatus(listed, 200);
    expect(listed.text).not.toContain(secret);
    const endpoint = (listed.body.data as { id: string; url: string; events: string[]; description: string }[]).find((e) => e.url === url)!;
    expect(endpoint).toMatchObject({ events: ['api_key.created', 'checkout.completed'], description: 'panel test' });

    // A test event: delivered, signed with the secret the dialog showed.
    await row.getByRole('button', { name: `Send test event to ${url}`, exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Test event queued' }).waitFor();
    const first = await receiver.next('webhook_endpoint.test', (hook) => hook.path === '/hooks/panel');
    expect(verifySignature(first.headers['paygate-signature'], first.body, secret)).toBe(true);
    const delivered = deliveryRows(page, url).filter({ hasText: first.json.id as string });
    await cell(delivered, 1).getByText('succeeded', { exact: true }).waitFor();
    await cell(delivered, 3).getByText('HTTP 200', { exact: true }).waitFor();

    // The receiver fails: the delivery stays pending with its failed attempt listed.
    receiver.answers.set('/hooks/panel', 500);
    await row.getByRole('button', { name: `Send test event to ${url}`, exact: true }).click();
    const failedHook = await receiver.waitFor((all) => all.filter((hk) => hk.path === '/hooks/panel').length === 2, 'the failing attempt');
    const failedEvent = failedHook.filter((hk) => hk.path === '/hooks/panel')[1]!;
    const failing = deliveryRows(page, url).filter({ hasText: failedEvent.json.id as string });
    await cell(failing, 3).getByText('HTTP 500', { exact: true }).waitFor();
    await cell(failing, 1).getByText('pending', { exact: true }).waitFor();
    expect(await cell(failing, 2).textContent()).toBe('1');
    // Its next attempt is scheduled (30 to 60 seconds on), shown in the row.
    expect(await cell(failing, 4).textContent()).not.toBe('—');
    await failing.getByText('1 attempt', { exact: true }).click();
    const attempt = failing.locator('.attempts-table tbody tr').first();
    await attempt.getByText('failed', { exact: true }).waitFor();
    await attempt.getByText('answered 500', { exact: true }).waitFor();
    expect(await attempt.getByText(/^\d+ ms$/).count()).toBe(1);

    // It recovers; Retry delivers it now (not at its scheduled retry), under a new attempt id.
    receiver.answers.set('/hooks/panel', 200);
    await failing.getByRole('button', { name: /^Retry delivery whd_/ }).click();
    await cell(failing, 1).getByText('succeeded', { exact: true }).waitFor();
    const both = receiver.to('panel').filter((hk) => hk.json.id === failedEvent.json.id);
    expect(both).toHaveLength(2);
    expect(both[1]!.headers['paygate-attempt-id']).not.toBe(both[0]!.headers['paygate-attempt-id']);
    expect(verifySignature(both[1]!.headers['paygate-signature'], both[1]!.body, secret)).toBe(true);
    await failing.getByText('2 attempts', { exact: true }).waitFor();
  });

  it('rotates the secret with a grace period (deliveries then carry both signatures), disables, enables and deletes an endpoint', async () => {
    const page = await open(owner);
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.t.url });
    const url = receiver.urlFor('rotate');
    const first = await addEndpoint(page, url, ['refund.created']);
    const row = endpointRow(page, url);

    await row.getByRole('button', { name: `Rotate secret of ${url}`, exact: true }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate signing secret' });
    await rotate.getByLabel('In 1 hour', { exact: true }).check();
    await rotate.getByRole('button', { name: 'Rotate secret', exact: true }).click();
    const shown = page.getByRole('dialog', { name: 'Signing secret' });
    const second = await shown.getByLabel('Signing secret', { exact: true }).inputValue();
    expect(second).toMatch(SECRET_PATTERN);
    expect(second).not.toBe(first);
    await shown.getByText(/every delivery carries two signatures/).waitFor();
    await shown.getByRole('button', { name: 'Done', exact: true }).click();
    await row.getByText(/^Previous secret signs until/).waitFor();

    await row.getByRole('button', { name: `Send test event to ${url}`, exact: true }).click();
    const hook = await receiver.next('webhook_endpoint.test', (hk) => hk.path === '/hooks/rotate');
    expect(signaturesOf(hook.headers['paygate-signature'])).toHaveLength(2);
    expect(verifySignature(hook.headers['paygate-signature'], hook.body, second)).toBe(true);
    expect(verifySignature(hook.headers['paygate-signature'], hook.body, first)).toBe(true);

    await row.getByRole('button', { name: `Disable ${url}`, exact: true }).click();
    await row.getByText('disabled', { exact: true }).waitFor();
    expect(await row.getByRole('button', { name: `Send test event to ${url}`, exact: true }).count()).toBe(0);
    const endpoints = await api('GET', '/v1/webhook-endpoints');
    const id = (endpoints.body.data as { id: string; url: string; status: string }[]).find((e) => e.url === url)!;
    expect(id.status).toBe('disabled');
    await row.getByRole('button', { name: `Enable ${url}`, exact: true }).click();
    await row.getByText('enabled', { exact: true }).waitFor();

    await row.getByRole('button', { name: `Delete ${url}`, exact: true }).click();
    const confirm = page.getByRole('dialog', { name: 'Delete webhook endpoint' });
    await confirm.getByRole('button', { name: 'Delete endpoint', exact: true }).click();
    await row.waitFor({ state: 'detached' });
    expect((await api('GET', `/v1/webhook-endpoints/${id.id}`)).status).toBe(404);
  });

  it("shows the API's refusal of a target in words, in the dialog, and adds nothing", async () => {
    const page = await open(owner);
    const before = (await api('GET', '/v1/webhook-endpoints')).body.data.length as number;
    await page.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Add webhook endpoint' });
    // Nothing chosen: the panel says what is missing before asking.
    await dialog.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    await dialog.getByRole('alert').getByText('choose at least one event type, or all events').waitFor();
    // Cloud metadata is refused whatever PAYGATE_WEBHOOK_ALLOW_PRIVATE says.
    await dialog.getByLabel('Endpoint URL', { exact: true }).fill('http://169.254.169.254/latest/meta-data');
    await dialog.getByLabel('All events', { exact: true }).check();
    await dialog.getByRole('button', { name: 'Add endpoint', exact: true }).click();
    const alert = dialog.getByRole('alert');
    await alert.getByText('URL', { exact: true }).waitFor();
    expect(await alert.textContent()).toMatch(/metadata|refused|not allowed/i);
    expect(await dialog.isVisible()).toBe(true);
    expect((await api('GET', '/v1/webhook-endpoints')).body.data.length).toBe(before);
  });

  it('a developer sees the endpoints and their deliveries but no button that changes them', async () => {
    const ownerPage = await open(owner);
    await ownerPage.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.t.url });
    const url = receiver.urlFor('readonly');
    await addEndpoint(ownerPage, url, ['invoice.paid']);
    await ownerPage.context().close();

    const page = await open(developer);
    const row = endpointRow(page, url);
    await row.waitFor();
    await row.getByText('invoice.paid', { exact: true }).waitFor();
    expect(await page.getByRole('button', { name: 'Add endpoint', exact: true }).count()).toBe(0);
    for (const name of ['Send test event to', 'Rotate secret of', 'Disable', 'Delete']) {
      expect(await row.getByRole('button', { name: `${name} ${url}`, exact: true }).count(), name).toBe(0);
    }
    await row.getByRole('button', { name: `Deliveries of ${url}`, exact: true }).click();
    await page.getByText('No deliveries yet. Send a test event to try the endpoint.').waitFor();
  });
});
