/**
 * End-to-end harness: a real Paygate (test/harness.ts, on this run's PostgreSQL) serving the built
 * admin panel at /admin, and the system's Chromium driven by playwright-core.
 *
 * Without a Chromium (a fresh developer machine) the browser suites are skipped with a message
 * saying so; CI installs Chromium and sets PAYGATE_E2E_REQUIRED=1, which turns a missing browser
 * into a failure instead of a silent skip.
 */
import { describe } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startPaygate, type StartOptions, type TestApp } from '../harness.js';
import { ensureWebBuilt, findChromium, launchChromium } from './browser.js';

export { selectOrganization, signIn } from './browser.js';

export const chromiumPath = findChromium();

const SKIP_MESSAGE =
  'no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH to run the browser tests';

/** describe() for browser suites: skipped, with the reason in its name and on stderr, when there is no Chromium. */
export function describeInBrowser(name: string, body: () => void): void {
  if (!chromiumPath) {
    if (process.env.PAYGATE_E2E_REQUIRED === '1') throw new Error(`PAYGATE_E2E_REQUIRED=1 but ${SKIP_MESSAGE}`);
    process.stderr.write(`[e2e] skipping "${name}": ${SKIP_MESSAGE}\n`);
  }
  describe.skipIf(!chromiumPath)(chromiumPath ? name : `${name} (skipped: ${SKIP_MESSAGE})`, body);
}

export interface PanelHarness {
  t: TestApp;
  browser: Browser;
  /** A fresh browser context (own cookies) with one page; uncaught page errors and CSP violations are collected. */
  newPage(viewport?: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }>;
  close(): Promise<void>;
}

/** Builds the panel if needed, starts Paygate and Chromium. */
export async function startPanel(options: StartOptions = {}): Promise<PanelHarness> {
  ensureWebBuilt();
  const t = await startPaygate(options);
  let browser: Browser;
  try {
    browser = await launchChromium(chromiumPath!);
  } catch (error) {
    await t.close();
    throw error;
  }
  const contexts: BrowserContext[] = [];
  return {
    t,
    browser,
    async newPage(viewport = { width: 1280, height: 800 }) {
      const context = await browser.newContext({ viewport });
      contexts.push(context);
      context.setDefaultTimeout(10_000);
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));
      // The panel runs under a strict CSP (src/http/admin-routes.ts): a violation is a bug too.
      page.on('console', (message) => {
        if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) pageErrors.push(message.text());
      });
      return { context, page, pageErrors };
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser.close().catch(() => undefined);
      await t.close();
    },
  };
}
