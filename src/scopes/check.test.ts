import { describe, expect, it } from 'vitest';
import { normalizeScopes, ScopeSet, validateScopes } from './check.js';
import { allScopes, roleScopes } from './catalog.js';

describe('scope validation', () => {
  it.each([
    ['organization', ['checkout:create', 'transaction:read', 'invoice:update', 'data_io:execute', 'portal:create', 'client:*']],
    ['organization', ['organization:read', 'api_key:delete', 'audit:read']],
    ['system', ['organization:create', 'system_settings:update', 'health:read', 'audit:read', 'organization:*']],
  ] as const)('accepts valid %s scopes %j', (tier, scopes) => {
    expect(validateScopes(tier, [...scopes])).toEqual([]);
  });

  it.each([
    ['organization', '*:*', 'unknown organization resource "*"'],
    ['organization', 'recurring:read', 'unknown organization resource "recurring"'],
    ['organization', 'client:list', 'unknown action "list"'],
    ['organization', 'client', 'is not of the form'],
    ['organization', 'client:read:extra', 'is not of the form'],
    ['organization', ':read', 'is not of the form'],
    ['organization', 'system_settings:read', 'unknown organization resource'],
    ['organization', 'health:read', 'unknown organization resource'],
    ['system', 'client:read', 'unknown system resource "client"'],
    ['system', 'portal:create', 'unknown system resource'],
    ['system', 'api_key:read', 'unknown system resource'],
  ] as const)('refuses %s scope %s', (tier, scope, message) => {
    const errors = validateScopes(tier, [scope]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(message);
  });

  it('names every bad scope, not only the first', () => {
    const errors = validateScopes('organization', ['client:read', 'bogus:read', 'client:fly', 'x']);
    expect(errors.map((e) => e.path)).toEqual(['scopes/1', 'scopes/2', 'scopes/3']);
  });

  it('refuses non-arrays and non-strings', () => {
    expect(validateScopes('organization', 'client:read')).toHaveLength(1);
    expect(validateScopes('organization', [42])).toHaveLength(1);
  });
});

describe('scope normalisation and checks', () => {
  it('de-duplicates and sorts; resource:* absorbs its actions', () => {
    expect(normalizeScopes(['invoice:read', 'client:read', 'invoice:read'])).toEqual(['client:read', 'invoice:read']);
    expect(normalizeScopes(['invoice:read', 'invoice:*', 'invoice:create', 'client:read'])).toEqual(['client:read', 'invoice:*']);
  });

  it('resource:* grants every action of that resource and nothing else', () => {
    const set = new ScopeSet(['invoice:*']);
    for (const action of ['create', 'read', 'update', 'delete', 'execute']) expect(set.has(`invoice:${action}`)).toBe(true);
    expect(set.has('invoice:*')).toBe(true);
    expect(set.has('client:read')).toBe(false);
  });

  it('a concrete scope does not grant the wildcard', () => {
    const set = new ScopeSet(['invoice:read']);
    expect(set.has('invoice:*')).toBe(false);
    expect(set.covers(['invoice:read'])).toBe(true);
    expect(set.covers(['invoice:read', 'invoice:create'])).toBe(false);
  });

  it('nothing under organization:* grants portal:create', () => {
    expect(new ScopeSet(['organization:*']).has('portal:create')).toBe(false);
  });
});

describe('roles', () => {
  const orgScopes = allScopes('organization');
  it('owner and admin hold every organization scope', () => {
    for (const role of ['owner', 'admin'] as const) {
      const set = new ScopeSet(roleScopes(role));
      expect(orgScopes.every((s) => set.has(s))).toBe(true);
    }
  });
  it('developer holds api_key:* and every read, nothing else', () => {
    const set = new ScopeSet(roleScopes('developer'));
    for (const scope of orgScopes) {
      expect(set.has(scope), scope).toBe(scope.startsWith('api_key:') || scope.endsWith(':read'));
    }
  });
  it('viewer holds every read except api_key and audit', () => {
    const set = new ScopeSet(roleScopes('viewer'));
    for (const scope of orgScopes) {
      expect(set.has(scope), scope).toBe(scope.endsWith(':read') && !scope.startsWith('api_key:') && !scope.startsWith('audit:'));
    }
  });
});
