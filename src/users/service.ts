/** Creating users outside an organization: global admins (CLI) and the first-start admin (SPEC §11). */
import { randomBytes } from 'node:crypto';
import type { Database } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import { AppError, validationError } from '../errors.js';
import { systemContext, type RequestContext } from '../auth/context.js';
import { newId } from '../ids.js';
import { checkPasswordPolicy, hashNewPassword, hashPassword } from './passwords.js';
import { normalizeEmail } from './email.js';
import { endSessionsOfUser, findUserByEmail, insertUser, insertUserIfAbsent, type UserRecord } from './store.js';

// Arbitrary constant: serialises first-start bootstrap across nodes started together.
const BOOTSTRAP_LOCK = 7_412_903_002;

export interface GlobalAdminOptions {
  /** The address has an account: set this password and end its sessions (`admin create --reset-password`). */
  resetPassword?: boolean;
  /** The address has an account that is no global admin: make it one (`admin create --global-admin`). */
  promote?: boolean;
}

export interface GlobalAdminResult {
  user: UserRecord;
  created: boolean;
  promoted: boolean;
  passwordReset: boolean;
  sessionsEnded: number;
}

export class UserService {
  constructor(private readonly deps: { db: Database; work: Work }) {}

  /**
   * Creates a global admin, or changes an existing account only as asked: `promote` makes an
   * ordinary account a global admin (its password unchanged unless `resetPassword`), `resetPassword`
   * sets a new password and ends every session of the user on every node. Asked for neither, an
   * existing account is `409 conflict` (nothing is silently replaced), and so is a password reset of
   * an ordinary account without `promote`: this is the global admins' recovery, never a way to make
   * one by the way. Every change is audited in its unit of work (`user.global_admin_granted`,
   * `password_reset.completed`), with the acting context (the CLI's is Paygate itself).
   */
  async createGlobalAdmin(email: string, password: string | null, options: GlobalAdminOptions = {}, ctx: RequestContext = systemContext()): Promise<GlobalAdminResult> {
    const passwordHash = password !== null ? await hashNewPassword(password) : null;
    return this.deps.work.run(async (tx) => {
      const existing = await findUserByEmail(tx, email);
      if (!existing) {
        if (passwordHash === null) throw validationError([{ path: '/password', message: 'a new global admin needs a password' }]);
        const created = await insertUserIfAbsent(tx, { id: newId('user'), email, passwordHash, isGlobalAdmin: true });
        if (!created) throw new AppError('conflict', `${normalizeEmail(email)} was given an account a moment ago; nothing was changed`);
        this.auditGranted(tx, ctx, created, { created: true });
        return { user: created, created: true, promoted: false, passwordReset: false, sessionsEnded: 0 };
      }
      await tx.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [existing.id]);
      const promote = !existing.isGlobalAdmin;
      if (promote && !options.promote) {
        throw new AppError('conflict', `${existing.email} already has an account (${existing.id}), which is not a global admin; nothing was changed. To make it a global admin, add --global-admin (and --reset-password to also set a new password)`, {
          extra: { userId: existing.id, isGlobalAdmin: false },
        });
      }
      if (!promote && !options.resetPassword) {
        throw new AppError('conflict', `${existing.email} already has an account (${existing.id}), a global admin; nothing was changed. To set a new password (ending its sessions), add --reset-password`, {
          extra: { userId: existing.id, isGlobalAdmin: true },
        });
      }
      const reset = options.resetPassword === true;
      if (reset && passwordHash === null) throw validationError([{ path: '/password', message: 'a password reset needs a password' }]);
      await tx.query('UPDATE users SET is_global_admin = true, password_hash = CASE WHEN $2::text IS NULL THEN password_hash ELSE $2 END, updated_at = now() WHERE id = $1', [
        existing.id,
        reset ? passwordHash : null,
      ]);
      let sessionsEnded = 0;
      if (reset) {
        // The password changed: every session and every open reset link of this user ends, on every node.
        sessionsEnded = await endSessionsOfUser(tx, existing.id);
        await tx.query('UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL', [existing.id]);
        tx.audit({
          action: 'password_reset.completed',
          actor: ctx.actor,
          organizationId: null,
          target: { type: 'user', id: existing.id },
          ip: ctx.ip,
          requestId: ctx.requestId,
          details: { sessionsEnded, by: 'admin create --reset-password' },
        });
      }
      if (promote) this.auditGranted(tx, ctx, existing, { created: false });
      tx.publish({ kind: 'user', subject: existing.id });
      return {
        user: { ...existing, isGlobalAdmin: true, passwordHash: reset ? passwordHash : existing.passwordHash },
        created: false,
        promoted: promote,
        passwordReset: reset,
        sessionsEnded,
      };
    });
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
    return this.deps.work.run(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
      const [row] = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
      if (row!.n > 0) return null;
      const user = await insertUser(tx, { id: newId('user'), email: chosenEmail, passwordHash, isGlobalAdmin: true });
      this.auditGranted(tx, systemContext(), user, { created: true, firstStart: true });
      return { email: chosenEmail, generatedPassword: generated };
    });
  }

  /** SPEC §9 has no action for it; docs/security.md, "What is audited". */
  private auditGranted(tx: UnitOfWork, ctx: RequestContext, user: UserRecord, details: Record<string, unknown>): void {
    tx.audit({
      action: 'user.global_admin_granted',
      actor: ctx.actor,
      organizationId: null,
      target: { type: 'user', id: user.id },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details: { email: user.email, ...details },
    });
  }
}
