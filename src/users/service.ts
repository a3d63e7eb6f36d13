/** Creating users outside an organization: global admins (CLI) and the first-start admin (SPEC §11). */
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import { AppError, validationError } from '../errors.js';
import { newId } from '../ids.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from './passwords.js';
import { findUserByEmail, insertUser, type UserRecord } from './store.js';

// Arbitrary constant: serialises first-start bootstrap across nodes started together.
const BOOTSTRAP_LOCK = 7_412_903_002;

export class UserService {
  constructor(private readonly deps: { db: Database; work: Work }) {}

  async createGlobalAdmin(email: string, password: string): Promise<UserRecord> {
    if (password.length < MIN_PASSWORD_LENGTH) throw validationError([{ path: '/password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }]);
    const passwordHash = await hashPassword(password);
    const user = await this.deps.work.run(async (tx) => {
      const existing = await findUserByEmail(tx, email);
      if (existing) {
        await tx.query('UPDATE users SET is_global_admin = true, password_hash = $2, updated_at = now() WHERE id = $1', [existing.id, passwordHash]);
        // The password changed: every session of this user ends, on every node.
        await tx.query('UPDATE sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL', [existing.id]);
        tx.publish({ kind: 'user', subject: existing.id });
        return { ...existing, isGlobalAdmin: true, passwordHash };
      }
      return insertUser(tx, { id: newId('user'), email, passwordHash, isGlobalAdmin: true });
    });
    return user;
  }

  /**
   * Creates the first global admin when no user exists. Returns the generated password when Paygate
   * chose it (so main can print it once), null when the operator gave one or users already exist.
   */
  async bootstrapFirstAdmin(email: string | null, password: string | null): Promise<{ email: string; generatedPassword: string | null } | null> {
    const chosenEmail = email ?? 'admin@localhost';
    const generated = password ? null : randomBytes(18).toString('base64url');
    const finalPassword = password ?? generated!;
    if (finalPassword.length < MIN_PASSWORD_LENGTH) throw new AppError('validation_error', `PAYGATE_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
    const passwordHash = await hashPassword(finalPassword);
    return this.deps.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
      const [row] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      if (row!.n > 0) return null;
      await insertUser(tx, { id: newId('user'), email: chosenEmail, passwordHash, isGlobalAdmin: true });
      return { email: chosenEmail, generatedPassword: generated };
    });
  }
}
