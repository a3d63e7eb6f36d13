/**
 * Members of an organization, their roles, and invitations (SPEC §7).
 *
 * Accounts are instance-wide, so an owner never sets, sees or receives another person's credentials
 * and never learns whether an address already has an account. Adding a member always creates an
 * invitation, with the same answer and the same statements whether or not an account exists (the
 * account is not even looked up); the membership exists only once the invitation is accepted through
 * its link: a new person sets their password there (`acceptAsNewAccount`), an existing account signs
 * in and accepts (`acceptAsMember`). Invitations are single-use, expire after 7 days and are stored as
 * a hash of their token. With SMTP configured the link is mailed to the address (after the commit);
 * without, the answer carries it for the inviter to hand over.
 *
 * The one exception is operator provisioning: a global admin may send `password`, and when no
 * account uses the address, it is created with that password and the membership at once.
 *
 * The last owner of an organization can be neither removed nor demoted, so an organization never
 * loses its owner.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Database, Queryable } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import { AppError, notFound, validationError } from '../errors.js';
import { isId, newId } from '../ids.js';
import type { Role } from '../scopes/catalog.js';
import { findUserByEmail, insertUserIfAbsent, setPassword } from '../users/store.js';
import { assertPasswordPolicy, hashNewPassword, hashPassword } from '../users/passwords.js';
import { normalizeEmail } from '../users/email.js';
import type { Mailer } from '../mail/mailer.js';
import type { FailureThrottle } from '../auth/throttle.js';
import { invitationMail } from '../mail/messages.js';

export interface MemberView {
  object: 'member';
  organizationId: string;
  userId: string;
  email: string;
  role: Role;
  status: 'active';
  createdAt: string;
}

/**
 * An invitation. `status` is "pending" in the answer that creates it, "invited" in the members
 * list, "accepted" when operator provisioning created the account and membership at once.
 */
export interface InvitationView {
  id: string;
  object: 'invitation';
  organizationId: string;
  email: string;
  role: Role;
  status: 'pending' | 'invited' | 'accepted';
  expiresAt: string;
  createdAt: string;
  /** Only when SMTP is not configured: the link, for the inviter to hand over. */
  url?: string;
}

/** What the invitation link's page needs to know (SPEC §7): for the holder of the token only. */
export interface InvitationSummary {
  object: 'invitation';
  email: string;
  role: Role;
  organizationId: string;
  organizationName: string;
  expiresAt: string;
  /**
   * Whether an account uses the address: then it must sign in to accept (or, if it has no password
   * yet, reset it first). False for a new person, and for the old flow's own set-password link.
   */
  accountExists: boolean;
}

interface MemberRow {
  organization_id: string;
  user_id: string;
  email: string;
  role: Role;
  created_at: Date;
}

interface InvitationRow {
  id: string;
  organization_id: string;
  email: string;
  role: Role;
  expires_at: Date;
  created_at: Date;
  accepted_at: Date | null;
  cancelled_at: Date | null;
  /**
   * The one account whose password this invitation's link may set: only an invitation that
   * migration 10 made from an unused set-password link of the old flow, issued by this organization
   * for its own member who never had a password (migration 13). Null for every other invitation.
   */
  sets_password_of?: string | null;
}

const memberView = (r: MemberRow): MemberView => ({
  object: 'member',
  organizationId: r.organization_id,
  userId: r.user_id,
  email: r.email,
  role: r.role,
  status: 'active',
  createdAt: r.created_at.toISOString(),
});

const invitationView = (r: InvitationRow, status: InvitationView['status']): InvitationView => ({
  id: r.id,
  object: 'invitation',
  organizationId: r.organization_id,
  email: r.email,
  role: r.role,
  status,
  expiresAt: r.expires_at.toISOString(),
  createdAt: r.created_at.toISOString(),
});

export const INVITATION_TTL_MS = 7 * 24 * 3600_000;
// A fast hash is right here: the token is 256 random bits, so there is nothing to brute-force; the
// hash only keeps a database reader from holding a working link.
const hashToken = (token: string) => createHash('sha256').update(token).digest();

const INVALID_INVITATION = 'The invitation is unknown, used, cancelled or expired';

