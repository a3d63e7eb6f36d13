/**
 * The tier and organization of a key, from its id alone. The key service addresses a key by
 * (tier, organization, id) because an HTTP caller's credential fixes the first two, and a key of
 * another tenant must look "not found"; an operator at the CLI knows only the id. The lookup reuses
 * the keys store's own query rather than writing SQL here.
 */
import type { Queryable } from '../db/database.js';
import { notFound } from '../errors.js';
import { findKeyById, type KeyScope } from '../keys/store.js';

/** Key ids are exactly 20 characters of [0-9A-Za-z] (SPEC §1). */
const KEY_ID = /^[0-9A-Za-z]{20}$/;

export async function keyScopeOf(db: Queryable, id: string): Promise<KeyScope> {
  const key = KEY_ID.test(id) ? await findKeyById(db, id) : null;
  if (!key) throw notFound('API key');
  return { tier: key.tier, organizationId: key.organizationId };
}
