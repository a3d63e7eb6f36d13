/**
 * Idempotency-Key for POSTs that create billable or money-moving objects (SPEC §11), Stripe's rules:
 * the same key with the same request replays the stored response; with a different request it is
 * `409 idempotency_conflict`; keys are per organization and kept 24 h. Concurrent duplicates create
 * exactly one object: the key row is inserted in the same transaction as the object, so a duplicate's
 * INSERT waits on the unique index until the first commits, then replays its response. A request that
 * fails (rolls back) leaves no key behind, so it can be retried with the same key.
 *
 * Responses that hold a secret (a portal magic link: its URL signs a client in) are stored sealed:
 * AES-256-GCM under a key derived from the pepper (HKDF-SHA256, src/sealing.ts), bound to the row (organization,
 * key, request hash) as associated data. The database alone then holds nothing that signs anyone
 * in, while a replay still returns the very same response, as Stripe's idempotency promises (a
 * replay that minted a new link would leave the first response's link live as a second one).
 */
import { createHash } from 'node:crypto';
import type { Peppers } from '../keys/hash.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import { canonicalJson } from '../canonical-json.js';
import { Sealer } from '../sealing.js';
import { AppError, validationError } from '../errors.js';

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export interface IdempotentResult<T> {
  status: number;
  body: T;
  replayed: boolean;
}

export interface IdempotencyRequest {
  organizationId: string;
  /** The Idempotency-Key header, if any. */
  key: string | undefined;
  method: string;
  /** The route pattern, so /v1/x and /v1/organizations/{orgId}/x count as one endpoint. */
  path: string;
  body: unknown;
}

export interface IdempotencyOptions {
  /** The response holds a secret: store it sealed, never in clear (see the file comment). */
  sealed?: boolean;
}

/** The sealing key's HKDF info (src/sealing.ts); unchanged since responses were first sealed. */
const SEAL_INFO = 'paygate idempotency response v1';

export class IdempotencyService {
  private readonly sealer: Sealer;

  constructor(private readonly deps: { work: Work; peppers: Peppers }) {
    this.sealer = new Sealer(deps.peppers, SEAL_INFO);
  }

  private seal(body: unknown, aad: Buffer): Buffer {
    return this.sealer.seal(JSON.stringify(body), aad);
  }

  /** The stored body, or null when it cannot be opened (another pepper, or the row was tampered with). */
  private unseal<T>(sealed: Buffer, aad: Buffer): T | null {
    const plaintext = this.sealer.unseal(sealed, aad);
    if (plaintext === null) return null;
    try {
      return JSON.parse(plaintext.toString('utf8')) as T;
    } catch {
      return null;
    }
  }

  async run<T>(
    request: IdempotencyRequest,
    create: (tx: UnitOfWork) => Promise<{ status: number; body: T }>,
    options: IdempotencyOptions = {},
  ): Promise<IdempotentResult<T>> {
    if (request.key === undefined) {
      const result = await this.deps.work.run(create);
      return { ...result, replayed: false };
    }
    if (!KEY_PATTERN.test(request.key)) {
      throw validationError([{ path: '/headers/idempotency-key', message: 'must be 1 to 255 printable ASCII characters' }]);
    }
    const hash = createHash('sha256').update(`${request.method} ${request.path}\n${canonicalJson(request.body ?? null)}`).digest('hex');
    // A sealed body opens only in its own row: moved to another key or organization, it fails.
    const aad = Buffer.from(`${request.organizationId}\n${request.key}\n${hash}`, 'utf8');
    return this.deps.work.run(async (tx) => {
      // A key older than 24 h is expired: it is taken over as if new.
      const claimed = await tx.query(
        `INSERT INTO idempotency_keys (organization_id, key, method, path, request_hash, response_status)
         VALUES ($1, $2, $3, $4, $5, 0)
         ON CONFLICT (organization_id, key) DO UPDATE
           SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
               response_status = 0, response_body = NULL, response_sealed = NULL, created_at = now()
           WHERE idempotency_keys.created_at < now() - interval '24 hours'
         RETURNING key`,
        [request.organizationId, request.key, request.method, request.path, hash],
      );
      if (claimed.length === 0) {
        const [stored] = await tx.query<{ request_hash: string; response_status: number; response_body: T; response_sealed: Buffer | null }>(
          'SELECT request_hash, response_status, response_body, response_sealed FROM idempotency_keys WHERE organization_id = $1 AND key = $2',
          [request.organizationId, request.key],
        );
        if (!stored || stored.request_hash !== hash) {
          throw new AppError('idempotency_conflict', 'This Idempotency-Key was already used with a different request');
        }
        if (stored.response_sealed === null) return { status: stored.response_status, body: stored.response_body, replayed: true };
        const body = this.unseal<T>(stored.response_sealed, aad);
        // Never a 500 and never a second object: the caller learns to use a new key.
        if (body === null) throw new AppError('idempotency_conflict', 'The stored response of this Idempotency-Key can no longer be read; use a new key');
        return { status: stored.response_status, body, replayed: true };
      }
      const result = await create(tx);
      await tx.query(
        'UPDATE idempotency_keys SET response_status = $3, response_body = $4, response_sealed = $5 WHERE organization_id = $1 AND key = $2',
        [
          request.organizationId,
          request.key,
          result.status,
          options.sealed ? null : JSON.stringify(result.body),
          options.sealed ? this.seal(result.body, aad) : null,
        ],
      );
      return { ...result, replayed: false };
    });
  }

  /** Deletes keys past their 24 h; runs on a timer. */
  async purgeExpired(db: { query(sql: string): Promise<unknown> }): Promise<void> {
    await db.query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'");
  }
}