/** An organization's members and open invitations, one list ($1: the organization). */
const ENTRIES = `WITH entries AS (
  SELECT 'member' AS kind, m.user_id AS id, u.email, m.role, m.created_at, NULL::timestamptz AS expires_at
  FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1
  UNION ALL
  SELECT 'invitation', i.id, i.email, i.role, i.created_at, i.expires_at
  FROM invitations i
  WHERE i.organization_id = $1 AND i.accepted_at IS NULL AND i.cancelled_at IS NULL AND i.expires_at > now()
)`;

export class MemberService {
  constructor(private readonly deps: { db: Database; work: Work; publicUrl: string; mailer: Mailer | null; throttle: FailureThrottle }) {}

  /**
   * Members and pending invitations, oldest first; the cursor is the userId of a member or the id of
   * an invitation, the last of the previous page (SPEC §11).
   */
  async list(
    organizationId: string,
    page: { limit: number; startingAfter: string | null },
  ): Promise<{ object: 'list'; data: Array<MemberView | InvitationView>; hasMore: boolean }> {
    const params: unknown[] = [organizationId, page.limit + 1];
    let after = '';
    if (page.startingAfter) {
      const cursor = isId('user', page.startingAfter) || isId('invitation', page.startingAfter)
        ? await this.deps.db.query(`${ENTRIES} SELECT 1 FROM entries WHERE id = $2`, [organizationId, page.startingAfter])
        : [];
      if (cursor.length === 0) throw notFound('member');
      params.push(page.startingAfter);
      after = 'WHERE (created_at, id) > (SELECT created_at, id FROM entries WHERE id = $3)';
    }
    const rows = await this.deps.db.query<{ kind: 'member' | 'invitation'; id: string; email: string; role: Role; created_at: Date; expires_at: Date | null }>(
      `${ENTRIES} SELECT * FROM entries ${after} ORDER BY created_at, id LIMIT $2`,
      params,
    );
    const data = rows.slice(0, page.limit).map((r) =>
      r.kind === 'member'
        ? memberView({ organization_id: organizationId, user_id: r.id, email: r.email, role: r.role, created_at: r.created_at })
        : invitationView({ id: r.id, organization_id: organizationId, email: r.email, role: r.role, created_at: r.created_at, expires_at: r.expires_at!, accepted_at: null, cancelled_at: null }, 'invited'),
    );
    return { object: 'list', data, hasMore: rows.length > page.limit };
  }

  /**
   * Invites `email` into the organization (POST .../members). `password` is accepted from a global
   * admin only (operator provisioning); `400 validation_error` from anyone else.
   */
  async invite(
    ctx: RequestContext,
    organizationId: string,
    input: { email: string; role: Role; password?: string },
    caller: { isGlobalAdmin: boolean },
  ): Promise<InvitationView> {
    if (input.password !== undefined && !caller.isGlobalAdmin) {
      throw validationError([{ path: '/password', message: 'only a global admin may set a password for someone; an invitee chooses their own when accepting' }]);
    }
    // Bounded per organization and per recipient (whether or not the address has an account).
    const wait = await this.deps.throttle.attemptInvitation(organizationId, normalizeEmail(input.email));
    if (wait > 0) {
      throw new AppError('rate_limited', 'Too many invitations from this organization, or to this address; try again later', {
        headers: { 'Retry-After': String(wait) },
        extra: { retryAfterSeconds: wait },
      });
    }
    // Hashed before the transaction: argon2 takes tens of milliseconds, no connection waits on it.
    const passwordHash = input.password !== undefined ? await hashNewPassword(input.password) : null;
    const { view, afterCommit } = await this.deps.work.run((tx) => this.inviteWithin(tx, ctx, organizationId, { email: input.email, role: input.role, passwordHash }));
    afterCommit();
    return view;
  }

