/**
 * The portal's server-rendered pages. They work without JavaScript (the one script, the magic-link
 * auto-submit, has a visible button as fallback), label every control, and escape every value (html``).
 * Pure: each function returns the page; routes.ts sends it with the security headers.
 */
import { formatAmount } from '../payments/money.js';
import type { InvoiceView } from '../payments/invoices/service.js';
import { html, trustedConstant, type SafeHtml } from './html.js';
import { waitInWords } from '../payments/checkouts/brake.js';

export interface Page {
  title: string;
  body: SafeHtml;
  /** An inline script, allowed by the response's CSP nonce: a constant of this file, never data. */
  script?: string;
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1a1f36;line-height:1.5}
main{max-width:44rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin-top:0}
table{width:100%;border-collapse:collapse;margin:1rem 0}
caption{text-align:left;font-weight:600;padding-bottom:.5rem}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #e3e8ee;vertical-align:middle}
td.amount{font-variant-numeric:tabular-nums}
button{font:inherit;padding:.45rem 1rem;border-radius:6px;border:1px solid #4b4fd6;background:#5a5ff0;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1a1f36;border-color:#c1c9d2}
button:focus-visible{outline:3px solid #1a1f36;outline-offset:2px}
form.inline{display:inline;margin:0}
.muted{color:#5b6476}
code{font-size:.85em}
`;

/** The whole document. `nonce` allows exactly this response's style block and script. */
export function renderDocument(page: Page, nonce: string): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${page.title} · Paygate</title>
<style nonce="${nonce}">${trustedConstant(STYLE)}</style>
</head>
<body>
<main>
${page.body}
</main>
${page.script ? html`<script nonce="${nonce}">${trustedConstant(page.script)}</script>` : ''}
</body>
</html>
`.value;
}

/**
 * GET /portal/login: does NOT consume the link (mail scanners fetch links); it posts the token at
 * once. Note: a scanner that runs JavaScript will submit it too; the SPEC accepts that for the
 * one-click experience, and the button alone would avoid it.
 */
export function loginPage(token: string): Page {
  return {
    title: 'Opening your portal',
    body: html`<h1>Opening your portal…</h1>
<form id="portal-login" method="post" action="/portal/login">
<input type="hidden" name="token" value="${token}">
<p>If nothing happens, continue with the button below.</p>
<button type="submit">Continue to your portal</button>
</form>`,
    script: "document.getElementById('portal-login').submit();",
  };
}

export function linkInvalidPage(): Page {
  return {
    title: 'Link no longer valid',
    body: html`<h1>This link is no longer valid</h1>
<p>Sign-in links work once and only for a short time. This one has already been used, has expired, or is not a valid link.</p>
<p>Please ask the company that sent it to you for a new link.</p>`,
  };
}

export function sessionEndedPage(): Page {
  return {
    title: 'Please sign in again',
    body: html`<h1>Your portal session has ended</h1>
<p>For your security, portal sessions end after a while or when you sign out.</p>
<p>Please open a new sign-in link; ask the company that sent you the last one for a new one.</p>`,
  };
}

export function signedOutPage(): Page {
  return {
    title: 'Signed out',
    body: html`<h1>You have signed out</h1>
<p>To return to your portal, open a new sign-in link.</p>`,
  };
}

export function errorPage(status: number, title: string, message: string): Page {
  return {
    title,
    body: html`<h1>${title}</h1>
<p>${message}</p>
${status < 500 && status !== 401 ? html`<p><a href="/portal">Back to your portal</a></p>` : ''}`,
  };
}

/**
 * The card-testing brake refused the Pay button (429). `brake` names what collected the declines:
 * the invoice, the client, the payer's address or the merchant (payments/checkouts/brake.ts).
 */
export function tooManyAttemptsPage(brake: string, retryAfterSeconds: number): Page {
  const wait = waitInWords(retryAfterSeconds);
  const message =
    brake === 'source'
      ? `Too many declined card attempts have come from your network. Please try again in ${wait}.`
      : brake === 'organization'
        ? `Card payments are paused right now because of unusual activity. Please try again in ${wait}.`
        : `There have been too many declined card attempts ${brake === 'invoice' ? 'for this invoice' : 'on your account'}. For your protection no more cards are accepted for ${wait}. You can also contact the company that billed you.`;
  return {
    title: 'Too many attempts',
    body: html`<h1>Too many declined attempts</h1>
<p>${message}</p>
<p><a href="/portal">Back to your portal</a></p>`,
  };
}

const STATUS_LABELS: Record<InvoiceView['status'], string> = { draft: 'Draft', open: 'Open', paid: 'Paid', void: 'Void' };

function dueDate(iso: string | null): SafeHtml {
  if (!iso) return html`<span class="muted">—</span>`;
  const label = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(iso));
  return html`<time datetime="${iso}">${label}</time>`;
}

function payCell(invoice: InvoiceView, csrf: string): SafeHtml {
  if (invoice.status !== 'open' || invoice.total <= 0) return html``;
  const amount = formatAmount(invoice.total, invoice.currency);
  return html`<form class="inline" method="post" action="/portal/invoices/${encodeURIComponent(invoice.id)}/pay">
<input type="hidden" name="csrf" value="${csrf}">
<button type="submit" aria-label="Pay invoice ${invoice.id}, ${amount}">Pay</button>
</form>`;
}

export function portalPage(view: { clientName: string; organizationName: string; invoices: InvoiceView[]; csrf: string }): Page {
  const rows = view.invoices.map(
    (invoice) => html`<tr>
<td><code>${invoice.id}</code></td>
<td class="amount">${formatAmount(invoice.total, invoice.currency)}</td>
<td>${STATUS_LABELS[invoice.status]}</td>
<td>${dueDate(invoice.dueAt)}</td>
<td>${payCell(invoice, view.csrf)}</td>
</tr>`,
  );
  const table = view.invoices.length === 0
    ? html`<p>You have no invoices.</p>`
    : html`<table>
<caption>Your invoices</caption>
<thead><tr><th scope="col">Invoice</th><th scope="col">Amount</th><th scope="col">Status</th><th scope="col">Due</th><th scope="col"><span class="muted">Action</span></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>`;
  return {
    title: 'Your invoices',
    body: html`<h1>Hello, ${view.clientName}</h1>
<p class="muted">Invoices from ${view.organizationName}</p>
${table}
<form method="post" action="/portal/logout">
<input type="hidden" name="csrf" value="${view.csrf}">
<button type="submit" class="secondary">Sign out</button>
</form>`,
  };
}
