/**
 * A leaked system key mails the global admins (SPEC §13 mails an organization key's owners; a system
 * key has no organization, and global admins are who manage system keys): on a real server and a
 * real SMTP receiver, the same security notice, naming the key and never its secret, to every
 * global admin and nobody else; once per containment, as for organization keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrgWithKey, createSystemKey, createUser, expectStatus, startPaygate, type TestApp } from './harness.js';
import { startMailReceiver, type MailReceiver } from './mail-receiver.js';

describe('a leaked system key', () => {
  let t: TestApp;
  let mail: MailReceiver;
  let settingsKey: string;
  let admins: Array<{ email: string }>;
  let bystanders: Array<{ email: string }>;

  let sourceCounter = 0;
  /** A report source of its own (10.78.0.x through the trusted proxy), so the per-source limit stays out of the way. */
  const report = (body: unknown) => t.request('POST', '/v1/leaked-keys', { body, headers: { 'x-forwarded-for': `10.78.0.${++sourceCounter}` } });

  async function setAction(action: 'revoke' | 'quarantine') {
    expectStatus(await t.request('PATCH', '/v1/system/settings', { token: settingsKey, body: { leakedKeyAction: action } }), 200);
  }

  beforeAll(async () => {
    mail = await startMailReceiver();
    t = await startPaygate({ env: { PAYGATE_TRUSTED_PROXIES: '127.0.0.1', ...mail.env } });
    settingsKey = (await createSystemKey(t, ['system_settings:*'])).token;
    admins = [await createUser(t, { globalAdmin: true }), await createUser(t, { globalAdmin: true })];
    // An organization's owner and a user with no role at all: neither manages system keys.
    const org = await createOrgWithKey(t, ['client:read']);
    bystanders = [await createUser(t, { organizationId: org.organizationId, role: 'owner' }), await createUser(t)];
  });
  afterAll(async () => {
    await t?.close();
    await mail?.close();
  });

  it('revoked: every global admin is mailed the notice, naming the key but never its secret; nobody else is', async () => {
    await setAction('revoke');
    const key = await createSystemKey(t, ['health:read']);
    expectStatus(await report({ tokens: [key.token], url: 'https://example.com/system-leak', source: 'a scanner' }), 202);
    for (const admin of admins) {
      const message = await mail.next(admin.email);
      expect(message.subject).toBe('Security notice: a Paygate system API key was reported leaked');
      expect(message.text).toContain(`(${key.keyId}, ending in ${key.token.slice(-4)})`);
      expect(message.text).toContain('Reported location: https://example.com/system-leak');
      expect(message.text).toContain('Reported by: a scanner');
      expect(message.text).toContain('Paygate has revoked it');
      expect(message.text).toContain(`GET /v1/system/audit-events?targetId=${key.keyId}`);
      expect(message.text).not.toContain(key.token.split('.')[1]!);
      expect(message.text).not.toContain('of the organization');
    }
    await t.services.mailer!.idle();
    for (const bystander of bystanders) expect(mail.to(bystander.email), bystander.email).toHaveLength(0);
  });

  it('quarantined: the notice says how to rotate a system key; a repeat report mails nobody again', async () => {
    await setAction('quarantine');
    const key = await createSystemKey(t, ['health:read']);
    const before = admins.map((a) => mail.to(a.email).length);
    expectStatus(await report({ tokens: [key.token] }), 202);
    for (const admin of admins) {
      const message = await mail.next(admin.email);
      expect(message.text).toContain(key.keyId);
      expect(message.text).toContain('Paygate has quarantined it');
      expect(message.text).toContain('POST /v1/system/api-keys/{id}/rotate');
      expect(message.text).not.toContain('Reported location');
    }
    // Already quarantined: audited again, but nothing changed, so nobody is told twice.
    expectStatus(await report({ tokens: [key.token] }), 202);
    await t.services.mailer!.idle();
    expect(admins.map((a) => mail.to(a.email).length)).toEqual(before.map((n) => n + 1));
    for (const bystander of bystanders) expect(mail.to(bystander.email), bystander.email).toHaveLength(0);
  });
});
