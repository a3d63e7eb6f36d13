/**
 * Leaked-key reports (SPEC §13): anyone may report tokens they found in public; a token whose
 * checksum, id and secret (current, or previous within its grace) all match is contained at once,
 * on every node, per the system setting `leakedKeyAction`: `revoke`, or `quarantine` (`:read`
 * routes only until the key is rotated or revoked; auth/plugin.ts).
 *
 * What a reporter learns: nothing. The plain format answers `202 { received }` whatever the tokens
 * are, and a report costs the same whether or not a token matched:
 * - every well-formed token with an id Paygate could have minted costs one row lookup (all of them
 *   in one query) and two HMACs (current and previous secret, against a dummy hash when the key or
 *   its previous secret does not exist), constant-time compares;
 * - one unit of work runs for every report that names such an id, locking the matched keys (none,
 *   or some: the same statement) and publishing an invalidation for every id named, matched or not,
 *   so the commit and the wait for the peers' acknowledgements are the same work either way;
 * - mail leaves in the background after the commit, webhook events go through the outbox;
 * - and the answer is held until RESPONSE_FLOOR_MS after the request began, which covers what
 *   still differs (a few UPDATEs and the audit append when a key matched).
 * Only verified partner reports (GitHub's secret-scanning format, signed) get labels back.
 *
 * Containment holds on every node once the answer leaves: the unit of work resolves only after every
 * live peer dropped its cached copy of the keys (src/unit-of-work.ts), and the floor only delays the
 * answer further.
 */