  /**
   * The invitation inside the caller's unit of work (provisioning makes an organization and its
   * owner's invitation in one). Call `afterCommit` once that unit has committed: it mails the link.
   */
  async inviteWithin(
    tx: UnitOfWork,
    ctx: RequestContext,
    organizationId: string,
    input: { email: string; role: Role; passwordHash?: string | null },
  ): Promise<{ view: InvitationView; afterCommit: () => void }> {
    const email = normalizeEmail(input.email);
    // Security: the same statements run whether or not an account uses the address, so neither the
    // answer nor its timing tells the inviter. Only the organization's own members are checked.
    const [context] = await tx.query<{ organization_name: string; inviter_email: string | null; member: boolean }>(
      `SELECT o.name AS organization_name,
              (SELECT email FROM users WHERE id = $3) AS inviter_email,
              EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 AND u.email = $2) AS member
       FROM organizations o WHERE o.id = $1`,
      [organizationId, email, ctx.actor.type === 'user' ? ctx.actor.id : null],
    );
    if (!context) throw notFound('organization');
    if (context.member) throw new AppError('conflict', `${email} is already a member`);

    // A new invitation supersedes an open one for the same address (a resend: a fresh link, 7 days).
    const superseded = await tx.query<{ id: string }>(
      `UPDATE invitations SET cancelled_at = now()
       WHERE organization_id = $1 AND email = $2 AND accepted_at IS NULL AND cancelled_at IS NULL RETURNING id`,
      [organizationId, email],
    );
    for (const old of superseded) this.audit(tx, ctx, 'invitation.cancelled', organizationId, { type: 'invitation', id: old.id }, { email, reason: 'superseded' });

    if (input.passwordHash) {
      const provisioned = await this.provisionAccount(tx, ctx, organizationId, email, input.role, input.passwordHash);
      if (provisioned) return { view: provisioned, afterCommit: () => undefined };
      // An account uses the address: its password is its owner's, so this is a plain invitation.
    }

    const token = randomBytes(32).toString('base64url');
    const id = newId('invitation');
    const expiresAt = new Date(Date.now() + INVITATION_TTL_MS);
    const [row] = await tx.query<InvitationRow>(
      `INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (organization_id, email) WHERE accepted_at IS NULL AND cancelled_at IS NULL DO NOTHING
       RETURNING *`,
      [id, organizationId, email, input.role, hashToken(token), expiresAt, JSON.stringify(ctx.actor)],
    );
    // A concurrent request invited the same address first (ON CONFLICT waited for its commit).
    if (!row) throw new AppError('conflict', `An invitation for ${email} was just created`);
    const mailer = this.deps.mailer;
    this.audit(tx, ctx, 'invitation.created', organizationId, { type: 'invitation', id }, { email, role: input.role, delivery: mailer ? 'email' : 'link' });
    const url = `${this.deps.publicUrl}/admin/accept-invitation?token=${token}`;
    const view = invitationView(row, 'pending');
    if (!mailer) return { view: { ...view, url }, afterCommit: () => undefined };
    const message = invitationMail({ to: email, organizationName: context.organization_name, role: input.role, invitedBy: context.inviter_email, url, expiresAt });
    return { view, afterCommit: () => mailer.send(message, 'invitation') };
  }

  /** Operator provisioning: a new account with the given password, a member at once. Null when an account exists. */
  private async provisionAccount(tx: UnitOfWork, ctx: RequestContext, organizationId: string, email: string, role: Role, passwordHash: string): Promise<InvitationView | null> {
    const user = await insertUserIfAbsent(tx, { id: newId('user'), email, passwordHash, isGlobalAdmin: false });
    if (!user) return null;
    const id = newId('invitation');
    const [row] = await tx.query<InvitationRow>(
      `INSERT INTO invitations (id, organization_id, email, role, token_hash, expires_at, created_by, accepted_at, accepted_by)
       VALUES ($1, $2, $3, $4, $5, now(), $6, now(), $7) RETURNING *`,
      // A random hash: this invitation has no link (it is accepted as it is made).
      [id, organizationId, email, role, hashToken(randomBytes(32).toString('base64url')), JSON.stringify(ctx.actor), user.id],
    );
    await tx.query('INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3)', [organizationId, user.id, role]);
    const target = { type: 'invitation', id };
    this.audit(tx, ctx, 'invitation.created', organizationId, target, { email, role, delivery: 'provisioned' });
    this.audit(tx, ctx, 'invitation.accepted', organizationId, target, { email, role, userId: user.id, provisioned: true });
    this.audit(tx, ctx, 'member.added', organizationId, { type: 'user', id: user.id }, { role, email, invitationId: id });
    tx.publish({ kind: 'user', subject: user.id });
    return invitationView(row!, 'accepted');
  }

