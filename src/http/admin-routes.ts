/**
 * Serves the admin panel (web/, built by Vite into dist/web) at /admin. The panel talks only to the
 * public /v1 API, so this is static files plus a fallback to index.html for client-side routes.
 *
 * Security: a strict Content-Security-Policy (no inline script or style, nothing from elsewhere,
 * no framing), X-Frame-Options DENY, nosniff, and no Referer (invitation links carry a token).
 * Hashed assets are cached for a year; index.html never, so a deploy is picked up at once.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Services } from '../services.js';

export const ADMIN_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': ADMIN_CSP,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

const YEAR_SECONDS = 365 * 24 * 3600;
/** Asset names Vite produces (name-hash.ext); anything else under /admin is a client route. */
const ASSET = /^assets\/[A-Za-z0-9._-]+$/;
/** Files copied from web/public (favicon): no hash in the name, so a short cache. */
const PUBLIC_FILE = /^[A-Za-z0-9_-]+\.(?:svg|png|ico|txt|webmanifest)$/;

/**
 * Where the built panel is: next to the compiled server (dist/http -> dist/web), or under the
 * working directory (tests run the server from source with tsx, after `npm run build:web`).
 */
export function adminCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [...new Set([resolve(here, '../web'), resolve(here, '../../dist/web'), resolve(process.cwd(), 'dist/web')])];
}

/** Looked up per request until found, so a panel built after the server started is still served. */
function findAdminRoot(): string | null {
  for (const dir of adminCandidates()) if (existsSync(join(dir, 'index.html'))) return dir;
  return null;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const NOT_BUILT = [
  'The Paygate admin panel has not been built.',
  '',
  'Run `npm run build:web` (or `npm run build`, which `npm start` runs) and reload this page.',
  '',
].join('\n');

export async function registerAdminRoutes(app: FastifyInstance, _services?: Services): Promise<void> {
  let cachedRoot: string | null = null;
  const root = () => (cachedRoot && existsSync(join(cachedRoot, 'index.html')) ? cachedRoot : (cachedRoot = findAdminRoot()));

  await app.register(async (admin) => {
    // Only reply.sendFile is used (serve: false): the routes below decide what is a file.
    // Encapsulated, so it does not clash with the copy @fastify/swagger-ui registers for /docs.
    await admin.register(fastifyStatic, { serve: false });

    admin.addHook('onRequest', async (_request, reply) => {
      reply.headers(SECURITY_HEADERS);
    });

    const serve = async (request: FastifyRequest, reply: FastifyReply) => {
      const dir = root();
      if (!dir) {
        return reply.code(503).header('Cache-Control', 'no-store').type('text/plain; charset=utf-8').send(NOT_BUILT);
      }
      const rest = (request.params as { '*'?: string })['*'] ?? '';
      if (ASSET.test(rest)) {
        if (!isFile(join(dir, rest))) return reply.code(404).header('Cache-Control', 'no-store').type('text/plain; charset=utf-8').send('Not found\n');
        // Content-hashed names: a changed file gets a new name, so caches may keep these forever.
        return reply.sendFile(rest, dir, { maxAge: YEAR_SECONDS * 1000, immutable: true });
      }
      if (PUBLIC_FILE.test(rest) && isFile(join(dir, rest))) {
        return reply.sendFile(rest, dir, { maxAge: 3600 * 1000 });
      }
      // Every other path is a page of the panel (client-side routing): the app shell, never cached.
      reply.header('Cache-Control', 'no-store');
      return reply.sendFile('index.html', dir, { cacheControl: false, etag: false, lastModified: false });
    };

    admin.get('/admin', { schema: { hide: true } }, serve);
    admin.get('/admin/*', { schema: { hide: true } }, serve);
  });
}
