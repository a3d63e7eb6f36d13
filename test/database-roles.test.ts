/**
 * Paygate's database roles (SPEC §15, src/db/roles.ts): requests run as a role that cannot update,
 * delete or truncate audit events, cannot switch off or drop their triggers, and cannot move the
 * chain head back; migrations run as the owner and grant that role exactly its privileges, also on
 * tables added later. In embedded mode Paygate creates the runtime role itself; with DATABASE_URL
 * the operator provides both roles (PAYGATE_MIGRATION_DATABASE_URL names the owner).
 *
 * The whole suite runs its servers as the run's runtime role (test/global-setup.ts), which proves
 * those privileges are enough; this file proves they are no more.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createDatabase } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { MIGRATIONS } from '../src/db/migrations.js';
import { EMBEDDED_RUNTIME_ROLE, auditTamperingPowers, grantRuntimePrivileges } from '../src/db/roles.js';
import { openRuntime } from '../src/runtime.js';
import { AuditSigner } from '../src/audit/signing.js';
import { TEST_SECRETS, createOrgWithKey, startPaygate, type TestApp } from './harness.js';

const runtimeRole = decodeURIComponent(new URL(inject('pgRuntimeUrl')).username);

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** An empty database of this run (named so that the run's teardown drops it, whatever happens). */
async function emptyDatabase(): Promise<{ name: string; ownerUrl: string; runtimeUrl: string; drop(): Promise<void> }> {
  const adminUrl = inject('pgAdminUrl');
  const name = `paygate_t_${inject('runId')}_roles_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return {
    name,
    ownerUrl: withDatabase(adminUrl, name),
    runtimeUrl: withDatabase(inject('pgRuntimeUrl'), name),
    async drop() {
      const c = new pg.Client(adminUrl);
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** The runtime role's table privileges, as the catalog holds them. */
async function privileges(client: pg.Client | { query: TestApp['db']['query'] }, role: string): Promise<Record<string, string[]>> {
  const sql = `SELECT c.relname AS name,
                      coalesce((SELECT array_agg(a.privilege_type::text ORDER BY a.privilege_type) FROM aclexplode(c.relacl) a
                                 WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)), '{}') AS granted
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') ORDER BY c.relname`;
  const rows = client instanceof pg.Client ? (await client.query<{ name: string; granted: string[] }>(sql, [role])).rows : await client.query<{ name: string; granted: string[] }>(sql, [role]);
  return Object.fromEntries(rows.map((r) => [r.name, r.granted]));
}

