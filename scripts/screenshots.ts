/**
 * `npm run screenshots`: the README's pictures of the admin panel, taken from a throwaway Paygate.
 *
 * Starts `src/main.ts` on a fresh embedded PostgreSQL in a temporary directory (any DATABASE_URL or
 * REDIS_URL of the caller is ignored), seeds two organizations with keys and members over the HTTP
 * API, drives the system's Chromium through the panel and writes docs/screenshots/*.png. The secret
 * on the "Your new API key" picture, and the invitation link on the members picture, are real, but
 * belong to an instance that is deleted at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT, ensureWebBuilt, findChromium, launchChromium, selectOrganization, signIn } from '../test/e2e/browser.js';

const OUT_DIR = path.join(ROOT, 'docs', 'screenshots');
const ADMIN = { email: 'admin@paygate.test', password: 'screenshots-only-password-1' };
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Paygate exited with ${child.exitCode}:\n${output()}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`Paygate did not become ready:\n${output()}`);
}

/** A tiny JSON client with a bearer token, failing loudly on any unexpected status. */
function client(baseUrl: string, token?: string) {
  return async function call<T = any>(method: string, pathname: string, body?: unknown): Promise<T> {
    const response = await fetch(`${baseUrl}${pathname}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${pathname} -> ${response.status}: ${text}`);
    return (text ? JSON.parse(text) : null) as T;
  };
}

async function seed(baseUrl: string): Promise<void> {
  const { token } = await client(baseUrl)<{ token: string }>('POST', '/v1/auth/login', ADMIN);
  const api = client(baseUrl, token);

  const acme = await api<{ id: string; initialApiKey: { secret: string } }>('POST', '/v1/system/organizations', {
    name: 'Acme Studio',
    owner: { email: 'owner@acme.test' },
    initialApiKey: { name: 'Checkout bot', scopes: ['checkout:create'] },
  });
  await api('POST', '/v1/system/organizations', { name: 'Beta Works', initialApiKey: { name: 'Nightly export', scopes: ['data_io:execute', 'data_io:read'] } });
  const keys = `/v1/organizations/${acme.id}/api-keys`;
  const members = `/v1/organizations/${acme.id}/members`;

  const bridge = await api<{ id: string; secret: string }>('POST', keys, {
    name: 'Website billing bridge',
    description: 'Creates clients and invoices from the shop',
    scopes: ['client:read', 'client:create', 'invoice:read', 'invoice:create'],
    allowedIps: ['203.0.113.0/24'],
  });
  await api('POST', keys, {
    name: 'Recurring scheduler',
    scopes: ['invoice:read', 'invoice:create', 'invoice:execute'],
    expiresAt: new Date(Date.now() + 180 * 86_400_000).toISOString(),
    rateLimit: { requests: 600, windowSeconds: 60 },
  });
  await api('POST', keys, { name: 'Portal links', scopes: ['portal:create'] });
  const old = await api<{ id: string }>('POST', keys, { name: 'Old importer', scopes: ['client:create'] });
  await api('POST', `${keys}/${old.id}/revoke`);
  await api('POST', `${keys}/${bridge.id}/rotate`, { gracePeriodMinutes: 1440 });
  // Some use, so "Last used" has values (Paygate writes lastUsedAt in batches every few seconds).
  await client(baseUrl, acme.initialApiKey.secret)('GET', '/v1/auth/whoami');
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const list = await api<{ data: { name: string; lastUsedAt: string | null }[] }>('GET', keys);
    if (list.data.some((k) => k.name === 'Checkout bot' && k.lastUsedAt)) break;
    await new Promise((r) => setTimeout(r, 500));
  }

  await api('POST', members, { email: 'dev@acme.test', role: 'developer', password: 'dev-password-123456' });
  await api('POST', members, { email: 'finance@acme.test', role: 'viewer', password: 'viewer-password-123456' });
}

async function shoot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  // Let transitions and late data settle so the picture is stable.
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(300);
  const file = path.join(OUT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: options.fullPage ?? false });
  console.log(`wrote ${path.relative(ROOT, file)}`);
}

