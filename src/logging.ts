/**
 * Where logs go and what they never show. One pino format for machines (JSON lines, the default
 * whenever stdout is not a terminal) and one for people (pino-pretty, when stdout is a terminal or
 * LOG_FORMAT=pretty). Redaction happens inside pino, before a line is written, so it is the same in
 * both: pino-pretty only re-formats lines that are already redacted.
 */
import type { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat } from './config.js';

/** Fields that may hold a credential, in request logs and in anything else logged. */
export const LOG_REDACTION: NonNullable<LoggerOptions['redact']> = {
  paths: [
    'req.headers.authorization',
    'req.headers.cookie',
    'req.headers["x-csrf-token"]',
    'res.headers["set-cookie"]',
    'headers.authorization',
    'headers.cookie',
    '*.secret',
    '*.password',
    '*.token',
  ],
  censor: '[REDACTED]',
};

/** Whether `format` means human-readable output on `out`: `auto` is pretty on a terminal only. */
export function isPretty(format: LogFormat, out: { isTTY?: boolean } = process.stdout): boolean {
  return format === 'pretty' || (format === 'auto' && out.isTTY === true);
}

/**
 * The destination of a logger: a pino-pretty stream for people, else undefined (pino's own JSON on
 * stdout). Synchronous, like pino's default, so the last line before process.exit is not lost.
 */
export function logDestination(format: LogFormat, out: Writable & { isTTY?: boolean; fd?: number } = process.stdout): DestinationStream | undefined {
  if (!isPretty(format, out)) return undefined;
  return pretty({
    destination: out === process.stdout ? 1 : out,
    sync: true,
    colorize: out.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
  });
}

/** The process's own logger (start, shutdown, background work), formatted like the request log. */
export function createLogger(options: { level: string; format: LogFormat }): Logger {
  const settings = { level: options.level, redact: LOG_REDACTION };
  const destination = logDestination(options.format);
  return destination ? pino(settings, destination) : pino(settings);
}
