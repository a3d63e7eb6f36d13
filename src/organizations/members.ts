/**
 * Members of an organization and their roles; users created on first invitation. The last owner of
 * an organization can be neither removed nor demoted, so an organization never loses its owner.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Database, Queryable } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import { AppError, notFound, validationError } from '../errors.js';
import { isId, newId } from '../ids.js';
import type { Role } from '../scopes/catalog.js';
import { findUserByEmail, insertUserIfAbsent, setPassword } from '../users/store.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from '../users/passwords.js';

export interface MemberView {
  object: 'member';
  organizationId: string;
  userId: string;
  email: string;
  role: Role;
  createdAt: string;
  /** Only when the user was created without a password: a one-time link to set one. */
  invitationUrl?: string;
}

interface Row {
  organization_id: string;
  user_id: string;
  email: string;
  role: Role;
  created_at: Date;
}

const toView = (r: Row): MemberView => ({
  object: 'member',
  organizationId: r.organization_id,
  userId: r.user_id,
  email: r.email,
  role: r.role,
  createdAt: r.created_at.toISOString(),
});

const INVITATION_TTL_MS = 7 * 24 * 3600_000;
const hashInvitation = (token: string) => createHash('sha256').update(token).digest();

export class MemberService {
  constructor(private readonly deps: { db: Database; work: Work; publicUrl: string }) {}

  /** Oldest first; the cursor is the userId of the last member of the previous page (SPEC §11). */
  async list(organizationId: string, page: { limit: number; startingAfter: string | null }): Promise<{ object: 'list'; data: MemberView[]; hasMore: boolean }> {
    const params: unknown[] = [organizationId, page.limit + 1];
    let after = '';
    if (page.startingAfter) {
      const cursor = isId('user', page.startingAfter)
        ? await this.deps.db.query('SELECT 1 FROM memberships WHERE organization_id = $1 AND user_id = $2', [organizationId, page.startingAfter])
        : [];
      if (cursor.length === 0) throw notFound('member');
      params.push(page.startingAfter);
      after = 'AND (m.created_at, m.user_id) > (SELECT created_at, user_id FROM memberships WHERE organization_id = $1 AND user_id = $3)';
    }
    const rows = await this.deps.db.query<Row>(
      `SELECT m.organization_id, m.user_id, u.email, m.role, m.created_at
       FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1 ${after}
       ORDER BY m.created_at, m.user_id LIMIT $2`,
      params,
    );
    return { object: 'list', data: rows.slice(0, page.limit).map(toView), hasMore: rows.length > page.limit };
  }

