/**
 * Passwords (SPEC §7): the one policy every place that sets a password applies, and hashing with
 * argon2id (memory-hard) at OWASP's recommended minimum: 19 MiB, t=2, p=1.
 *
 * The policy: at least 10 characters (code points, so a password of emoji is not counted in UTF-16
 * halves), at most 256, not only white space, and not among commonly used passwords. The list is
 * the "passwords" dictionary of zxcvbn-ts (`@zxcvbn-ts/language-common`): the ~49,000 most common
 * passwords of public breach corpora, ranked, as the maintained successor of Dropbox's zxcvbn ships
 * it. Only its entries long enough to pass the length rule matter (~1,600), so only those are kept
 * in memory. The comparison ignores case: "Password123" is as guessable as "password123".
 */
import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { validationError, type FieldError } from '../errors.js';

const OPTIONS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 256;

let common: Set<string> | null = null;

function commonPasswords(): Set<string> {
  common ??= new Set(
    dictionary['passwords-common'].map((p) => p.toLowerCase()).filter((p) => [...p].length >= MIN_PASSWORD_LENGTH),
  );
  return common;
}

/** The rule a password breaks, as a field error at `path`, or null when it passes the policy. */
export function checkPasswordPolicy(password: string, path = '/password'): FieldError | null {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) return { path, message: `must be at least ${MIN_PASSWORD_LENGTH} characters` };
  if (length > MAX_PASSWORD_LENGTH) return { path, message: `must be at most ${MAX_PASSWORD_LENGTH} characters` };
  if (password.trim() === '') return { path, message: 'must not be only white space' };
  if (commonPasswords().has(password.toLowerCase())) return { path, message: 'is a commonly used password; choose another' };
  return null;
}

/** Throws `400 validation_error` naming the broken rule; every place that sets a password calls it. */
export function assertPasswordPolicy(password: string, path = '/password'): void {
  const error = checkPasswordPolicy(password, path);
  if (error) throw validationError([error]);
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

/** Checks the policy, then hashes: what setting a password means. */
export async function hashNewPassword(password: string, path = '/password'): Promise<string> {
  assertPasswordPolicy(password, path);
  return hashPassword(password);
}

// Verified when the email is unknown, so a miss costs the same time as a wrong password.
let dummyHash: Promise<string> | null = null;

export async function verifyPassword(passwordHash: string | null, password: string): Promise<boolean> {
  if (!passwordHash) {
    dummyHash ??= hashPassword('paygate-dummy-password');
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  return verify(passwordHash, password).catch(() => false);
}
