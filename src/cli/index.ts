#!/usr/bin/env node
/**
 * `paygate`: the command line. Almost every command speaks Paygate's public HTTP API (`--url` /
 * `PAYGATE_URL`, a credential from `paygate login` or `PAYGATE_TOKEN`), exactly as any integration
 * does, so it works beside a running server and against a remote cluster, under the same rules and
 * audit. Only the bootstrap commands (`migrate`, `admin create`) and `serve` run Paygate's own code
 * on the database; they load it lazily, so the HTTP commands never touch it.
 *
 * Results go to stdout (tables on a terminal, JSON with --json or when piped); failures are one line
 * on stderr and an exit code of errors.ts. Reference: docs/cli.md.
 */
import { Command, Option } from 'commander';
import { describeFailure } from './errors.js';
import { cliVersion } from './version.js';
import { DEFAULT_URL } from './connection.js';
import { registerServe } from './commands/serve.js';
import { registerMigrate } from './commands/migrate.js';
import { registerAdminCreate } from './commands/admin-create.js';
import { registerSessionCommands } from './commands/session.js';
import { registerOrgCommands } from './commands/org.js';
import { registerKeyCommands } from './commands/key.js';
import { registerMemberCommands } from './commands/member.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerReportCommands } from './commands/report.js';

function buildProgram(): Command {
  const program = new Command('paygate')
    .description(
      'Paygate from the command line, over its HTTP API. Sign in with `paygate login`, or set PAYGATE_TOKEN ' +
        '(an API key or a session token). Bootstrap commands (migrate, admin create) open the database ' +
        'themselves, configured like the server.',
    )
    .version(cliVersion(), '-V, --version', 'print the version')
    .addOption(new Option('--url <url>', `the Paygate server (default: PAYGATE_URL, else ${DEFAULT_URL})`))
    .addOption(new Option('--json', 'print results as JSON (the default when stdout is not a terminal)'))
    .addOption(new Option('--table', 'print results as tables (the default on a terminal)'))
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    // Usage errors are thrown instead of exiting, so they get the same one-line report and exit code.
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  // Subcommands made with .command() inherit exitOverride and the output configuration.
  registerSessionCommands(program);
  registerOrgCommands(program);
  registerKeyCommands(program);
  registerMemberCommands(program);
  registerAuditCommands(program);
  registerReportCommands(program);
  registerAdminCreate(program.command('admin').description('bootstrap: global admins, on the database directly'));
  registerMigrate(program);
  registerServe(program);
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
