/**
 * The audit signing key and the checkpoint's signed bytes, without a database; and how the
 * configuration takes the key (PAYGATE_AUDIT_SIGNING_KEY) and the owner's URL.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.js';
import { checkpointPayload } from './checkpoints.js';
import { AuditSigner, generateSigningKeyPem, parseSigningKey } from './signing.js';

const pem = generateSigningKeyPem();
const checkpoint = { id: 'acp_0123456789ABCDEFGHIJKL', seq: 42, hash: 'ab'.repeat(32), at: '2030-01-02T03:04:05.678Z' };

describe('the audit signer', () => {
  it('signs the documented bytes, and the signature verifies only for those bytes', () => {
    expect(checkpointPayload(checkpoint).toString('utf8')).toBe(
      `paygate-audit-checkpoint/v1\nid=acp_0123456789ABCDEFGHIJKL\nseq=42\nhash=${'ab'.repeat(32)}\nat=2030-01-02T03:04:05.678Z\n`,
    );
    const signer = new AuditSigner(pem);
    const signature = signer.sign(checkpointPayload(checkpoint));
    expect(signature).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(signer.verify(checkpointPayload(checkpoint), signature)).toBe(true);
    for (const altered of [{ seq: 41 }, { hash: 'cd'.repeat(32) }, { at: '2030-01-02T03:04:05.679Z' }, { id: 'acp_0123456789ABCDEFGHIJKM' }]) {
      expect(signer.verify(checkpointPayload({ ...checkpoint, ...altered }), signature)).toBe(false);
    }
    // Another key's signature, and malformed ones, never verify (and never throw).
    expect(new AuditSigner(generateSigningKeyPem()).verify(checkpointPayload(checkpoint), signature)).toBe(false);
    for (const bad of ['', 'not base64!', signature.slice(0, -4), `${signature}AAAA`]) expect(signer.verify(checkpointPayload(checkpoint), bad)).toBe(false);
  });

  it('serves the public key as SPKI PEM and names it by fingerprint', () => {
    const signer = new AuditSigner(pem);
    expect(signer.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(signer.publicKeyPem).not.toContain('PRIVATE');
    expect(signer.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('reads a PEM with literal newlines or with \\n escapes, and only Ed25519 keys', () => {
    expect(parseSigningKey(pem)).not.toBeNull();
    expect(parseSigningKey(pem.trim().replace(/\n/g, '\\n'))).not.toBeNull();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(parseSigningKey(rsa)).toBeNull();
    expect(parseSigningKey('not a key')).toBeNull();
    const publicOnly = new AuditSigner(pem).publicKeyPem;
    expect(parseSigningKey(publicOnly)).toBeNull();
  });
});

describe('the configuration of the audit signing key and the database roles', () => {
  const server = {
    DATABASE_URL: 'postgres://paygate_app@db.example/paygate',
    PAYGATE_SECRET_PEPPER: 'p'.repeat(32),
    PAYGATE_SESSION_SECRET: 's'.repeat(32),
  };
  const configError = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('no configuration error');
  };

  it('is required with DATABASE_URL, like the pepper: every node signs with the same key', () => {
    expect(configError(server)).toMatch(/^PAYGATE_AUDIT_SIGNING_KEY must be set when DATABASE_URL is set .*openssl genpkey -algorithm ed25519/);
    expect(loadConfig({ ...server, PAYGATE_AUDIT_SIGNING_KEY: pem }).auditSigningKey).toBe(pem);
    expect(loadConfig({ ...server, PAYGATE_AUDIT_SIGNING_KEY: pem.trim().replace(/\n/g, '\\n') }).auditSigningKey).toBe(pem);
    // Embedded mode generates one when none is given.
    expect(loadConfig({}).auditSigningKey).toBeNull();
  });

  it('refuses anything but an Ed25519 private key in PEM, in one line that does not repeat it', () => {
    const message = configError({ ...server, PAYGATE_AUDIT_SIGNING_KEY: 'MC4CAQAwBQYDK2VwBCIEIKN0secret' });
    expect(message).toMatch(/^PAYGATE_AUDIT_SIGNING_KEY must be an Ed25519 private key in PEM/);
    expect(message).not.toContain('secret');
    expect(message).not.toContain('\n');
    expect(configError({ PAYGATE_AUDIT_SIGNING_KEY: new AuditSigner(pem).publicKeyPem })).toMatch(/must be an Ed25519 private key/);
  });

  it('PAYGATE_MIGRATION_DATABASE_URL names the owner beside DATABASE_URL, and only beside it', () => {
    const env = { ...server, PAYGATE_AUDIT_SIGNING_KEY: pem, PAYGATE_MIGRATION_DATABASE_URL: 'postgres://paygate_owner@db.example/paygate' };
    expect(loadConfig(env).migrationDatabaseUrl).toBe('postgres://paygate_owner@db.example/paygate');
    expect(configError({ PAYGATE_MIGRATION_DATABASE_URL: 'postgres://x@db.example/paygate' })).toMatch(/needs DATABASE_URL/);
    expect(configError({ ...env, PAYGATE_MIGRATION_DATABASE_URL: 'mysql://x' })).toMatch(/must be a postgres:\/\/ URL/);
  });

  it('takes the checkpoint period in seconds: 300 by default, 0 for on demand only', () => {
    expect(loadConfig({}).auditCheckpointIntervalMs).toBe(300_000);
    expect(loadConfig({ PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' }).auditCheckpointIntervalMs).toBe(0);
    expect(configError({ PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '-1' })).toMatch(/PAYGATE_AUDIT_CHECKPOINT_INTERVAL_SECONDS must be an integer/);
  });
});
