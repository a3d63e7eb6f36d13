/** Pure scope logic: validation, normalisation, grant checks. No I/O. */
import type { FieldError } from '../errors.js';
import { ACTIONS, RESOURCES, type Tier } from './catalog.js';

const ACTION_SET = new Set<string>(ACTIONS);

/** Validates a requested scope list for a tier; returns one error per bad scope. */
export function validateScopes(tier: Tier, scopes: unknown, path = 'scopes'): FieldError[] {
  if (!Array.isArray(scopes)) return [{ path, message: 'must be an array of "resource:action" strings' }];
  const resources = new Set(RESOURCES[tier]);
  const errors: FieldError[] = [];
  scopes.forEach((scope, index) => {
    const at = `${path}/${index}`;
    if (typeof scope !== 'string' || scope.length > 64) {
      errors.push({ path: at, message: 'must be a "resource:action" string' });
      return;
    }
    const parts = scope.split(':');
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      errors.push({ path: at, message: `"${scope}" is not of the form resource:action` });
      return;
    }
    const [resource, action] = parts as [string, string];
    const problems: string[] = [];
    if (!resources.has(resource)) problems.push(`unknown ${tier} resource "${resource}"`);
    if (!ACTION_SET.has(action)) problems.push(`unknown action "${action}"`);
    if (problems.length > 0) errors.push({ path: at, message: `"${scope}": ${problems.join(', ')}` });
  });
  return errors;
}

/** De-duplicated and sorted; `resource:*` absorbs that resource's concrete actions. */
export function normalizeScopes(scopes: readonly string[]): string[] {
  const unique = new Set(scopes);
  for (const scope of unique) {
    const [resource, action] = scope.split(':');
    if (action !== '*' && unique.has(`${resource}:*`)) unique.delete(scope);
  }
  return [...unique].sort();
}

/** A compiled set for O(1) checks on the hot path. */
export class ScopeSet {
  private readonly scopes: Set<string>;
  constructor(scopes: Iterable<string>) {
    this.scopes = new Set(scopes);
  }
  /** Whether `required` (a concrete `resource:action`, or `resource:*`) is granted. */
  has(required: string): boolean {
    if (this.scopes.has(required)) return true;
    const colon = required.indexOf(':');
    return this.scopes.has(`${required.slice(0, colon)}:*`);
  }
  /** Whether every scope in `scopes` is granted; used to refuse privilege escalation. */
  covers(scopes: readonly string[]): boolean {
    return scopes.every((scope) => this.has(scope));
  }
  toArray(): string[] {
    return [...this.scopes].sort();
  }
}
