/**
 * scripts/build.ts, the build `npm start` runs first: it builds what changed since its last build
 * and nothing else. Run on a small project of the same shape (src/ compiled by tsc into dist/, web/
 * built by vite into dist/web, web/ importing a file of src/), in a directory of its own, so the
 * test neither depends on nor disturbs the repository's own dist/.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const TIMEOUT_MS = 120_000;

let root: string;
/** When the fixture's sources were written: an hour before any build. */
const written = Date.now() / 1000 - 3600;

async function write(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(path.join(root, file)), { recursive: true });
  await fs.writeFile(path.join(root, file), text);
}

/** Marks `file` as edited now (its content unchanged): after the start of every build before. */
async function touch(file: string): Promise<void> {
  const now = new Date();
  await fs.utimes(path.join(root, file), now, now);
}

/** Runs the build; returns the parts it built ("server", "panel"), in order. */
function build(...args: string[]): string[] {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts', ...args], { cwd: root, encoding: 'utf8', timeout: TIMEOUT_MS });
  expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
  return [...result.stdout.matchAll(/^paygate build: the (server|admin panel) /gm)].map((m) => (m[1] === 'server' ? 'server' : 'panel'));
}

const exists = (file: string) => fs.access(path.join(root, file)).then(() => true, () => false);

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-build-'));
  await fs.symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  await fs.mkdir(path.join(root, 'scripts'));
  await fs.copyFile(path.join(REPO, 'scripts', 'build.ts'), path.join(root, 'scripts', 'build.ts'));
  await write('package.json', JSON.stringify({ name: 'build-fixture', private: true, type: 'module' }));
  await write(
    'tsconfig.json',
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', rootDir: 'src', skipLibCheck: true }, include: ['src/**/*.ts'], exclude: ['src/**/*.test.ts'] }),
  );
  await write('src/shared.ts', "export const GREETING = 'hello';\n");
  await write('src/main.ts', "import { GREETING } from './shared.js';\nconsole.log(GREETING);\n");
  await write('src/cli/index.ts', "console.log('cli');\n");
  await write('src/main.test.ts', '// a test: never built\n');
  await write(
    'web/vite.config.ts',
    "export default { root: new URL('.', import.meta.url).pathname, logLevel: 'warn', build: { outDir: new URL('../dist/web', import.meta.url).pathname, emptyOutDir: true } };\n",
  );
  await write('web/index.html', '<!doctype html><script type="module" src="./src/main.ts"></script>\n');
  await write('web/src/main.ts', "import { GREETING } from '../../src/shared';\ndocument.title = GREETING;\n");
  // Every source starts out older than any build.
  for (const file of ['tsconfig.json', 'src/shared.ts', 'src/main.ts', 'src/cli/index.ts', 'src/main.test.ts', 'web/vite.config.ts', 'web/index.html', 'web/src/main.ts']) {
    await fs.utimes(path.join(root, file), written, written);
  }
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('the build npm start runs', () => {
  it('builds the server and the panel the first time', { timeout: TIMEOUT_MS }, async () => {
    expect(build()).toEqual(['server', 'panel']);
    expect(await exists('dist/main.js')).toBe(true);
    expect(await exists('dist/web/index.html')).toBe(true);
  });

  it('builds nothing when nothing changed', { timeout: TIMEOUT_MS }, () => {
    expect(build()).toEqual([]);
  });

  it('builds only the server after a server file changed, and nothing for a test file', { timeout: TIMEOUT_MS }, async () => {
    await touch('src/main.ts');
    expect(build()).toEqual(['server']);
    await touch('src/main.test.ts');
    expect(build()).toEqual([]);
  });

  it('builds only the panel after a panel file changed', { timeout: TIMEOUT_MS }, async () => {
    await touch('web/src/main.ts');
    expect(build()).toEqual(['panel']);
  });

  it('builds both after a file of src/ that the panel imports changed', { timeout: TIMEOUT_MS }, async () => {
    await touch('src/shared.ts');
    expect(build()).toEqual(['server', 'panel']);
  });

  it('emits the server again when its output went missing, though no source changed', { timeout: TIMEOUT_MS }, async () => {
    await fs.rm(path.join(root, 'dist', 'main.js'));
    expect(build()).toEqual(['server']);
    expect(await exists('dist/main.js')).toBe(true);
  });

  it('builds everything with --force', { timeout: TIMEOUT_MS }, () => {
    expect(build('--force')).toEqual(['server', 'panel']);
  });
});
