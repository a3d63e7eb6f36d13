/**
 * The OpenAPI 3.1 document generated from the route schemas (/openapi.json), and Swagger UI for it
 * (/docs, its static files under /docs/static).
 *
 * Security: /docs shares its origin with /admin, so script running on a docs page could act with an
 * admin's cookies. Every response here therefore carries a strict Content-Security-Policy: scripts
 * and styles only from this origin (Swagger UI's index page has no inline script or style, its
 * bundle needs no eval; one <style> it inserts is admitted by its hash), nothing else loaded from
 * elsewhere, no framing, no forms, no plugins; plus X-Frame-Options DENY, nosniff and no Referer.
 * docs/security.md says why that makes sharing the origin acceptable.
 */
import type { FastifyInstance } from 'fastify';
import swaggerUi from '@fastify/swagger-ui';

/** sha256 of `.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}`, base64. */
const SWAGGER_LOGO_STYLE_HASH = 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w=';

export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // The one <style> Swagger UI's bundle inserts (the colours of its small SVG logo), by hash: a
  // hash admits exactly that text, so no injected style gets in. A new Swagger UI version that
  // inserts another one shows as a CSP violation in test/e2e/docs-and-portal.test.ts.
  `style-src 'self' '${SWAGGER_LOGO_STYLE_HASH}'`,
  // Swagger UI's logo is a data: SVG; it fetches the document (and "Try it out" calls) from here.
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const DOCS_HEADERS: Record<string, string> = {
  'Content-Security-Policy': DOCS_CSP,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

export async function registerDocsRoutes(app: FastifyInstance): Promise<void> {
  // Encapsulated: the headers hook covers exactly the docs, Swagger UI's static files included.
  await app.register(async (docs) => {
    docs.addHook('onRequest', async (_request, reply) => {
      reply.headers(DOCS_HEADERS);
    });
    docs.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
    await docs.register(swaggerUi, { routePrefix: '/docs' });
  });
}
