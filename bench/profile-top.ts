/**
 * Summarises a V8 .cpuprofile (from `BENCH_CPU_PROF=<dir> npm run bench`, which runs the server with
 * --cpu-prof): top functions by self time, top src/ functions by inclusive time, and self time per file.
 *
 *   npx tsx bench/profile-top.ts <file.cpuprofile> [topN] [--window <from>:<to>] [--timeline]
 *
 * --timeline prints the busy share of each second (to find where each scenario ran); --window keeps
 * only the samples between <from> and <to> seconds after the profile started (either side may be empty).
 */
import fs from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const [value] = args.splice(i, name === '--timeline' ? 1 : 2).slice(1);
  return value ?? '';
};
const timeline = flag('--timeline') !== undefined;
const window = flag('--window');
const [file, topArg] = args;
if (!file) {
  console.error('usage: npx tsx bench/profile-top.ts <file.cpuprofile> [topN] [--window <from>:<to>] [--timeline]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;

// Sample times (microseconds since the profile started) and the optional window.
const at: number[] = [];
profile.timeDeltas.reduce((t, d, i) => (at[i] = t + d), 0);
const [from, to] = (window ?? ':').split(':').map((v) => (v === '' || v === undefined ? NaN : Number(v) * 1e6));
const inWindow = (i: number) => !(at[i]! < from!) && !(at[i]! > to!);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const idleIds = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
if (timeline) {
  const busy: number[] = [];
  const all: number[] = [];
  profile.samples.forEach((id, i) => {
    const second = Math.floor(at[i]! / 1e6);
    all[second] = (all[second] ?? 0) + (profile.timeDeltas[i] ?? 0);
    if (!idleIds.has(id)) busy[second] = (busy[second] ?? 0) + (profile.timeDeltas[i] ?? 0);
  });
  console.log('second  busy');
  all.forEach((t, second) => console.log(`${String(second).padStart(6)}  ${(((busy[second] ?? 0) / t) * 100).toFixed(0).padStart(3)}%`));
}

const selfTime = new Map<number, number>();
profile.samples.forEach((id, i) => {
  if (inWindow(i)) selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
});
const total = [...selfTime.values()].reduce((a, b) => a + b, 0);

const shortUrl = (url: string) => url.replace(/^file:\/\/.*?\/(node_modules|src|bench)\//, '$1/').replace(/^node:/, 'node:');
const key = (f: CallFrame) => `${f.functionName || '(anonymous)'}  ${shortUrl(f.url)}:${f.lineNumber + 1}`;

// Self time per function.
const self = new Map<string, number>();
const perFile = new Map<string, number>();
for (const [id, t] of selfTime) {
  const f = byId.get(id)!.callFrame;
  self.set(key(f), (self.get(key(f)) ?? 0) + t);
  const fileKey = f.url ? shortUrl(f.url).replace(/^(node_modules\/(@[^/]+\/)?[^/]+)\/.*/, '$1') : `(${f.functionName})`;
  perFile.set(fileKey, (perFile.get(fileKey) ?? 0) + t);
}

// Inclusive time per function (each sample counted once per distinct function on its stack).
const inclusive = new Map<string, number>();
for (const [id, t] of selfTime) {
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!.callFrame);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + t);
  }
}

const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
const print = (title: string, entries: Map<string, number>, filter: (k: string) => boolean = () => true) => {
  console.log(`\n${title}`);
  [...entries]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .forEach(([k, t]) => console.log(`${pct(t)}  ${k}`));
};

console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled${window ? ` in window ${window} s` : ''}`);
print('self time by function', self);
print('self time by file / package', perFile);
print('inclusive time, src/ functions', inclusive, (k) => k.includes(' src/'));
