/**
 * A minimal Fastify app for side-by-side probes (bench/ANALYSIS.md): `node bench/floor/minimal.mjs <port>`.
 *   GET /healthz   bare route, {"status":"ok"}
 *   GET /r401      a synchronous onRequest hook answering exactly Paygate's 401 for a malformed token:
 *                  the same headers and the full problem body, prebuilt up to the request id
 * Run it pinned next to Paygate or the floor (`taskset -c 1`), load both with bench/side-by-side.mjs.
 */
import Fastify from 'fastify';
const port = Number(process.argv[2]);
const app = Fastify({ logger: false });
const body401 = '{"type":"https://paygate.dev/errors/invalid_api_key","title":"The API key is not valid","status":401,"detail":"The API key is not valid","code":"invalid_api_key","requestId":"';
let n = 0;
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/r401', { onRequest: (req, reply, done) => {
  const id = 'req_abcdefgh' + (n++).toString(36);
  reply.code(401).headers({ 'x-request-id': id, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store', 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'application/problem+json; charset=utf-8' }).send(body401 + id + '"}');
} }, async () => ({}));
await app.listen({ port, host: '127.0.0.1' });
console.log('READY');
