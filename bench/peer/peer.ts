/**
 * Starts the Better Auth peer (bench/peer/better-auth-server.ts) in a child process, on a database
 * `bench_better_auth_<random>` that the bench creates on the same PostgreSQL server as Paygate's and
 * drops afterwards.
 */
import { randomBytes } from 'node:crypto';
import { spawnChild, type Child } from '../lib/children.js';
import { createScratchDatabase } from '../lib/db.js';
import { freePort, log, sleep } from '../lib/common.js';
import { packageVersion } from '../lib/load.js';

export interface Peer {
  child: Child;
  baseUrl: string;
  key: string;
  keyId: string;
  databaseUrl: string;
  databaseName: string;
  versions: { betterAuth: string; apiKey: string };
  stop(): Promise<void>;
}

export async function startPeer(adminUrl: string, timeoutMs = 60_000): Promise<Peer> {
  const db = await createScratchDatabase(adminUrl, 'bench_better_auth');
  const port = await freePort();
  let ready: { key: string; keyId: string } | null = null;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PEER_DATABASE_URL: db.url,
    PEER_PORT: String(port),
    PEER_SECRET: randomBytes(32).toString('base64url'),
    BETTER_AUTH_TELEMETRY: '0',
    NODE_ENV: 'production',
  };
  delete env.DATABASE_URL;
  const child = spawnChild('Better Auth peer', ['--import', 'tsx', 'bench/peer/better-auth-server.ts'], env, (line) => {
    if (line.startsWith('PEER_READY ')) ready = JSON.parse(line.slice('PEER_READY '.length)) as { key: string; keyId: string };
  });
  const stop = async () => {
    await child.stop();
    await db.drop();
  };
  const t0 = Date.now();
  let exitCode: number | null | undefined;
  void child.exited.then((code) => (exitCode = code));
  while (!ready) {
    if (exitCode !== undefined) {
      await stop();
      throw new Error(`the Better Auth peer exited during start-up (code ${exitCode}):\n${child.output.join('')}`);
    }
    if (Date.now() - t0 > timeoutMs) {
      await stop();
      throw new Error(`the Better Auth peer was not ready within ${timeoutMs / 1000} s:\n${child.output.join('')}`);
    }
    await sleep(100);
  }
  const { key, keyId } = ready as { key: string; keyId: string };
  log(`Better Auth peer ready on 127.0.0.1:${port} in ${((Date.now() - t0) / 1000).toFixed(1)} s (database ${db.name})`);
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    key,
    keyId,
    databaseUrl: db.url,
    databaseName: db.name,
    versions: { betterAuth: packageVersion('better-auth'), apiKey: packageVersion('@better-auth/api-key') },
    stop,
  };
}
