/**
 * A real SMTP receiver for tests (the `smtp-server` package) on a free loopback port: Paygate's
 * mailer talks SMTP to it exactly as to a mail server, and tests read what arrived, links included.
 * Never a mocked transport: the message goes through nodemailer's SMTP client and over a socket.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  subject: string;
  /** The decoded text body. */
  text: string;
}

export interface MailReceiver {
  /** PAYGATE_SMTP_URL for a server that sends here. */
  url: string;
  env: { PAYGATE_SMTP_URL: string; PAYGATE_MAIL_FROM: string };
  received: ReceivedMail[];
  /** Waits for the next message to `to` that no earlier call has taken (10 s at most, then fails). */
  next(to: string, timeoutMs?: number): Promise<ReceivedMail>;
  /** Messages to `to` that arrived so far, taken or not. */
  to(to: string): ReceivedMail[];
  /** Refuses every message to `to` (550 at RCPT TO), as a mail server refusing a recipient does. */
  refuse(to: string): void;
  /** Accepts messages to `to` again. */
  allow(to: string): void;
  close(): Promise<void>;
}

/** The first https?:// link in a message that goes to `path` (e.g. /admin/accept-invitation). */
export function linkIn(mail: ReceivedMail, path: string): URL {
  const match = mail.text.match(/https?:\/\/\S+/g)?.map((s) => new URL(s)).find((u) => u.pathname === path);
  if (!match) throw new Error(`no ${path} link in the mail "${mail.subject}":\n${mail.text}`);
  return match;
}

export async function startMailReceiver(): Promise<MailReceiver> {
  const received: ReceivedMail[] = [];
  const taken = new Set<ReceivedMail>();
  const refused = new Set<string>();
  const arrivals = new EventEmitter();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(address, _session, callback) {
      if (refused.has(address.address.toLowerCase())) {
        const error = Object.assign(new Error('Mailbox unavailable'), { responseCode: 550 });
        callback(error);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const mail = parse(Buffer.concat(chunks).toString('utf8'), session.envelope);
        received.push(mail);
        arrivals.emit('mail');
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  const url = `smtp://127.0.0.1:${port}`;

  const take = (to: string) => received.find((m) => !taken.has(m) && m.to.includes(to.toLowerCase()));
  return {
    url,
    env: { PAYGATE_SMTP_URL: url, PAYGATE_MAIL_FROM: 'Paygate <paygate@example.com>' },
    received,
    to: (to) => received.filter((m) => m.to.includes(to.toLowerCase())),
    refuse: (to) => void refused.add(to.toLowerCase()),
    allow: (to) => void refused.delete(to.toLowerCase()),
    next(to, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const mail = take(to);
          if (!mail) return false;
          taken.add(mail);
          cleanup();
          resolve(mail);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms (received: ${received.map((m) => m.to.join(',')).join('; ') || 'none'})`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          arrivals.off('mail', check);
        };
        if (!check()) arrivals.on('mail', check);
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Headers and the text body of a single-part message, as nodemailer writes a text-only mail. */
function parse(raw: string, envelope: { mailFrom: false | { address: string }; rcptTo: Array<{ address: string }> }): ReceivedMail {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const body = raw.slice(split + 4);
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const encoding = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  const text =
    encoding === 'base64'
      ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
      : encoding === 'quoted-printable'
        ? Buffer.from(
            body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
            'latin1',
          ).toString('utf8')
        : body;
  return {
    from: envelope.mailFrom ? envelope.mailFrom.address : '',
    to: envelope.rcptTo.map((r) => r.address.toLowerCase()),
    subject: decodeWords(headers.get('subject') ?? ''),
    text: text.replace(/\r\n/g, '\n'),
  };
}

/** RFC 2047 encoded words (=?UTF-8?Q?...?= / =?UTF-8?B?...?=), as nodemailer writes non-ASCII subjects. */
function decodeWords(value: string): string {
  return value.replace(/=\?utf-8\?([qb])\?([^?]*)\?=\s*/gi, (_, kind: string, data: string) =>
    kind.toLowerCase() === 'b'
      ? Buffer.from(data, 'base64').toString('utf8')
      : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (__, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8'),
  );
}
