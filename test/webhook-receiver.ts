/**
 * A real HTTP receiver for webhook tests, on a free loopback port: Paygate's worker POSTs to it over a
 * socket exactly as to a merchant's server. Each request is answered by the current `answer`
 * (a status, or 'hang' to hold the request open until the receiver closes), and kept with its raw
 * body and headers for the test to verify, signatures included, with its own implementation.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedHook {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, as signed. */
  body: string;
  json: any;
}

/** A status, 'hang' (held open until released), or a function of the request and its index among those to its path. */
export type Answer = number | 'hang' | ((hook: ReceivedHook, index: number) => number | 'hang');

export interface WebhookReceiver {
  /** http://127.0.0.1:<port>/hooks */
  url: string;
  port: number;
  received: ReceivedHook[];
  /** How requests are answered by default (200). */
  answer: Answer;
  /** How requests to one path are answered, e.g. `answers.set('/hooks/flaky', 500)`. */
  answers: Map<string, Answer>;
  /** A URL of this receiver with a path of its own, so one test's endpoint can be told apart (`/hooks/<name>`). */
  urlFor(name: string): string;
  /** The requests that came to `/hooks/<name>`. */
  to(name: string): ReceivedHook[];
  /** Requests held open by 'hang', answered (or dropped) by release(). */
  held: ServerResponse[];
  release(status?: number): void;
  /** Waits until `predicate` holds for the received requests (10 s at most, then fails with what came). */
  waitFor(predicate: (received: ReceivedHook[]) => boolean, what: string, timeoutMs?: number): Promise<ReceivedHook[]>;
  /** Waits for the first request whose event has this type (and, optionally, matches `where`). */
  next(type: string, where?: (hook: ReceivedHook) => boolean): Promise<ReceivedHook>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = [];
  const listeners = new Set<() => void>();
  const receiver: WebhookReceiver = {
    url: '',
    port: 0,
    received,
    answer: 200,
    answers: new Map(),
    urlFor: (name) => `${receiver.url}/${name}`,
    to: (name) => received.filter((hook) => hook.path === `/hooks/${name}`),
    held: [],
    release(status = 200) {
      for (const res of receiver.held.splice(0)) if (!res.writableEnded && !res.destroyed) res.writeHead(status).end('released');
    },
    waitFor(predicate, what, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(received)) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(received);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`the receiver did not get ${what} within ${timeoutMs} ms; it got: ${JSON.stringify(received.map((r) => r.json?.type ?? r.body.slice(0, 80)))}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async next(type, where = () => true) {
      const match = (hook: ReceivedHook) => hook.json?.type === type && where(hook);
      await receiver.waitFor((all) => all.some(match), `a ${type} event`);
      return received.find(match)!;
    },
    async close() {
      receiver.release(503);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {
        /* not JSON: the test will say so */
      }
      const hook: ReceivedHook = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, json };
      received.push(hook);
      const rule = receiver.answers.get(hook.path) ?? receiver.answer;
      const answer = typeof rule === 'function' ? rule(hook, received.filter((h) => h.path === hook.path).length - 1) : rule;
      if (answer === 'hang') receiver.held.push(res);
      else res.writeHead(answer, { 'content-type': 'text/plain' }).end(`answered ${answer}`);
      for (const listener of [...listeners]) listener();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}/hooks`;
  return receiver;
}

/**
 * The receiver's side of SPEC §16, written here from the contract alone (not Paygate's code):
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, one v1 per live secret; the key is
 * the whole secret string. True when some v1 matches `secret` and `t` is within the tolerance.
 */
export function verifySignature(header: string | string[] | undefined, body: string, secret: string, toleranceSeconds = 300, now = Date.now()): boolean {
  if (typeof header !== 'string') return false;
  const parts = header.split(',').map((part) => part.split('='));
  const t = parts.find(([k]) => k === 't')?.[1];
  if (!t || !/^\d+$/.test(t) || Math.abs(now / 1000 - Number(t)) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return parts
    .filter(([k]) => k === 'v1')
    .some(([, v]) => {
      const given = Buffer.from(v ?? '', 'hex');
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

/** The v1 signatures of a header. */
export function signaturesOf(header: string | string[] | undefined): string[] {
  return typeof header === 'string' ? header.split(',').filter((p) => p.startsWith('v1=')).map((p) => p.slice(3)) : [];
}
