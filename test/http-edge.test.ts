/**
 * Errors that never reach a route, spoken to over a raw socket: the HTTP parser's 400 and 431, and
 * requests that arrive while a node shuts down. Each is problem+json like every other error (SPEC §8).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, startPaygate, type TestApp } from './harness.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** Parses every HTTP/1.1 response in `text` (Content-Length framed). */
function parseResponses(text: string): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const raw = rest.slice(end + 4, end + 4 + length);
    let body: unknown = raw;
    try {
      body = JSON.parse(raw);
    } catch {
      /* not JSON: the assertion prints it */
    }
    responses.push({ status: Number(statusLine!.split(' ')[1]), headers, body });
    rest = rest.slice(end + 4 + length);
  }
  return responses;
}

/** Opens a socket, lets `script` write to it, and collects everything until the server closes it. */
function exchange(url: string, script: (socket: net.Socket) => void | Promise<void>): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined); // the server may reset after answering
    socket.on('close', () => resolve(received));
    socket.on('connect', () => void Promise.resolve(script(socket)).catch(reject));
    setTimeout(() => {
      socket.destroy();
      resolve(received);
    }, 10_000).unref();
  });
}

function expectProblemShape(response: RawResponse | undefined, status: number, code: string): void {
  expect(response, 'a response').toBeDefined();
  expect(response!.status, JSON.stringify(response)).toBe(status);
  expect(response!.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response!.body).toMatchObject({ status, code, type: `https://paygate.dev/errors/${code}` });
  expect(response!.body.requestId).toMatch(/^req_/);
  expect(response!.headers['x-request-id']).toBe(response!.body.requestId);
}

describe('errors of the HTTP layer', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('headers over the parser limit are 431 request_header_too_large, as problem+json', async () => {
    const text = await exchange(t.url, (socket) => {
      socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    });
    expectProblemShape(parseResponses(text)[0], 431, 'request_header_too_large');
  });

  it('a malformed request line is 400 validation_error, as problem+json', async () => {
    const text = await exchange(t.url, (socket) => {
      socket.write('GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n');
    });
    expectProblemShape(parseResponses(text)[0], 400, 'validation_error');
  });

  it('a header with a control character is 400 validation_error, as problem+json', async () => {
    const text = await exchange(t.url, (socket) => {
      socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n');
    });
    expectProblemShape(parseResponses(text)[0], 400, 'validation_error');
  });
});

describe('a node shutting down', () => {
  it('answers a request that arrives during the shutdown with 503 service_unavailable problem+json, Retry-After and Connection: close', { timeout: 30_000 }, async () => {
    const t = await startPaygate();
    try {
      const org = await createOrgWithKey(t, ['data_io:execute']);
      const csv = 'name,email\nAda,ada@example.com\n';
      let closing: Promise<void> | null = null;
      const text = await exchange(t.url, async (socket) => {
        // An upload in flight (half its body sent), then the shutdown starts, then the rest of the body
        // and a second, pipelined request: the second arrives while the node is closing.
        socket.write(
          `POST /v1/data-io/imports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${org.token}\r\n` +
            `Content-Type: text/csv\r\nContent-Length: ${csv.length}\r\n\r\n${csv.slice(0, 5)}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        closing = t.app.close();
        await new Promise((resolve) => setTimeout(resolve, 100));
        socket.write(`${csv.slice(5)}GET /v1/auth/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${org.token}\r\n\r\n`);
      });
      await closing;
      const [upload, late] = parseResponses(text);
      expect(upload?.status, JSON.stringify(upload)).toBe(202);
      expectProblemShape(late, 503, 'service_unavailable');
      expect(late!.headers['retry-after']).toMatch(/^\d+$/);
      expect(late!.headers.connection).toBe('close');
    } finally {
      await t.close().catch(() => undefined);
    }
  });
});
