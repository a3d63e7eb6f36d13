/**
 * CSV writing for exports (RFC 4180: CRLF line ends, fields quoted when they hold `,` `"` CR or LF,
 * inner quotes doubled) and the formula-injection guard shared by export and import.
 * Pure: no Fastify, no database.
 */

/**
 * Spreadsheets run a cell that starts with `=`, `+`, `-`, `@`, TAB or CR as a formula (OWASP "CSV
 * injection"), so such a cell is written with a leading `'`, which spreadsheets show as text.
 * To keep the guard reversible, a cell made of one or more `'` followed by a trigger gets one more
 * `'` too; `unguardCell` removes exactly one, so export -> import gives back the stored value.
 */
const NEEDS_GUARD = /^'*[=+\-@\t\r]/;
const GUARDED = /^'+[=+\-@\t\r]/;

export function guardCell(value: string): string {
  return NEEDS_GUARD.test(value) ? `'${value}` : value;
}

export function unguardCell(value: string): string {
  return GUARDED.test(value) ? value.slice(1) : value;
}

const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field: null/undefined is an empty field; strings are guarded, then quoted if needed. */
export function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return String(value);
  const guarded = guardCell(value);
  return NEEDS_QUOTES.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

/** One CSV record with its CRLF terminator. */
export function csvLine(values: ReadonlyArray<string | number | null | undefined>): string {
  return `${values.map(csvField).join(',')}\r\n`;
}

/** One record of a CSV file, or why it could not be read; `line` is the line the record starts on. */
export type CsvItem = { line: number; fields: string[] } | { line: number; error: string };

const QUOTE = 34;
const COMMA = 44;
const CR = 13;
const LF = 10;

type State = 'field' | 'unquoted' | 'quoted' | 'after-quote' | 'skip';

/**
 * A streaming RFC 4180 reader that knows on which line every record starts, however its fields
 * span lines (a library we tried counted CRLF inside quotes as two lines). Feed decoded text with
 * `push`, then call `end`. Accepts CRLF, LF or CR line ends (mixed too) and a leading BOM. A
 * malformed record (a quote inside an unquoted field, text after a closing quote) is reported and
 * skipped to the end of its line; a quote never closed is reported at the end. Records longer than
 * `maxRecordChars` are reported rather than grown without bound.
 */
export class CsvReader {
  private state: State = 'field';
  private fields: string[] = [];
  private field = '';
  private line = 1;
  private recordLine = 1;
  private inRecord = false;
  private lastWasCR = false;
  private swallowLF = false;
  private error: string | null = null;
  private size = 0;
  private started = false;
  private out: CsvItem[] = [];

  constructor(private readonly maxRecordChars = 1_000_000) {}

  push(text: string): CsvItem[] {
    let i = 0;
    const n = text.length;
    if (!this.started && n > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    while (i < n) {
      const c = text.charCodeAt(i);
      if (this.swallowLF) {
        // The LF of a CRLF that ended a record (the CR already counted the line).
        this.swallowLF = false;
        this.lastWasCR = false;
        if (c === LF) {
          i++;
          continue;
        }
      }
      if (!this.inRecord) {
        this.inRecord = true;
        this.recordLine = this.line;
      }
      // Runs of ordinary characters are taken as one slice.
      if (c !== QUOTE && c !== COMMA && c !== CR && c !== LF && (this.state === 'unquoted' || this.state === 'quoted' || this.state === 'field' || this.state === 'skip')) {
        let j = i + 1;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === QUOTE || d === COMMA || d === CR || d === LF) break;
          j++;
        }
        if (this.state === 'field') this.state = 'unquoted';
        if (this.state !== 'skip') this.append(text.slice(i, j));
        this.lastWasCR = false;
        i = j;
        continue;
      }
      this.step(c);
      if (c === CR) {
        this.line++;
        this.lastWasCR = true;
      } else {
        if (c === LF && !this.lastWasCR) this.line++;
        this.lastWasCR = false;
      }
      i++;
    }
    return this.take();
  }

  end(): CsvItem[] {
    if (this.state === 'quoted') {
      this.out.push({ line: this.recordLine, error: 'a quoted field is never closed' });
      this.reset();
    } else if (this.inRecord) this.endRecord();
    return this.take();
  }

  private step(c: number): void {
    const isEnd = c === CR || c === LF;
    switch (this.state) {
      case 'field':
        if (c === QUOTE) this.state = 'quoted';
        else if (c === COMMA) this.endField();
        else if (isEnd) this.endRecord(c);
        break;
      case 'unquoted':
        if (c === COMMA) this.endField();
        else if (isEnd) this.endRecord(c);
        else this.fail('a quote appears inside an unquoted field (quote the whole field and double the quotes inside it)');
        break;
      case 'quoted':
        if (c === QUOTE) this.state = 'after-quote';
        else this.append(String.fromCharCode(c));
        break;
      case 'after-quote':
        if (c === QUOTE) {
          this.append('"');
          this.state = 'quoted';
        } else if (c === COMMA) this.endField();
        else if (isEnd) this.endRecord(c);
        else this.fail('a closing quote is followed by something other than a comma or the end of the line');
        break;
      case 'skip':
        if (isEnd) this.endRecord(c);
        break;
    }
  }

  private append(text: string): void {
    if (this.error) return;
    this.size += text.length;
    if (this.size > this.maxRecordChars) {
      this.error = 'the record is too long';
      return;
    }
    this.field += text;
  }

  private endField(): void {
    this.fields.push(this.field);
    this.field = '';
    this.state = 'field';
  }

  /** Bad record: keep its first problem, ignore the rest of its line. */
  private fail(message: string): void {
    this.error ??= message;
    this.state = 'skip';
  }

  private endRecord(c?: number): void {
    this.fields.push(this.field);
    this.out.push(this.error ? { line: this.recordLine, error: this.error } : { line: this.recordLine, fields: this.fields });
    this.reset();
    if (c === CR) this.swallowLF = true;
  }

  private reset(): void {
    this.fields = [];
    this.field = '';
    this.state = 'field';
    this.inRecord = false;
    this.error = null;
    this.size = 0;
  }

  private take(): CsvItem[] {
    const out = this.out;
    this.out = [];
    return out;
  }
}
