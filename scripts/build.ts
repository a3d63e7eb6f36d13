/**
 * `npm run build` (and the first step of `npm start`): the server, src/ -> dist/ (tsc), and the admin
 * panel, web/ -> dist/web (vite), each built only when one of its sources changed since its last
 * successful build. `--force` builds both whatever their state.
 *
 * "Changed" is by modification time, against a stamp written after each successful build and dated
 * when that build began (an edit made during a build makes the next run build again). The server's
 * sources are src/ (tests excluded) and tsconfig.json; when they changed, tsc runs with
 * --incremental, so it re-checks and re-emits only what the change touches. The panel's sources are
 * web/ plus every file of src/ it imports (its scope catalogue and audit actions), found by
 * following its relative imports.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const SERVER_STAMP = path.join(DIST, '.build-server');
const WEB_STAMP = path.join(DIST, '.build-web');

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** Every file under `dir`, skipping node_modules and dist. */
function filesUnder(dir: string, keep: (file: string) => boolean = () => true): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...filesUnder(full, keep));
    else if (keep(full)) found.push(full);
  }
  return found;
}

const RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;

/** The file a relative import names, as TypeScript and vite resolve it (".js" may stand for ".ts"). */
function resolveImport(from: string, specifier: string): string | null {
  const base = path.resolve(path.dirname(from), specifier);
  const candidates = [base, `${base}.ts`, `${base}.tsx`, base.replace(/\.js$/, '.ts'), base.replace(/\.js$/, '.tsx'), path.join(base, 'index.ts')];
  return candidates.find((file) => fs.existsSync(file) && fs.statSync(file).isFile()) ?? null;
}

/** web/ and the files outside it that its code imports, transitively. */
export function webSources(): string[] {
  const seen = new Set(filesUnder(path.join(ROOT, 'web')));
  const queue = [...seen].filter((file) => /\.tsx?$/.test(file));
  while (queue.length > 0) {
    const file = queue.pop()!;
    for (const match of fs.readFileSync(file, 'utf8').matchAll(RELATIVE_IMPORT)) {
      const target = resolveImport(file, match[1]!);
      if (target && !seen.has(target)) {
        seen.add(target);
        queue.push(target);
      }
    }
  }
  return [...seen];
}

function serverSources(): string[] {
  return [...filesUnder(path.join(ROOT, 'src'), (file) => !file.endsWith('.test.ts')), path.join(ROOT, 'tsconfig.json')];
}

/** Whether `stamp` is missing, or older than one of `sources`, or one of `outputs` is missing. */
function stale(stamp: string, sources: string[], outputs: string[]): boolean {
  const built = mtime(stamp);
  return built < 0 || outputs.some((file) => mtime(file) < 0) || sources.some((file) => mtime(file) > built);
}

/** Runs a build step; on success dates its stamp to when the step began. */
function run(label: string, stamp: string, args: string[]): void {
  process.stdout.write(`paygate build: ${label}\n`);
  const began = new Date();
  const result = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`paygate build: ${label} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(result.status ?? 1);
  }
  fs.mkdirSync(path.dirname(stamp), { recursive: true });
  fs.writeFileSync(stamp, '');
  fs.utimesSync(stamp, began, began);
}

export function webIsStale(): boolean {
  return stale(WEB_STAMP, webSources(), [path.join(DIST, 'web', 'index.html')]);
}

export function buildWeb(): void {
  run('the admin panel (vite build)', WEB_STAMP, [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn']);
}

/** The server, src/ -> dist/, when one of its sources changed (or with `force`). */
export function buildServer(force = false): void {
  const outputs = [path.join(DIST, 'main.js'), path.join(DIST, 'cli', 'index.js')];
  if (force || stale(SERVER_STAMP, serverSources(), outputs)) {
    const buildInfo = path.join(DIST, '.tsbuildinfo');
    // tsc's build info describes what it emitted, not what is still there: when outputs went missing
    // (or on --force), forget it so that everything is emitted again.
    if (force || outputs.some((file) => mtime(file) < 0)) fs.rmSync(buildInfo, { force: true });
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    run('the server (tsc)', SERVER_STAMP, [tsc, '-p', 'tsconfig.json', '--incremental', '--tsBuildInfoFile', buildInfo]);
  }
}

function main(): void {
  const force = process.argv.includes('--force');
  buildServer(force);
  if (force || webIsStale()) buildWeb();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