  /** Adds a member; pass `outer` to add it inside a caller's transaction (provisioning). */
  async add(ctx: RequestContext, organizationId: string, input: { email: string; role: Role; password?: string }, outer?: UnitOfWork): Promise<MemberView> {
    if (input.password !== undefined && input.password.length < MIN_PASSWORD_LENGTH) {
      throw validationError([{ path: '/password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }]);
    }
    const passwordHash = input.password !== undefined ? await hashPassword(input.password) : null;
    const insert = async (tx: UnitOfWork) => {
      let user = await findUserByEmail(tx, input.email);
      let invitationUrl: string | undefined;
      let userCreated = false;
      if (!user) {
        const created = await insertUserIfAbsent(tx, { id: newId('user'), email: input.email, passwordHash, isGlobalAdmin: false });
        if (created) {
          userCreated = true;
          user = created;
          if (!passwordHash) invitationUrl = await this.createInvitation(tx, user.id);
        } else {
          // A concurrent request created this user first (it has committed: ON CONFLICT waited for it).
          user = (await findUserByEmail(tx, input.email))!;
        }
      }
      // ON CONFLICT rather than a prior SELECT: two concurrent adds of one member must give 201 and 409, not a 500.
      const [row] = await tx.query<Row>(
        `INSERT INTO memberships (organization_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
         RETURNING organization_id, user_id, $4::text AS email, role, created_at`,
        [organizationId, user.id, input.role, user.email],
      );
      if (!row) throw new AppError('conflict', `${input.email} is already a member`);
      this.audit(tx, ctx, 'member.added', organizationId, user.id, { role: input.role, email: user.email, userCreated });
      tx.publish({ kind: 'user', subject: user.id });
      return { view: toView(row), userId: user.id, invitationUrl };
    };
    const result = outer ? await insert(outer) : await this.deps.work.run(insert);
    return result.invitationUrl ? { ...result.view, invitationUrl: result.invitationUrl } : result.view;
  }

  async updateRole(ctx: RequestContext, organizationId: string, userId: string, role: Role): Promise<MemberView> {
    const view = await this.deps.work.run(async (tx) => {
      const current = await this.lock(tx, organizationId, userId);
      if (current.role === 'owner' && role !== 'owner') await this.assertAnotherOwner(tx, organizationId, userId);
      const [row] = await tx.query<Row>(
        `UPDATE memberships SET role = $3, updated_at = now() WHERE organization_id = $1 AND user_id = $2
         RETURNING organization_id, user_id, $4::text AS email, role, created_at`,
        [organizationId, userId, role, current.email],
      );
      this.audit(tx, ctx, 'member.updated', organizationId, userId, { role: { from: current.role, to: role } });
      tx.publish({ kind: 'user', subject: userId });
      return toView(row!);
    });
    return view;
  }

  async remove(ctx: RequestContext, organizationId: string, userId: string): Promise<void> {
    await this.deps.work.run(async (tx) => {
      const current = await this.lock(tx, organizationId, userId);
      if (current.role === 'owner') await this.assertAnotherOwner(tx, organizationId, userId);
      await tx.query('DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2', [organizationId, userId]);
      this.audit(tx, ctx, 'member.removed', organizationId, userId, { role: current.role });
      tx.publish({ kind: 'user', subject: userId });
    });
  }

  /** Sets the password of an invited user; the token works once. */
  async acceptInvitation(token: string, password: string): Promise<{ userId: string }> {
    if (password.length < MIN_PASSWORD_LENGTH) {
      throw validationError([{ path: '/password', message: `must be at least ${MIN_PASSWORD_LENGTH} characters` }]);
    }
    const passwordHash = await hashPassword(password);
    return this.deps.db.transaction(async (tx) => {
      const [row] = await tx.query<{ user_id: string }>(
        'UPDATE invitations SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING user_id',
        [hashInvitation(token)],
      );
      if (!row) throw new AppError('not_found', 'The invitation is unknown, used or expired');
      await setPassword(tx, row.user_id, passwordHash);
      return { userId: row.user_id };
    });
  }

  private async createInvitation(tx: Queryable, userId: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await tx.query('INSERT INTO invitations (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)', [
      newId('invitation'),
      userId,
      hashInvitation(token),
      new Date(Date.now() + INVITATION_TTL_MS),
    ]);
    return `${this.deps.publicUrl}/admin/accept-invitation?token=${token}`;
  }

  private async lock(tx: Queryable, organizationId: string, userId: string): Promise<Row> {
    // Serialise role changes and removals per organization before locking any membership row. Locking
    // the member's row first and then every owner row (assertAnotherOwner) deadlocked when two owners
    // demoted or removed each other at once. NO KEY UPDATE does not block inserts that reference the
    // organization (memberships, keys), which only take KEY SHARE.
    await tx.query('SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE', [organizationId]);
    const rows = isId('user', userId)
      ? await tx.query<Row>(
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

  private audit(tx: UnitOfWork, ctx: RequestContext, action: 'member.added' | 'member.updated' | 'member.removed', organizationId: string, userId: string, details: Record<string, unknown>): void {
    tx.audit({
      action,
      actor: ctx.actor,
      organizationId,
      target: { type: 'user', id: userId },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details,
    });
  }
}
