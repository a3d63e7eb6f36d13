/**
 * How the CLI reports failure: one line on stderr and an exit code a script can branch on.
 *
 * This module is loaded by every command, so it imports nothing of the server: the bootstrap
 * commands translate Paygate's own errors into CliError themselves (bootstrap.ts).
 */
import { CommanderError } from 'commander';

/** Exit codes of `paygate` (docs/cli.md). Stable: scripts branch on them. */
export const EXIT = {
  ok: 0,
  /** The server (or, for bootstrap commands, Paygate itself) refused or failed the request. */
  failed: 1,
  /** The command line or the configuration is wrong, or there is no credential to use. */
  usage: 2,
  /** The server cannot be reached (or, for bootstrap commands, the database: e.g. an embedded one in use). */
  unreachable: 3,
  /** Interrupted by Ctrl-C (128 + SIGINT), as shells report it. */
  interrupted: 130,
} as const;

/** A failure the CLI itself detected (bad option value, not signed in): never a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A problem+json answer (or any non-2xx answer) of the server. */
export interface Problem {
  status: number;
  code: string | null;
  detail: string;
  requestId: string | null;
  retryAfter: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly problem: Problem,
    /** Added to the line: what the user can do about it (e.g. "pass --org <orgId>"). */
    readonly hint: string | null = null,
  ) {
    super(problem.detail);
    this.name = 'ApiError';
  }

  get code(): string | null {
    return this.problem.code;
  }
}

/** The server could not be reached: connection refused, unknown host, TLS failure, no answer in time. */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

/** Node reports some network failures (both localhost addresses refused) as an AggregateError with no message. */
export function messageOf(error: Error): string {
  if (error.message) return error.message;
  const inner = (error as Partial<AggregateError>).errors;
  if (Array.isArray(inner) && inner.length > 0) return inner.map((e) => messageOf(e as Error)).join('; ');
  return (error as NodeJS.ErrnoException).code ?? error.name;
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();

/** `insufficient_scope: The credential lacks ... (request req_1)`: the problem's code, detail and request id. */
function describeProblem(error: ApiError): string {
  const { code, detail, requestId, retryAfter, status } = error.problem;
  const parts = [code ? `${code}: ${detail}` : detail];
  if (retryAfter) parts.push(`retry after ${retryAfter} s`);
  if (error.hint) parts.push(error.hint);
  const line = parts.join('; ');
  const context = [code ? null : `HTTP ${status}`, requestId ? `request ${requestId}` : null].filter(Boolean).join(', ');
  return context ? `${line} (${context})` : line;
}

/** The line to print and the exit code for anything a command threw. */
export function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: oneLine(error.message), exitCode: error.exitCode };
  if (error instanceof ApiError) return { message: oneLine(describeProblem(error)), exitCode: EXIT.failed };
  if (error instanceof UnreachableError) return { message: oneLine(error.message), exitCode: EXIT.unreachable };
  if (error instanceof CommanderError) {
    // Help (asked for, or shown because a command group was run without a command) is already printed.
    const message = error.code.startsWith('commander.help') || error.code === 'commander.version' ? '' : oneLine(error.message.replace(/^error: /, ''));
    return { message, exitCode: error.exitCode === 0 ? EXIT.ok : EXIT.usage };
  }
  if (error instanceof Error) return { message: oneLine(`unexpected error: ${messageOf(error)}`), exitCode: EXIT.failed };
  return { message: `unexpected error: ${String(error)}`, exitCode: EXIT.failed };
}
