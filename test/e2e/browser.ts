/**
 * Browser plumbing shared by the end-to-end tests and scripts/screenshots.ts: finding the system's
 * Chromium, launching it through playwright-core (which never downloads a browser of its own), and
 * making sure the admin panel is built into dist/web. Imports nothing from vitest, so plain scripts
 * can use it too.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEB_DIR = path.join(ROOT, 'web');
export const WEB_DIST = path.join(ROOT, 'dist', 'web');

/**
 * The Chromium to drive: CHROMIUM_PATH when set, else `chromium` (Debian's package, which .ci/run
 * installs) or `chromium-browser` on the PATH. null when there is none.
 */
export function findChromium(): string | null {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return fs.existsSync(fromEnv) ? fromEnv : null;
  const found = spawnSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' });
  const first = found.stdout.trim().split('\n')[0];
  return found.status === 0 && first ? first : null;
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches headless Chromium with a fresh profile (playwright's launch() makes a temporary user data dir). */
export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Builds the panel into dist/web unless a build newer than every file under web/ is already there
 * (CI builds it before the tests; a developer's edit to web/ makes the next run rebuild).
 */
export function ensureWebBuilt(): void {
  const index = path.join(WEB_DIST, 'index.html');
  if (!fs.existsSync(path.join(WEB_DIR, 'vite.config.ts'))) {
    throw new Error(`The admin panel sources are missing (${WEB_DIR}/vite.config.ts)`);
  }
  if (fs.existsSync(index) && fs.statSync(index).mtimeMs >= newestMtime(WEB_DIR)) return;
  const vite = path.join(ROOT, 'node_modules', '.bin', 'vite');
  const result = spawnSync(vite, ['build', '--config', 'web/vite.config.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  if (result.status !== 0 || !fs.existsSync(index)) {
    throw new Error(`Building the admin panel failed (status ${result.status}):\n${result.stdout}\n${result.stderr}`);
  }
}

/** Signs in through the panel's sign-in page and waits for the shell (its "Sign out" button). */
export async function signIn(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/admin`);
  await page.getByRole('heading', { name: 'Sign in to Paygate', exact: true }).waitFor();
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
}

/** Chooses an organization in the banner's "Organization" select and waits until Paygate has stored the choice. */
export async function selectOrganization(page: Page, name: string): Promise<void> {
  const stored = page.waitForResponse(
    (r) => r.request().method() === 'PUT' && new URL(r.url()).pathname === '/v1/auth/selected-organization',
  );
  await page.getByRole('banner').getByLabel('Organization', { exact: true }).selectOption({ label: name });
  const response = await stored;
  if (!response.ok()) throw new Error(`PUT /v1/auth/selected-organization answered ${response.status()}`);
}
