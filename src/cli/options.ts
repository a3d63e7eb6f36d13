/** Parsers for option values, shared by the commands. They throw commander's InvalidArgumentError. */
import { InvalidArgumentError } from 'commander';

/** `a:b,c:d` -> ['a:b', 'c:d']. The services validate each scope and name the bad ones. */
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
