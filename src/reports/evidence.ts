/**
 * The compliance-evidence bundle (SPEC §14): what an auditor asks of a key system, in one signed
 * JSON document:
 *
 *   { object: "compliance_evidence", generatedAt, settings,
 *     keys: { total, byStatus, byFlag },
 *     audit: { oldestEventAt, events, chainVerified, checkpoint },
 *     signature }
 *
 * - `settings`: the system settings as GET /v1/system/settings shows them.
 * - `keys`: every key of the instance (both tiers; deleted keys are gone), counted by status and
 *   by flag (every status and flag present, 0 when none), walked in pages like the credential report.
 * - `audit`: the oldest event's time and the number of events; `chainVerified`: the whole hash
 *   chain recomputed and checked against the newest checkpoint (GET /v1/system/audit-integrity);
 *   `checkpoint`: that newest signed checkpoint, or null.
 * - `signature`: the Ed25519 signature, in base64, by the audit checkpoint key, of the UTF-8 bytes
 *   of `canonicalJson(bundle without "signature")` (src/canonical-json.ts: keys sorted at every
 *   depth, no spaces). Verify with the PEM of GET /v1/system/audit-checkpoints/public-key. The
 *   signed bytes start with `{`, checkpoint payloads with `paygate-audit-checkpoint/v1`: neither can
 *   pass for the other.
 */
import type { Database } from '../db/database.js';
import { canonicalJson } from '../canonical-json.js';
import type { AuditSigner } from '../audit/signing.js';
import type { AuditService } from '../audit/service.js';
import { latestCheckpoint, type AuditCheckpoint } from '../audit/checkpoints.js';
import type { SystemSettings } from '../settings/service.js';
import { KEY_FLAGS, keyFlags, type KeyFlag } from '../keys/flags.js';
import { keyStatus } from '../keys/service.js';
import { keyPages } from './credential-report.js';

const STATUSES = ['active', 'quarantined', 'expired', 'revoked'] as const;

export interface ComplianceEvidence {
  object: 'compliance_evidence';
  generatedAt: string;
  settings: SystemSettings;
  keys: { total: number; byStatus: Record<string, number>; byFlag: Record<KeyFlag, number> };
  audit: { oldestEventAt: string | null; events: number; chainVerified: boolean; checkpoint: AuditCheckpoint | null };
  signature: string;
}

/** The bytes the signature covers: the canonical JSON of the bundle without `signature`. */
export function evidencePayload(bundle: Omit<ComplianceEvidence, 'signature'> | Record<string, unknown>): Buffer {
  const { signature: _signature, ...unsigned } = bundle as Record<string, unknown>;
  return Buffer.from(canonicalJson(unsigned), 'utf8');
}

export async function buildComplianceEvidence(deps: {
  db: Database;
  settings: SystemSettings;
  audit: Pick<AuditService, 'verifyChain'>;
  signer: AuditSigner;
  now: Date;
}): Promise<ComplianceEvidence> {
  const { db, settings, now } = deps;
  const byStatus: Record<string, number> = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  const byFlag = Object.fromEntries(KEY_FLAGS.map((f) => [f, 0])) as Record<KeyFlag, number>;
  let total = 0;
  for await (const page of keyPages(db, { kind: 'system' })) {
    for (const key of page) {
      total++;
      const status = keyStatus(key, now);
      byStatus[status] = (byStatus[status] ?? 0) + 1;
      for (const flag of keyFlags(key, settings, now)) byFlag[flag]++;
    }
  }
  const [stats] = await db.query<{ oldest: Date | null; events: number }>('SELECT min(at) AS oldest, count(*)::int AS events FROM audit_events');
  const integrity = await deps.audit.verifyChain();
  const checkpoint = await latestCheckpoint(db);
  const unsigned: Omit<ComplianceEvidence, 'signature'> = {
    object: 'compliance_evidence',
    generatedAt: now.toISOString(),
    settings,
    keys: { total, byStatus, byFlag },
    audit: { oldestEventAt: stats?.oldest ? stats.oldest.toISOString() : null, events: stats?.events ?? 0, chainVerified: integrity.ok, checkpoint },
  };
  return { ...unsigned, signature: deps.signer.sign(evidencePayload(unsigned)) };
}
