/**
 * `paygate report` run as a child process against a real server, as an operator runs it: the
 * organization's report with an organization key, the system report with a system key, CSV and
 * JSON, to stdout and to a file, and a refusal as one line on stderr with the failure exit code.
 * The CLI gets a DATABASE_URL that leads nowhere: it must speak HTTP only.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, createSystemKey, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HEADER = 'id,tier,organizationId,name,status,scopes,createdAt,createdBy,creatorIsMember,secretAgeDays,rotatedAt,expiresAt,lastUsedAt,lastUsedIp,unusedDays,allowedIps,rateLimit,flags';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(clean)) {
    if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'XDG_CONFIG_HOME'].includes(name)) delete clean[name];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
      cwd: ROOT,
      env: { ...clean, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end();
  });
}

describe('paygate report', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let other: OrgWithKey;
  let system: { token: string; keyId: string };
  let formula: string;
  let dir: string;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*', 'client:read']);
    other = await createOrgWithKey(t, ['api_key:read']);
    formula = (await createOrgKey(t, org.organizationId, ['client:read'], { name: '=1+2' })).id;
    system = await createSystemKey(t, ['audit:read']);
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-report-'));
  });
  afterAll(async () => {
    await t?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it("prints the organization's report as CSV, and the system report as JSON to a file", async () => {
    const env = { PAYGATE_URL: t.url, XDG_CONFIG_HOME: dir };
    const csv = await runCli(['report'], { ...env, PAYGATE_TOKEN: org.token });
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stderr).toBe('');
    const lines = csv.stdout.split('\r\n');
    expect(lines[0]).toBe(HEADER);
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -1).map((l) => l.split(',')[0]).sort()).toEqual([org.keyId, formula].sort());
    expect(lines.find((l) => l.startsWith(formula))).toContain(",'=1+2,");

    const file = path.join(dir, 'system.json');
    const json = await runCli(['report', '--system', '--format', 'json', '--output', file], { ...env, PAYGATE_TOKEN: system.token });
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).toBe('');
    const report = JSON.parse(await fs.readFile(file, 'utf8'));
    expect(report).toMatchObject({ object: 'credential_report', scope: 'system' });
    const ids = (report.data as Array<{ id: string }>).map((r) => r.id);
    for (const id of [org.keyId, other.keyId, formula, system.keyId]) expect(ids).toContain(id);
  }, 120_000);

  it('reports a refusal in one line and exits 1', async () => {
    const refused = await runCli(['report', '--system'], { PAYGATE_URL: t.url, XDG_CONFIG_HOME: dir, PAYGATE_TOKEN: org.token });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^paygate: .*wrong_key_tier/);
    const usage = await runCli(['report', '--format', 'xml'], { PAYGATE_URL: t.url, XDG_CONFIG_HOME: dir, PAYGATE_TOKEN: org.token });
    expect(usage.code).toBe(2);
  }, 120_000);
});
