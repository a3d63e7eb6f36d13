import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, expectProblem, expectStatus, startPaygate, type TestApp } from './harness.js';

describe('smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => t?.close());

  it('an organization key passes whoami and is refused without a scope', async () => {
    const org = await createOrgWithKey(t, ['client:read']);
    const who = await t.request('GET', '/v1/auth/whoami', { token: org.token });
    expectStatus(who, 200);
    expect(who.body).toMatchObject({ type: 'api_key', keyId: org.keyId, tier: 'organization', organizationId: org.organizationId, scopes: ['client:read'] });
    const keys = await t.request('GET', '/v1/api-keys', { token: org.token });
    expectProblem(keys, 403, 'insufficient_scope');
  });
});
