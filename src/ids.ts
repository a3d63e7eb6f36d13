import { randomInt } from 'node:crypto';

/** Object id prefixes (SPEC §10). API key ids are the token's <id> and come from keys/token.ts. */
export const ID_PREFIXES = {
  organization: 'org',
  user: 'usr',
  session: 'ses',
  client: 'cli',
  invoice: 'inv',
  recurringSchedule: 'rsc',
  checkout: 'chk',
  transaction: 'txn',
  refund: 'ref',
  job: 'job',
  event: 'evt',
  invitation: 'ivt',
  portalLink: 'pln',
  portalSession: 'pss',
  auditCheckpoint: 'acp',
  webhookEndpoint: 'whe',
  webhookEvent: 'wev',
  webhookDelivery: 'whd',
  webhookAttempt: 'wha',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Uniformly random base62 string (randomInt rejects biased draws). */
export function randomBase62(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += BASE62[randomInt(62)];
  return out;
}

/** A new object id such as `cli_4Fh...`: 22 random base62 characters (~131 bits). */
export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}_${randomBase62(22)}`;
}

/** Shape check for an id of a given kind; routes use it so garbage never reaches SQL. */
export function isId(kind: IdKind, value: string): boolean {
  const prefix = ID_PREFIXES[kind];
  return value.length === prefix.length + 23 && value.startsWith(`${prefix}_`) && isBase62(value.slice(prefix.length + 1));
}

export function isBase62(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ok = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (!ok) return false;
  }
  return true;
}
