/**
 * Paygate's OpenAPI document, built from this repository's server code in process: the routes are
 * registered and `app.swagger()` is read, as `/openapi.json` serves it. Nothing listens and no
 * database is opened (the pool connects lazily and no request is made), so the generator needs
 * neither a running server nor PostgreSQL. Repository-only: the published package never imports it.
 */
import { loadConfig } from '../../../src/config.js';
import { createDatabase } from '../../../src/db/database.js';
import { createServices } from '../../../src/services.js';
import { buildServer } from '../../../src/http/server.js';

/** Throwaway values: the document does not depend on them, and nothing is signed or stored. */
const SECRETS = {
  pepper: 'openapi-document-pepper-0123456789abcdefghijklmnop',
  sessionSecret: 'openapi-document-session-0123456789abcdefghijklmn',
  auditSigningKey: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKN0ATzHpzh2ILF//QZ6H1SB7gq9uy7b2C+7nx6GaUkK\n-----END PRIVATE KEY-----\n',
};

export async function openApiDocumentFromSource(): Promise<Record<string, unknown>> {
  const config = loadConfig({
    // Never connected to: port 1 on loopback refuses at once if anything ever tried.
    DATABASE_URL: 'postgres://paygate@127.0.0.1:1/openapi',
    PAYGATE_SECRET_PEPPER: SECRETS.pepper,
    PAYGATE_SESSION_SECRET: SECRETS.sessionSecret,
    PAYGATE_AUDIT_SIGNING_KEY: SECRETS.auditSigningKey,
    LOG_LEVEL: 'silent',
  });
  const db = createDatabase(config.databaseUrl!, {});
  const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const app = await buildServer(createServices(config, db, SECRETS, silent), { logLevel: 'silent' });
  try {
    await app.ready();
    return JSON.parse(JSON.stringify(app.swagger())) as Record<string, unknown>;
  } finally {
    await app.close();
    await db.close();
  }
}
