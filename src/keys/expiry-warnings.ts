/**
 * Expiry warnings (SPEC §14): once a key's `expiresAt` comes within the system setting
 * `apiKeyExpiryWarningDays`, its organization's owners are mailed and the webhook event
 * `api_key.expiring` fires, once per key and expiry.
 *
 * Every node runs the scheduler; exactly one warns. A warning is claimed by setting
 * `expiry_warned_for` (the expiry warned about) and `expiry_warned_at` in the same unit of work that
 * writes the webhook event, on rows taken `FOR UPDATE SKIP LOCKED`: a node skips the keys another
 * holds, and once that node commits, the claim excludes them (READ COMMITTED re-checks a locked row's
 * new version against the WHERE clause). A key whose `expiresAt` changes differs from its
 * `expiry_warned_for` again, so it is warned again when the new date comes within the window. A
 * unit that rolls back leaves no claim and no event: the next tick tries again.
 *
 * Mail leaves after the commit (never from inside the transaction). A node that dies between the
 * commit and the hand-over to SMTP loses that mail; the webhook event, in the outbox, is not lost.
 *
 * System keys belong to no organization: no webhook event; the global admins are mailed instead.
 */
import type { Database, Queryable } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import type { Mailer } from '../mail/mailer.js';
import { keyExpiringMail } from '../mail/messages.js';
import { ownerEmails } from '../webhooks/store.js';
import type { SettingsService } from '../settings/service.js';
import { isDatabaseUnavailable } from '../db/database.js';
import { CREATOR_IS_MEMBER_SQL } from './flags.js';
import { keyFromRow, type ApiKeyRecord } from './store.js';
import { toView } from './service.js';
import { globalAdminEmails } from '../users/store.js';

/** Keys claimed per unit of work; a tick repeats units until none is left. */
const BATCH = 200;

export interface ExpiryWarningLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

interface Notice {
  key: ApiKeyRecord;
  organizationName: string | null;
  recipients: string[];
}

export class ExpiryWarnings {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  /** Warnings this node has claimed since start (tests compare nodes). */
  readonly stats = { warned: 0 };

  constructor(
    private readonly deps: {
      db: Database;
      work: Work;
      settings: SettingsService;
      mailer: Mailer | null;
      log: ExpiryWarningLog;
      publicUrl: string;
      /** How often each node looks for keys to warn about (PAYGATE_EXPIRY_WARNING_INTERVAL_SECONDS); 0: never. */
      intervalMs: number;
    },
  ) {}

  /** Looks at once, then every intervalMs. */
  start(): void {
    if (this.deps.intervalMs <= 0 || !this.stopped) return;
    this.stopped = false;
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = this.runOnce()
      .then(() => undefined)
      .catch((error: unknown) => {
        if (isDatabaseUnavailable(error)) this.deps.log.warn({ reason: (error as Error).message }, 'could not look for expiring API keys: the database is unavailable; retried at the next tick');
        else this.deps.log.error({ err: error }, 'could not look for expiring API keys');
      })
      .finally(() => {
        this.running = null;
        if (this.stopped) return;
        this.timer = setTimeout(() => this.tick(), this.deps.intervalMs);
        this.timer.unref();
      });
  }

  /** Warns about every key due now (in units of BATCH keys); returns how many this node warned about. */
  async runOnce(now = new Date()): Promise<number> {
    const { apiKeyExpiryWarningDays: days } = await this.deps.settings.get();
    if (days === null) return 0;
    let total = 0;
    for (;;) {
      const notices = await this.claimBatch(days, now);
      total += notices.length;
      this.stats.warned += notices.length;
      for (const notice of notices) this.mail(notice, now);
      if (notices.length < BATCH || this.stopped) return total;
    }
  }

  private async claimBatch(days: number, now: Date): Promise<Notice[]> {
    return this.deps.work.run(async (tx) => {
      const rows = await tx.query<Record<string, unknown>>(
        `SELECT *, ${CREATOR_IS_MEMBER_SQL} AS creator_is_member FROM api_keys
          WHERE revoked_at IS NULL AND expires_at IS NOT NULL
            AND expires_at > $1 AND expires_at <= $1 + make_interval(days => $2)
            AND expiry_warned_for IS DISTINCT FROM expires_at
          ORDER BY expires_at, id LIMIT $3
          FOR UPDATE OF api_keys SKIP LOCKED`,
        [now, days, BATCH],
      );
      if (rows.length === 0) return [];
      const keys = rows.map(keyFromRow);
      // The claim: exactly one unit of work, on one node, records each (key, expiry) as warned.
      await tx.query('UPDATE api_keys SET expiry_warned_for = expires_at, expiry_warned_at = $2 WHERE id = ANY($1::text[])', [keys.map((k) => k.id), now]);
      const settings = await this.deps.settings.get(tx);
      const notices: Notice[] = [];
      const names = new Map<string, string>();
      for (const key of keys) {
        if (key.tier === 'organization' && key.organizationId) {
          tx.emit({ type: 'api_key.expiring', organizationId: key.organizationId, object: toView(key, undefined, now, settings) });
          if (!names.has(key.organizationId)) names.set(key.organizationId, await organizationName(tx, key.organizationId));
          notices.push({ key, organizationName: names.get(key.organizationId)!, recipients: await ownerEmails(tx, key.organizationId) });
        } else {
          notices.push({ key, organizationName: null, recipients: await globalAdminEmails(tx) });
        }
      }
      return notices;
    });
  }

  /** After the commit: the owners (global admins for a system key) learn it. */
  private mail(notice: Notice, now: Date): void {
    const { key } = notice;
    const { mailer } = this.deps;
    if (!mailer) {
      this.deps.log.info({ keyId: key.id, expiresAt: key.expiresAt }, 'API key expires soon; SMTP is not configured, so its owners were not mailed (the webhook event api_key.expiring was sent)');
      return;
    }
    for (const to of notice.recipients) {
      mailer.send(keyExpiringMail({ to, key: { id: key.id, name: key.name, hint: key.hint, expiresAt: key.expiresAt! }, organizationName: notice.organizationName, publicUrl: this.deps.publicUrl, now }), 'key_expiring');
    }
  }
}

async function organizationName(q: Queryable, id: string): Promise<string> {
  const [row] = await q.query<{ name: string }>('SELECT name FROM organizations WHERE id = $1', [id]);
  return row?.name ?? id;
}

