/**
 * Admin sessions (SPEC §7): a server-side session row plus a short HS256 JWT naming it (`sid`).
 * The JWT alone never suffices: the row must exist and not have ended, so logout ends a session at
 * once. Verified sessions are cached per node (a JWT verification costs ~140 µs) and dropped by the
 * same invalidation channel as keys.
 */
import { SignJWT, jwtVerify } from 'jose';
import type { Database } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import type { Work } from '../unit-of-work.js';
import { LruCache } from '../cache/lru.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Role } from '../scopes/catalog.js';
import { findUserByEmail, findUserById, membershipsOfUser, type Membership } from '../users/store.js';
import { verifyPassword } from '../users/passwords.js';
import { isEmailAddress, normalizeEmail } from '../users/email.js';
import { FailureThrottle } from './throttle.js';
import { CsrfTokens } from './csrf.js';

export { safeEqual } from './csrf.js';

export interface SessionPrincipal {
  sessionId: string;
  userId: string;
  email: string;
  isGlobalAdmin: boolean;
  memberships: Membership[];
  roles: Map<string, Role>;
  expiresAt: Date;
}

export interface LoginMeta {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/**
 * Three base64url segments (SPEC §1). The signature segment may be empty: `header.payload.` is how
 * an unsigned (`alg: none`) JWT looks, so it is a session token that fails verification
 * (`invalid_session`), not some other kind of value.
 */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** A Bearer value shaped like a JWT: three base64url segments. */
export function looksLikeJwt(value: string): boolean {
  return value.length < 4096 && JWT_SHAPE.test(value);
}

export class SessionService {
  private readonly cache: LruCache<string, SessionPrincipal>;
  private readonly key: Uint8Array;
  /** CSRF tokens of cookie sessions: an HMAC of the session id (auth/csrf.ts). */
  readonly csrf: CsrfTokens;

  constructor(
    private readonly deps: { db: Database; bus: InvalidationBus; work: Work; throttle: FailureThrottle; secret: string; ttlSeconds: number; cacheTtlMs: number },
  ) {
    this.key = new TextEncoder().encode(deps.secret);
    this.csrf = new CsrfTokens(deps.secret);
    this.cache = new LruCache(20_000, deps.cacheTtlMs);
    deps.bus.onInvalidate((inv) => {
      if (inv.kind === 'session') this.cache.deleteWhere((p) => p.sessionId === inv.subject);
      else if (inv.kind === 'user') this.cache.deleteWhere((p) => p.userId === inv.subject);
      else if (inv.kind === 'organization') this.cache.clear();
    });
    deps.bus.onFlush(() => this.cache.clear());
  }

