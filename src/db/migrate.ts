import type { Database, Queryable } from './database.js';
import { MIGRATIONS, type Migration } from './migrations.js';

// Arbitrary constant: the advisory lock that makes nodes started together migrate one at a time.
const MIGRATION_LOCK = 7_412_903_001;

/**
 * Applies every pending migration under an advisory lock; returns the ids applied. `afterwards` runs
 * last in the same transaction, under the same lock (the runtime role's grants: src/db/roles.ts).
 */
export async function migrate(
  db: Database,
  migrations: Migration[] = MIGRATIONS,
  afterwards?: (tx: Queryable) => Promise<void>,
): Promise<number[]> {
  // On a connection of its own and without the request bounds: a migration may take long, and a
  // node started beside one waits for it rather than failing.
  return db.transaction(async (tx) => {
    // Transaction-scoped lock: released by COMMIT/ROLLBACK, even if this process dies.
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query<{ id: number }>('SELECT id FROM schema_migrations')).map((r) => r.id));
    const applied: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.id)) continue;
      await tx.query(migration.sql);
      await tx.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [migration.id, migration.name]);
      applied.push(migration.id);
    }
    await afterwards?.(tx);
    return applied;
  }, { kind: 'migration' });
}