describe("the runtime role Paygate's requests run as", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
    // Some events and a checkpoint to aim at.
    await createOrgWithKey(t, ['api_key:*']);
    await t.services.auditCheckpoints.create();
  });
  afterAll(async () => t?.close());

  /** One statement as the server's own role, on a connection of its own; resolves to the error message. */
  const refusal = async (sql: string, params: unknown[] = []): Promise<string> => {
    try {
      await t.db.transaction((tx) => tx.query(sql, params));
    } catch (error) {
      return (error as Error).message;
    }
    return 'no error: the statement succeeded';
  };

  it('is neither a superuser nor the owner of any table', async () => {
    const [me] = await t.db.query<{ role: string; superuser: boolean }>('SELECT current_user AS role, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user');
    expect(me).toEqual({ role: runtimeRole, superuser: false });
    const owned = await t.db.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'MEMBER')`,
    );
    expect(owned).toEqual([]);
    expect(await t.db.transaction((tx) => auditTamperingPowers(tx))).toEqual([]);
  });

  it('cannot UPDATE, DELETE or TRUNCATE audit events, nor switch off or drop their triggers', async () => {
    const [row] = await t.db.query<{ id: string }>('SELECT id FROM audit_events ORDER BY seq LIMIT 1');
    expect(await refusal("UPDATE audit_events SET outcome = 'x' WHERE id = $1", [row!.id])).toMatch(/permission denied for table audit_events/);
    expect(await refusal('DELETE FROM audit_events WHERE id = $1', [row!.id])).toMatch(/permission denied for table audit_events/);
    expect(await refusal('DELETE FROM audit_events')).toMatch(/permission denied/);
    expect(await refusal('TRUNCATE audit_events')).toMatch(/permission denied for table audit_events/);
    expect(await refusal('ALTER TABLE audit_events DISABLE TRIGGER ALL')).toMatch(/must be owner of table audit_events/);
    expect(await refusal('ALTER TABLE audit_events DISABLE TRIGGER USER')).toMatch(/must be owner/);
    expect(await refusal('DROP TRIGGER audit_events_no_update ON audit_events')).toMatch(/must be owner/);
    expect(await refusal("SET session_replication_role = 'replica'")).toMatch(/permission denied/);
    expect(await refusal('DROP TABLE audit_events')).toMatch(/must be owner/);
    // Checkpoints likewise.
    expect(await refusal("UPDATE audit_checkpoints SET hash = 'x'")).toMatch(/permission denied for table audit_checkpoints/);
    expect(await refusal('DELETE FROM audit_checkpoints')).toMatch(/permission denied/);
    expect(await refusal('TRUNCATE audit_checkpoints')).toMatch(/permission denied/);
    expect(await refusal('ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL')).toMatch(/must be owner/);
    // Events are still there.
    expect((await t.db.query('SELECT 1 FROM audit_events WHERE id = $1', [row!.id])).length).toBe(1);
  });

  it('cannot move the chain head back (or anywhere but the newest event), nor remove it; appends still move it', async () => {
    const before = (await t.db.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_chain_head'))[0]!;
    expect(before.seq).toBeGreaterThan(0);
    expect(await refusal("UPDATE audit_chain_head SET seq = 0, hash = repeat('0', 64) WHERE id = 1")).toMatch(/must name the newest audit event/);
    expect(await refusal('UPDATE audit_chain_head SET seq = seq - 1 WHERE id = 1')).toMatch(/must name the newest audit event/);
    expect(await refusal("UPDATE audit_chain_head SET hash = 'forged' WHERE id = 1")).toMatch(/must name the newest audit event/);
    expect(await refusal('DELETE FROM audit_chain_head')).toMatch(/permission denied/);
    expect(await refusal('TRUNCATE audit_chain_head')).toMatch(/permission denied/);
    expect(await refusal("INSERT INTO audit_chain_head (id, seq, hash) VALUES (2, 0, 'x')")).toMatch(/permission denied/);
    expect(await refusal('ALTER TABLE audit_chain_head DISABLE TRIGGER ALL')).toMatch(/must be owner/);
    // Nor rewind the event sequence, so new events could take old positions.
    expect(await refusal("SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), 1)")).toMatch(/permission denied for sequence/);

    await createOrgWithKey(t, ['api_key:read']);
    const after = (await t.db.query<{ seq: number }>('SELECT seq FROM audit_chain_head'))[0]!;
    expect(after.seq).toBeGreaterThan(before.seq);
    expect(await t.services.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('owns no table, so it can change the schema of none', async () => {
    expect(await refusal('ALTER TABLE api_keys ADD COLUMN extra text')).toMatch(/must be owner/);
    expect(await refusal('ALTER TABLE users DISABLE TRIGGER ALL')).toMatch(/must be owner/);
    expect(await refusal('TRUNCATE api_keys')).toMatch(/permission denied/);
    expect(await refusal("INSERT INTO schema_migrations (id, name) VALUES (9999, 'x')")).toMatch(/permission denied/);
  });

  it('holds exactly the documented privileges on every table and sequence', async () => {
    const granted = await privileges(t.db, runtimeRole);
    expect(granted.audit_events).toEqual(['INSERT', 'SELECT']);
    expect(granted.audit_checkpoints).toEqual(['INSERT', 'SELECT']);
    expect(granted.audit_chain_head).toEqual(['SELECT', 'UPDATE']);
    expect(granted.schema_migrations).toEqual(['SELECT']);
    const [sequences] = await t.db.query<{ names: string[] }>("SELECT array_agg(relname::text) AS names FROM pg_class WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace");
    for (const [name, privileges] of Object.entries(granted)) {
      if (['audit_events', 'audit_checkpoints', 'audit_chain_head', 'schema_migrations'].includes(name)) continue;
      expect(privileges, name).toEqual(sequences!.names.includes(name) ? ['SELECT', 'USAGE'] : ['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
    }
  });
});

describe('grants at migration time', () => {
  it('a fresh database: the owner migrates and grants; a table a later migration adds is granted too', { timeout: 60_000 }, async () => {
    const database = await emptyDatabase();
    const owner = createDatabase(database.ownerUrl, { max: 1 });
    const runtime = new pg.Client(database.runtimeUrl);
    try {
      await migrate(owner, MIGRATIONS, (tx) => grantRuntimePrivileges(tx, runtimeRole));
      await runtime.connect();
      await runtime.query("INSERT INTO organizations (id, name) VALUES ('org_roles', 'x')");
      await expect(runtime.query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);

      // A later migration's table, and a privilege granted by hand to the runtime role beyond its list.
      const later = { id: 9_999, name: 'a later table', sql: 'CREATE TABLE later_things (id serial PRIMARY KEY, name text)' };
      await owner.query(`GRANT UPDATE, DELETE ON audit_events TO ${runtimeRole}`);
      await migrate(owner, [...MIGRATIONS, later], (tx) => grantRuntimePrivileges(tx, runtimeRole));
      await runtime.query("INSERT INTO later_things (name) VALUES ('a')");
      await runtime.query("UPDATE later_things SET name = 'b'");
      await runtime.query('DELETE FROM later_things');
      await expect(runtime.query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);

      // Run again with nothing to change: no catalog row is rewritten (xmin stays).
      const xmins = async () => (await owner.query<{ relname: string; xmin: string }>("SELECT relname, xmin::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname"));
      const first = await xmins();
      await migrate(owner, [...MIGRATIONS, later], (tx) => grantRuntimePrivileges(tx, runtimeRole));
      expect(await xmins()).toEqual(first);
    } finally {
      await runtime.end().catch(() => undefined);
      await owner.close();
      await database.drop();
    }
  });
});

describe('openRuntime', () => {
  const serverEnv = (databaseUrl: string, extra: Record<string, string> = {}) =>
    loadConfig({
      DATABASE_URL: databaseUrl,
      PAYGATE_SECRET_PEPPER: TEST_SECRETS.pepper,
      PAYGATE_SESSION_SECRET: TEST_SECRETS.sessionSecret,
      PAYGATE_AUDIT_SIGNING_KEY: TEST_SECRETS.auditSigningKey,
      ...extra,
    });

  it('with DATABASE_URL and PAYGATE_MIGRATION_DATABASE_URL: migrates as the owner, serves as the restricted role, warns of nothing', { timeout: 60_000 }, async () => {
    const database = await emptyDatabase();
    const warnings: string[] = [];
    try {
      const runtime = await openRuntime(serverEnv(database.runtimeUrl, { PAYGATE_MIGRATION_DATABASE_URL: database.ownerUrl }), undefined, (m) => void warnings.push(m));
      try {
        expect(await runtime.db.query('SELECT current_user AS role')).toEqual([{ role: runtimeRole }]);
        expect((await runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations'))[0]!.n).toBe(MIGRATIONS.length);
        await expect(runtime.db.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
        expect(warnings).toEqual([]);
      } finally {
        await runtime.close();
      }
    } finally {
      await database.drop();
    }
  });

  it('refuses a migration URL naming another database than DATABASE_URL, and leaves that database untouched', { timeout: 60_000 }, async () => {
    const served = await emptyDatabase();
    const other = await emptyDatabase();
    try {
      await expect(openRuntime(serverEnv(served.runtimeUrl, { PAYGATE_MIGRATION_DATABASE_URL: other.ownerUrl }))).rejects.toThrow(/must name the same one/);
      const check = new pg.Client(other.ownerUrl);
      await check.connect();
      const { rows } = await check.query("SELECT to_regclass('schema_migrations') AS t");
      await check.end();
      expect(rows).toEqual([{ t: null }]);
    } finally {
      await served.drop();
      await other.drop();
    }
  });

  it('with only DATABASE_URL naming a role that can alter the audit log, it warns and says how to fix it', { timeout: 60_000 }, async () => {
    const database = await emptyDatabase();
    const warnings: string[] = [];
    try {
      const runtime = await openRuntime(serverEnv(database.ownerUrl), undefined, (m) => void warnings.push(m));
      await runtime.close();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/is a superuser: its requests could alter the audit log\. .*PAYGATE_MIGRATION_DATABASE_URL/);
    } finally {
      await database.drop();
    }
  });

  it('embedded mode creates its runtime role and signing key, serves as that role, and keeps both on the next start', { timeout: 120_000 }, async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'paygate-roles-'));
    // When the tests run as root, the embedded PostgreSQL runs as `postgres` and must reach the directory.
    await fs.chmod(dataDir, 0o755);
    const warnings: string[] = [];
    try {
      const config = loadConfig({ PAYGATE_DATA_DIR: dataDir });
      let publicKey: string;
      const first = await openRuntime(config, undefined, (m) => void warnings.push(m));
      try {
        expect(await first.db.query('SELECT current_user AS role, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser')).toEqual([
          { role: EMBEDDED_RUNTIME_ROLE, superuser: false },
        ]);
        await expect(first.db.query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);
        await expect(first.db.query('ALTER TABLE audit_events DISABLE TRIGGER ALL')).rejects.toThrow(/must be owner/);
        expect(await privileges(first.db, EMBEDDED_RUNTIME_ROLE)).toMatchObject({ audit_events: ['INSERT', 'SELECT'], api_keys: ['DELETE', 'INSERT', 'SELECT', 'UPDATE'] });
        publicKey = new AuditSigner(first.secrets.auditSigningKey).publicKeyPem;
      } finally {
        await first.close();
      }
      const keyFile = path.join(dataDir, 'audit-signing-key.pem');
      expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
      expect(await fs.readFile(path.join(dataDir, 'secrets.json'), 'utf8')).not.toContain('PRIVATE KEY');

      const second = await openRuntime(config, undefined, (m) => void warnings.push(m));
      try {
        expect(new AuditSigner(second.secrets.auditSigningKey).publicKeyPem).toBe(publicKey);
        expect(await second.db.query('SELECT current_user AS role')).toEqual([{ role: EMBEDDED_RUNTIME_ROLE }]);
      } finally {
        await second.close();
      }
      expect(warnings.filter((w) => /audit log/.test(w))).toEqual([]);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
