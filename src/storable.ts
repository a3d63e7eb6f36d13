/**
 * What PostgreSQL can store (SPEC §8): input outside it is `400 validation_error` before any route
 * runs, never a `500` from the database. Two rules, each written once, here:
 *
 * - text: PostgreSQL `text` and `jsonb` hold no U+0000, and UTF-8 has no lone surrogates (the
 *   driver would silently store U+FFFD instead, so the value would change on its way in);
 * - dates: an RFC 3339 date-time with a time zone, a real calendar date, whose instant lies in the
 *   years 1..9999 (UTC). PostgreSQL itself goes further, but dates beyond that are typos or probes,
 *   and what JavaScript's Date accepts past it (years 0 and below, +275760, rolled-over days such
 *   as 02-30, a leap second) is not what the client meant.
 *
 * Pure: the HTTP layer (src/http/server.ts) applies both to every request; a service that takes a
 * date from any caller (keys/service.ts, `expiresAt`) parses it with `parseStorableDate` too.
 */

const UNSTORABLE_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when PostgreSQL could not store this string as it is. */
export function isUnstorableText(value: string): boolean {
  return UNSTORABLE_TEXT.test(value);
}

/** The message every refusal of unstorable text carries. */
export const UNSTORABLE_TEXT_MESSAGE = 'must not contain a NUL character or invalid Unicode';

/** Buffers and streams (uploads) are not text fields; their content is checked where it is parsed. */
function isOpaque(value: object): boolean {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer || typeof (value as { pipe?: unknown }).pipe === 'function';
}

/**
 * Whether `value` holds any string or object key PostgreSQL could not store: the check every request
 * pays, without building a pointer per field (findUnstorableText names them once one is found).
 */
export function hasUnstorableText(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return UNSTORABLE_TEXT.test(value);
  if (value === null || typeof value !== 'object' || depth > 64) return false;
  if (Array.isArray(value)) {
    for (const item of value) if (hasUnstorableText(item, depth + 1)) return true;
    return false;
  }
  if (isOpaque(value)) return false;
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (UNSTORABLE_TEXT.test(key) || hasUnstorableText((value as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return false;
}

/**
 * JSON Pointers (RFC 6901) of every string, and every object key, that PostgreSQL could not store,
 * in `value` (a parsed JSON body, a query string, path parameters). At most `limit` are reported.
 */
export function findUnstorableText(value: unknown, base = '', limit = 20): string[] {
  const found: string[] = [];
  const walk = (node: unknown, pointer: string, depth: number): void => {
    if (found.length >= limit) return;
    if (typeof node === 'string') {
      if (isUnstorableText(node)) found.push(pointer || '/');
      return;
    }
    // Bodies are parsed JSON (depth is bounded by the body limit); stop at an absurd depth anyway.
    if (node === null || typeof node !== 'object' || depth > 64) return;
    if (Array.isArray(node)) {
      node.forEach((item, index) => walk(item, `${pointer}/${index}`, depth + 1));
      return;
    }
    if (isOpaque(node)) return;
    for (const key of Object.keys(node)) {
      const escaped = `${pointer}/${escapePointer(key)}`;
      if (isUnstorableText(key)) found.push(escaped);
      walk((node as Record<string, unknown>)[key], escaped, depth + 1);
    }
  };
  walk(value, base, 0);
  return found;
}

function escapePointer(key: string): string {
  // A NUL cannot be shown in a message either: the pointer names the field, with U+FFFD in its place.
  return key.replace(/~/g, '~0').replace(/\//g, '~1').replace(new RegExp(UNSTORABLE_TEXT.source, 'g'), '\uFFFD');
}

/** RFC 3339 `date-time` (the time zone is required; `t`, `z` and a space separator as RFC 3339 allows). */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):?(\d{2}))$/;

const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * The instant an RFC 3339 date-time names, or null when it is not one, names no real calendar
 * date or time (02-30, 24:00, a leap second), or lies outside the years 1..9999 in UTC.
 */
export function parseStorableDate(value: string): Date | null {
  if (typeof value !== 'string' || value.length > 64) return null;
  const m = DATE_TIME.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59)) return null;
  const time = Date.parse(value.replace(' ', 'T'));
  if (!Number.isFinite(time) || time < FIRST_INSTANT || time > LAST_INSTANT) return null;
  return new Date(time);
}

/** The format check behind every `format: "date-time"` of the HTTP schemas. */
export function isStorableDateTime(value: string): boolean {
  return parseStorableDate(value) !== null;
}
