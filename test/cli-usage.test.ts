/**
 * `paygate key usage` and `paygate key end-grace` (SPEC §12), run as child processes as an operator
 * would, against a real server with an organization key in PAYGATE_TOKEN: JSON when stdout is not a
 * terminal, a table with --table, and the API's problems as one line with exit 1.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgKey, createOrgWithKey, expectStatus, startPaygate, type OrgWithKey, type TestApp } from './harness.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 120_000;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], { cwd: ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end();
  });
}

const show = (r: CliResult) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

describe('paygate key usage / end-grace', () => {
  let t: TestApp;
  let org: OrgWithKey;
  let configHome: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    t = await startPaygate();
    org = await createOrgWithKey(t, ['api_key:*']);
    configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-cli-usage-'));
    env = { ...process.env };
    for (const name of Object.keys(env)) if (name.startsWith('PAYGATE_') || ['DATABASE_URL', 'REDIS_URL', 'XDG_CONFIG_HOME'].includes(name)) delete env[name];
    Object.assign(env, { PAYGATE_URL: t.url, PAYGATE_TOKEN: org.token, XDG_CONFIG_HOME: configHome, DATABASE_URL: 'postgres://nobody@127.0.0.1:9/nothing' });
  });
  afterAll(async () => {
    await t?.close();
    if (configHome) await fs.rm(configHome, { recursive: true, force: true });
  });

  it('prints a key\'s usage as JSON, and as a table of the buckets with requests and the totals', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    for (let i = 0; i < 3; i++) expectStatus(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 200);
    expect((await t.request('GET', '/v1/clients', { token: key.secret! })).status).toBe(403);
    await t.services.usage.flush();

    const [json, table, bad] = await Promise.all([
      runCli(['key', 'usage', key.id, '--granularity', 'minute', '--from', '2h'], env),
      runCli(['key', 'usage', key.id, '--table'], env),
      runCli(['key', 'usage', key.id, '--from', '2026-02-01T00:00:00Z', '--to', '2026-01-01T00:00:00Z'], env),
    ]);
    expect(json.code, show(json)).toBe(0);
    const usage = JSON.parse(json.stdout);
    expect(usage).toMatchObject({ object: 'api_key_usage', keyId: key.id, granularity: 'minute', totals: { total: 4, outcomes: { ok: 3, insufficient_scope: 1 }, bySecret: { current: 4 } } });
    expect(usage.buckets.length).toBeGreaterThanOrEqual(120);

    expect(table.code, show(table)).toBe(0);
    expect(table.stdout).toContain(`Key ${key.id}`);
    expect(table.stdout).toMatch(/START +TOTAL +OK +INVALID +REVOKED +EXPIRED +IP +LIMITED +SCOPE +QUARANT\. +CURRENT +PREVIOUS/);
    // One bucket with requests (this hour), then the totals.
    expect(table.stdout).toMatch(/\n\S+T\S+ +4 +3 +0 +0 +0 +0 +0 +1 +0 +4 +0 *\n/);
    expect(table.stdout).toMatch(/\ntotal +4 +3 +0 +0 +0 +0 +0 +1 +0 +4 +0 *\n/);

    expect(bad.code, show(bad)).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^paygate: validation_error: /);
  });

  it('end-grace ends the previous secret; a second one is a conflict', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await createOrgKey(t, org.organizationId, ['api_key:read']);
    const rotated = await runCli(['key', 'rotate', key.id, '--grace-minutes', '60', '--retire-when-idle', '30'], env);
    expect(rotated.code, show(rotated)).toBe(0);
    expect(JSON.parse(rotated.stdout).previousSecretExpiresAt).not.toBeNull();
    expectStatus(await t.request('GET', '/v1/api-keys', { token: key.secret! }), 200);

    const ended = await runCli(['key', 'end-grace', key.id], env);
    expect(ended.code, show(ended)).toBe(0);
    expect(JSON.parse(ended.stdout)).toMatchObject({ id: key.id, previousSecretExpiresAt: null });
    expect((await t.request('GET', '/v1/api-keys', { token: key.secret! })).status).toBe(401);

    const again = await runCli(['key', 'end-grace', key.id], env);
    expect(again.code, show(again)).toBe(1);
    expect(again.stderr).toMatch(/^paygate: conflict: /);
  });
});
