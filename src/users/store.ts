/**
 * SQL for users and memberships. Addresses are stored and compared in their normal form only
 * (users/email.ts): every function here normalises what it is given, so no caller can store or
 * look up a second spelling, and the unique index on users.email is on that one form.
 */
import type { Queryable } from '../db/database.js';
import type { Role } from '../scopes/catalog.js';
import { normalizeEmail } from './email.js';

export interface UserRecord {
  id: string;
  email: string;
  passwordHash: string | null;
  isGlobalAdmin: boolean;
  createdAt: Date;
}

export interface Membership {
  organizationId: string;
  organizationName: string;
  userId: string;
  role: Role;
  createdAt: Date;
}

interface UserRow {
  id: string;
  email: string;
  password_hash: string | null;
  is_global_admin: boolean;
  created_at: Date;
}

const userFromRow = (r: UserRow): UserRecord => ({
  id: r.id,
  email: r.email,
  passwordHash: r.password_hash,
  isGlobalAdmin: r.is_global_admin,
  createdAt: r.created_at,
});

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRecord | null> {
  const rows = await db.query<UserRow>('SELECT * FROM users WHERE email = $1', [normalizeEmail(email)]);
  return rows[0] ? userFromRow(rows[0]) : null;
}

export async function findUserById(db: Queryable, id: string): Promise<UserRecord | null> {
  const rows = await db.query<UserRow>('SELECT * FROM users WHERE id = $1', [id]);
  return rows[0] ? userFromRow(rows[0]) : null;
}

export async function insertUser(
  tx: Queryable,
  user: { id: string; email: string; passwordHash: string | null; isGlobalAdmin: boolean },
): Promise<UserRecord> {
  const [row] = await tx.query<UserRow>(
    'INSERT INTO users (id, email, password_hash, is_global_admin) VALUES ($1, $2, $3, $4) RETURNING *',
    [user.id, normalizeEmail(user.email), user.passwordHash, user.isGlobalAdmin],
  );
  return userFromRow(row!);
}

/** Inserts the user unless one with that email exists (or is being inserted concurrently); null then. */
export async function insertUserIfAbsent(
  tx: Queryable,
  user: { id: string; email: string; passwordHash: string | null; isGlobalAdmin: boolean },
): Promise<UserRecord | null> {
  const [row] = await tx.query<UserRow>(
    'INSERT INTO users (id, email, password_hash, is_global_admin) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING *',
    [user.id, normalizeEmail(user.email), user.passwordHash, user.isGlobalAdmin],
  );
  return row ? userFromRow(row) : null;
}

export async function setPassword(tx: Queryable, userId: string, passwordHash: string): Promise<void> {
  await tx.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [userId, passwordHash]);
}

export async function countUsers(db: Queryable): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
  return row!.n;
}

interface MembershipRow {
  organization_id: string;
  organization_name: string;
  user_id: string;
  role: Role;
  created_at: Date;
}

const membershipFromRow = (r: MembershipRow): Membership => ({
  organizationId: r.organization_id,
  organizationName: r.organization_name,
  userId: r.user_id,
  role: r.role,
  createdAt: r.created_at,
});

/** Memberships of a user in active organizations. */
export async function membershipsOfUser(db: Queryable, userId: string): Promise<Membership[]> {
  const rows = await db.query<MembershipRow>(
    `SELECT m.organization_id, o.name AS organization_name, m.user_id, m.role, m.created_at
     FROM memberships m JOIN organizations o ON o.id = m.organization_id
     WHERE m.user_id = $1 AND o.status = 'active' ORDER BY o.name, o.id`,
    [userId],
  );
  return rows.map(membershipFromRow);
}

/** Ends every open session of a user (a changed password ends them all); returns how many. */
export async function endSessionsOfUser(tx: Queryable, userId: string): Promise<number> {
  const rows = await tx.query('UPDATE sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL RETURNING id', [userId]);
  return rows.length;
}

/** The addresses of the global admins: told of what concerns no organization (a leaked or expiring system key). */
export async function globalAdminEmails(q: Queryable): Promise<string[]> {
  const rows = await q.query<{ email: string }>('SELECT email FROM users WHERE is_global_admin ORDER BY email');
  return rows.map((r) => r.email);
}
