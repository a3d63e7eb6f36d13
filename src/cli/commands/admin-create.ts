/**
 * `paygate admin create`: a global admin (a person who may act everywhere; every action audited).
 * A bootstrap command: it opens the database itself (with the server's configuration), for the
 * first operator or to recover access; everyone else is invited through the API (`member invite`).
 *
 * An address that already has an account is refused: creating must never silently replace someone's
 * password. `--reset-password` does replace it (and makes the account a global admin); the
 * service then ends every session of that user, on every node.
 */
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { MIN_PASSWORD_LENGTH } from '../../users/passwords.js';
import { CliError, EXIT } from '../errors.js';
import { parseEmail } from '../options.js';
import { Output, resolveFormat } from '../output.js';
import { readFirstLineOfStdin } from '../prompt.js';

interface Options {
  email: string;
  password?: string;
  passwordStdin?: boolean;
  resetPassword?: boolean;
}

export function registerAdminCreate(admin: Command): void {
  admin
    .command('create')
    .description(
      'bootstrap: create a global admin (opens the database itself, configured like the server); ' +
        'without a password option a random one is generated and printed once',
    )
    .requiredOption('--email <email>', 'email address to sign in with', parseEmail)
    // A password in argv is visible to other local users (ps) and kept in shell history:
    // --password-stdin or a generated password avoids both.
    .addOption(new Option('--password <password>', `password (at least ${MIN_PASSWORD_LENGTH} characters, not only white space, not a commonly used one)`).conflicts('passwordStdin'))
    .option('--password-stdin', 'read the password from the first line of standard input')
    .option('--reset-password', 'if the address already has an account: set this password, make it a global admin, and end its sessions')
    .action(async (options: Options, command: Command) => {
      const output = new Output(resolveFormat(command.optsWithGlobals()));
      const given = options.passwordStdin ? await readFirstLineOfStdin() : options.password;
      const generated = given === undefined ? randomBytes(18).toString('base64url') : null; // 144 bits
      // Loaded here, not at the top: only the bootstrap commands load the server's code.
      const { withServices } = await import('../bootstrap.js');
      const { findUserByEmail } = await import('../../users/store.js');
      await withServices(async ({ services, runtime }) => {
        // Checked before the service call, which itself would replace the password: two steps, so
        // two operators creating the same address at the same instant could race (bootstrap is
        // one operator's; a "refuse if it exists" in UserService would close the gap).
        const existing = await findUserByEmail(runtime.db, options.email);
        if (existing && !options.resetPassword) {
          throw new CliError(
            `conflict: ${existing.email} already has an account (${existing.id}); nothing was changed. ` +
              'To set a new password (ending its sessions) and make it a global admin, add --reset-password',
            EXIT.failed,
          );
        }
        // On an existing account the service replaces the password and ends every session of the user.
        const user = await services.users.createGlobalAdmin(options.email, given ?? generated!);
        const result = {
          id: user.id,
          object: 'user',
          email: user.email,
          isGlobalAdmin: user.isGlobalAdmin,
          createdAt: user.createdAt.toISOString(),
          created: !existing,
          passwordReset: Boolean(existing),
          // Shown once: Paygate keeps only its argon2id hash.
          ...(generated ? { password: generated } : {}),
        };
        if (output.isJson) return output.json(result);
        output.line(
          existing
            ? `Set a new password for ${user.email} (${user.id}), a global admin; its sessions have ended.`
            : `Created the global admin ${user.email} (${user.id}).`,
        );
        if (generated) output.line(`password: ${generated}    (shown once: Paygate keeps only a hash of it)`);
      });
    });
}
