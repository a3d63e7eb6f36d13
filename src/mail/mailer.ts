/**
 * Outgoing mail over SMTP (PAYGATE_SMTP_URL), on nodemailer. When SMTP is not configured there is no
 * mailer at all (`createMailer` returns null) and callers hand the link to whoever asked instead
 * (SPEC §7: an invitation's `url`): no silent no-op that would look like delivery.
 *
 * Mail leaves only after the change that asked for it has committed, and never inside a database
 * transaction (a transaction must not wait on a mail server). `send` hands the message over and
 * returns at once; delivery runs in the background, so an answer never waits on the mail server,
 * and a request whose mail depends on a secret fact (does this account exist?) takes the same time
 * either way. A failed delivery is logged (without the message, which holds a link) and counted; the
 * committed change stands: an invitation can be sent again or cancelled, a reset asked for again.
 */
import { createTransport } from 'nodemailer';
import type { Config } from '../config.js';

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface MailLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** What a message is for, in the log: never its text, which holds a single-use link. */
export type MailPurpose = 'invitation' | 'password_reset' | 'webhook_disabled' | 'key_leaked' | 'key_expiring';

type Transport = ReturnType<typeof createTransport>;

export class Mailer {
  private readonly transport: Transport;
  private readonly inFlight = new Set<Promise<void>>();
  readonly stats = { sent: 0, failed: 0 };

  constructor(
    options: { url: string; from: string },
    private readonly log: MailLog,
  ) {
    this.transport = createTransport(
      {
        url: options.url,
        // Bounded: a background delivery must not hang on a dead server for nodemailer's 10 minutes.
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 30_000,
      },
      { from: options.from },
    );
  }

  /** Hands a message over for delivery in the background; call it after the commit. Never throws. */
  send(message: MailMessage, purpose: MailPurpose): void {
    const delivery = this.transport
      .sendMail({ to: message.to, subject: message.subject, text: message.text })
      .then(
        () => {
          this.stats.sent++;
          this.log.info({ purpose }, 'mail delivered to the SMTP server');
        },
        (error: Error & { responseCode?: number }) => {
          this.stats.failed++;
          this.log.error({ purpose, to: message.to, err: error.message, responseCode: error.responseCode }, 'mail could not be delivered');
        },
      )
      .finally(() => this.inFlight.delete(delivery));
    this.inFlight.add(delivery);
  }

  /** Resolves once every delivery handed over so far has finished (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    await this.idle();
    this.transport.close();
  }
}

/** The mailer of this configuration, or null when SMTP is not configured. */
export function createMailer(config: Pick<Config, 'smtpUrl' | 'mailFrom'>, log: MailLog): Mailer | null {
  if (!config.smtpUrl) return null;
  return new Mailer({ url: config.smtpUrl, from: config.mailFrom! }, log);
}
