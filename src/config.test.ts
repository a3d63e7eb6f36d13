/** The configuration check (SPEC §11): what each variable accepts, and that one error names every problem. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('\n');
    return (error as ConfigError).problems;
  }
  throw new Error('no configuration error');
}

describe('loadConfig', () => {
  it('accepts an empty environment: embedded mode on 127.0.0.1:8080 with JSON-or-pretty logs at info', () => {
    expect(loadConfig({})).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      databaseUrl: null,
      databaseWaitMs: 30_000,
      publicUrl: 'http://127.0.0.1:8080',
      logLevel: 'info',
      logFormat: 'auto',
      adminEmail: null,
      nodeId: null,
      trustedProxies: false,
    });
  });

  it('gathers every problem of one environment into one error, one line', () => {
    const found = problems({ PORT: '80a', LOG_LEVEL: 'verbose', PAYGATE_NODE_ID: 'a b', PAYGATE_CACHE_TTL_MS: '-1' });
    expect(found.map((p) => p.split(' ')[0]).sort()).toEqual(['LOG_LEVEL', 'PAYGATE_CACHE_TTL_MS', 'PAYGATE_NODE_ID', 'PORT']);
  });

  it('quotes a bad value JSON-escaped, so a newline in it cannot break the line', () => {
    expect(problems({ LOG_LEVEL: 'info\nFAKE LINE' })).toEqual([expect.stringContaining('got "info\\nFAKE LINE"')]);
  });

  it('normalises PAYGATE_ADMIN_EMAIL and accepts only addresses (and the default admin@localhost)', () => {
    expect(loadConfig({ PAYGATE_ADMIN_EMAIL: '  Admin@Example.COM ' }).adminEmail).toBe('admin@example.com');
    expect(loadConfig({ PAYGATE_ADMIN_EMAIL: 'admin@localhost' }).adminEmail).toBe('admin@localhost');
    for (const bad of ['admin', 'admin@', 'a b@example.com', '@example.com']) {
      expect(problems({ PAYGATE_ADMIN_EMAIL: bad }), bad).toEqual([expect.stringMatching(/^PAYGATE_ADMIN_EMAIL must be an e-mail address/)]);
    }
  });

  it('checks PAYGATE_ADMIN_PASSWORD against the password policy, naming the rule and never the value', () => {
    expect(problems({ PAYGATE_ADMIN_PASSWORD: 'short' })).toEqual(['PAYGATE_ADMIN_PASSWORD must be at least 10 characters']);
    expect(problems({ PAYGATE_ADMIN_PASSWORD: 'password123' })).toEqual([expect.stringMatching(/^PAYGATE_ADMIN_PASSWORD is a commonly used password/)]);
    expect(loadConfig({ PAYGATE_ADMIN_PASSWORD: 'correct horse battery' }).adminPassword).toBe('correct horse battery');
  });

  it('accepts PAYGATE_TRUSTED_PROXIES of addresses, CIDRs and proxy-addr names, and names each bad entry', () => {
    expect(loadConfig({ PAYGATE_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8,loopback' }).trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback']);
    expect(problems({ PAYGATE_TRUSTED_PROXIES: '10.0.0.0/33,proxy,1.2.3' })).toEqual([expect.stringContaining('got "10.0.0.0/33", "proxy", "1.2.3"')]);
  });

  it('refuses an invalid PAYGATE_NODE_ID instead of ignoring it', () => {
    expect(loadConfig({ PAYGATE_NODE_ID: 'node-a.1' }).nodeId).toBe('node-a.1');
    expect(problems({ PAYGATE_NODE_ID: 'x'.repeat(65) })).toHaveLength(1);
  });

  it('checks URLs without repeating what may hold a password', () => {
    expect(problems({ DATABASE_URL: 'postgres://u:p@ss#word@db.example/paygate', PAYGATE_SECRET_PEPPER: 'p'.repeat(32), PAYGATE_SESSION_SECRET: 's'.repeat(32) }).join(' ')).not.toContain('ss#word');
    expect(problems({ REDIS_URL: 'http://:hunter2@redis' }).join(' ')).not.toContain('hunter2');
    expect(loadConfig({ REDIS_URL: 'rediss://:pw@redis.example:6380/1' }).redisUrl).toBe('rediss://:pw@redis.example:6380/1');
    expect(problems({ PAYGATE_PUBLIC_URL: 'https://pay.example.com/?a=1' })).toHaveLength(1);
    expect(loadConfig({ PAYGATE_PUBLIC_URL: 'https://pay.example.com/base/' }).publicUrl).toBe('https://pay.example.com/base');
  });

  it('brackets an IPv6 HOST in the default public URL, and refuses a HOST that is no address or name', () => {
    expect(loadConfig({ HOST: '::1', PORT: '9000' }).publicUrl).toBe('http://[::1]:9000');
    expect(loadConfig({ HOST: 'paygate.internal' }).host).toBe('paygate.internal');
    expect(problems({ HOST: '[::1]' })).toHaveLength(1);
  });

  it('takes LOG_FORMAT json or pretty, and PAYGATE_DATABASE_WAIT_SECONDS in seconds', () => {
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ PAYGATE_DATABASE_WAIT_SECONDS: '0' }).databaseWaitMs).toBe(0);
    expect(problems({ PAYGATE_DATABASE_WAIT_SECONDS: '1.5' })).toHaveLength(1);
  });
});
