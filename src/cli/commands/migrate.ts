/**
 * `paygate migrate`: brings the database schema up to date (openRuntime migrates), then exits. A
 * bootstrap command: it opens the database itself (with the server's configuration), so it runs
 * before the server does, or beside servers on DATABASE_URL; the server also migrates when it starts.
 */
import type { Command } from 'commander';
import { Output, resolveFormat } from '../output.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('bootstrap: apply pending database migrations (opens the database itself, configured like the server; the server also migrates when it starts)')
    .action(async (_options: unknown, command: Command) => {
      const output = new Output(resolveFormat(command.optsWithGlobals()));
      // Loaded here, not at the top: only the bootstrap commands load the server's code.
      const { withServices } = await import('../bootstrap.js');
      const { MIGRATIONS } = await import('../../db/migrations.js');
      await withServices(async ({ runtime }) => {
        const latest = MIGRATIONS.reduce((max, m) => Math.max(max, m.id), 0);
        const result = { ok: true, database: runtime.embedded ? 'embedded' : 'server', schemaVersion: latest };
        if (output.isJson) output.json(result);
        else output.line(`The ${result.database === 'embedded' ? 'embedded database' : 'database'} is at schema version ${latest}.`);
      });
    });
}
