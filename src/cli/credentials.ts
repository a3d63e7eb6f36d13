/**
 * The credentials file: the session tokens `paygate login` saved, one per server URL, so a user can
 * be signed in to a local Paygate and a remote cluster at once.
 *
 * Where: `$XDG_CONFIG_HOME/paygate/credentials.json`, else `~/.config/paygate/credentials.json`.
 * Security: a session token is a bearer credential (a global admin's acts everywhere), so the
 * directory is created 0700 and the file written 0600, whole, by rename (a reader never sees half
 * a file, and a file that was once looser is tightened when it is written again). The token never
 * leaves this file except in the Authorization header of requests to the URL it was issued by.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CliError, EXIT } from './errors.js';

export interface SavedSession {
  token: string;
  userId: string;
  email: string;
  /** When the server ends the session by itself (login's `expiresAt`). */
  expiresAt: string;
  savedAt: string;
}

interface CredentialsFile {
  version: 1;
  /** By normalised server URL (connection.ts normalizeBaseUrl). */
  sessions: Record<string, SavedSession>;
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const configHome = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(os.homedir(), '.config');
  return path.join(configHome, 'paygate', 'credentials.json');
}

function isSession(value: unknown): value is SavedSession {
  const s = value as Partial<SavedSession> | null;
  return !!s && typeof s.token === 'string' && typeof s.expiresAt === 'string' && typeof s.email === 'string' && typeof s.userId === 'string';
}

async function readFile(file: string): Promise<CredentialsFile> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, sessions: {} };
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`, EXIT.usage);
  }
  try {
    const parsed = JSON.parse(text) as Partial<CredentialsFile>;
    const sessions: Record<string, SavedSession> = {};
    for (const [url, session] of Object.entries(parsed.sessions ?? {})) if (isSession(session)) sessions[url] = session;
    return { version: 1, sessions };
  } catch {
    throw new CliError(`${file} is not valid JSON: delete it and run \`paygate login\` again`, EXIT.usage);
  }
}

async function writeFile(file: string, content: CredentialsFile): Promise<void> {
  if (Object.keys(content.sessions).length === 0) {
    await fs.rm(file, { force: true });
    return;
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  // 'wx': never follow a planted file or link at the temporary name; mode 0600 from the first byte.
  await fs.writeFile(temp, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
}

export async function findSession(file: string, url: string): Promise<SavedSession | null> {
  return (await readFile(file)).sessions[url] ?? null;
}

export async function saveSession(file: string, url: string, session: SavedSession): Promise<void> {
  const content = await readFile(file);
  content.sessions[url] = session;
  await writeFile(file, content);
}

/** Forgets the session of `url`; whether there was one. */
export async function removeSession(file: string, url: string): Promise<boolean> {
  const content = await readFile(file);
  if (!content.sessions[url]) return false;
  delete content.sessions[url];
  await writeFile(file, content);
  return true;
}
