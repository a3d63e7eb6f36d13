/**
 * `paygate admin create`: a global admin (a person who may act everywhere; every action audited).
 * A bootstrap command: it opens the database itself (with the server's configuration), for the
 * first operator or to recover access; everyone else is invited through the API (`member invite`).
 *
 * An address that already has an account is refused unless a flag says what to change, so that
 * creating never silently replaces someone's password nor makes someone a global admin by the way:
 * `--reset-password` sets a new password of a global admin (and ends every session of that user, on
 * every node); `--global-admin` makes an ordinary account a global admin (its password kept, unless
 * `--reset-password` is given too). An ordinary account's password is never reset by this command
 * alone. Every change is audited (`user.global_admin_granted`, `password_reset.completed`).
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
  globalAdmin?: boolean;
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
    .option('--reset-password', 'if the address already has an account: set this password and end its sessions (an ordinary account also needs --global-admin)')
    .option('--global-admin', 'if the address already has an ordinary account: make it a global admin (its password is kept unless --reset-password)')
    .action(async (options: Options, command: Command) => {
      const output = new Output(resolveFormat(command.optsWithGlobals()));
      const given = options.passwordStdin ? await readFirstLineOfStdin() : options.password;
      // Loaded here, not at the top: only the bootstrap commands load the server's code.
      const { withServices } = await import('../bootstrap.js');
      const { findUserByEmail } = await import('../../users/store.js');
      await withServices(async ({ services, runtime }) => {
        // A password is chosen (or generated) only when one will be set: a new account, or a reset.
        const existing = await findUserByEmail(runtime.db, options.email);
        if (existing && options.globalAdmin && !options.resetPassword && given !== undefined) {
          throw new CliError(`usage: ${existing.email} already has an account; --global-admin keeps its password, so give none (or add --reset-password)`, EXIT.usage);
        }
        const setsPassword = !existing || options.resetPassword === true;
        const generated = setsPassword && given === undefined ? randomBytes(18).toString('base64url') : null; // 144 bits
        // The service decides again inside its unit of work (the account may change meanwhile).
        const outcome = await services.users.createGlobalAdmin(options.email, setsPassword ? (given ?? generated!) : null, {
          resetPassword: options.resetPassword === true,
          promote: options.globalAdmin === true,
        });
        const { user } = outcome;
        const result = {
          id: user.id,
          object: 'user',
          email: user.email,
          isGlobalAdmin: user.isGlobalAdmin,
          createdAt: user.createdAt.toISOString(),
          created: outcome.created,
          promoted: outcome.promoted,
          passwordReset: outcome.passwordReset,
          // Shown once: Paygate keeps only its argon2id hash.
          ...(generated && (outcome.created || outcome.passwordReset) ? { password: generated } : {}),
        };
        if (output.isJson) return output.json(result);
        const changes = [outcome.promoted ? 'made it a global admin' : null, outcome.passwordReset ? 'set a new password; its sessions have ended' : null].filter(Boolean);
        output.line(outcome.created ? `Created the global admin ${user.email} (${user.id}).` : `${user.email} (${user.id}): ${changes.join('; ')}.`);
        if (result.password) output.line(`password: ${result.password}    (shown once: Paygate keeps only a hash of it)`);
      });
    });
}
