/**
 * Idempotency-Key for POSTs that create billable or money-moving objects (SPEC §11), Stripe's rules:
 * the same key with the same request replays the stored response; with a different request it is
 * `409 idempotency_conflict`; keys are per organization and kept 24 h. Concurrent duplicates create
 * exactly one object: the key row is inserted in the same transaction as the object, so a duplicate's
 * INSERT waits on the unique index until the first commits, then replays its response. A request that
 * fails (rolls back) leaves no key behind, so it can be retried with the same key.
 */
import { createHash } from 'node:crypto';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import { canonicalJson } from '../canonical-json.js';
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

export class IdempotencyService {
  constructor(private readonly deps: { work: Work }) {}

  async run<T>(request: IdempotencyRequest, create: (tx: UnitOfWork) => Promise<{ status: number; body: T }>): Promise<IdempotentResult<T>> {
    if (request.key === undefined) {
      const result = await this.deps.work.run(create);
      return { ...result, replayed: false };
    }
    if (!KEY_PATTERN.test(request.key)) {
      throw validationError([{ path: '/headers/idempotency-key', message: 'must be 1 to 255 printable ASCII characters' }]);
    }
    const hash = createHash('sha256').update(`${request.method} ${request.path}\n${canonicalJson(request.body ?? null)}`).digest('hex');
    return this.deps.work.run(async (tx) => {
      // A key older than 24 h is expired: it is taken over as if new.
      const claimed = await tx.query(
        `INSERT INTO idempotency_keys (organization_id, key, method, path, request_hash, response_status)
         VALUES ($1, $2, $3, $4, $5, 0)
         ON CONFLICT (organization_id, key) DO UPDATE
           SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
               response_status = 0, response_body = NULL, created_at = now()
           WHERE idempotency_keys.created_at < now() - interval '24 hours'
         RETURNING key`,
        [request.organizationId, request.key, request.method, request.path, hash],
      );
      if (claimed.length === 0) {
        const [stored] = await tx.query<{ request_hash: string; response_status: number; response_body: T }>(
          'SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE organization_id = $1 AND key = $2',
          [request.organizationId, request.key],
        );
        if (!stored || stored.request_hash !== hash) {
          throw new AppError('idempotency_conflict', 'This Idempotency-Key was already used with a different request');
        }
        return { status: stored.response_status, body: stored.response_body, replayed: true };
      }
      const result = await create(tx);
      await tx.query('UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE organization_id = $1 AND key = $2', [
        request.organizationId,
        request.key,
        result.status,
        JSON.stringify(result.body),
      ]);
      return { ...result, replayed: false };
    });
  }

  /** Deletes keys past their 24 h; runs on a timer. */
  async purgeExpired(db: { query(sql: string): Promise<unknown> }): Promise<void> {
    await db.query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'");
  }
}
