/**
 * Password reset (SPEC §7). `request` always answers the same (202), whether or not an account uses
 * the address: it counts the request against its source (the sign-in throttle's reset limit) and
 * leaves everything that depends on the account (the lookup, the per-account mail limits, the
 * token, the audit event, the mail) to run after the answer, so neither the answer nor its timing
 * tells. Only an existing account gets per-account windows; requests for unknown addresses are
 * audited per source and minute (audit/bursts.ts), so an anonymous flood writes no row per request.
 * When the account exists and SMTP is configured, a single-use link valid 30 minutes is mailed;
 * only a hash of its token is stored. `confirm` sets the new password (the policy of
 * users/passwords.ts), ends every other link of the account, and ends every session of the user on
 * every node, in one unit of work.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import { AppError } from '../errors.js';
import { addressBucket, RESET_KNOWN_SOURCE_DAYS, type FailureThrottle } from '../auth/throttle.js';
import type { AuditBursts } from '../audit/bursts.js';
import type { AuditInput } from '../audit/events.js';
import type { Mailer } from '../mail/mailer.js';
import { passwordResetMail } from '../mail/messages.js';
import { isEmailAddress, normalizeEmail } from './email.js';
import { assertPasswordPolicy, hashPassword } from './passwords.js';
import { endSessionsOfUser, findUserByEmail, setPassword } from './store.js';

export const RESET_TTL_MS = 30 * 60_000;
// A fast hash is right: the token is 256 random bits; the hash keeps a database reader from holding a link.
const hashToken = (token: string) => createHash('sha256').update(token).digest();
const INVALID_LINK = 'The reset link is unknown, used or expired';

interface Meta {
  ip: string | null;
  requestId: string | null;
}

export interface ResetLog {
  error(obj: object, msg: string): void;
}

export class PasswordResetService {
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly deps: { db: Database; work: Work; throttle: FailureThrottle; bursts: AuditBursts; mailer: Mailer | null; publicUrl: string; log: ResetLog },
  ) {}

  /** POST /v1/auth/password-reset: `429 rate_limited` only for a source over its limit; else the answer is 202. */
  async request(typedEmail: string, meta: Meta): Promise<void> {
    const email = normalizeEmail(typedEmail);
    const address = await this.deps.throttle.attemptReset(meta.ip);
    if (address > 0) {
      throw new AppError('rate_limited', 'Too many password-reset requests from this address; try again later', {
        headers: { 'Retry-After': String(address) },
        extra: { retryAfterSeconds: address },
      });
    }
    // Security: after the answer, so the answer's timing cannot tell whether the account exists.
    const work = this.issue(email, meta).catch((error: Error) => this.deps.log.error({ err: error.message }, 'password reset request failed'));
    const tracked = work.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async issue(email: string, meta: Meta): Promise<void> {
    const user = await findUserByEmail(this.deps.db, email);
    const mailer = this.deps.mailer;
    if (!user) {
      // Anyone can send these at any rate: the first per source and minute is its own event, the
      // rest of the minute one event with the count and the addresses asked for.
      const requested: AuditInput = {
        action: 'password_reset.requested',
        actor: { type: 'user', id: null },
        organizationId: null,
        target: null,
        ip: meta.ip,
        requestId: meta.requestId,
        // As for login.failed: only something that is an address is kept.
        details: { email: isEmailAddress(email) ? email : null, mailed: false },
      };
      const now = this.deps.bursts.note(`password_reset.unknown|${addressBucket(meta.ip)}`, requested, {
        recordAt: 1,
        sample: { field: 'emails', value: isEmailAddress(email) ? email : null },
      });
      if (now) await this.deps.work.run(async (tx) => tx.audit(now));
      return;
    }
    const mailed = mailer !== null && (await this.deps.throttle.attemptResetMail(user.email, meta.ip, await this.signedInFrom(user.id, meta.ip)));
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + RESET_TTL_MS);
    await this.deps.work.run(async (tx) => {
      if (mailed) {
        await tx.query('DELETE FROM password_resets WHERE user_id = $1 AND (used_at IS NOT NULL OR expires_at <= now())', [user.id]);
        await tx.query('INSERT INTO password_resets (token_hash, user_id, expires_at) VALUES ($1, $2, $3)', [hashToken(token), user.id, expiresAt]);
      }
      tx.audit({
        action: 'password_reset.requested',
        actor: { type: 'user', id: null },
        organizationId: null,
        target: { type: 'user', id: user.id },
        ip: meta.ip,
        requestId: meta.requestId,
        details: { email: user.email, mailed },
      });
    });
    if (mailed) mailer.send(passwordResetMail({ to: user.email, url: `${this.deps.publicUrl}/admin/reset-password?token=${token}`, expiresAt }), 'password_reset');
  }

  /**
   * Whether the account signed in from this source (its IPv4 address or IPv6 /64) within
   * RESET_KNOWN_SOURCE_DAYS: the owner's own place, whose requests others' floods must not starve.
   */
  private async signedInFrom(userId: string, ip: string | null): Promise<boolean> {
    if (!ip) return false;
    const rows = await this.deps.db.query<{ ip: string }>(
      `SELECT DISTINCT ip FROM sessions WHERE user_id = $1 AND ip IS NOT NULL AND created_at > now() - make_interval(days => $2) LIMIT 100`,
      [userId, RESET_KNOWN_SOURCE_DAYS],
    );
    const source = addressBucket(ip);
    return rows.some((r) => addressBucket(r.ip) === source);
  }

  /** POST /v1/auth/password-reset/confirm: sets the password and ends every session of the user. */
  async confirm(token: string, password: string, meta: Meta): Promise<{ userId: string; email: string; sessionsEnded: number }> {
    // The policy first: a refused password leaves the link usable. Then the token, before the hash:
    // argon2 costs tens of milliseconds and 19 MiB, and this route needs no credential, so a flood of
    // made-up tokens must be refused without one. Hashed outside the transaction.
    assertPasswordPolicy(password);
    const live = await this.deps.db.query('SELECT 1 FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()', [hashToken(token)]);
    if (live.length === 0) throw new AppError('not_found', INVALID_LINK);
    const passwordHash = await hashPassword(password);
    const result = await this.deps.work.run(async (tx) => {
      const [row] = await tx.query<{ user_id: string; email: string }>(
        `UPDATE password_resets r SET used_at = now() FROM users u
         WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > now() AND u.id = r.user_id
         RETURNING r.user_id, u.email`,
        [hashToken(token)],
      );
      if (!row) throw new AppError('not_found', INVALID_LINK);
      // Every other link of this account ends too: the one that was used is the answer to all of them.
      await tx.query('UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL', [row.user_id]);
      await setPassword(tx, row.user_id, passwordHash);
      const sessionsEnded = await endSessionsOfUser(tx, row.user_id);
      tx.audit({
        action: 'password_reset.completed',
        actor: { type: 'user', id: row.user_id },
        organizationId: null,
        target: { type: 'user', id: row.user_id },
        ip: meta.ip,
        requestId: meta.requestId,
        details: { sessionsEnded },
      });
      // Every node drops its cached sessions of this user before the answer.
      tx.publish({ kind: 'user', subject: row.user_id });
      return { userId: row.user_id, email: row.email, sessionsEnded };
    });
    // The mailbox proved the account: a lockout by someone else's wrong guesses ends here.
    await this.deps.throttle.accountRecovered(result.email);
    return result;
  }

  /** Resolves once every request handed to the background so far has finished (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }
}