  /** DELETE .../members/{invitationId}: an open invitation's link stops working. */
  async cancel(ctx: RequestContext, organizationId: string, invitationId: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const rows = isId('invitation', invitationId)
        ? await tx.query<{ email: string; role: Role }>(
            `UPDATE invitations SET cancelled_at = now()
             WHERE id = $1 AND organization_id = $2 AND accepted_at IS NULL AND cancelled_at IS NULL RETURNING email, role`,
            [invitationId, organizationId],
          )
        : [];
      if (!rows[0]) throw notFound('invitation');
      this.audit(tx, ctx, 'invitation.cancelled', organizationId, { type: 'invitation', id: invitationId }, { email: rows[0].email, role: rows[0].role });
    });
  }

  /** What the holder of an invitation link may know of it; 404 when it is not open. */
  async inspect(token: string): Promise<InvitationSummary> {
    const [row] = await this.deps.db.query<InvitationRow & { organization_name: string; account_exists: boolean }>(
      `SELECT i.*, o.name AS organization_name,
              EXISTS (SELECT 1 FROM users u WHERE u.email = i.email
                      AND NOT (u.id IS NOT DISTINCT FROM i.sets_password_of AND u.password_hash IS NULL)) AS account_exists
       FROM invitations i JOIN organizations o ON o.id = i.organization_id
       WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.cancelled_at IS NULL AND i.expires_at > now() AND o.status = 'active'`,
      [hashToken(token)],
    );
    if (!row) throw new AppError('not_found', INVALID_INVITATION);
    return {
      object: 'invitation',
      email: row.email,
      role: row.role,
      organizationId: row.organization_id,
      organizationName: row.organization_name,
      expiresAt: row.expires_at.toISOString(),
      accountExists: row.account_exists,
    };
  }

  /**
   * A new person accepts: the account is created with their password, and the membership with it.
   * When an account already uses the address, with a password or without one, it must sign in to
   * accept instead (`409 conflict`): a link never sets the password of an existing account. An
   * account without a password (made by the old flow) recovers through a password reset (or a
   * global admin); otherwise whoever holds ANY organization's link to that address (every inviter
   * without SMTP) could choose its password and sign in as it, a member of other organizations.
   * The one exception is the old flow's own link (`sets_password_of`), issued by the organization the
   * account belongs to, for that account.
   */
  async acceptAsNewAccount(token: string, password: string, meta: { ip: string | null; requestId: string | null }) {
    // The policy first, so a refused password leaves the invitation usable. Then the token, before
    // the hash: argon2 costs tens of milliseconds and 19 MiB, and this route needs no credential,
    // so a flood of made-up tokens must be refused without one. Hashed outside the transaction.
    assertPasswordPolicy(password);
    await this.inspect(token);
    const passwordHash = await hashPassword(password);
    return this.deps.work.run(async (tx) => {
      const invitation = await this.lockOpen(tx, token);
      let user = await findUserByEmail(tx, invitation.email);
      if (user) {
        // Security: only the old flow's link for this very account, which never had a password.
        if (user.passwordHash !== null || invitation.sets_password_of !== user.id) {
          throw new AppError('conflict', 'An account already uses this address: sign in to accept the invitation (without a password yet: reset it first)', { extra: { signInRequired: true } });
        }
        await setPassword(tx, user.id, passwordHash);
      } else {
        user = await insertUserIfAbsent(tx, { id: newId('user'), email: invitation.email, passwordHash, isGlobalAdmin: false });
        // Someone created the account a moment ago: it is theirs now, so sign in to accept.
        if (!user) throw new AppError('conflict', 'An account already uses this address: sign in to accept the invitation', { extra: { signInRequired: true } });
      }
      return this.complete(tx, invitation, user.id, meta);
    });
  }

  /** An existing account, signed in, accepts: only the account whose address was invited may. */
  async acceptAsMember(token: string, account: { userId: string; email: string }, meta: { ip: string | null; requestId: string | null }) {
    return this.deps.work.run(async (tx) => {
      const invitation = await this.lockOpen(tx, token);
      if (normalizeEmail(account.email) !== invitation.email) {
        throw new AppError('forbidden', 'This invitation is for another address: sign in with the invited account to accept it');
      }
      return this.complete(tx, invitation, account.userId, meta);
    });
  }

  private async lockOpen(tx: Queryable, token: string): Promise<InvitationRow> {
    const [row] = await tx.query<InvitationRow>(
      `SELECT i.* FROM invitations i JOIN organizations o ON o.id = i.organization_id
       WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.cancelled_at IS NULL AND i.expires_at > now() AND o.status = 'active'
       FOR UPDATE OF i`,
      [hashToken(token)],
    );
    if (!row) throw new AppError('not_found', INVALID_INVITATION);
    return row;
  }

  private async complete(tx: UnitOfWork, invitation: InvitationRow, userId: string, meta: { ip: string | null; requestId: string | null }) {
    const inserted = await tx.query(
      'INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING user_id',
      [invitation.organization_id, userId, invitation.role],
    );
    await tx.query('UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1', [invitation.id, userId]);
    const ctx: RequestContext = { actor: { type: 'user', id: userId }, ip: meta.ip, requestId: meta.requestId, grantable: null };
    const target = { type: 'invitation', id: invitation.id };
    this.audit(tx, ctx, 'invitation.accepted', invitation.organization_id, target, { email: invitation.email, role: invitation.role, alreadyMember: inserted.length === 0 });
    if (inserted.length > 0) {
      this.audit(tx, ctx, 'member.added', invitation.organization_id, { type: 'user', id: userId }, { role: invitation.role, email: invitation.email, invitationId: invitation.id });
    }
    tx.publish({ kind: 'user', subject: userId });
    return { accepted: true as const, userId, organizationId: invitation.organization_id, email: invitation.email, role: invitation.role };
  }

  async updateRole(ctx: RequestContext, organizationId: string, userId: string, role: Role): Promise<MemberView> {
    const view = await this.deps.work.run(async (tx) => {
      const current = await this.lock(tx, organizationId, userId);
      if (current.role === 'owner' && role !== 'owner') await this.assertAnotherOwner(tx, organizationId, userId);
      const [row] = await tx.query<MemberRow>(
        `UPDATE memberships SET role = $3, updated_at = now() WHERE organization_id = $1 AND user_id = $2
         RETURNING organization_id, user_id, $4::text AS email, role, created_at`,
        [organizationId, userId, role, current.email],
      );
      this.audit(tx, ctx, 'member.updated', organizationId, { type: 'user', id: userId }, { role: { from: current.role, to: role } });
      tx.publish({ kind: 'user', subject: userId });
      return memberView(row!);
    });
    return view;
  }

  async remove(ctx: RequestContext, organizationId: string, userId: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const current = await this.lock(tx, organizationId, userId);
      if (current.role === 'owner') await this.assertAnotherOwner(tx, organizationId, userId);
      await tx.query('DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2', [organizationId, userId]);
      this.audit(tx, ctx, 'member.removed', organizationId, { type: 'user', id: userId }, { role: current.role });
      tx.publish({ kind: 'user', subject: userId });
    });
  }

  private async lock(tx: Queryable, organizationId: string, userId: string): Promise<MemberRow> {
    // Serialise role changes and removals per organization before locking any membership row. Locking
    // the member's row first and then every owner row (assertAnotherOwner) deadlocked when two owners
    // demoted or removed each other at once. NO KEY UPDATE does not block inserts that reference the
    // organization (memberships, keys), which only take KEY SHARE.
    await tx.query('SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE', [organizationId]);
    const rows = isId('user', userId)
      ? await tx.query<MemberRow>(
          `SELECT m.organization_id, m.user_id, u.email, m.role, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.organization_id = $1 AND m.user_id = $2 FOR UPDATE OF m`,
          [organizationId, userId],
        )
      : [];
    if (!rows[0]) throw notFound('member');
    return rows[0];
  }

  private async assertAnotherOwner(tx: Queryable, organizationId: string, userId: string): Promise<void> {
    // Lock every owner row so two concurrent demotions cannot both pass this check.
    const owners = await tx.query<{ user_id: string }>(
      "SELECT user_id FROM memberships WHERE organization_id = $1 AND role = 'owner' FOR UPDATE",
      [organizationId],
    );
    if (!owners.some((o) => o.user_id !== userId)) {
      throw new AppError('conflict', 'An organization must keep at least one owner');
    }
  }

  private audit(
    tx: UnitOfWork,
    ctx: RequestContext,
    action: 'member.added' | 'member.updated' | 'member.removed' | 'invitation.created' | 'invitation.accepted' | 'invitation.cancelled',
    organizationId: string,
    target: { type: string; id: string },
    details: Record<string, unknown>,
  ): void {
    tx.audit({ action, actor: ctx.actor, organizationId, target, ip: ctx.ip, requestId: ctx.requestId, details });
  }
}
