/**
 * HTTP to the servers under test, over node:http with a keep-alive agent: set-up calls (login,
 * organizations, keys) and timed single requests for the latency scenarios. 127.0.0.1 only.
 */
import http from 'node:http';

export interface HttpResult {
  status: number;
  body: any;
  /** From just before the request is written to the end of the response body, in milliseconds. */
  ms: number;
}

export class HttpClient {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  /** maxSockets 1 makes requests strictly sequential on one connection (latency measurements). */
  constructor(readonly baseUrl: string, maxSockets = 4) {
    const u = new URL(baseUrl);
    if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') throw new Error(`refusing a non-loopback target: ${baseUrl}`);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request(method: string, path: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpResult> {
    const payload = options.body === undefined ? null : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = http.request({ host: this.host, port: this.port, method, path, headers, agent: this.agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
          const text = Buffer.concat(chunks).toString();
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body, ms: elapsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload ?? undefined);
    });
  }

  get(path: string, token?: string) {
    return this.request('GET', path, { token });
  }

  post(path: string, body: unknown, token?: string) {
    return this.request('POST', path, { body, token });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function expectStatus(result: HttpResult, status: number, what: string): any {
  if (result.status !== status) throw new Error(`${what}: expected ${status}, got ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}

export async function login(client: HttpClient, email: string, password: string): Promise<string> {
  const body = expectStatus(await client.post('/v1/auth/login', { email, password }), 200, `login as ${email}`);
  if (typeof body?.token !== 'string') throw new Error(`login as ${email}: no token in ${JSON.stringify(body)}`);
  return body.token;
}

export interface CreatedKey {
  id: string;
  secret: string;
}

/** POST /v1/system/organizations with a global-admin session, optionally with an initial key. */
export async function createOrganization(
  client: HttpClient,
  sessionToken: string,
  name: string,
  initialKey?: { name: string; scopes: string[] },
): Promise<{ id: string; initialKey: CreatedKey | null }> {
  const body = expectStatus(
    await client.post('/v1/system/organizations', { name, ...(initialKey ? { initialApiKey: initialKey } : {}) }, sessionToken),
    201,
    'creating an organization',
  );
  const key = body?.initialApiKey;
  if (initialKey && (typeof key?.secret !== 'string' || typeof key?.id !== 'string')) throw new Error(`no initial key in ${JSON.stringify(body)}`);
  return { id: body.id, initialKey: initialKey ? { id: key.id, secret: key.secret } : null };
}

/** POST /v1/api-keys with an organization key holding api_key:create. */
export async function createKey(client: HttpClient, adminKey: string, name: string, scopes: string[]): Promise<CreatedKey> {
  const body = expectStatus(await client.post('/v1/api-keys', { name, scopes }, adminKey), 201, `creating key "${name}"`);
  return { id: body.id, secret: body.secret };
}

export interface HealthSnapshot {
  misses: number;
  hits: number;
  negativeHits: number;
  channelLive: boolean;
  reconnects: number;
  flushes: number;
  raw: any;
}

/** GET /v1/system/health (global-admin session); tolerant of fields that are missing. */
export async function systemHealth(client: HttpClient, sessionToken: string): Promise<HealthSnapshot> {
  const body = expectStatus(await client.get('/v1/system/health', sessionToken), 200, 'GET /v1/system/health');
  const n = (v: unknown) => (typeof v === 'number' ? v : NaN);
  return {
    misses: n(body?.keyCache?.misses),
    hits: n(body?.keyCache?.hits),
    negativeHits: n(body?.keyCache?.negativeHits),
    channelLive: body?.invalidationChannel?.live === true,
    reconnects: n(body?.invalidationChannel?.reconnects ?? 0),
    flushes: n(body?.invalidationChannel?.flushes ?? 0),
    raw: body,
  };
}
