/**
 * The hosted pay page (SPEC §10): GET /pay/{id} shows the amount and a card form, POST /pay/{id}
 * (form field `cardNumber`) makes one payment attempt. Server-rendered, works without JavaScript.
 *
 * Registered as an encapsulated plugin: its form parser, error page and security headers stay off the
 * /v1 JSON API. The page needs no credential: the unguessable checkout id is the capability, and there
 * is no ambient authority (no cookie) a cross-site form could borrow, so no CSRF token is needed.
 */
import formbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../services.js';
import { AppError } from '../../errors.js';
import { formatAmount } from '../money.js';
import type { CheckoutView } from './service.js';
import { sourceOf, waitInWords, type BrakeTrip } from './brake.js';
import { contentSecurityPolicy, escapeHtml, isCspSafeOrigin, layout } from './html.js';

/** A lookup that found nothing is null; other errors propagate. */
const orNull = (error: unknown): null => {
  if (error instanceof AppError && error.code === 'not_found') return null;
  throw error;
};

/** A card number with separators is at most 23 characters; the form body is tiny. */
const BODY_LIMIT = 4096;

interface PageContext {
  checkout: CheckoutView;
  organizationId: string;
  organizationName: string;
  clientName: string | null;
}

function sendPage(reply: FastifyReply, status: number, title: string, body: string, redirectOrigin: string | null = null): FastifyReply {
  return reply
    .code(status)
    .header('Content-Security-Policy', contentSecurityPolicy(redirectOrigin))
    .type('text/html; charset=utf-8')
    .send(layout(title, body));
}

function messagePage(reply: FastifyReply, status: number, heading: string, text: string, link: { href: string; label: string } | null = null) {
  const linkHtml = link ? `<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a></p>` : '';
  return sendPage(reply, status, heading, `<h1>${escapeHtml(heading)}</h1>\n<p>${escapeHtml(text)}</p>\n${linkHtml}`);
}

/** What the payer is told when the card-testing brake refuses (brake.ts), per subject. */
function brakeMessage(trip: BrakeTrip): string {
  const wait = waitInWords(trip.retryAfterSeconds);
  switch (trip.subject) {
    case 'checkout':
      return 'This payment link has had too many declined attempts. Ask the merchant for a new one.';
    case 'invoice':
      return `This invoice has had too many declined card attempts. For your protection no more cards are accepted for it for ${wait}; you can also contact the merchant.`;
    case 'client':
      return `Your account has had too many declined card attempts. For your protection no more cards are accepted for ${wait}; you can also contact the merchant.`;
    case 'source':
      return `Too many declined card attempts have come from your network. Please try again in ${wait}.`;
    case 'organization':
      return `This merchant is not accepting card payments right now because of unusual activity. Please try again in ${wait}.`;
  }
}

const returnLink = (checkout: CheckoutView) => (checkout.successUrl ? { href: checkout.successUrl, label: 'Return to the merchant' } : null);

function summary(ctx: PageContext): string {
  const { checkout } = ctx;
  const details = [
    ctx.clientName ? `<dt>Billed to</dt><dd>${escapeHtml(ctx.clientName)}</dd>` : '',
    checkout.invoiceId ? `<dt>Invoice</dt><dd>${escapeHtml(checkout.invoiceId)}</dd>` : '',
  ].join('');
  return `<h1>Pay ${escapeHtml(ctx.organizationName)}</h1>
<p class="amount">${escapeHtml(formatAmount(checkout.amount, checkout.currency))}</p>
${details ? `<dl>${details}</dl>` : ''}`;
}

/** The form; `error` (already a sentence for the payer) is announced by screen readers (role=alert). */
function formPage(reply: FastifyReply, status: number, ctx: PageContext, testMode: boolean, error: string | null = null): FastifyReply {
  const { checkout } = ctx;
  const amount = formatAmount(checkout.amount, checkout.currency);
  // The typed number is never echoed back: a re-rendered form starts empty.
  const body = `${summary(ctx)}
<form method="post">
${error ? `<p class="error" role="alert" id="card-error">${escapeHtml(error)}</p>` : ''}
<label for="cardNumber">Card number</label>
<input id="cardNumber" name="cardNumber" type="text" inputmode="numeric" autocomplete="cc-number" required maxlength="23"
  aria-describedby="${error ? 'card-error ' : ''}card-hint"${error ? ' aria-invalid="true"' : ''}>
<p class="hint" id="card-hint">${testMode ? 'Test mode: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 is declined.' : 'The long number on the front of your card; spaces are fine.'}</p>
<button type="submit">Pay ${escapeHtml(amount)}</button>
</form>
${checkout.cancelUrl ? `<a class="cancel" href="${escapeHtml(checkout.cancelUrl)}">Cancel and return to the merchant</a>` : ''}`;
  // A success answer redirects to successUrl: the CSP's form-action must allow its origin.
  const origin = checkout.successUrl ? new URL(checkout.successUrl).origin : null;
  return sendPage(reply, status, `Pay ${amount}`, body, origin);
}

