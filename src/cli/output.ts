/**
 * Where results go. stdout holds the result only: a table or record for people, or JSON for
 * programs (`--json`; also the default whenever stdout is not a terminal, so `paygate ... | jq`
 * and `$(paygate ...)` get JSON without asking). stderr holds errors, warnings, and progress; progress
 * only when stderr is a terminal, so logs and captured output stay clean.
 */
import { CliError, EXIT } from './errors.js';
import { formatRecord, formatTable, type Column } from './table.js';

export type Format = 'json' | 'table';

export function resolveFormat(options: { json?: boolean; table?: boolean }, stdout: { isTTY?: boolean } = process.stdout): Format {
  if (options.json && options.table) throw new CliError('--json and --table cannot be used together', EXIT.usage);
  if (options.json) return 'json';
  if (options.table) return 'table';
  return stdout.isTTY ? 'table' : 'json';
}

export class Output {
  private progressShown = false;

  constructor(
    readonly format: Format,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  get isJson(): boolean {
    return this.format === 'json';
  }

  /** One JSON document, indented (a command's whole result). */
  json(value: unknown): void {
    this.endProgress();
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One JSON document on one line (JSON Lines: a stream of results, as `audit list --follow` prints). */
  jsonLine(value: unknown): void {
    this.endProgress();
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  table<T>(columns: Array<Column<T>>, rows: T[]): void {
    this.endProgress();
    this.stdout.write(formatTable(columns, rows));
  }

  record(rows: Array<[string, string | undefined]>): void {
    this.endProgress();
    this.stdout.write(formatRecord(rows));
  }

  /** A line of the human result (table mode). */
  line(text = ''): void {
    this.endProgress();
    this.stdout.write(`${text}\n`);
  }

  warn(text: string): void {
    this.endProgress();
    this.stderr.write(`paygate: warning: ${text}\n`);
  }

  /** Progress of a long operation, rewritten in place; only on a terminal. */
  progress(text: string): void {
    if (!this.stderr.isTTY) return;
    this.stderr.write(`\r${text}\u001b[K`);
    this.progressShown = true;
  }

  endProgress(): void {
    if (!this.progressShown) return;
    this.stderr.write('\r\u001b[K');
    this.progressShown = false;
  }
}
