/**
 * Paygate's two database roles (SPEC §15).
 *
 * - The owner role runs the migrations and owns every table. Only an owner (or a superuser) can
 *   `ALTER TABLE ... DISABLE TRIGGER`, so only it can switch off the audit log's append-only triggers.
 * - The runtime role serves requests. It owns nothing and holds exactly what the services use:
 *   SELECT, INSERT, UPDATE, DELETE on the tables, except
 *     audit_events, audit_checkpoints   SELECT, INSERT              (no UPDATE, DELETE, TRUNCATE)
 *     audit_chain_head                  SELECT, UPDATE              (a trigger keeps it on the newest event)
 *     schema_migrations                 SELECT
 *   and USAGE, SELECT on the sequences (no UPDATE: it cannot setval). LISTEN/NOTIFY and advisory
 *   locks need no privilege; CONNECT and TEMP come from PUBLIC's defaults.
 *
 * The runtime role's name differs per deployment, so no migration names it: the grants are applied
 * at migration time, in the migrations' transaction (under their advisory lock), to the role the
 * runtime connection logs in as. They are recomputed from this table list every time, so a table a
 * later migration adds is granted at once; an append-only table that a later migration adds must be
 * listed in RESTRICTED below.
 */
import type { Queryable } from './database.js';

/** The runtime role embedded mode creates for itself (a login role with a password derived from the superuser's). */
export const EMBEDDED_RUNTIME_ROLE = 'paygate_runtime';

const DEFAULT_TABLE_PRIVILEGES = ['DELETE', 'INSERT', 'SELECT', 'UPDATE'] as const;
const SEQUENCE_PRIVILEGES = ['SELECT', 'USAGE'] as const;

/** Tables the runtime role holds less on than the default. */
export const RESTRICTED: Readonly<Record<string, readonly string[]>> = {
  audit_events: ['INSERT', 'SELECT'],
  audit_checkpoints: ['INSERT', 'SELECT'],
  audit_chain_head: ['SELECT', 'UPDATE'],
  schema_migrations: ['SELECT'],
};

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/**
 * Gives `role` exactly the runtime privileges on every table and sequence that the current (owner)
 * role owns in its current schema: grants what is missing, revokes what is more. Touches only the
 * objects whose privileges differ, so a start that changes nothing rewrites no catalog row.
 * Does nothing when `role` is the current role (a deployment with one role: see docs/operations.md).
 */
export async function grantRuntimePrivileges(tx: Queryable, role: string): Promise<void> {
  const [me] = await tx.query<{ owner: string; schema: string }>('SELECT current_user AS owner, current_schema() AS schema');
  if (!me || me.owner === role) return;
  const objects = await tx.query<{ name: string; kind: string; granted: string[] }>(
    `SELECT c.relname AS name, c.relkind AS kind,
            coalesce((SELECT array_agg(a.privilege_type::text ORDER BY a.privilege_type)
                        FROM aclexplode(c.relacl) a WHERE a.grantee = r.oid), '{}') AS granted
       FROM pg_class c
       JOIN pg_namespace s ON s.oid = c.relnamespace
       JOIN pg_roles r ON r.rolname = $1
      WHERE s.nspname = current_schema() AND c.relkind IN ('r', 'p', 'S')
        AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      ORDER BY c.relname`,
    [role],
  );
  const grantee = quote(role);
  for (const object of objects) {
    const sequence = object.kind === 'S';
    const wanted = sequence ? SEQUENCE_PRIVILEGES : (RESTRICTED[object.name] ?? DEFAULT_TABLE_PRIVILEGES);
    if (wanted.join(',') === [...object.granted].sort().join(',')) continue;
    const target = `${sequence ? 'SEQUENCE' : 'TABLE'} ${quote(me.schema)}.${quote(object.name)}`;
    await tx.query(`REVOKE ALL ON ${target} FROM ${grantee}`);
    await tx.query(`GRANT ${wanted.join(', ')} ON ${target} TO ${grantee}`);
  }
}

/**
 * What lets the current role (the runtime connection's) alter the audit log, in words; empty when
 * nothing does. A superuser, a member of the tables' owner, or a role granted UPDATE, DELETE or
 * TRUNCATE (directly, through a role it belongs to, or through PUBLIC) can.
 */
export async function auditTamperingPowers(q: Queryable): Promise<string[]> {
  const [row] = await q.query<{ role: string; superuser: boolean; owner: boolean; update: boolean; delete: boolean; truncate: boolean }>(
    `SELECT current_user AS role,
            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
            pg_has_role(current_user, c.relowner, 'MEMBER') AS owner,
            has_any_column_privilege(c.oid, 'UPDATE') AS update,
            has_table_privilege(c.oid, 'DELETE') AS delete,
            has_table_privilege(c.oid, 'TRUNCATE') AS truncate
       FROM pg_class c WHERE c.oid = to_regclass('audit_events')`,
  );
  if (!row) return [];
  const powers: string[] = [];
  if (row.superuser) powers.push('is a superuser');
  else if (row.owner) powers.push('owns audit_events (it can disable the append-only triggers)');
  else {
    const verbs = (['update', 'delete', 'truncate'] as const).filter((verb) => row[verb]).map((verb) => verb.toUpperCase());
    if (verbs.length > 0) powers.push(`may ${verbs.join(', ')} audit_events`);
  }
  return powers.map((power) => `the database role "${row.role}" ${power}`);
}
