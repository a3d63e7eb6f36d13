/** One delivery attempt against a real local HTTP server: address pinning, no redirects, bounds. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESPONSE_BODY_BYTES, attemptDelivery } from './deliver.js';

describe('attemptDelivery', () => {
  let server: Server;
  let port: number;
  const seen: IncomingMessage[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok');

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req);
      req.resume();
      req.on('end', () => handler(req, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const base = { body: '{"a":1}', headers: { 'content-type': 'application/json' }, timeoutMs: 2_000 };

  it('connects to the address that was checked, never resolving the name again; Host stays the name', async () => {
    let lookups = 0;
    // `pinned.test` exists in no DNS: had anything resolved it again, the connection would fail.
    const resolve = async () => {
      lookups++;
      return ['127.0.0.1'];
    };
    seen.length = 0;
    const outcome = await attemptDelivery({ ...base, url: `http://pinned.test:${port}/in?x=1`, allowPrivate: true, resolve });
    expect(outcome).toMatchObject({ kind: 'answered', status: 200, body: 'ok' });
    expect(lookups).toBe(1);
    expect(seen[0]!.headers.host).toBe(`pinned.test:${port}`);
    expect(seen[0]!.url).toBe('/in?x=1');
    expect(seen[0]!.method).toBe('POST');
  });

  it('refuses, and sends nothing, when the name resolves to a refused address', async () => {
    seen.length = 0;
    const outcome = await attemptDelivery({ ...base, url: `http://rebound.test:${port}/`, allowPrivate: false, resolve: async () => ['127.0.0.1'] });
    expect(outcome).toMatchObject({ kind: 'refused', error: 'refused: rebound.test resolves to a loopback address' });
    expect(seen).toHaveLength(0);
  });

  it('follows no redirect: a 3xx is an answer like any other', async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${port}/elsewhere` }).end();
    const outcome = await attemptDelivery({ ...base, url: `http://127.0.0.1:${port}/hook`, allowPrivate: true, resolve: async () => [] });
    expect(outcome).toMatchObject({ kind: 'answered', status: 307 });
    expect(seen.map((r) => r.url)).toEqual(['/hook']);
  });

  it('keeps only the first 1 KiB of the answer', async () => {
    handler = (_req, res) => res.end('é'.repeat(100_000));
    const outcome = await attemptDelivery({ ...base, url: `http://127.0.0.1:${port}/big`, allowPrivate: true, resolve: async () => [] });
    expect(outcome.kind).toBe('answered');
    if (outcome.kind !== 'answered') return;
    expect(Buffer.byteLength(outcome.body)).toBeLessThanOrEqual(RESPONSE_BODY_BYTES + 2);
    expect(outcome.body.startsWith('éé')).toBe(true);
  });

  it('gives up on a receiver that does not answer in time', async () => {
    handler = () => undefined;
    const outcome = await attemptDelivery({ ...base, timeoutMs: 200, url: `http://127.0.0.1:${port}/slow`, allowPrivate: true, resolve: async () => [] });
    expect(outcome).toMatchObject({ kind: 'timeout', error: 'no answer within 0.2 s' });
  });

  it('reports a refused connection as an error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const outcome = await attemptDelivery({ ...base, url: `http://127.0.0.1:${freePort}/`, allowPrivate: true, resolve: async () => [] });
    expect(outcome).toMatchObject({ kind: 'error', error: expect.stringMatching(/ECONNREFUSED/) });
  });
});
