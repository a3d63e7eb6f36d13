/** Cookies without a plugin (http/cookies.ts): what a response sets, and what a request reads. */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { clearCookie, cookiesOf, registerCookies, setCookie } from './cookies.js';

function app() {
  const server = Fastify();
  registerCookies(server);
  server.get('/set', (_request, reply) => {
    setCookie(reply, 'session', 'first', { httpOnly: true, path: '/' });
    setCookie(reply, 'csrf', 'c1', { path: '/' });
    // The same name again in one response replaces the earlier line, as the browser would keep the last.
    setCookie(reply, 'session', 'second', { httpOnly: true, secure: true, path: '/', maxAge: 60 });
    clearCookie(reply, 'selectedOrganization', { path: '/' });
    return { ok: true };
  });
  server.get('/read', (request) => ({ before: request.cookies, cookies: cookiesOf(request), again: cookiesOf(request) === request.cookies }));
  return server;
}

describe('cookies', () => {
  it('sets one Set-Cookie line per name, the last set winning, SameSite=Lax unless told otherwise', async () => {
    const response = await app().inject({ method: 'GET', url: '/set' });
    expect(response.headers['set-cookie']).toEqual([
      'csrf=c1; Path=/; SameSite=Lax',
      'session=second; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax',
      'selectedOrganization=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax',
    ]);
  });

  it('parses a request’s cookies when first asked, once', async () => {
    const response = await app().inject({ method: 'GET', url: '/read', headers: { cookie: 'session=abc; csrf=x%20y' } });
    expect(response.json()).toEqual({ before: null, cookies: { session: 'abc', csrf: 'x y' }, again: true });
    expect((await app().inject({ method: 'GET', url: '/read' })).json()).toEqual({ before: null, cookies: {}, again: true });
  });
});
