/**
 * HTTP for portal magic links (POST /v1/portal/magic-links, scope portal:create) and the portal
 * pages under /portal (SPEC §5). The pages live in an encapsulated plugin, so form parsing, the
 * HTML error pages and the page security headers never touch the /v1 JSON routes.
 *
 * A portal session can never call /v1: /v1 authentication reads only the Authorization header and
 * the admin `session` cookie, and the portal_session cookie is scoped to Path=/portal besides.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import type { Services } from '../services.js';
import { authOf, organizationOf, organizationRoute } from '../http/routes.js';
import { sendIdempotent } from '../payments/http.js';
import { clearCookie, cookiesOf, setCookie } from '../http/cookies.js';
import { AppError } from '../errors.js';
import { PORTAL_SESSION_TTL_MINUTES, type PortalSession } from './service.js';
import { CreateMagicLinkBody, PortalLinkRef } from './schemas.js';
import { PAYMENT_TAGS } from '../payments/tags.js';
import { csrfMatches, csrfTokenFor, isTokenShaped } from './tokens.js';
import { sourceOf } from '../payments/checkouts/brake.js';
import {
  errorPage,
  linkInvalidPage,
  loginPage,
  portalPage,
  renderDocument,
  sessionEndedPage,
  signedOutPage,
  tooManyAttemptsPage,
  type Page,
} from './pages.js';

export const PORTAL_COOKIE = 'portal_session';
const COOKIE_PATH = '/portal';
/** Portal forms carry a token or a CSRF value and nothing else. */
const FORM_BODY_LIMIT = 16 * 1024;

export function registerPortalRoutes(app: FastifyInstance, services: Services): void {
  const { portal, idempotency } = services.payments;

  organizationRoute(app, {
    method: 'POST',
    path: '/portal/magic-links',
    operationId: 'createPortalMagicLink',
    auth: { kind: 'organization', scope: 'portal:create' },
    summary: 'Issue a portal magic link for a client',
    description: [
      'A single-use link that signs the client into the customer portal, where they see their invoices and pay them.',
      'Opening the link (`GET`) never uses it up, so mail scanners cannot burn it; the page it shows submits it.',
      'Honours `Idempotency-Key`: a replay answers the very same link (stored sealed, never in clear).',
    ].join(' '),
    tags: [PAYMENT_TAGS.portal],
    schema: { body: CreateMagicLinkBody, response: { 201: PortalLinkRef } },
    errors: ['not_found', 'idempotency_conflict'],
    idempotent: true,
    // Like Stripe, a replay returns the stored response, and that response is the link itself (a new
    // token per replay would be a second live link for one request). The link signs a client in, so
    // the idempotency row keeps it sealed (AES-256-GCM, key derived from the pepper; idempotency.ts):
    // nothing on disk signs anyone in. portal_links holds only the token's hash.
    handler: async (request, reply) =>
      sendIdempotent(
        request,
        reply,
        idempotency,
        async (tx) => ({
          status: 201,
          body: await portal.createLink(tx, authOf(request).ctx, organizationOf(request), request.body),
        }),
        { sealed: true },
      ),
  });

  void app.register(async (scope) => registerPortalPages(scope, services));
}

/**
 * Login CSRF: a page on another site must not post its own magic-link token to /portal/login and so
 * sign this browser in as a client of the attacker's choosing. The form must come from Paygate's own
 * login page, and browsers say where a form comes from: `Sec-Fetch-Site` (every current browser),
 * else `Origin`, else `Referer`, compared with PAYGATE_PUBLIC_URL. A request with none of them is
 * not a browser posting from another site (there is nothing to protect) and passes. Mail scanners
 * only GET or HEAD the link, which never consumes it, so this changes nothing for them.
 */
export function isSameOriginForm(headers: FastifyRequest['headers'], publicOrigin: string): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin';
  const origin = headers.origin;
  if (typeof origin === 'string') return origin === publicOrigin;
  const referer = headers.referer;
  if (typeof referer === 'string') {
    try {
      return new URL(referer).origin === publicOrigin;
    } catch {
      return false;
    }
  }
  return true;
}

