/**
 * The hosted pay page's HTML: server-rendered, no JavaScript, every interpolated value escaped,
 * one inline stylesheet allowed by its hash (no 'unsafe-inline').
 */
import { createHash } from 'node:crypto';

/** Escapes text for an HTML text node or a quoted attribute value. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f6f8;color:#1a1f36;margin:0}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.25rem;margin:0 0 .5rem}
.amount{font-size:2rem;font-weight:600;margin:.25rem 0 1rem}
dl{margin:0 0 1.5rem;color:#4f566b}dt{font-weight:600}dd{margin:0 0 .5rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;border:1px solid #8792a2;border-radius:4px}
input[aria-invalid=true]{border-color:#c0123c}
input:focus,button:focus,a:focus{outline:3px solid #635bff;outline-offset:2px}
.hint{color:#4f566b;font-size:.9rem;margin:.25rem 0 1rem}
.error{color:#c0123c;font-weight:600;margin:0 0 1rem}
button{width:100%;font-size:1.1rem;padding:.7rem;border:0;border-radius:4px;background:#635bff;color:#fff;cursor:pointer}
.cancel{display:block;text-align:center;margin-top:1rem;color:#4f566b}
`;
const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

/** An origin safe to place in a CSP directive (scheme, host, port; no separators a header could abuse). */
const CSP_ORIGIN = /^https?:\/\/(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Content-Security-Policy of every pay page: nothing may load, no script runs, the page cannot be
 * framed (clickjacking a card form), and forms post only to Paygate. Browsers also apply form-action
 * to the redirect that follows a submission, so the successUrl's origin is allowed when the form's
 * success answer will redirect there.
 */
export function contentSecurityPolicy(redirectOrigin: string | null = null): string {
  const formAction = redirectOrigin && CSP_ORIGIN.test(redirectOrigin) ? `'self' ${redirectOrigin}` : "'self'";
  return `default-src 'none'; style-src ${STYLE_HASH}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`;
}

/** Whether a successUrl's origin can be allowed by contentSecurityPolicy (else the page links to it). */
export function isCspSafeOrigin(origin: string): boolean {
  return CSP_ORIGIN.test(origin);
}

export function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}