import { hash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/database.js';
import type { Work, UnitOfWork } from '../unit-of-work.js';
import { SYSTEM_ACTOR } from '../audit/events.js';
import { isMintedKeyId, parseToken } from '../keys/token.js';
import { tokenMatches, type Peppers } from '../keys/hash.js';
import { containLeakedKey, findKeysByIds, findKeyById, type ApiKeyRecord } from '../keys/store.js';
import { toView } from '../keys/service.js';
import type { LeakedKeyAction, SettingsService } from '../settings/service.js';
import type { Mailer } from '../mail/mailer.js';
import { leakedKeyMail } from '../mail/messages.js';
import type { RateLimiter } from '../rate-limit/limiter.js';
import { addressBucket, networkBucket } from '../auth/throttle.js';
import { lockKeys, organizationOwners } from './store.js';
import { globalAdminEmails } from '../users/store.js';
import type { PartnerKeys } from './signature.js';

/** Reports per source address an hour (SPEC §13). */
export const REPORTS_PER_HOUR = 60;
const REPORT_WINDOW_SECONDS = 3600;
/** New /64 sources one IPv6 /48 may open an hour, so one site cannot fill the table (as auth/throttle.ts). */
const NEW_SOURCES_PER_NETWORK = 16;
/**
 * The least time a report takes to answer. A containment adds a few milliseconds (the key updates,
 * the audit append) to work that is otherwise the same; 100 ms is far above that difference and
 * above the usual cost of a whole report, so the answer's timing does not show a match.
 */
export const RESPONSE_FLOOR_MS = 100;
/** Tokens per report (SPEC §13), and the longest token looked at. */
export const MAX_TOKENS = 1000;
export const MAX_TOKEN_LENGTH = 200;

/** A 32-byte hash no HMAC output equals in practice: compared against when there is nothing real. */
const DUMMY_HASH = Buffer.alloc(32);

export interface ReportedToken {
  token: string;
  /** Where it was found (a URL), as the reporter says. */
  url: string | null;
  /** Who or what found it, as the reporter says. */
  source: string | null;
}

export interface ReportMeta {
  format: 'plain' | 'github';
  ip: string;
  requestId: string;
  /** The partner key that signed the report (GitHub format). */
  signedBy?: string;
}

export interface ContainedKey {
  keyId: string;
  organizationId: string | null;
  action: LeakedKeyAction;
  /** False when the key was already contained that way (a repeat report): audited, nobody re-notified. */
  changed: boolean;
}

/** Who is mailed about one contained key: its organization's owners, or the global admins (system key). */
interface LeakNotice {
  record: ApiKeyRecord;
  action: LeakedKeyAction;
  report: ReportedToken;
  /** null for a system key. */
  organizationName: string | null;
  recipients: string[];
}

export interface ReportOutcome {
  /** Per reported token, in order: whether it is a real token of a key (current or live previous secret). */
  matched: boolean[];
  contained: ContainedKey[];
}

interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Reporter-supplied text as it may appear in audit details and mail: one line, bounded. */
export function reporterText(value: string | null | undefined, max: number): string | null {
  if (typeof value !== 'string') return null;
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').trim();
  return clean === '' ? null : clean.slice(0, max);
}

export class LeakService {
  constructor(
    private readonly deps: {
      db: Database;
      work: Work;
      peppers: Peppers;
      settings: SettingsService;
      mailer: Mailer | null;
      /** The reports' own table of source windows (never shared with sign-in or key limits). */
      limiter: RateLimiter;
      /** The public keys that sign partner reports (PAYGATE_SECRET_SCANNING_KEYS). */
      partnerKeys: PartnerKeys;
      publicUrl: string;
      log: Log;
      now?: () => Date;
      /** RESPONSE_FLOOR_MS unless a test or the bench changes it. */
      responseFloorMs?: number;
    },
  ) {}

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  get partnerKeys(): PartnerKeys {
    return this.deps.partnerKeys;
  }

  async close(): Promise<void> {
    await this.deps.limiter.close();
  }

  /**
   * Counts a report against its source: 0 when allowed, else the seconds to wait. IPv4 per address,
   * IPv6 per /64, and a /48 opens at most NEW_SOURCES_PER_NETWORK /64 windows an hour.
   */
  async attempt(ip: string): Promise<number> {
    const key = `leak:ip:${addressBucket(ip)}`;
    const source = await this.deps.limiter.consume(key, REPORTS_PER_HOUR, REPORT_WINDOW_SECONDS);
    if (!source.allowed) return source.retryAfterSeconds;
    const network = networkBucket(ip);
    if (network && source.opened) {
      const sources = await this.deps.limiter.consume(`leak:net:${network}`, NEW_SOURCES_PER_NETWORK, REPORT_WINDOW_SECONDS);
      if (!sources.allowed) {
        await this.deps.limiter.reset(key);
        return sources.retryAfterSeconds;
      }
    }
    return 0;
  }

  /** Takes back a counted report (it turned out to be a verified partner report, which is not limited). */
  async notCounted(ip: string): Promise<void> {
    await this.deps.limiter.release(`leak:ip:${addressBucket(ip)}`);
  }

  /**
   * Checks every token and contains every key one of them belongs to; resolves once containment
   * holds on every node, and never before the response floor.
   */
  async report(tokens: readonly ReportedToken[], meta: ReportMeta, startedAt = performance.now()): Promise<ReportOutcome> {
    const outcome = await this.check(tokens, meta);
    const wait = startedAt + (this.deps.responseFloorMs ?? RESPONSE_FLOOR_MS) - performance.now();
    if (wait > 0) await sleep(wait);
    return outcome;
  }

  private async check(tokens: readonly ReportedToken[], meta: ReportMeta): Promise<ReportOutcome> {
    const now = this.now();
    const parsed = tokens.map((t) => {
      const result = t.token.length <= MAX_TOKEN_LENGTH ? parseToken(t.token) : null;
      // An id without a valid tag was never minted: it cannot match, and costs no lookup (as in keys/verify.ts).
      return result?.ok && isMintedKeyId(this.deps.peppers.idTagKey, result.token.id) ? result.token : null;
    });
    const ids = [...new Set(parsed.flatMap((p) => (p ? [p.id] : [])))];
    if (ids.length === 0) return { matched: tokens.map(() => false), contained: [] };

    const records = new Map((await findKeysByIds(this.deps.db, ids)).map((r) => [r.id, r]));
    const matched = parsed.map((p) => (p ? secretOf(this.deps.peppers, records.get(p.id) ?? null, p.token, now) !== null : false));

    // The first report of each matched key that is still live (revoked and expired keys need nothing).
    const hits = new Map<string, ReportedToken>();
    parsed.forEach((p, i) => {
      const record = p ? records.get(p.id) : undefined;
      if (!p || !record || !matched[i] || hits.has(p.id)) return;
      if (record.revokedAt || (record.expiresAt && record.expiresAt <= now)) return;
      hits.set(p.id, tokens[i]!);
    });

    const notices: LeakNotice[] = [];
    const contained = await this.deps.work.run(async (tx) => {
      const { leakedKeyAction: action } = await this.deps.settings.get(tx);
      await lockKeys(tx, [...hits.keys()]);
      const done: ContainedKey[] = [];
      for (const [id, report] of hits) {
        // Read again under the lock: a rotation or revocation since the first read wins.
        const key = await findKeyById(tx, id);
        const secret = key ? secretOf(this.deps.peppers, key, report.token, now) : null;
        if (!key || secret === null || key.revokedAt || (key.expiresAt && key.expiresAt <= now)) continue;
        const result = await this.contain(tx, key, secret, action, report, meta, now);
        done.push(result.contained);
        if (result.contained.changed && result.record.organizationId) {
          const { name, owners } = await organizationOwners(tx, result.record.organizationId);
          notices.push({ record: result.record, action, report, organizationName: name, recipients: owners });
        } else if (result.contained.changed) {
          // A system key belongs to no organization: the global admins, who manage system keys, are told.
          notices.push({ record: result.record, action, report, organizationName: null, recipients: await globalAdminEmails(tx) });
        }
      }
      // Every id named, matched or not: the commit does the same work whatever the tokens were.
      tx.publish(...ids.map((subject) => ({ kind: 'api_key' as const, subject })));
      return done;
    });

    for (const c of contained) this.deps.log.warn({ keyId: c.keyId, organizationId: c.organizationId, action: c.action, repeat: !c.changed }, 'API key reported leaked; contained');
    this.notify(notices);
    return { matched, contained };
  }

  /** Marks one key leaked and contains it, with its audit events and webhook events, in `tx`. */
  private async contain(
    tx: UnitOfWork,
    key: ApiKeyRecord,
    secret: 'current' | 'previous',
    action: LeakedKeyAction,
    report: ReportedToken,
    meta: ReportMeta,
    now: Date,
  ): Promise<{ record: ApiKeyRecord; contained: ContainedKey }> {
    // Quarantining a key already quarantined changes nothing; revoking always does (it is live here).
    const changed = action === 'revoke' || key.quarantinedAt === null;
    const record = changed ? await containLeakedKey(tx, key.id, action, now) : key;
    const base = { actor: SYSTEM_ACTOR, organizationId: key.organizationId, target: { type: 'api_key', id: key.id }, ip: meta.ip, requestId: meta.requestId };
    // Never the token: where it was found, who said so, which secret it was, and what was done.
    tx.audit({
      ...base,
      action: 'api_key.leaked',
      details: {
        tier: key.tier,
        format: meta.format,
        ...(meta.signedBy ? { signedBy: meta.signedBy } : {}),
        source: reporterText(report.source, 200),
        url: reporterText(report.url, 2048),
        secret,
        action,
        ...(changed ? {} : { repeat: true }),
      },
    });
    if (changed && action === 'quarantine') tx.audit({ ...base, action: 'api_key.quarantined', details: { reason: 'leaked' } });
    if (changed && action === 'revoke') tx.audit({ ...base, action: key.tier === 'system' ? 'system_key.revoked' : 'api_key.revoked', details: { reason: 'leaked' } });
    if (changed && key.tier === 'organization' && key.organizationId) {
      const view = toView(record, undefined, now);
      tx.emit({ type: 'api_key.leaked', organizationId: key.organizationId, object: view });
      tx.emit({ type: action === 'revoke' ? 'api_key.revoked' : 'api_key.quarantined', organizationId: key.organizationId, object: view });
    }
    return { record, contained: { keyId: key.id, organizationId: key.organizationId, action, changed } };
  }

  /** After the commit: the owners of each organization whose key was contained (the global admins for a system key) are mailed. */
  private notify(notices: LeakNotice[]): void {
    for (const notice of notices) {
      if (!this.deps.mailer) {
        this.deps.log.warn({ keyId: notice.record.id, recipients: notice.recipients.length }, 'a leaked API key was contained; SMTP is not configured, so its owners were not mailed');
        continue;
      }
      for (const to of notice.recipients) {
        this.deps.mailer.send(
          leakedKeyMail({
            to,
            organizationName: notice.organizationName,
            key: { id: notice.record.id, name: notice.record.name, hint: notice.record.hint },
            action: notice.action,
            url: reporterText(notice.report.url, 500),
            source: reporterText(notice.report.source, 200),
            publicUrl: this.deps.publicUrl,
          }),
          'key_leaked',
        );
      }
    }
  }
}

/**
 * Which secret of `key` the token is: 'current', 'previous' (only while its grace runs), or null.
 * Always two HMACs and two constant-time compares, against a dummy hash where there is no key or no
 * live previous secret: the cost does not tell whether the key exists.
 */
function secretOf(peppers: Peppers, key: ApiKeyRecord | null, token: string, now: Date): 'current' | 'previous' | null {
  const version = peppers.current.version;
  const current = tokenMatches(peppers, token, key?.secretHash ?? DUMMY_HASH, key ? key.pepperVersion : version);
  const previousLive = key !== null && key.previousSecretHash !== null && key.previousSecretExpiresAt !== null && key.previousSecretExpiresAt > now;
  const previous = tokenMatches(peppers, token, previousLive ? key.previousSecretHash! : DUMMY_HASH, previousLive ? (key.previousPepperVersion ?? 0) : version);
  if (current) return 'current';
  return previous ? 'previous' : null;
}

/** The hex SHA-256 of a token, as a secret-scanning partner's answer names it. */
export function tokenHash(token: string): string {
  return hash('sha256', token, 'hex');
}
