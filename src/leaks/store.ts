/** SQL of leaked-key reports (SPEC §13) beyond the key store's own (src/keys/store.ts). */
import type { Queryable } from '../db/database.js';

/** An organization's name and the addresses of its owners, who are told when one of its keys leaked. */
export async function organizationOwners(q: Queryable, organizationId: string): Promise<{ name: string; owners: string[] }> {
  const rows = await q.query<{ name: string; email: string | null }>(
    `SELECT o.name, u.email FROM organizations o
       LEFT JOIN memberships m ON m.organization_id = o.id AND m.role = 'owner'
       LEFT JOIN users u ON u.id = m.user_id
      WHERE o.id = $1 ORDER BY u.email`,
    [organizationId],
  );
  return { name: rows[0]?.name ?? organizationId, owners: rows.flatMap((r) => (r.email ? [r.email] : [])) };
}

/** Locks the rows of these keys (possibly none) for the containment; same statement either way. */
export async function lockKeys(tx: Queryable, ids: readonly string[]): Promise<void> {
  await tx.query('SELECT id FROM api_keys WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [ids]);
}
