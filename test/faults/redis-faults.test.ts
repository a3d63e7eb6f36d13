/**
 * Redis behind a black hole (SPEC §11: no request waits more than 5 s on Redis): a redis-server this
 * test starts on a free port (stopped by its pid; the machine's Redis is never touched), reached
 * through the pausable proxy. Rate-limited keys keep being served while Redis cannot answer, each
 * decision within a fraction of a second; when Redis returns, limits count there again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectStatus, startPaygate, type TestApp } from '../harness.js';
import { freePort } from '../cluster-harness.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (/Ready to accept connections/.test(chunk.toString())) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
  });
  return child;
}

describe('a node whose Redis link goes dark', () => {
  let redis: ChildProcess;
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    const port = await freePort();
    redis = await startRedis(port);
    proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: port });
    t = await startPaygate({ env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, PAYGATE_REDIS_PREFIX: 'faults:' } });
  }, 30_000);

  afterAll(async () => {
    proxy?.resume();
    await t?.close();
    await proxy?.close();
    if (redis?.pid) process.kill(redis.pid, 'SIGKILL');
  });

  it('keeps answering rate-limited keys within a second each (limits fail open), and counts in Redis again when it returns', { timeout: 30_000 }, async () => {
    const org = await createOrgWithKey(t, ['api_key:*']);
    const key = await createOrgKey(t, org.organizationId, ['client:read'], { rateLimit: { requests: 1000, windowSeconds: 60 } });
    expectStatus(await t.request('GET', '/v1/auth/whoami', { token: key.secret }), 200);

    proxy.pause();
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const result = await t.request('GET', '/v1/auth/whoami', { token: key.secret });
      const ms = performance.now() - t0;
      expectStatus(result, 200);
      expect(ms).toBeLessThan(1_000);
    }
    proxy.resume();

    // Back: a tight limit is enforced again (the counts are in Redis).
    const tight = await createOrgKey(t, org.organizationId, ['client:read'], { rateLimit: { requests: 2, windowSeconds: 60 } });
    const deadline = performance.now() + 15_000;
    let limited = false;
    while (!limited && performance.now() < deadline) {
      const result = await t.request('GET', '/v1/auth/whoami', { token: tight.secret });
      limited = result.status === 429;
      if (!limited) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(limited, 'the limit counted again once Redis returned').toBe(true);
  });
});