async function main(): Promise<void> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error('No Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
  ensureWebBuilt();
  await fs.mkdir(OUT_DIR, { recursive: true });

  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-screenshots-'));
  // mkdtemp makes the directory 0700; run as root, the embedded PostgreSQL runs as the `postgres`
  // user and must be able to reach its data directory inside it (secrets.json stays 0600).
  await fs.chmod(dataDir, 0o755);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    PAYGATE_PUBLIC_URL: baseUrl,
    PAYGATE_DATA_DIR: dataDir,
    PAYGATE_ADMIN_EMAIL: ADMIN.email,
    PAYGATE_ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.PAYGATE_SECRET_PEPPER;
  delete env.PAYGATE_SESSION_SECRET;
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));

  const browser = await launchChromium(executablePath);
  try {
    await waitUntilReady(baseUrl, child, () => output);
    await seed(baseUrl);

    const desktop = await browser.newPage({ viewport: DESKTOP });
    desktop.setDefaultTimeout(15_000);
    await desktop.goto(`${baseUrl}/admin`);
    await desktop.getByRole('heading', { name: 'Sign in to Paygate', exact: true }).waitFor();
    await shoot(desktop, 'sign-in');

    await signIn(desktop, baseUrl, ADMIN.email, ADMIN.password);
    await selectOrganization(desktop, 'Acme Studio');
    const nav = desktop.getByRole('navigation', { name: 'Main', exact: true });
    await nav.getByRole('link', { name: 'API keys', exact: true }).click();
    await desktop.getByRole('row').filter({ hasText: 'Website billing bridge' }).waitFor();
    await shoot(desktop, 'api-keys');

    await desktop.getByRole('button', { name: 'Edit Recurring scheduler', exact: true }).click();
    const edit = desktop.getByRole('dialog', { name: 'Edit API key', exact: true });
    await edit.waitFor();
    await edit.getByLabel('Description', { exact: true }).fill('Issues the monthly invoices');
    await shoot(desktop, 'edit-key');
    await edit.getByRole('button', { name: 'Cancel', exact: true }).click();
    await edit.waitFor({ state: 'detached' });

    await desktop.getByRole('button', { name: 'Create key', exact: true }).click();
    const create = desktop.getByRole('dialog', { name: 'Create API key', exact: true });
    await create.waitFor();
    await create.getByLabel('Name', { exact: true }).fill('Storefront checkout');
    await create.getByLabel('Description', { exact: true }).fill('Checkout links from the web shop');
    await create.getByRole('group', { name: 'Presets', exact: true }).getByRole('button', { name: 'Create checkout links', exact: true }).click();
    await shoot(desktop, 'create-key');

    await create.getByRole('button', { name: 'Create key', exact: true }).click();
    const secret = desktop.getByRole('dialog', { name: 'Your new API key', exact: true });
    await secret.waitFor();
    await shoot(desktop, 'new-key-secret');
    await secret.getByRole('button', { name: 'Done', exact: true }).click();
    await secret.waitFor({ state: 'detached' });

    // An invitation made in the panel (no SMTP here): its link is shown whole, with Copy.
    await nav.getByRole('link', { name: 'Members', exact: true }).click();
    await desktop.getByRole('heading', { name: 'Members', exact: true, level: 1 }).waitFor();
    await desktop.getByLabel('Email', { exact: true }).fill('designer@acme.test');
    await desktop.getByLabel('Role', { exact: true }).selectOption('viewer');
    await desktop.getByRole('button', { name: 'Invite', exact: true }).click();
    await desktop.getByRole('table', { name: 'Pending invitations', exact: true }).getByRole('row').filter({ hasText: 'designer@acme.test' }).waitFor();
    await shoot(desktop, 'members', { fullPage: true });

    await nav.getByRole('link', { name: 'Audit log', exact: true }).click();
    await desktop.getByRole('heading', { name: 'Audit log', exact: true }).waitFor();
    await desktop.getByRole('row').filter({ hasText: 'api_key.created' }).first().waitFor();
    await desktop.getByText(/^Audit chain /).waitFor();
    await shoot(desktop, 'audit-log');

    await nav.getByRole('link', { name: 'System settings', exact: true }).click();
    await desktop.getByRole('heading', { name: 'System settings', exact: true }).waitFor();
    await desktop.getByLabel('Portal magic link TTL (minutes)', { exact: true }).waitFor();
    await desktop.getByText(/^Never changed/).waitFor();
    await shoot(desktop, 'system-settings');

    const phone = await browser.newPage({ viewport: PHONE, isMobile: true, hasTouch: true });
    phone.setDefaultTimeout(15_000);
    await signIn(phone, baseUrl, ADMIN.email, ADMIN.password);
    // Signing in lands on the API keys page; the navigation stays folded behind "Menu".
    await selectOrganization(phone, 'Acme Studio');
    await phone.waitForURL((url) => url.pathname === '/admin/keys');
    await phone.getByRole('row').filter({ hasText: 'Website billing bridge' }).waitFor();
    await shoot(phone, 'api-keys-mobile');
  } finally {
    await browser.close().catch(() => undefined);
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
