/**
 * The peer for `npm run bench`: Better Auth with its API key plugin, verifying a key per request.
 *
 * Runs as a child process of bench/run.ts (`node --import tsx bench/peer/better-auth-server.ts`) on a
 * database the bench created for it (PEER_DATABASE_URL, on the same PostgreSQL server as Paygate's):
 *   1. betterAuth({ database: pg.Pool, emailAndPassword, plugins: [apiKey({ rateLimit: { enabled: false } })] })
 *   2. its migrations, programmatically (getMigrations from better-auth/db/migration: what `auth migrate` runs)
 *   3. a user (auth.api.signUpEmail) and an API key for it (auth.api.createApiKey, server-side with userId)
 *   4. a Fastify server on 127.0.0.1:PEER_PORT:
 *        GET /healthz  -> {"status":"ok"}
 *        GET /whoami   -> auth.api.verifyApiKey({ body: { key } }) for `Authorization: Bearer <key>`;
 *                         200 {"type":"api_key","keyId",...} or 401 {"code":"invalid_api_key"}
 *   5. one line on stdout: `PEER_READY {"key":"...","keyId":"...","userId":"..."}`
 *
 * The API key plugin's per-key rate limiting is ON by default (10 requests per day per key), which
 * would turn a benchmark into 401/429s after ten requests; it is disabled here. Everything else is the
 * plugin's default (storage "database", deferUpdates false: a verification reads the key row and
 * writes usage back to it before answering). Telemetry is off, logging at "error".
 */
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { betterAuth, type BetterAuthOptions } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { apiKey } from '@better-auth/api-key';

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`better-auth-server: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const databaseUrl = required('PEER_DATABASE_URL');
const port = Number(required('PEER_PORT'));
/** Same pool size as Paygate's (src/db/database.ts: max 10). */
const POOL_MAX = Number(process.env.PEER_POOL_MAX || 10);

async function main(): Promise<void> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: POOL_MAX, idleTimeoutMillis: 30_000 });
  pool.on('error', () => undefined);

  const options = {
    database: pool,
    baseURL: `http://127.0.0.1:${port}`,
    secret: process.env.PEER_SECRET || randomBytes(32).toString('base64url'),
    emailAndPassword: { enabled: true },
    // Better Auth's own HTTP rate limiter only guards its router (auth.handler); off, to be explicit.
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    logger: { level: 'error' as const },
    plugins: [apiKey({ rateLimit: { enabled: false } })],
  } satisfies BetterAuthOptions;
  // Migrations first: betterAuth() checks the schema when it starts and would log a mismatch.
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
  const auth = betterAuth(options);

  const email = `bench-${randomBytes(6).toString('hex')}@example.com`;
  const signUp = await auth.api.signUpEmail({ body: { email, password: `pw-${randomBytes(16).toString('hex')}`, name: 'Bench' } });
  const created = await auth.api.createApiKey({ body: { userId: signUp.user.id, name: 'bench' } });

  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/whoami', async (request, reply) => {
    const header = request.headers.authorization;
    const key = header && header.startsWith('Bearer ') ? header.slice(7) : null;
    if (!key) return reply.code(401).send({ code: 'invalid_api_key' });
    const result = await auth.api.verifyApiKey({ body: { key } });
    if (!result.valid || !result.key) return reply.code(401).send({ code: 'invalid_api_key', detail: result.error?.code ?? null });
    return { type: 'api_key', keyId: result.key.id, referenceId: result.key.referenceId, permissions: result.key.permissions ?? null };
  });
  await app.listen({ port, host: '127.0.0.1' });

  const shutdown = async () => {
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await app.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
  // The bench is our only client: if it dies without stopping us, stop with it.
  process.on('disconnect', () => void shutdown());

  process.stdout.write(`PEER_READY ${JSON.stringify({ key: created.key, keyId: created.id, userId: signUp.user.id })}\n`);
}

main().catch((error) => {
  console.error('better-auth-server: failed:', error);
  process.exit(1);
});
