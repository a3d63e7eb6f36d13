/**
 * Organizations: provisioning (system tier), reading and renaming, deletion (which revokes every key
 * of the organization at once and ends its members' access).
 */
import type { Database, Queryable } from '../db/database.js';
import type { InvalidationBus } from '../cache/invalidation.js';
import type { Work } from '../unit-of-work.js';
import type { RequestContext } from '../auth/context.js';
import { notFound, validationError } from '../errors.js';
import { isId, newId } from '../ids.js';
import { validateScopes } from '../scopes/check.js';
import type { ApiKeyService, ApiKeyView } from '../keys/service.js';
import type { InvitationView, MemberService } from './members.js';
import { LruCache } from '../cache/lru.js';

export interface OrganizationView {
  id: string;
  object: 'organization';
  name: string;
  status: 'active' | 'deleted';
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
}

interface Row {
  id: string;
  name: string;
  status: 'active' | 'deleted';
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const toView = (r: Row): OrganizationView => ({
  id: r.id,
  object: 'organization',
  name: r.name,
  status: r.status,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
  deletedAt: r.deleted_at ? r.deleted_at.toISOString() : null,
});

export interface ProvisionInput {
  name: string;
  owner?: { email: string };
  initialApiKey?: { name: string; scopes: string[] };
}

export class OrganizationService {
  /** Active organization ids, for the per-request existence check of admin sessions. */
  private readonly active = new LruCache<string, boolean>(10_000, 30_000);

  constructor(
    private readonly deps: { db: Database; bus: InvalidationBus; work: Work; keys: ApiKeyService; members: MemberService },
  ) {
    deps.bus.onInvalidate((inv) => {
      if (inv.kind === 'organization') this.active.delete(inv.subject);
    });
    deps.bus.onFlush(() => this.active.clear());
  }

  async isActive(id: string): Promise<boolean> {
    if (!isId('organization', id)) return false;
    const trusted = this.deps.bus.trusted;
    if (trusted) {
      const hit = this.active.get(id);
      if (hit !== undefined) return hit;
    }
    const generation = this.deps.bus.generation;
    const rows = await this.deps.db.query("SELECT 1 FROM organizations WHERE id = $1 AND status = 'active'", [id]);
    if (trusted && generation === this.deps.bus.generation) this.active.set(id, rows.length === 1);
    return rows.length === 1;
  }

  async provision(
    ctx: RequestContext,
    input: ProvisionInput,
  ): Promise<{ organization: OrganizationView; owner?: InvitationView; initialApiKey?: ApiKeyView }> {
    if (input.initialApiKey) {
      const errors = validateScopes('organization', input.initialApiKey.scopes, '/initialApiKey/scopes');
      if (errors.length > 0) throw validationError(errors);
    }
    const id = newId('organization');
    // One transaction: an organization exists with its owner's invitation and its initial key, or
    // not at all, so a failed provisioning leaves nothing to clean up and a retry makes no duplicate.
    // The owner is invited like any member (SPEC §7): the invitation is mailed once it has committed.
    let afterCommit: () => void = () => undefined;
    const provisioned = await this.deps.work.run(async (tx) => {
      const [row] = await tx.query<Row>('INSERT INTO organizations (id, name) VALUES ($1, $2) RETURNING *', [id, input.name]);
      tx.audit({
        action: 'organization.created',
        actor: ctx.actor,
        organizationId: id,
        target: { type: 'organization', id },
        ip: ctx.ip,
        requestId: ctx.requestId,
        details: { name: input.name },
      });
      const result: { organization: OrganizationView; owner?: InvitationView; initialApiKey?: ApiKeyView } = { organization: toView(row!) };
      if (input.owner) {
        const invited = await this.deps.members.inviteWithin(tx, ctx, id, { email: input.owner.email, role: 'owner' });
        result.owner = invited.view;
        afterCommit = invited.afterCommit;
      }
      if (input.initialApiKey) {
        // Provisioning acts for the platform: the initial key may hold any organization scope.
        result.initialApiKey = await this.deps.keys.create(
          { ...ctx, grantable: null },
          { tier: 'organization', organizationId: id },
          { name: input.initialApiKey.name, scopes: input.initialApiKey.scopes },
          tx,
        );
      }
      return result;
    });
    afterCommit();
    return provisioned;
  }

  async list(page: { limit: number; startingAfter: string | null }) {
    const params: unknown[] = [page.limit + 1];
    let after = '';
    if (page.startingAfter) {
      await this.get(page.startingAfter, { includeDeleted: true });
      params.push(page.startingAfter);
      after = 'WHERE (created_at, id) < (SELECT created_at, id FROM organizations WHERE id = $2)';
    }
    const rows = await this.deps.db.query<Row>(`SELECT * FROM organizations ${after} ORDER BY created_at DESC, id DESC LIMIT $1`, params);
    return { object: 'list' as const, data: rows.slice(0, page.limit).map(toView), hasMore: rows.length > page.limit };
  }

  async get(id: string, options: { includeDeleted?: boolean } = {}): Promise<OrganizationView> {
    const row = isId('organization', id) ? (await this.deps.db.query<Row>('SELECT * FROM organizations WHERE id = $1', [id]))[0] : undefined;
    if (!row || (row.status === 'deleted' && !options.includeDeleted)) throw notFound('organization');
    return toView(row);
  }

  async update(ctx: RequestContext, id: string, changes: { name?: string }): Promise<OrganizationView> {
    // Cached sessions carry their memberships' organization names (GET /v1/auth/me): drop them on every node.
    return this.deps.work.run(async (tx) => {
      const before = await this.lockActive(tx, id);
      const [row] = await tx.query<Row>('UPDATE organizations SET name = coalesce($2, name), updated_at = now() WHERE id = $1 RETURNING *', [
        id,
        changes.name ?? null,
      ]);
      tx.audit({
        action: 'organization.updated',
        actor: ctx.actor,
        organizationId: id,
        target: { type: 'organization', id },
        ip: ctx.ip,
        requestId: ctx.requestId,
        details: changes.name !== undefined ? { name: { from: before.name, to: changes.name } } : {},
      });
      tx.publish({ kind: 'organization', subject: id });
      return toView(row!);
    });
  }

  /** Soft delete: the row stays for audit; every key is revoked and every membership removed. */
  async delete(ctx: RequestContext, id: string): Promise<OrganizationView> {
    return this.deps.work.run(async (tx) => {
      await this.lockActive(tx, id);
      const [row] = await tx.query<Row>(
        "UPDATE organizations SET status = 'deleted', deleted_at = now(), updated_at = now() WHERE id = $1 RETURNING *",
        [id],
      );
      await this.deps.keys.revokeAllOfOrganization(tx, id);
      const members = await tx.query<{ user_id: string }>('DELETE FROM memberships WHERE organization_id = $1 RETURNING user_id', [id]);
      tx.audit({
        action: 'organization.deleted',
        actor: ctx.actor,
        organizationId: id,
        target: { type: 'organization', id },
        ip: ctx.ip,
        requestId: ctx.requestId,
        details: { membersRemoved: members.length },
      });
      return toView(row!);
    });
  }

  private async lockActive(tx: Queryable, id: string): Promise<Row> {
    const rows = isId('organization', id)
      ? await tx.query<Row>("SELECT * FROM organizations WHERE id = $1 AND status = 'active' FOR UPDATE", [id])
      : [];
    if (!rows[0]) throw notFound('organization');
    return rows[0];
  }
}
