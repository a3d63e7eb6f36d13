/**
 * Parsers for option values, shared by the commands. They throw commander's InvalidArgumentError
 * (a usage error, exit 2). They check form only; the server checks meaning (which scopes exist,
 * whether a date is in the future) and its answer names what is wrong.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';

/** `a:b,c:d` -> ['a:b', 'c:d']. */
export function parseScopeList(value: string): string[] {
  return value
    .split(',')
    .map((scope) => scope.trim())
    .filter((scope) => scope.length > 0);
}

export function parseNonNegativeInteger(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('must be a whole number of minutes (0 or more)');
  return Number(value);
}

/** Page size of list endpoints (SPEC: 1..100). */
export function parseLimit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < 1 || n > 100) throw new InvalidArgumentError('must be a whole number from 1 to 100');
  return n;
}

/** Names as the HTTP schemas accept them: non-empty, bounded. */
export function nameParser(maxLength: number): (value: string) => string {
  return (value) => {
    const name = value.trim();
    if (name.length === 0 || name.length > maxLength) throw new InvalidArgumentError(`must be 1 to ${maxLength} characters`);
    return name;
  };
}

/** A plausibility check only (as the HTTP schema's `format: email`); the mailbox is the operator's to get right. */
export function parseEmail(value: string): string {
  const email = value.trim();
  if (email.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(email)) throw new InvalidArgumentError('must be an email address');
  return email;
}

/** The word that clears an optional key field on update (`--expires-at none`). */
export const NONE = 'none';
/**
 * What a parser returns for `none`: the field is sent as null. (Not null itself: commander treats a
 * parsed null as "no value given".)
 */
export const CLEAR = Symbol('clear');
export type Clearable<T> = T | typeof CLEAR;

const DURATION = /^(\d+)([smhd])$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** An ISO 8601 date-time (or date), or a duration before now (`30m`, `2h`, `7d`): as ISO 8601 UTC. */
export function parseTime(value: string): string {
  const text = value.trim();
  const ago = DURATION.exec(text);
  if (ago) return new Date(Date.now() - Number(ago[1]) * UNIT_MS[ago[2] as keyof typeof UNIT_MS]).toISOString();
  const ms = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(ms)) throw new InvalidArgumentError('must be an ISO 8601 date-time (2026-01-31T12:00:00Z) or a duration ago (30m, 2h, 7d)');
  return new Date(ms).toISOString();
}

/** An expiry: an ISO 8601 date-time, or `none` (never expires; update only): CLEAR. */
export function parseExpiry(value: string): Clearable<string> {
  const text = value.trim();
  if (text === NONE) return CLEAR;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(ms)) throw new InvalidArgumentError(`must be an ISO 8601 date-time (e.g. 2027-01-01T00:00:00Z), or "${NONE}"`);
  return new Date(ms).toISOString();
}

/** `10.0.0.0/8,2001:db8::1` -> a list; `none` -> CLEAR (any address). The server checks each CIDR. */
export function parseIpList(value: string): Clearable<string[]> {
  if (value.trim() === NONE) return CLEAR;
  const list = parseScopeList(value);
  if (list.length === 0) throw new InvalidArgumentError(`must list addresses or CIDR ranges, comma-separated, or "${NONE}"`);
  return list;
}

/** `100/60` or `100/1m`: requests per window (s, m or h; seconds without a unit); `none` -> CLEAR. */
export function parseRateLimit(value: string): Clearable<{ requests: number; windowSeconds: number }> {
  const text = value.trim();
  if (text === NONE) return CLEAR;
  const match = /^(\d+)\/(\d+)([smh]?)$/.exec(text);
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
    throw new InvalidArgumentError(`must be <requests>/<window>, e.g. 100/60 (seconds), 100/1m or 5000/1h, or "${NONE}"`);
  }
  const unit = { '': 1, s: 1, m: 60, h: 3600 }[match[3] as '' | 's' | 'm' | 'h'];
  return { requests: Number(match[1]), windowSeconds: Number(match[2]) * unit };
}

/** `--org` and `--system`: where an API key, audit or member command acts. */
export function orgOption(description = 'act in this organization (org_...): /v1/organizations/{orgId}/...; needed with a session'): Option {
  return new Option('--org <orgId>', description);
}

export interface PageOptions {
  limit?: number;
  startingAfter?: string;
  all?: boolean;
}

/** `--limit`, `--starting-after` and `--all`, for every list command. */
export function addPageOptions(command: Command, what: string): void {
  command
    .addOption(new Option('--limit <n>', `${what} per page, 1 to 100 (default 20; 100 with --all)`).argParser(parseLimit))
    .addOption(new Option('--starting-after <id>', `the page after this ${what.replace(/s$/, '')} (the last id of the previous page)`).conflicts('all'))
    .option('--all', 'every page, not only the first');
}
