/** `paygate admin create`: a global admin (a person who may act everywhere; every action audited). */
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { MIN_PASSWORD_LENGTH } from '../../users/passwords.js';
import { CliError, EXIT } from '../errors.js';
import { withServices } from '../context.js';
import { parseEmail } from '../options.js';
import { printJson } from '../output.js';

/** The first line of standard input, without its line ending (read up to the first newline or the end). */
async function readPasswordFromStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8'); // decodes characters split across chunks
  for await (const chunk of process.stdin) {
    text += chunk as string;
    if (text.includes('\n')) break; // a terminal user presses Enter, not Ctrl-D
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (!password) throw new CliError('--password-stdin: standard input held no password', EXIT.usage);
  return password;
}

export function registerAdminCreate(admin: Command): void {
  admin
    .command('create')
    .description(
      'create a global admin, or make an existing user one and set its password; ' +
        'without a password option a random one is generated and printed once',
    )
    .requiredOption('--email <email>', 'email address to sign in with', parseEmail)
    // A password in argv is visible to other local users (ps) and kept in shell history:
    // --password-stdin or a generated password avoids both.
    .addOption(new Option('--password <password>', `password (at least ${MIN_PASSWORD_LENGTH} characters)`).conflicts('passwordStdin'))
    .option('--password-stdin', 'read the password from the first line of standard input')
    .action(async (options: { email: string; password?: string; passwordStdin?: boolean }) => {
      const given = options.passwordStdin ? await readPasswordFromStdin() : options.password;
      const generated = given === undefined ? randomBytes(18).toString('base64url') : null; // 144 bits
      await withServices(async ({ services }) => {
        const user = await services.users.createGlobalAdmin(options.email, given ?? generated!);
        printJson({
          id: user.id,
          object: 'user',
          email: user.email,
          isGlobalAdmin: user.isGlobalAdmin,
          createdAt: user.createdAt.toISOString(),
          // Shown once: Paygate keeps only its argon2id hash.
          ...(generated ? { password: generated } : {}),
        });
      });
    });
}
