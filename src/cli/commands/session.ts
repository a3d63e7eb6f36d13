/** `paygate login`, `logout` and `whoami`: the CLI's own session with a server, and what a credential is. */
import { InvalidArgumentError, type Command } from 'commander';
import { ApiClient } from '../api.js';
import { connect, userAgent, type Connection } from '../connection.js';
import { findSession, removeSession, saveSession } from '../credentials.js';
import { ApiError, CliError, EXIT } from '../errors.js';
import { parseEmail } from '../options.js';
import { canPrompt, promptHidden, promptVisible, readFirstLineOfStdin } from '../prompt.js';
import { cell } from '../table.js';

interface LoginAnswer {
  user: { id: string; email: string; isGlobalAdmin: boolean };
  token: string;
  expiresAt: string;
}

async function askEmail(given: string | undefined): Promise<string> {
  if (given) return given;
  if (!canPrompt()) throw new CliError('no terminal to ask for the email on: pass --email <email> (and --password-stdin)', EXIT.usage);
  try {
    return parseEmail(await promptVisible('Email: '));
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new CliError(`email ${error.message}`, EXIT.usage);
    throw error;
  }
}

async function askPassword(fromStdin: boolean | undefined): Promise<string> {
  if (fromStdin) return readFirstLineOfStdin();
  if (!canPrompt()) throw new CliError('no terminal to ask for the password on: pass --password-stdin and write it to standard input', EXIT.usage);
  const password = await promptHidden('Password: ');
  if (!password) throw new CliError('no password given', EXIT.usage);
  return password;
}

/** Ends a replaced session on the server, so logging in again does not leave the old token valid. Best effort. */
async function endQuietly(url: string, token: string): Promise<void> {
  const client = new ApiClient({ baseUrl: url, token, userAgent: userAgent(), timeoutMs: 5_000 });
  await client.post('/auth/logout').catch(() => undefined);
}

function registerLogin(program: Command): void {
  program
    .command('login')
    .description(
      'sign in to a Paygate server and save the session for the commands that follow ' +
        '(in the credentials file, per server URL, mode 0600); asks for the email and password on a terminal',
    )
    .option('--email <email>', 'the account to sign in as', parseEmail)
    .option('--password-stdin', 'read the password from the first line of standard input (scripts; never put it in argv)')
    .action(async (options: { email?: string; passwordStdin?: boolean }, command: Command) => {
      const connection = await connect(command, { credential: 'none' });
      const email = await askEmail(options.email);
      const password = await askPassword(options.passwordStdin);
      const answer = await connection.client.post<LoginAnswer>('/auth/login', { email, password });

      const previous = await findSession(connection.credentialsFile, connection.url);
      await saveSession(connection.credentialsFile, connection.url, {
        token: answer.token,
        userId: answer.user.id,
        email: answer.user.email,
        expiresAt: answer.expiresAt,
        savedAt: new Date().toISOString(),
      });
      if (previous && previous.token !== answer.token) await endQuietly(connection.url, previous.token);

      const { output } = connection;
      // Never the token: it is in the credentials file, and nowhere else.
      if (output.isJson) output.json({ object: 'login', url: connection.url, user: answer.user, expiresAt: answer.expiresAt, credentialsFile: connection.credentialsFile });
      else {
        output.line(`Signed in to ${connection.url} as ${answer.user.email}${answer.user.isGlobalAdmin ? ' (global admin)' : ''} until ${cell(answer.expiresAt)}.`);
        output.line(`The session is saved in ${connection.credentialsFile}.`);
      }
      if (process.env.PAYGATE_TOKEN?.trim()) output.warn('PAYGATE_TOKEN is set: commands use it, not this session, until it is unset');
    });
}

function registerLogout(program: Command): void {
  program
    .command('logout')
    .description('end the saved session of this server URL on the server, and remove it from the credentials file')
    .action(async (_options: unknown, command: Command) => {
      const connection = await connect(command, { credential: 'none' });
      const { output, url, credentialsFile } = connection;
      const saved = await findSession(credentialsFile, url);
      let ended = false;
      if (saved) {
        const client = new ApiClient({ baseUrl: url, token: saved.token, userAgent: userAgent() });
        try {
          await client.post('/auth/logout');
          ended = true;
        } catch (error) {
          // A session the server already ended (or that expired) has nothing left to end. Anything
          // else (the server unreachable) keeps the entry: the session would stay valid on the server.
          if (!(error instanceof ApiError && error.code === 'invalid_session')) throw error;
        }
        await removeSession(credentialsFile, url);
      }
      if (output.isJson) output.json({ object: 'logout', url, signedOut: saved !== null, sessionEnded: ended });
      else output.line(saved ? `Signed out of ${url}${ended ? '' : ' (the session had already ended)'}.` : `Not signed in to ${url}: nothing to do.`);
      if (process.env.PAYGATE_TOKEN?.trim()) output.warn('PAYGATE_TOKEN is still set: commands keep using it');
    });
}

interface Whoami {
  type: 'api_key' | 'user';
  keyId: string | null;
  tier: 'organization' | 'system' | null;
  organizationId: string | null;
  scopes: string[];
  status?: string;
  userId?: string;
  email?: string;
  isGlobalAdmin?: boolean;
  roles?: Array<{ organizationId: string; role: string }>;
}

interface Me {
  memberships: Array<{ organizationId: string; organizationName: string; role: string }>;
}

function printWhoami(connection: Connection, who: Whoami, me: Me | null): void {
  const { output, url, credential } = connection;
  const source = credential?.source === 'environment' ? 'PAYGATE_TOKEN' : 'saved session (paygate login)';
  if (output.isJson) return output.json({ ...who, ...(me ? { memberships: me.memberships } : {}), url, credentialSource: credential?.source });
  if (who.type === 'api_key') {
    return output.record([
      ['url', url],
      ['credential', `${source}: ${who.tier} API key`],
      ['key', who.keyId ?? '-'],
      ['organization', cell(who.organizationId)],
      ['scopes', cell(who.scopes)],
      ['status', who.status],
    ]);
  }
  const memberships = me?.memberships.map((m) => `${m.organizationId} ${m.organizationName} (${m.role})`) ?? who.roles?.map((r) => `${r.organizationId} (${r.role})`) ?? [];
  output.record([
    ['url', url],
    ['credential', source],
    ['user', `${who.userId} ${who.email}`],
    ['global admin', cell(who.isGlobalAdmin)],
    ['memberships', memberships.length ? memberships.join('; ') : '-'],
  ]);
}

function registerWhoami(program: Command): void {
  program
    .command('whoami')
    .description('show the credential the CLI uses for this server: the user and their organizations, or the API key and its scopes')
    .action(async (_options: unknown, command: Command) => {
      const connection = await connect(command);
      const who = await connection.client.get<Whoami>('/auth/whoami');
      // The organizations' names, for people; whoami itself names only their ids.
      const me = who.type === 'user' ? await connection.client.get<Me>('/auth/me') : null;
      printWhoami(connection, who, me);
    });
}

export function registerSessionCommands(program: Command): void {
  registerLogin(program);
  registerLogout(program);
  registerWhoami(program);
}
