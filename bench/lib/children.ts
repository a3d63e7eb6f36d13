/** Child processes: Paygate nodes (`node dist/main.js`, the build `npm start` runs), the peer and the floor app; CPU pinning. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { buildServer } from '../../scripts/build.js';
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

// ---------------------------------------------------------------------------------------------------
// Pinning (BENCH_PIN): "server pinned to one core, load generator on the other". The servers under
// test run on the server CPU, this process (autocannon) on the generator CPU. taskset execs the
// command, so a child's pid is the server's own.

export interface Pinning {
  /** The CPU of the servers under test (`taskset -c <server>`). */
  server: number;
  /** The CPU of this process, the load generator. */
  generator: number;
  /** This process's CPU list before pinning (Cpus_allowed_list): what unpinned processes get. */
  all: string;
}

function allowedCpus(): { list: string; cpus: number[] } | null {
  const status = fs.existsSync('/proc/self/status') ? fs.readFileSync('/proc/self/status', 'utf8') : '';
  const list = status.match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
  if (!list) return null;
  const cpus = list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number) as [number, number | undefined];
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i);
  });
  return { list, cpus };
}

function resolvePinning(): Pinning | null {
  const knob = process.env.BENCH_PIN;
  if (knob === '0') return null;
  if (knob !== undefined && knob !== '' && knob !== '1') throw new Error('BENCH_PIN must be 0 or 1');
  const allowed = allowedCpus();
  const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!allowed || allowed.cpus.length < 2 || !hasTaskset) {
    if (knob === '1') throw new Error(`BENCH_PIN=1 needs taskset and 2 CPUs (${hasTaskset ? 'taskset found' : 'no taskset'}, CPUs ${allowed?.list ?? 'unknown'})`);
    return null;
  }
  return { generator: allowed.cpus[0]!, server: allowed.cpus[1]!, all: allowed.list };
}

/** The pinning of this run, or null (BENCH_PIN=0, one CPU, or no taskset). */
export const pinning: Pinning | null = resolvePinning();
let generatorPinned = false;

function setAffinity(pid: number, cpus: string): void {
  // -a: every thread of the process (libuv's pool, V8's helpers), not just the main one.
  const result = spawnSync('taskset', ['-a', '-cp', cpus, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`taskset -a -cp ${cpus} ${pid} failed: ${result.stderr || result.error}`);
}

/** Pins this process (the load generator) to the generator CPU; its children inherit that unless spawned pinned or with the full list. */
export function pinGenerator(): void {
  if (!pinning) return;
  setAffinity(process.pid, String(pinning.generator));
  generatorPinned = true;
  log(`pinning: load generator (this process, pid ${process.pid}) on CPU ${pinning.generator}, servers under test on CPU ${pinning.server}`);
}

/** Gives this process its CPUs back (for the scenarios that do not measure against the floor). */
export function unpinGenerator(): void {
  if (!pinning || !generatorPinned) return;
  setAffinity(process.pid, pinning.all);
  generatorPinned = false;
}

/** Pins a running process (all its threads) to the server CPU; no-op without pinning. */
export function pinToServerCpu(pid: number): void {
  if (pinning) setAffinity(pid, String(pinning.server));
}

/**
 * Gives a process tree all CPUs again: the embedded PostgreSQL that a pinned Paygate starts inherits
 * the server CPU, and the database is not part of the server under test. Backends forked later
 * inherit the postmaster's list.
 */
export async function unpinProcessTree(rootPid: number): Promise<void> {
  if (!pinning) return;
  const parents = new Map<number, number>();
  for (const entry of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fsp.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (stat) parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  for (const pid of tree) {
    try {
      setAffinity(pid, pinning.all);
    } catch {
      /* a backend that exited meanwhile */
    }
  }
}

export interface SpawnOptions {
  /** Run on the server CPU (`taskset -c <server>`) when pinning is on: a server under test. */
  pinned?: boolean;
}

export function spawnChild(name: string, args: string[], env: NodeJS.ProcessEnv, onStdoutLine?: (line: string) => void, options: SpawnOptions = {}): Child {
  // Unpinned children of a pinned generator would inherit its one CPU: they get the full list back.
  const cpus = pinning && options.pinned ? String(pinning.server) : pinning && generatorPinned ? pinning.all : null;
  const child = cpus
    ? spawn('taskset', ['-c', cpus, process.execPath, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

let serverBuilt = false;

/**
 * Paygate as it is deployed: `npm start` runs `node dist/main.js`, so the bench does too (built here
 * when src/ changed). Not `--import tsx src/main.ts`: a TypeScript loader in the process is not what
 * runs in production, and it can change the speed of a process (bench/ANALYSIS.md).
 */
function ensureServerBuilt(): void {
  if (serverBuilt) return;
  buildServer();
  serverBuilt = true;
}

/** Starts Paygate with `env` on 127.0.0.1:port and waits for /readyz (200). */
export async function startPaygate(name: string, env: NodeJS.ProcessEnv, port: number, extraNodeArgs: string[] = [], timeoutMs = 120_000, options: SpawnOptions = {}): Promise<PaygateNode> {
  ensureServerBuilt();
  const child = spawnChild(name, [...extraNodeArgs, path.join('dist', 'main.js')], { ...env, PORT: String(port), HOST: '127.0.0.1' }, undefined, options);
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
