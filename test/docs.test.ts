/**
 * The docs as tests: every ```sh block of README.md and docs/*.md runs, in document order, with
 * bash against a real Paygate server, so an example that stops working fails the suite.
 *
 * What a reader has, the runner gives: a server answering at localhost:8080 (curl's URL arguments
 * are pointed at the test server; the CLI gets PAYGATE_URL), the first admin `admin@localhost` with
 * its password in PAYGATE_ADMIN_PASSWORD, and the repository as the working directory.
 *
 * What is checked: each file's blocks run in one `bash -euo pipefail` session, so a failing command
 * fails the test; every curl call must answer below 400, unless the line after the command says
 * otherwise with `# -> <status>` (then exactly that status); output a later command parses must be
 * there (the docs' `json` helper fails on a missing field).
 *
 * A block that must not run (the quick start itself, configuration shown as environment lines) is
 * preceded by `<!-- docs-test: skip: <why> -->`; the set of skipped blocks is pinned below, so no
 * example is skipped by accident.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRETS, startPaygate, type TestApp } from './harness.js';
import { hashPassword } from '../src/users/passwords.js';
import { newId } from '../src/ids.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN = { email: 'admin@localhost', password: 'docs-admin-passphrase-7f3k' };

export interface ShellBlock {
  file: string;
  line: number;
  code: string;
  skip: string | null;
}

/** Every ```sh block of a markdown text, with the skip directive on the line before it, if any. */
export function shellBlocks(file: string, markdown: string): ShellBlock[] {
  const lines = markdown.split('\n');
  const blocks: ShellBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end === -1) throw new Error(`${file}:${i + 1}: unclosed code block`);
    if (fence[1] === 'sh' || fence[1] === 'bash' || fence[1] === 'shell') {
      let k = i - 1;
      while (k >= 0 && lines[k]!.trim() === '') k--;
      const directive = k >= 0 ? /^<!--\s*docs-test:\s*skip:\s*(.+?)\s*-->$/.exec(lines[k]!.trim()) : null;
      blocks.push({ file, line: i + 1, code: lines.slice(i + 1, end).join('\n'), skip: directive ? directive[1]! : null });
    }
    i = end;
  }
  return blocks;
}

/**
 * Marks the commands followed by `# -> <status>`: the runner exports DOCS_EXPECT for exactly that
 * command (a command may continue over lines ending in a backslash).
 */
export function withExpectations(code: string): string {
  const lines = code.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    let start = i;
    let end = i;
    while (lines[end]!.trimEnd().endsWith('\\') && end + 1 < lines.length) end++;
    const next = lines[end + 1];
    const expect = next !== undefined ? /^\s*#\s*->\s*(\d{3})\b/.exec(next) : null;
    const command = lines.slice(start, end + 1);
    if (expect && !/^\s*#/.test(lines[start]!)) {
      out.push(`export DOCS_EXPECT=${expect[1]}`, ...command, 'unset DOCS_EXPECT');
    } else {
      out.push(...command);
    }
    i = end;
  }
  return out.join('\n');
}

/** The curl the blocks run: pointed at the test server, and failing on an unexpected status. */
const PRELUDE = readFileSync(path.join(ROOT, 'test/docs-prelude.sh'), 'utf8');

function docsFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

function runBash(script: string, env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // stdin not a socket: bash would take itself for a remote shell and read the system bashrc.
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Blocks that do not run, by file and the first words of their reason. */
const EXPECTED_SKIPS: Record<string, string[]> = {
  'README.md': ['the quick start itself', 'the development commands'],
  'docs/operations.md': ['server-mode configuration'],
};

describe('the docs as tests', () => {
  let t: TestApp;
  let home: string;

  beforeAll(async () => {
    t = await startPaygate();
    await t.db.query('INSERT INTO users (id, email, password_hash, is_global_admin) VALUES ($1, $2, $3, true)', [
      newId('user'),
      ADMIN.email,
      await hashPassword(ADMIN.password),
    ]);
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-docs-'));
  });
  afterAll(async () => {
    await t?.close();
    if (home) await fs.rm(home, { recursive: true, force: true });
  });

  it('skips only the blocks it is meant to, each with a reason', () => {
    const skipped: Record<string, string[]> = {};
    for (const file of docsFiles()) {
      for (const block of shellBlocks(file, readFileSync(path.join(ROOT, file), 'utf8'))) {
        if (block.skip) (skipped[file] ??= []).push(block.skip);
      }
    }
    const summary = Object.fromEntries(Object.entries(skipped).map(([file, reasons]) => [file, reasons.map((r) => EXPECTED_SKIPS[file]?.find((e) => r.startsWith(e)) ?? r)]));
    expect(summary).toEqual(EXPECTED_SKIPS);
  });

  for (const file of docsFiles()) {
    const blocks = shellBlocks(file, readFileSync(path.join(ROOT, file), 'utf8')).filter((b) => !b.skip);
    if (blocks.length === 0) continue;
    it(`every shell example of ${file} runs, in order`, { timeout: 300_000 }, async () => {
      const url = new URL(t.url);
      const script = [PRELUDE, ...blocks.map((b) => `echo "docs-test: ${b.file}:${b.line}" >&2\n${withExpectations(b.code)}`)].join('\n');
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, '.config'),
        LANG: 'C.UTF-8',
        DOCS_HOSTPORT: url.host,
        PAYGATE_URL: `http://${url.host}`,
        PAYGATE_ADMIN_EMAIL: ADMIN.email,
        PAYGATE_ADMIN_PASSWORD: ADMIN.password,
        // For the bootstrap commands (they open the database, configured like the server).
        DATABASE_URL: t.config.databaseUrl!,
        PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
        PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
        PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
      };
      const workdir = await fs.mkdtemp(path.join(home, 'work-'));
      // Blocks run in a scratch directory (they write files); the prelude points npm at the repository.
      const result = await runBash(script, { ...env, DOCS_REPO: ROOT }, workdir);
      const where = result.stderr.split('\n').filter((l) => l.startsWith('docs-test: ')).at(-1);
      expect(result.code, `${where}\nstderr:\n${result.stderr.slice(-4000)}\nstdout:\n${result.stdout.slice(-2000)}`).toBe(0);
    });
  }
});

describe('the runner itself', () => {
  it('finds sh blocks and their skip directives', () => {
    const md = ['text', '<!-- docs-test: skip: because -->', '```sh', 'echo a', '```', '```json', '{}', '```', '```sh', 'echo b', '```'].join('\n');
    expect(shellBlocks('x.md', md)).toEqual([
      { file: 'x.md', line: 3, code: 'echo a', skip: 'because' },
      { file: 'x.md', line: 9, code: 'echo b', skip: null },
    ]);
  });

  it('turns "# -> <status>" into an expectation for the command before it, continuation lines included', () => {
    expect(withExpectations(['curl a \\', '  -d b', '# -> 409 conflict', 'curl c'].join('\n'))).toBe(
      ['export DOCS_EXPECT=409', 'curl a \\', '  -d b', 'unset DOCS_EXPECT', '# -> 409 conflict', 'curl c'].join('\n'),
    );
  });
});
