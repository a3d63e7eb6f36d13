/**
 * The password policy (SPEC §7): at least 10 characters, not only white space, not a commonly used
 * password; `400 validation_error` naming the rule. One function, used by every place that sets a
 * password: invitation acceptance and password reset (test/members.test.ts, test/password-reset.test.ts),
 * global-admin provisioning (test/members.test.ts), and here the first-start admin and `admin create`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.js';
import { checkPasswordPolicy } from '../src/users/passwords.js';
import { startPaygate, type TestApp } from './harness.js';

describe('the password policy', () => {
  it('refuses short passwords, counting characters rather than UTF-16 units', () => {
    expect(checkPasswordPolicy('nine-char')).toEqual({ path: '/password', message: 'must be at least 10 characters' });
    // Five emoji are ten UTF-16 units but five characters.
    expect(checkPasswordPolicy('🔑🔑🔑🔑🔑')?.message).toBe('must be at least 10 characters');
    expect(checkPasswordPolicy('🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑')).toBeNull();
    expect(checkPasswordPolicy('x'.repeat(257))?.message).toBe('must be at most 256 characters');
  });

  it('refuses a password of white space only, however long', () => {
    for (const password of [' '.repeat(10), '\t'.repeat(12), ' \u00a0\u2003 \n '.repeat(3)]) {
      expect(checkPasswordPolicy(password)?.message, JSON.stringify(password)).toBe('must not be only white space');
    }
  });

  it('refuses commonly used passwords, whatever their case', () => {
    for (const password of ['password123', 'Password123', 'QWERTYUIOP', '1234567890', 'iloveyou12', 'basketball']) {
      expect(checkPasswordPolicy(password)?.message, password).toBe('is a commonly used password; choose another');
    }
    expect(checkPasswordPolicy('correct-horse-battery')).toBeNull();
  });

  it('names the field it checks', () => {
    expect(checkPasswordPolicy('short', '/owner/password')?.path).toBe('/owner/password');
  });
});

describe('every place that sets a password applies it', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startPaygate();
  });
  afterAll(async () => t?.close());

  async function refusal(promise: Promise<unknown>): Promise<AppError> {
    const error = await promise.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }

  it('admin create (the CLI) refuses a common password with validation_error and creates no one', async () => {
    const error = await refusal(t.services.users.createGlobalAdmin('ops-common@example.com', 'letmein123'));
    expect(error).toMatchObject({ code: 'validation_error', extra: { errors: [{ path: '/password', message: 'is a commonly used password; choose another' }] } });
    expect(await t.db.query("SELECT 1 FROM users WHERE email = 'ops-common@example.com'")).toHaveLength(0);
  });

  it('the first-start admin refuses a PAYGATE_ADMIN_PASSWORD of spaces or a common one, naming the rule', async () => {
    for (const [password, rule] of [['          ', 'must not be only white space'], ['1234567890', 'is a commonly used password']] as const) {
      const error = await refusal(t.services.users.bootstrapFirstAdmin('first@example.com', password));
      expect(error.code).toBe('validation_error');
      expect(error.message).toContain(`PAYGATE_ADMIN_PASSWORD ${rule}`);
    }
  });
});
