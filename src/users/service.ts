/** Creating users outside an organization: global admins (CLI) and the first-start admin (SPEC §11). */
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { checkPasswordPolicy, hashNewPassword, hashPassword } from './passwords.js';
import { normalizeEmail } from './email.js';
import { endSessionsOfUser, findUserByEmail, insertUser, type UserRecord } from './store.js';

// Arbitrary constant: serialises first-start bootstrap across nodes started together.
const BOOTSTRAP_LOCK = 7_412_903_002;

export class UserService {
  constructor(private readonly deps: { db: Database; work: Work }) {}

  async createGlobalAdmin(email: string, password: string): Promise<UserRecord> {
    const passwordHash = await hashNewPassword(password);
    const user = await this.deps.work.run(async (tx) => {
      const existing = await findUserByEmail(tx, email);
      if (existing) {
        await tx.query('UPDATE users SET is_global_admin = true, password_hash = $2, updated_at = now() WHERE id = $1', [existing.id, passwordHash]);
        // The password changed: every session of this user ends, on every node.
        await endSessionsOfUser(tx, existing.id);
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
    const chosenEmail = normalizeEmail(email ?? 'admin@localhost');
    const generated = password ? null : randomBytes(18).toString('base64url');
    const finalPassword = password ?? generated!;
    const broken = checkPasswordPolicy(finalPassword);
    if (broken) throw new AppError('validation_error', `PAYGATE_ADMIN_PASSWORD ${broken.message}`, { extra: { errors: [broken] } });
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
