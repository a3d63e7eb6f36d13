/**
 * Pages for people, in a real browser: Swagger UI at /docs works under its strict CSP (it shares
 * the origin of /admin), and a portal magic link signs in through its own self-submitting page,
 * while a page on another site that posts a token (login CSRF) is refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { createOrgWithKey, expectStatus, startPaygate, type OrgWithKey, type TestApp } from '../harness.js';
import { launchChromium } from './browser.js';
import { chromiumPath, describeInBrowser } from './support.js';

describeInBrowser('docs and portal pages in a browser', () => {
  let t: TestApp;
  let browser: Browser;
  let org: OrgWithKey;
  let clientId: string;

  beforeAll(async () => {
    t = await startPaygate();
    browser = await launchChromium(chromiumPath!);
    org = await createOrgWithKey(t, ['portal:create', 'client:*']);
    const client = await t.request('POST', '/v1/clients', { token: org.token, body: { name: 'Grace Hopper' } });
    expectStatus(client, 201);
    clientId = client.body.id;
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await t?.close();
  });

  /** A page that records every CSP violation and page error. */
  async function newPage(): Promise<{ page: Page; problems: string[]; close: () => Promise<void> }> {
    const context = await browser.newContext();
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const problems: string[] = [];
    await page.exposeFunction('reportViolation', (text: string) => problems.push(text));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        (window as unknown as { reportViolation(t: string): void }).reportViolation(`CSP ${e.effectiveDirective} blocked ${e.blockedURI || e.sample || 'inline'} (${e.sourceFile}:${e.lineNumber})`),
      );
    });
    page.on('pageerror', (error) => problems.push(String(error)));
    return { page, problems, close: () => context.close() };
  }

  async function magicLink(): Promise<string> {
    const created = await t.request('POST', '/v1/portal/magic-links', { token: org.token, body: { clientId } });
    expectStatus(created, 201);
    const url = new URL(created.body.url);
    return `${t.url}${url.pathname}${url.search}`;
  }

  it('Swagger UI renders every operation under its strict CSP, without a single violation', async () => {
    const { page, problems, close } = await newPage();
    try {
      const response = await page.goto(`${t.url}/docs`);
      expect(response!.headers()['content-security-policy']).toContain("script-src 'self'");
      await page.locator('.opblock').first().waitFor();
      // Swagger UI renders only the operations near the viewport (and drops those scrolled past):
      // scroll through the page and collect every operation block seen on the way.
      const document = (await (await fetch(`${t.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
      const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
      expect(operations).toBeGreaterThan(50);
      const seen = new Set<string>();
      for (let step = 0; step < 400 && seen.size < operations; step++) {
        const ids = await page.evaluate(() => [...window.document.querySelectorAll('.opblock')].map((e) => e.id));
        for (const id of ids) seen.add(id);
        const atEnd = await page.evaluate(() => {
          window.scrollBy(0, window.innerHeight / 2);
          return window.scrollY + window.innerHeight >= window.document.body.scrollHeight - 1;
        });
        await page.waitForTimeout(atEnd ? 250 : 50);
      }
      expect(seen.size).toBe(operations);
      await page.evaluate(() => window.scrollTo(0, 0));
      // Expanding an operation renders its parameters and responses (more components, more styles).
      await page.locator('.opblock-summary').first().click();
      await page.locator('.opblock-body').first().waitFor();
      await page.waitForLoadState('networkidle');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 120_000);

  it('a magic link opened in a browser signs the client in through its own self-submitting page', async () => {
    const { page, problems, close } = await newPage();
    try {
      await page.goto(await magicLink());
      await page.waitForURL(/\/portal$/);
      await expect.poll(() => page.content()).toContain('Grace Hopper');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a page on another site that posts a magic-link token is refused, and the link still works afterwards', async () => {
    const link = await magicLink();
    const token = new URL(link).searchParams.get('token')!;
    // "localhost" is another site than "127.0.0.1" to the browser.
    const attacker = http.createServer((_request, response) => {
      response.setHeader('content-type', 'text/html');
      response.end(
        `<form id="f" method="post" action="${t.url}/portal/login"><input type="hidden" name="token" value="${token}"></form>` +
          `<script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((resolve) => attacker.listen(0, 'localhost', resolve));
    const { page, close } = await newPage();
    try {
      const refused = page.waitForResponse((r) => r.url() === `${t.url}/portal/login` && r.request().method() === 'POST');
      await page.goto(`http://localhost:${(attacker.address() as AddressInfo).port}/`);
      expect((await refused).status()).toBe(403);
      await expect.poll(() => page.content()).toContain('Open your sign-in link directly');
      expect((await page.context().cookies(t.url)).map((c) => c.name)).not.toContain('portal_session');
      // The refused post consumed nothing: the client's own click still signs in.
      await page.goto(link);
      await page.waitForURL(/\/portal$/);
      await expect.poll(() => page.content()).toContain('Grace Hopper');
    } finally {
      await close();
      attacker.close();
    }
  });
});