export function registerPayPage(app: FastifyInstance, services: Services): void {
  const { checkouts, clients } = services.payments;
  // Only the simulator's page advertises its test cards.
  const testMode = services.payments.processor.name === 'test';

  /** The checkout with what the page shows about it, or null (unknown id, deleted organization). */
  async function load(id: string): Promise<PageContext | null> {
    const found = await checkouts.findForPayment(id);
    if (!found) return null;
    const organization = await services.organizations.get(found.organizationId).catch(orNull);
    if (!organization) return null;
    const organizationName = organization.name;
    let clientName: string | null = null;
    if (found.checkout.clientId) {
      clientName = (await clients.get(services.db, found.organizationId, found.checkout.clientId).catch(orNull))?.name ?? null;
    }
    return { checkout: found.checkout, organizationId: found.organizationId, organizationName, clientName };
  }

  const notFoundPage = (reply: FastifyReply) => messagePage(reply, 404, 'Payment link not found', 'This payment link does not exist. Check the link you were given.');
  const expiredPage = (reply: FastifyReply) => messagePage(reply, 410, 'Payment link expired', 'This payment link has expired and can no longer be paid. Ask the merchant for a new one.');
  /** 429 with Retry-After: the same page before a card is typed (GET) and after (POST). */
  const brakePage = (reply: FastifyReply, trip: BrakeTrip) => {
    // A dead link (checkout limit) never reopens within its life: no Retry-After to wait for.
    if (trip.subject !== 'checkout') reply.header('Retry-After', String(trip.retryAfterSeconds));
    return messagePage(reply, 429, 'Too many attempts', brakeMessage(trip));
  };
  const paidPage = (reply: FastifyReply, checkout: CheckoutView) =>
    messagePage(reply, 200, 'Already paid', 'This checkout has already been paid. Nothing more is due.', returnLink(checkout));

  app.register(async (scope) => {
    await scope.register(formbody, { bodyLimit: BODY_LIMIT });

    scope.addHook('onRequest', async (_request, reply) => {
      // A card form: never cached, never framed, never sniffed, never leaking its URL.
      reply.header('Cache-Control', 'no-store');
      reply.header('X-Frame-Options', 'DENY');
      reply.header('X-Content-Type-Options', 'nosniff');
      reply.header('Referrer-Policy', 'no-referrer');
      reply.header('Content-Security-Policy', contentSecurityPolicy());
    });

    // Errors on these routes are pages, not problem+json.
    scope.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request: FastifyRequest, reply: FastifyReply) => {
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return messagePage(reply, 413, 'Request too large', 'The form sent was too large.');
      if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return messagePage(reply, 415, 'Unsupported form', 'Submit the payment form from this page.');
      if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
        return messagePage(reply, 400, 'Bad request', 'The form could not be read. Go back and try again.');
      }
      request.log.error({ err: error }, 'pay page failed');
      return messagePage(reply, 500, 'Payment not processed', 'Something went wrong on our side and the payment was not completed. Please try again.');
    });

    // HTML for the payer, not an API operation: hidden from the document. The form is read by hand
    // (not by a body schema), so a bad form is a page of its own, never a problem+json.
    scope.get<{ Params: { id: string } }>('/pay/:id', { schema: { hide: true } }, async (request, reply) => {
      const ctx = await load(request.params.id);
      if (!ctx) return notFoundPage(reply);
      if (ctx.checkout.status === 'completed') return paidPage(reply, ctx.checkout);
      if (ctx.checkout.status === 'expired') return expiredPage(reply);
      if (ctx.checkout.invoiceId) {
        // Paid through another checkout, or voided: say so now rather than after the card is typed.
        const invoice = await services.payments.invoices.get(services.db, ctx.organizationId, ctx.checkout.invoiceId).catch(orNull);
        if (!invoice || invoice.status !== 'open') {
          return messagePage(reply, 409, 'Cannot be paid', invoice?.status === 'paid' ? 'This invoice has already been paid.' : 'This invoice can no longer be paid.', returnLink(ctx.checkout));
        }
      }
      // Braked: say so now, not after the card is typed.
      const trip = await checkouts.brakeFor(services.db, ctx, sourceOf(request.ip));
      if (trip) return brakePage(reply, trip);
      return formPage(reply, 200, ctx, testMode);
    });

    scope.post<{ Params: { id: string }; Body: { cardNumber?: unknown } | null | undefined }>('/pay/:id', { schema: { hide: true }, bodyLimit: BODY_LIMIT }, async (request, reply) => {
      const id = request.params.id;
      const ctx = await load(id);
      if (!ctx) return notFoundPage(reply);
      const raw = request.body?.cardNumber;
      const cardNumber = typeof raw === 'string' ? raw.trim() : '';
      if (ctx.checkout.status === 'open' && cardNumber === '') {
        // Not an attempt: nothing reached the processor, so no transaction is recorded.
        return formPage(reply, 400, ctx, testMode, 'Enter your card number.');
      }
      const outcome = await checkouts.pay(id, cardNumber, sourceOf(request.ip));
      switch (outcome.kind) {
        case 'not_found':
          return notFoundPage(reply);
        case 'completed':
          return paidPage(reply, outcome.checkout);
        case 'expired':
          return expiredPage(reply);
        case 'not_payable':
          return messagePage(reply, 409, 'Cannot be paid', outcome.reason, returnLink(outcome.checkout));
        case 'too_many_attempts':
          return brakePage(reply, outcome.trip);
        case 'failed':
          return formPage(reply, 402, { ...ctx, checkout: outcome.checkout }, testMode, `${outcome.message} No payment was taken; try another card.`);
        case 'succeeded': {
          const target = outcome.checkout.successUrl;
          // See Other: the browser follows with a GET, so a reload cannot resubmit the card.
          if (target && isCspSafeOrigin(new URL(target).origin)) return reply.code(303).header('Location', target).send();
          return messagePage(reply, 200, 'Payment received', `Thank you. ${formatAmount(outcome.checkout.amount, outcome.checkout.currency)} was paid.`, returnLink(outcome.checkout));
        }
      }
    });
  });
}