  async login(typedEmail: string, password: string, meta: LoginMeta) {
    // One normal form for the throttle and the lookup alike: a case variant is the same account.
    const email = normalizeEmail(typedEmail);
    const throttle = this.deps.throttle;
    // Security: each attempt is counted atomically as it starts, before the slow password hash, so a
    // burst of parallel guesses cannot all pass the check; an attempt that succeeds is taken back.
    // The source first; the account once the address is looked up, so that only accounts that exist
    // get a window (auth/throttle.ts), and an unknown address still answers like one.
    const tooMany = (seconds: number) =>
      new AppError('rate_limited', 'Too many failed sign-in attempts; try again later', {
        headers: { 'Retry-After': String(seconds) },
        extra: { retryAfterSeconds: seconds },
      });
    const blocked = await throttle.attemptSignIn(meta.ip);
    if (blocked > 0) throw tooMany(blocked);
    let user: Awaited<ReturnType<typeof findUserByEmail>>;
    let ok = false;
    let locked = 0;
    let accountCounted = false;
    try {
      user = await findUserByEmail(this.deps.db, email);
      locked = await throttle.attemptAccount(email, user !== null);
      accountCounted = user !== null;
      if (locked === 0) ok = await verifyPassword(user?.passwordHash ?? null, password);
    } catch (error) {
      // Not a wrong password (the database failed): the attempt does not count against anyone.
      await throttle.notCounted(email, meta.ip, accountCounted);
      throw error;
    }
    if (locked > 0) throw tooMany(locked);
    if (!user || !ok) {
      // The typed address is kept only when it is an account's or at least an address: a password
      // typed into the email field must not end up in the audit log.
      const recorded = user ? user.email : isEmailAddress(email) ? email : null;
      await this.deps.work.run(async (tx) =>
        tx.audit({
          action: 'login.failed',
          actor: { type: 'user', id: user?.id ?? null },
          organizationId: null,
          target: user ? { type: 'user', id: user.id } : null,
          ip: meta.ip,
          requestId: meta.requestId,
          outcome: 'failure',
          details: recorded !== null ? { email: recorded } : { email: null, emailMalformed: true },
        }),
      );
      throw new AppError('invalid_session', 'The email or password is wrong');
    }
    await throttle.signedIn(email, meta.ip);

    const sessionId = newId('session');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + this.deps.ttlSeconds * 1000);
    await this.deps.work.run(async (tx) => {
      await tx.query('INSERT INTO sessions (id, user_id, created_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6)', [
        sessionId,
        user.id,
        now,
        expiresAt,
        meta.ip,
        meta.userAgent?.slice(0, 512) ?? null,
      ]);
      tx.audit({
        action: 'session.created',
        actor: { type: 'user', id: user.id },
        organizationId: null,
        target: { type: 'session', id: sessionId },
        ip: meta.ip,
        requestId: meta.requestId,
      });
    });
    const token = await new SignJWT({ sid: sessionId })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(user.id)
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .setIssuer('paygate')
      .sign(this.key);
    const csrf = this.csrf.tokenFor(sessionId);
    return { token, csrf, sessionId, expiresAt, user: { id: user.id, email: user.email, isGlobalAdmin: user.isGlobalAdmin } };
  }

  /** The principal behind a session JWT, or null when it is invalid, expired or ended. */
  async verify(token: string): Promise<SessionPrincipal | null> {
    const trusted = this.deps.bus.trusted;
    if (trusted) {
      const hit = this.cache.get(token);
      if (hit && hit.expiresAt > new Date()) return hit;
    }
    let sessionId: string;
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'], issuer: 'paygate' });
      if (typeof payload.sid !== 'string') return null;
      sessionId = payload.sid;
    } catch {
      return null;
    }
    const generation = this.deps.bus.generation;
    const principal = await this.load(sessionId);
    if (principal && trusted && this.deps.bus.trusted && generation === this.deps.bus.generation) {
      this.cache.set(token, principal, Math.min(this.deps.cacheTtlMs, principal.expiresAt.getTime() - Date.now()));
    }
    return principal;
  }

  private async load(sessionId: string): Promise<SessionPrincipal | null> {
    const [row] = await this.deps.db.query<{ user_id: string; expires_at: Date }>(
      'SELECT user_id, expires_at FROM sessions WHERE id = $1 AND ended_at IS NULL AND expires_at > now()',
      [sessionId],
    );
    if (!row) return null;
    const user = await findUserById(this.deps.db, row.user_id);
    if (!user) return null;
    const memberships = await membershipsOfUser(this.deps.db, user.id);
    return {
      sessionId,
      userId: user.id,
      email: user.email,
      isGlobalAdmin: user.isGlobalAdmin,
      memberships,
      roles: new Map(memberships.map((m) => [m.organizationId, m.role])),
      expiresAt: row.expires_at,
    };
  }

  async logout(principal: SessionPrincipal, meta: LoginMeta): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const rows = await tx.query('UPDATE sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL RETURNING id', [principal.sessionId]);
      if (rows.length === 0) return;
      tx.audit({
        action: 'session.ended',
        actor: { type: 'user', id: principal.userId },
        organizationId: null,
        target: { type: 'session', id: principal.sessionId },
        ip: meta.ip,
        requestId: meta.requestId,
      });
      tx.publish({ kind: 'session', subject: principal.sessionId });
    });
  }
}
