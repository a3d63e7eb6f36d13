/**
 * E-mail addresses, normalised once (SPEC §7): the one form Paygate stores, looks up and throttles by.
 *
 * The normal form is: surrounding white space removed, then lower-cased by Unicode's default case
 * mapping (`String.prototype.toLowerCase`, which ECMAScript defines without regard to any locale,
 * unlike PostgreSQL's `lower()` whose result follows the database's LC_CTYPE), then Unicode NFC, so
 * that a composed and a decomposed "é" are one address. Only this function lower-cases addresses:
 * the users table's unique index is on the stored (normalised) column itself, and lookups compare
 * with `=`, so no second case rule (PostgreSQL's) can ever disagree with the throttle's.
 *
 * Local parts are case-sensitive in RFC 5321, but no mail provider in use treats them so, and two
 * accounts that differ only in case would be a trap for people; Paygate treats them as one.
 */
import addFormats from 'ajv-formats';

export function normalizeEmail(raw: string): string {
  return raw.trim().normalize('NFC').toLowerCase().normalize('NFC');
}

// The syntax the HTTP schemas accept as `format: email` (ajv-formats, full mode): a dot-atom local
// part and a domain of at least two labels. Used to tell whether a typed value is an address at all.
const ADDRESS = addFormats.default.get('email') as RegExp;

/** Whether `value` is a syntactically valid address (as the API's schemas define one). */
export function isEmailAddress(value: string): boolean {
  return value.length <= 254 && ADDRESS.test(value);
}
