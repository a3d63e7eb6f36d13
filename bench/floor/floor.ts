/**
 * Starts the floor app (bench/floor/app.ts) in a child process, pinned like Paygate (BENCH_PIN), with
 * the keys the bench made in Paygate and Paygate's own database, and waits for its ready line.
 *
 * The app runs compiled (`tsc -p bench/floor/tsconfig.json`, to bench/floor/.build), with no
 * TypeScript loader in its process, as Paygate runs from its build (dist/main.js): under
 * `--import tsx` a Fastify app of a few routes served its bare route about 1.2 times slower in two
 * fresh processes of three (bench/ANALYSIS.md), which made the floor a draw of two speeds.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { spawnChild, type Child } from '../lib/children.js';
import { freePort, log, ROOT, sleep } from '../lib/common.js';

const FLOOR_BUILD = path.join('bench', 'floor', '.build', 'bench', 'floor', 'app.js');
let floorBuilt = false;

/** Compiles the floor app once per bench process (about 2 s). */
function buildFloor(): void {
  if (floorBuilt) return;
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join('bench', 'floor', 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`the floor app did not compile:\n${result.stdout}${result.stderr}`);
  floorBuilt = true;
}

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
  buildFloor();
  let ready = false;
  const child = spawnChild('floor app', [FLOOR_BUILD], env, (line) => {
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
