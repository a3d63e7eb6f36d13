/** Child processes: Paygate nodes (`node --import tsx src/main.ts`) and the peer server. */
import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { defer, type Resource } from './cleanup.js';
import { log, ROOT, sleep } from './common.js';

export interface Child {
  name: string;
  child: ChildProcess;
  pid: number;
  /** A bounded tail of stdout + stderr, for error reports. */
  output: string[];
  exited: Promise<number | null>;
  /** Stops the process (SIGTERM, SIGKILL after the timeout) and forgets its cleanup. */
  stop(): Promise<void>;
}

export function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv, onStdoutLine?: (line: string) => void): Child {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    keep(chunk);
    if (!onStdoutLine) return;
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      onStdoutLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const resource: Resource = defer(`stop ${name}`, () => stopProcess(name, child, exited));
  return { name, child, pid: child.pid, output, exited, stop: () => resource.release() };
}

async function stopProcess(name: string, child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    log(`${name} did not stop within 20 s after SIGTERM; sending SIGKILL`);
    child.kill('SIGKILL');
    await exited;
  }
}

export interface PaygateNode extends Child {
  baseUrl: string;
  port: number;
}

/** Starts Paygate with `env` on 127.0.0.1:port and waits for /readyz (200). */
export async function startPaygate(name: string, env: NodeJS.ProcessEnv, port: number, extraNodeArgs: string[] = [], timeoutMs = 120_000): Promise<PaygateNode> {
  const child = spawnChild(name, [...extraNodeArgs, '--import', 'tsx', 'src/main.ts'], { ...env, PORT: String(port), HOST: '127.0.0.1' });
  const node: PaygateNode = { ...child, baseUrl: `http://127.0.0.1:${port}`, port };
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  let exitCode: number | null | undefined;
  void child.exited.then((code) => (exitCode = code));
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${name} exited during start-up (code ${exitCode}):\n${child.output.join('')}`);
    try {
      const response = await fetch(`${node.baseUrl}/readyz`);
      if (response.status === 200) {
        log(`${name} ready on ${node.baseUrl} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        return node;
      }
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  await child.stop();
  throw new Error(`${name} was not ready within ${timeoutMs / 1000} s:\n${child.output.join('')}`);
}

/** An embedded PostgreSQL left behind by a killed Paygate child: stopped by the pid it wrote. */
export async function stopOrphanPostgres(dataDir: string): Promise<void> {
  const content = await fsp.readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = content ? Number(content.split('\n')[0]) : NaN;
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGINT'); // fast shutdown
    log(`stopping a leftover embedded PostgreSQL (pid ${pid})`);
    for (let i = 0; i < 100; i++) {
      await sleep(100);
      process.kill(pid, 0);
    }
  } catch {
    /* gone */
  }
}
