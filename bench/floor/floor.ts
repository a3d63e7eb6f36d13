/**
 * Starts the floor app (bench/floor/app.ts) in a child process, pinned like Paygate (BENCH_PIN), with
 * the keys the bench made in Paygate and Paygate's own database, and waits for its ready line.
 */
import { spawnChild, type Child } from '../lib/children.js';
import { freePort, log, sleep } from '../lib/common.js';

export interface FloorKeySeed {
  token: string;
  keyId: string;
  organizationId: string;
  scopes: string[];
}

export interface Floor {
  child: Child;
  baseUrl: string;
  stop(): Promise<void>;
}

export async function startFloor(keys: FloorKeySeed[], databaseUrl: string | null, timeoutMs = 60_000): Promise<Floor> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, FLOOR_PORT: String(port), FLOOR_KEYS: JSON.stringify(keys), NODE_ENV: 'production' };
  delete env.DATABASE_URL;
  if (databaseUrl) env.FLOOR_DATABASE_URL = databaseUrl;
  let ready = false;
  const child = spawnChild('floor app', ['--import', 'tsx', 'bench/floor/app.ts'], env, (line) => {
    if (line.startsWith('FLOOR_READY ')) ready = true;
  }, { pinned: true });
  const t0 = Date.now();
  let exitCode: number | null | undefined;
  void child.exited.then((code) => (exitCode = code));
  while (!ready) {
    if (exitCode !== undefined) throw new Error(`the floor app exited during start-up (code ${exitCode}):\n${child.output.join('')}`);
    if (Date.now() - t0 > timeoutMs) {
      await child.stop();
      throw new Error(`the floor app was not ready within ${timeoutMs / 1000} s:\n${child.output.join('')}`);
    }
    await sleep(50);
  }
  log(`floor app ready on 127.0.0.1:${port} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { child, baseUrl: `http://127.0.0.1:${port}`, stop: () => child.stop() };
}
