/**
 * Which server and which credential a command uses. The CLI's own environment, read only here:
 *
 * - the URL: `--url`, else `PAYGATE_URL`, else http://127.0.0.1:8080;
 * - the credential: `PAYGATE_TOKEN` (an API key or a session token), else the session `paygate
 *   login` saved for that URL in the credentials file (credentials.ts). The environment wins, so a
 *   script can act with a key while its user is signed in.
 */
import type { Command } from 'commander';
import { ApiClient } from './api.js';
import { credentialsPath, findSession, removeSession } from './credentials.js';
import { CliError, EXIT, type Problem } from './errors.js';
import { Output, resolveFormat } from './output.js';
import { cliVersion } from './version.js';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface GlobalOptions {
  url?: string;
  json?: boolean;
  table?: boolean;
}

export interface Credential {
  token: string;
  source: 'environment' | 'credentials_file';
  /** `sk_...` is an API key; anything else is taken for a session token (the server tells them apart the same way). */
  kind: 'api_key' | 'session';
}

export interface Connection {
  url: string;
  client: ApiClient;
  output: Output;
  credential: Credential | null;
  credentialsFile: string;
}

/** `https://host/base/` -> `https://host/base`: the form requests are built on and the credentials file is keyed by. */
export function normalizeBaseUrl(raw: string, origin = '--url'): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new CliError(`${origin}: ${JSON.stringify(raw)} is not a URL (e.g. ${DEFAULT_URL})`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`${origin}: must be an http:// or https:// URL`, EXIT.usage);
  if (url.username || url.password) throw new CliError(`${origin}: must not hold credentials (use paygate login or PAYGATE_TOKEN)`, EXIT.usage);
  if (url.search || url.hash) throw new CliError(`${origin}: must not have a query or fragment`, EXIT.usage);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function resolveUrl(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (options.url !== undefined) return normalizeBaseUrl(options.url, '--url');
  if (env.PAYGATE_URL) return normalizeBaseUrl(env.PAYGATE_URL, 'PAYGATE_URL');
  return DEFAULT_URL;
}

/** The credential for `url`, or null. A saved session past its expiry is forgotten. */
async function resolveCredential(url: string, file: string, env: NodeJS.ProcessEnv): Promise<Credential | null> {
  const fromEnv = env.PAYGATE_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: 'environment', kind: fromEnv.startsWith('sk_') ? 'api_key' : 'session' };
  const saved = await findSession(file, url);
  if (!saved) return null;
  if (Date.parse(saved.expiresAt) <= Date.now()) {
    await removeSession(file, url);
    throw new CliError(`the session saved for ${url} expired at ${saved.expiresAt}: run \`paygate login\``, EXIT.usage);
  }
  return { token: saved.token, source: 'credentials_file', kind: 'session' };
}

/** What the user can do about a refusal, added to its error line. */
function hintFor(credential: Credential | null) {
  return (problem: Problem): string | null => {
    switch (problem.code) {
      case 'invalid_session':
        if (!credential) return null; // login: the email or password is wrong, and the detail says so
        return credential.source === 'credentials_file'
          ? 'the saved session has ended: run `paygate login`'
          : 'PAYGATE_TOKEN holds a session that has ended';
      case 'organization_required':
        return 'pass --org <orgId> (a session acts in no organization unless told which)';
      default:
        return null;
    }
  };
}

/**
 * The server, credential and output of a command. `credential`: `required` (most commands),
 * `none` (login: it sends a password, never a token).
 */
export async function connect(command: Command, options: { credential?: 'required' | 'none' } = {}): Promise<Connection> {
  const globals = command.optsWithGlobals<GlobalOptions>();
  const output = new Output(resolveFormat(globals));
  const url = resolveUrl(globals);
  const credentialsFile = credentialsPath();
  const credential = options.credential === 'none' ? null : await resolveCredential(url, credentialsFile, process.env);
  if (!credential && options.credential !== 'none') {
    throw new CliError(`not signed in to ${url}: run \`paygate login\`, or set PAYGATE_TOKEN to an API key`, EXIT.usage);
  }
  // A bearer credential (or a password) over plain HTTP can be read by anyone on the path: say so
  // (not fatal: a private network or a tunnel may make it fine).
  if (url.startsWith('http://') && !isLoopback(url)) {
    output.warn(`sending ${credential ? 'a credential' : 'a password'} to ${url} over unencrypted HTTP; use https://`);
  }
  const client = new ApiClient({
    baseUrl: url,
    token: credential?.token ?? null,
    userAgent: userAgent(),
    hintFor: hintFor(credential),
  });
  return { url, client, output, credential, credentialsFile };
}

export const userAgent = () => `paygate-cli/${cliVersion()} (node ${process.version})`;
