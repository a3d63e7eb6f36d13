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

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type LogMethod = (...args: unknown[]) => void;
/** pino's own `child`, called with the logger it belongs to. */
type MakeChild = (this: Logger, bindings: Record<string, unknown>, options?: Record<string, unknown>) => Logger;

/**
 * A request's logger, made on first use. Fastify makes a child logger for every request, and a pino
 * child applies the redaction to its bindings at once: that costs more than a cached key
 * verification. At the production level (warn) almost no request writes a line, so the child is
 * made only when one does, or when something asks for its bindings or a child of it.
 */
class LazyRequestLogger {
  private real: Logger | null = null;

  constructor(
    private readonly parent: Logger,
    private readonly ownBindings: Record<string, unknown>,
    private readonly makeChild: MakeChild,
  ) {}

  private made(): Logger {
    return (this.real ??= this.makeChild.call(this.parent, this.ownBindings));
  }

  private write(level: LevelName, args: unknown[]): void {
    const logger = this.real ?? this.parent;
    if (logger.isLevelEnabled(level)) (this.made()[level] as LogMethod)(...args);
  }

  get level(): string {
    return (this.real ?? this.parent).level;
  }

  set level(level: string) {
    this.made().level = level;
  }

  isLevelEnabled(level: string): boolean {
    return (this.real ?? this.parent).isLevelEnabled(level);
  }

  bindings(): Record<string, unknown> {
    return this.made().bindings();
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Record<string, unknown>, options?: Record<string, unknown>): Logger {
    return this.made().child(bindings, options);
  }
}

/**
 * Makes the children Fastify asks of `root` for each request lazy: a lazy child unless options of
 * its own are given (a route's log level), which a real child applies.
 *
 * Done on the root's `child` rather than as Fastify's `childLoggerFactory`: Fastify checks the
 * logger a custom factory returns on every request (seven method lookups and an array, ~1 % of a
 * bare request); with its default factory, which calls `root.child(bindings, options)`, it does
 * not. pino's children inherit from their parent, so a child's own `child` comes here too and is
 * made for real from that child.
 */
export function makeRequestChildrenLazy(root: Logger): void {
  const makeChild = root.child as unknown as MakeChild;
  root.child = function child(this: Logger, bindings: Record<string, unknown>, options?: Record<string, unknown>) {
    if (this === root && !hasOwnKey(options)) return new LazyRequestLogger(root, bindings, makeChild) as unknown as Logger;
    return makeChild.call(this, bindings, options);
  } as unknown as Logger['child'];
}

function hasOwnKey(options: Record<string, unknown> | undefined): boolean {
  if (options !== undefined) for (const _ in options) return true;
  return false;
}
