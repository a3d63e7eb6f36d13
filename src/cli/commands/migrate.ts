/** `paygate migrate`: brings the database schema up to date (openRuntime migrates), then exits. */
import type { Command } from 'commander';
import { MIGRATIONS } from '../../db/migrations.js';
import { withServices } from '../context.js';
import { printJson } from '../output.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (the server also does this when it starts)')
    .action(async () => {
      await withServices(async ({ runtime }) => {
        const latest = MIGRATIONS.reduce((max, m) => Math.max(max, m.id), 0);
        printJson({ ok: true, database: runtime.embedded ? 'embedded' : 'server', schemaVersion: latest });
      });
    });
}
