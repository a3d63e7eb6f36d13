/**
 * Migration 10 on data written by the versions before it: addresses are rewritten into the one
 * normal form (and the unique index is on it), and an unused set-password link of the old flow
 * becomes an invitation to its user's first organization that still works, once. Migration 13 ties
 * each such invitation to its account: only it may set that account's password.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabase, type Database } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { MIGRATIONS } from '../src/db/migrations.js';
import { newId } from '../src/ids.js';
import { findUserByEmail } from '../src/users/store.js';

const name = `paygate_t_${inject('runId')}_mig10_${randomBytes(4).toString('hex')}`;
let admin: pg.Client;
let db: Database;

beforeAll(async () => {
  admin = new pg.Client(inject('pgAdminUrl'));
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(inject('pgAdminUrl'));
  url.pathname = `/${name}`;
  db = createDatabase(url.toString(), { max: 2 });
  await migrate(db, MIGRATIONS.filter((m) => m.id < 10));
});

afterAll(async () => {
  await db?.close();
  await admin?.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin?.end();
});

describe('migration 10', () => {
  it('rewrites addresses into the normal form and turns old set-password links into working invitations', async () => {
    const org = newId('organization');
    await db.query("INSERT INTO organizations (id, name) VALUES ($1, 'Legacy Org')", [org]);
    const typed = newId('user');
    const invited = newId('user');
    const used = newId('user');
    await db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3), ($4, $5, NULL), ($6, $7, $8)', [
      typed, '  Mixed.Case@Example.COM ', 'hash',
      invited, 'Invited@Example.com',
      used, 'used@example.com', 'hash',
    ]);
    await db.query("INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, 'developer'), ($1, $3, 'viewer')", [org, invited, used]);
    const token = randomBytes(32).toString('base64url');
    const hash = (t: string) => createHash('sha256').update(t).digest();
    const week = new Date(Date.now() + 7 * 86_400_000);
    await db.query('INSERT INTO invitations (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4), ($5, $6, $7, $4)', [
      newId('invitation'), invited, hash(token), week,
      newId('invitation'), used, hash(randomBytes(32).toString('base64url')),
    ]);
    await db.query('UPDATE invitations SET used_at = now() WHERE user_id = $1', [used]);

    await migrate(db, MIGRATIONS.filter((m) => m.id === 10));

    const emails = await db.query<{ id: string; email: string }>('SELECT id, email FROM users ORDER BY email');
    expect(emails.map((r) => r.email)).toEqual(['invited@example.com', 'mixed.case@example.com', 'used@example.com']);
    expect((await findUserByEmail(db, 'MIXED.case@example.com '))?.id).toBe(typed);
    // The unique index is on the normal form itself.
    await expect(db.query("INSERT INTO users (id, email) VALUES ($1, 'used@example.com')", [newId('user')])).rejects.toThrow(/users_email_key/);

    const invitations = await db.query<{ organization_id: string; email: string; role: string; accepted_at: Date | null; token_hash: Buffer }>(
      'SELECT organization_id, email, role, accepted_at, token_hash FROM invitations ORDER BY email',
    );
    expect(invitations).toEqual([
      expect.objectContaining({ organization_id: org, email: 'invited@example.com', role: 'developer', accepted_at: null }),
    ]);
    expect(invitations[0]!.token_hash.equals(hash(token))).toBe(true);
  });

  it("migration 13 ties each converted link to its account, and no other organization's invitation", async () => {
    const [invited] = await db.query<{ id: string }>("SELECT id FROM users WHERE email = 'invited@example.com'");
    // An invitation another organization sent the address after migration 10.
    const other = newId('organization');
    await db.query("INSERT INTO organizations (id, name) VALUES ($1, 'Other Org')", [other]);
    await db.query(
      `INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_by)
       VALUES ($1, $2, 'invited@example.com', 'admin', $3, now() + interval '7 days', '{"type": "user", "id": "usr_x"}')`,
      [newId('invitation'), other, createHash('sha256').update(randomBytes(8)).digest()],
    );
    await migrate(db, MIGRATIONS.filter((m) => m.id > 10));
    const rows = await db.query<{ organization_id: string; sets_password_of: string | null }>(
      "SELECT organization_id, sets_password_of FROM invitations WHERE email = 'invited@example.com' ORDER BY created_at",
    );
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.organization_id === other)!.sets_password_of).toBeNull();
    expect(rows.find((r) => r.organization_id !== other)!.sets_password_of).toBe(invited!.id);
  });
});
