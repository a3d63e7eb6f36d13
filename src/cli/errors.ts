/** How the CLI reports failure: one line on stderr and an exit code a script can branch on. */
import { CommanderError } from 'commander';
import { AppError } from '../errors.js';
import { ConfigError } from '../config.js';
import { EmbeddedDatabaseInUse } from '../db/embedded.js';

/** Exit codes of `paygate`. */
export const EXIT = {
  ok: 0,
  /** The command ran and failed: validation, not found, conflict, database error. */
  failed: 1,
  /** The command line or the configuration (environment) is wrong. */
  usage: 2,
  /** The embedded database belongs to another running process (usually the server). */
  databaseInUse: 3,
} as const;

/** A failure the CLI itself detected (bad option value, missing organization): never a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Node reports some network failures (both localhost addresses refused) as an AggregateError with no message. */
function messageOf(error: Error): string {
  if (error.message) return error.message;
  const inner = (error as Partial<AggregateError>).errors;
  if (Array.isArray(inner) && inner.length > 0) return inner.map((e) => messageOf(e as Error)).join('; ');
  return (error as NodeJS.ErrnoException).code ?? error.name;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

/** The line to print and the exit code for anything a command threw. */
export function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: oneLine(error.message), exitCode: error.exitCode };
  // The message of an AppError is the problem `detail` the HTTP API would send; the code is the same too.
  if (error instanceof AppError) return { message: oneLine(`${error.code}: ${error.message}`), exitCode: EXIT.failed };
  if (error instanceof ConfigError) return { message: oneLine(`configuration error: ${error.message}`), exitCode: EXIT.usage };
  if (error instanceof EmbeddedDatabaseInUse) return { message: oneLine(error.message), exitCode: EXIT.databaseInUse };
  if (error instanceof CommanderError) {
    // Help (asked for, or shown because a command group was run without a command) is already printed.
    const message = error.code.startsWith('commander.help') || error.code === 'commander.version' ? '' : oneLine(error.message);
    return { message, exitCode: error.exitCode === 0 ? EXIT.ok : EXIT.usage };
  }
  if (error instanceof Error) return { message: oneLine(`unexpected error: ${messageOf(error)}`), exitCode: EXIT.failed };
  return { message: `unexpected error: ${String(error)}`, exitCode: EXIT.failed };
}
