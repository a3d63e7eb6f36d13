/**
 * Cookies, read and written without a Fastify plugin. @fastify/cookie adds an onSend hook to every
 * route, a whole hook stage that each request paid (about 2 % of a bare request side by side,
 * bench/ANALYSIS.md) for the few routes that set a cookie. Here a request's cookies are parsed when
 * first asked for, and a cookie is set by writing its Set-Cookie line at once; both with the same
 * `cookie` package and the same defaults (`SameSite=Lax`) the plugin used.
 */
import { parseCookie, stringifySetCookie, type SetCookie } from 'cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's cookies once cookiesOf has parsed them; null before. */
    cookies: Record<string, string | undefined> | null;
  }
}

/** Declares `request.cookies` up front, so every request object keeps one shape. */
export function registerCookies(app: FastifyInstance): void {
  app.decorateRequest('cookies', null);
}

/** The request's cookies, parsed on first use: most requests (API keys, probes) never need them. */
export function cookiesOf(request: FastifyRequest): Record<string, string | undefined> {
  return (request.cookies ??= request.headers.cookie ? parseCookie(request.headers.cookie) : {});
}

export type CookieOptions = Omit<SetCookie, 'name' | 'value'>;

/** Sets a cookie on the response; setting the same name again in one response replaces it. */
export function setCookie(reply: FastifyReply, name: string, value: string, options: CookieOptions): void {
  const line = stringifySetCookie({ name, value, sameSite: 'lax', ...options });
  const current = reply.getHeader('set-cookie');
  const lines = current === undefined ? [] : Array.isArray(current) ? current : [String(current)];
  reply.removeHeader('set-cookie');
  reply.header('set-cookie', [...lines.filter((other) => !other.startsWith(`${name}=`)), line]);
}

/** Tells the browser to drop a cookie: empty, expired at the epoch, Max-Age=0. */
export function clearCookie(reply: FastifyReply, name: string, options: CookieOptions): void {
  setCookie(reply, name, '', { ...options, expires: new Date(0), maxAge: 0 });
}
