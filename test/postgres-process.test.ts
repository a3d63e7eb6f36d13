/**
 * src/db/postgres-process.ts on the real binaries: a cluster is initialised whole or not at all, and
 * a postmaster that cannot start says why in PostgreSQL's own words.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseRunAs, ensureRunAs, findBinaries, initCluster, spawnPostmaster, type PostgresBinaries, type RunAs } from '../src/db/postgres-process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('running the PostgreSQL binaries', () => {
  // In the repository, opened up to 0755: where user namespaces are not allowed, root runs
  // PostgreSQL as the postgres user, who must be able to enter it.
  const parent = path.join(ROOT, '.test-data', `pgproc-${process.pid}`);
  let binaries: PostgresBinaries;
  let runAs: RunAs;

  beforeAll(async () => {
    await fs.mkdir(parent, { recursive: true, mode: 0o755 });
    await fs.chmod(parent, 0o755);
    binaries = await findBinaries();
    runAs = await ensureRunAs(await chooseRunAs({ clusterDir: path.join(parent, 'any'), binaries }));
  });

  afterAll(async () => {
    await fs.rm(parent, { recursive: true, force: true });
  });

  it('an initdb that fails leaves neither a cluster, nor a half-built one, nor its password file behind', async () => {
    const clusterDir = path.join(parent, 'failing');
    const lines: string[] = [];
    const failing = initCluster({
      binaries,
      clusterDir,
      runAs,
      superuser: 'postgres',
      password: 'never-kept',
      flags: ['--encoding=NOT_AN_ENCODING'],
      onLine: (line) => lines.push(line),
    });

    await expect(failing).rejects.toThrow(/^initdb failed \(code 1\): .*NOT_AN_ENCODING/);
    expect(await fs.readdir(parent), lines.join('\n')).toEqual([]);
  });

  it('a postmaster that cannot start rejects with its FATAL line, and has exited', async () => {
    const notACluster = path.join(parent, 'empty');
    await fs.mkdir(notACluster, { mode: 0o700 });
    // A configuration file but no PG_VERSION: PostgreSQL reads the one, then refuses the directory.
    await fs.writeFile(path.join(notACluster, 'postgresql.conf'), '');
    if (runAs.kind === 'user') await fs.chown(notACluster, runAs.uid, runAs.gid);
    const postmaster = spawnPostmaster({ binaries, clusterDir: notACluster, port: 1, runAs, timeoutMs: 30_000 });

    await expect(postmaster.ready).rejects.toThrow(/^FATAL: .*not a valid data directory/);
    expect((await postmaster.exited).code).not.toBe(0);
  });
});
