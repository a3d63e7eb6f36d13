#!/usr/bin/env node
/**
 * `paygate`: the operator's command line. Every command calls the same services as the HTTP API
 * (never SQL of its own), on the database the server uses, configured by the same environment.
 * Results are JSON on stdout; failures are one line on stderr and a non-zero exit code (errors.ts).
 */
import { Command } from 'commander';
import { describeFailure } from './errors.js';
import { registerServe } from './commands/serve.js';
import { registerMigrate } from './commands/migrate.js';
import { registerAdminCreate } from './commands/admin-create.js';
import { registerOrgCreate } from './commands/org-create.js';
import { registerKeyCreate } from './commands/key-create.js';
import { registerKeyRotate } from './commands/key-rotate.js';
import { registerKeyRevoke } from './commands/key-revoke.js';

function buildProgram(): Command {
  const program = new Command('paygate')
    .description(
      'Paygate operator commands. Configuration comes from the environment, as for the server: ' +
        'DATABASE_URL (with PAYGATE_SECRET_PEPPER and PAYGATE_SESSION_SECRET), or the embedded database in PAYGATE_DATA_DIR (default ./data). ' +
        'An embedded database can be used by one process at a time: stop the server before running commands against it.',
    )
    // Usage errors are thrown instead of exiting, so they get the same one-line report and exit code.
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  // Subcommands made with .command() inherit exitOverride and the output configuration.
  registerServe(program);
  registerMigrate(program);
  registerAdminCreate(program.command('admin').description('global admins'));
  registerOrgCreate(program.command('org').description('organizations'));
  const key = program.command('key').description('API keys');
  registerKeyCreate(key);
  registerKeyRotate(key);
  registerKeyRevoke(key);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  const { message, exitCode } = describeFailure(error);
  if (message) process.stderr.write(`paygate: ${message}\n`);
  // exitCode rather than exit(): let stdout drain; nothing is left open by then.
  process.exitCode = exitCode;
}