async function registerPortalPages(scope: FastifyInstance, services: Services): Promise<void> {
  const { portal } = services.payments;
  const { config } = services;
  // The pay button redirects to the hosted checkout page; CSP form-action also governs that redirect.
  const checkoutOrigin = new URL(config.publicUrl).origin;
  const secureCookie = (request: FastifyRequest) => config.publicUrl.startsWith('https://') || request.protocol === 'https';

  await scope.register(formbody, { bodyLimit: FORM_BODY_LIMIT });

  scope.addHook('onRequest', async (_request, reply) => {
    // Every portal response: the login URL holds the token and pages hold client data, so no
    // cache keeps a copy and no Referer carries the URL on; no framing (clickjacking on "Pay").
    reply.header('Cache-Control', 'no-store');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('X-Content-Type-Options', 'nosniff');
  });

  const sendPage = (reply: FastifyReply, status: number, page: Page): FastifyReply => {
    const nonce = randomBytes(16).toString('base64');
    const csp = [
      "default-src 'none'",
      `style-src 'nonce-${nonce}'`,
      ...(page.script ? [`script-src 'nonce-${nonce}'`] : []),
      `form-action 'self' ${checkoutOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; ');
    return reply.code(status).header('Content-Security-Policy', csp).type('text/html; charset=utf-8').send(renderDocument(page, nonce));
  };

  scope.setErrorHandler((error: FastifyError | AppError, request, reply) => {
    const status = error instanceof AppError ? error.status : (error.statusCode ?? 500);
    if (status >= 500) {
      request.log.error({ err: error }, 'portal request failed');
      return sendPage(reply, 500, errorPage(500, 'Something went wrong', `Please try again later. Reference: ${request.id}`));
    }
    const code = error instanceof AppError ? error.code : null;
    if (code === 'not_found') return sendPage(reply, 404, errorPage(404, 'Not found', 'There is no such invoice among yours.'));
    if (code === 'conflict') return sendPage(reply, 409, errorPage(409, 'This invoice cannot be paid', error.message));
    if (code === 'rate_limited' && error instanceof AppError) {
      const retryAfter = Number(error.headers['Retry-After'] ?? 60);
      reply.header('Retry-After', String(retryAfter));
      return sendPage(reply, 429, tooManyAttemptsPage(String(error.extra.brake ?? 'invoice'), retryAfter));
    }
    if (code === 'csrf_failed') return sendPage(reply, 403, errorPage(403, 'This form has expired', 'Go back to your portal and try again.'));
    return sendPage(reply, status, errorPage(status, 'Request not understood', 'Please go back and try again.'));
  });

  /** The session the portal_session cookie names, with its token (the CSRF key), or null. */
  const sessionOf = async (request: FastifyRequest): Promise<{ token: string; session: PortalSession } | null> => {
    const token = cookiesOf(request)[PORTAL_COOKIE];
    const session = await portal.session(token);
    return session && token ? { token, session } : null;
  };
  const clearPortalCookie = (reply: FastifyReply) => clearCookie(reply, PORTAL_COOKIE, { path: COOKIE_PATH });
  const signedOut = (request: FastifyRequest, reply: FastifyReply) => {
    if (cookiesOf(request)[PORTAL_COOKIE] !== undefined) clearPortalCookie(reply);
    return sendPage(reply, 401, sessionEndedPage());
  };
  /** Portal forms are read by hand (no body schema): a bad form is a page, never a problem+json. */
  type Form<F> = { Body: F | undefined };
  const checkCsrf = (token: string, request: FastifyRequest<Form<{ csrf?: unknown }>>) => {
    if (!csrfMatches(token, request.body?.csrf)) throw new AppError('csrf_failed');
  };
  const hidden = { hide: true };

  // GET and HEAD (Fastify answers HEAD from this route) never consume the link: mail scanners and
  // link previews fetch it. The page posts the token at once, with a button as the no-JS fallback.
  scope.get<{ Querystring: { token?: unknown } }>('/portal/login', { schema: hidden }, async (request, reply) => {
    const token = request.query.token;
    if (!isTokenShaped(token)) return sendPage(reply, 410, linkInvalidPage());
    // This page's form must be recognisable as same-origin (login CSRF, below): under no-referrer an
    // older browser without Sec-Fetch-Site would send `Origin: null`. strict-origin sends the origin
    // alone, never this URL and its token.
    reply.header('Referrer-Policy', 'strict-origin');
    return sendPage(reply, 200, loginPage(token));
  });

  scope.post<Form<{ token?: unknown }>>('/portal/login', { schema: hidden, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
    // Checked before the token is looked at: a refused post consumes nothing. (checkoutOrigin is
    // PAYGATE_PUBLIC_URL's origin, where the login page is served.)
    if (!isSameOriginForm(request.headers, checkoutOrigin)) {
      return sendPage(reply, 403, errorPage(403, 'Open your sign-in link directly', 'This sign-in was sent from another website. Open the link you received in this browser instead.'));
    }
    const token = request.body?.token;
    const redeemed = await portal.redeem(token, { ip: request.ip, requestId: request.id });
    if (!redeemed) return sendPage(reply, 410, linkInvalidPage());
    // A session this browser held before is ended rather than left behind (one portal session per browser).
    const previous = await sessionOf(request);
    if (previous) await portal.endSession(previous.session.id);
    setCookie(reply, PORTAL_COOKIE, redeemed.sessionToken, {
      httpOnly: true,
      sameSite: 'lax',
      secure: secureCookie(request),
      path: COOKIE_PATH,
      maxAge: PORTAL_SESSION_TTL_MINUTES * 60,
    });
    return reply.redirect('/portal', 303);
  });

  scope.get('/portal', { schema: hidden }, async (request, reply) => {
    const current = await sessionOf(request);
    if (!current) return signedOut(request, reply);
    const { session, token } = current;
    const invoices = await portal.invoices(session);
    return sendPage(reply, 200, portalPage({ clientName: session.clientName, organizationName: session.organizationName, invoices, csrf: csrfTokenFor(token) }));
  });

  scope.post<Form<{ csrf?: unknown }> & { Params: { id: string } }>(
    '/portal/invoices/:id/pay',
    {
      schema: { ...hidden, params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 64 } }, required: ['id'] } },
      bodyLimit: FORM_BODY_LIMIT,
    },
    async (request, reply) => {
      const current = await sessionOf(request);
      if (!current) return signedOut(request, reply);
      checkCsrf(current.token, request);
      const checkout = await portal.payInvoice(current.session, request.params.id, sourceOf(request.ip));
      return reply.redirect(checkout.url, 303);
    },
  );

  scope.post<Form<{ csrf?: unknown }>>('/portal/logout', { schema: hidden, bodyLimit: FORM_BODY_LIMIT }, async (request, reply) => {
    const current = await sessionOf(request);
    if (current) {
      checkCsrf(current.token, request);
      await portal.endSession(current.session.id);
    }
    clearPortalCookie(reply);
    return reply.redirect('/portal/signed-out', 303);
  });

  scope.get('/portal/signed-out', { schema: hidden }, async (_request, reply) => sendPage(reply, 200, signedOutPage()));
}
