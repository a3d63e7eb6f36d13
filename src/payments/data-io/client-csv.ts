/**
 * Reading a CSV file of clients for import, as a stream: every line is checked with the same rules
 * as `POST /v1/clients`, and each problem is reported with the line it starts on.
 *
 * File shape: a header row, then one client per record. Columns: `name` (required), `email`
 * (optional; empty = none), `metadata.<key>` (optional; an empty cell sets no key). `id`, `object`,
 * `createdAt` and `updatedAt` are ignored, so a client export imports as it is; any other column
 * is an error. Quoted fields, doubled quotes, CRLF/LF/CR line ends and a UTF-8 BOM are handled
 * (CsvReader, csv.ts). Blank lines are skipped. A cell written with the export's formula guard (`'=...`)
 * has the guard removed.
 */
import { StringDecoder } from 'node:string_decoder';
import addFormats from 'ajv-formats';
import type { ClientInput } from '../clients/service.js';
import { CsvReader, unguardCell, type CsvItem } from './csv.js';

export type ClientCsvItem = { line: number; client: ClientInput } | { line: number; error: string };

// The limits of the client routes' schema (clients/routes.ts), applied per line.
const NAME_MAX = 200;
const EMAIL_MAX = 254;
const METADATA_MAX_KEYS = 50;
const METADATA_KEY_MAX = 40;
const METADATA_VALUE_MAX = 500;
/** The same email format the JSON API validates with (ajv-formats, full mode). */
const EMAIL = addFormats.default.get('email') as RegExp;
const IGNORED_COLUMNS = new Set(['id', 'object', 'createdAt', 'updatedAt']);
/** No valid record comes near this; a runaway quoted field stops here instead of growing. */
const MAX_RECORD_CHARS = 1_000_000;

type Column = { kind: 'name' } | { kind: 'email' } | { kind: 'metadata'; key: string } | { kind: 'ignored' };

/** Length in code points, as JSON Schema's maxLength counts. */
const length = (value: string): number => {
  let n = 0;
  for (const _ of value) n++;
  return n;
};

function readHeader(fields: string[]): { columns: Column[]; errors: string[] } {
  const errors: string[] = [];
  const seen = new Set<string>();
  const columns = fields.map((raw): Column => {
    const name = raw.trim();
    if (seen.has(name)) errors.push(`column "${name}" appears twice`);
    seen.add(name);
    if (name === 'name') return { kind: 'name' };
    if (name === 'email') return { kind: 'email' };
    if (IGNORED_COLUMNS.has(name)) return { kind: 'ignored' };
    if (name.startsWith('metadata.')) {
      const key = name.slice('metadata.'.length);
      if (key.length === 0 || length(key) > METADATA_KEY_MAX) errors.push(`column "${name}": a metadata key has 1 to ${METADATA_KEY_MAX} characters`);
      return { kind: 'metadata', key };
    }
    errors.push(`unknown column "${name.slice(0, 60)}" (expected name, email, metadata.<key>)`);
    return { kind: 'ignored' };
  });
  if (!seen.has('name')) errors.push('the header has no "name" column');
  return { columns, errors };
}

function readRecord(columns: Column[], fields: string[]): { client: ClientInput } | { error: string } {
  if (fields.length !== columns.length) return { error: `has ${fields.length} fields, the header has ${columns.length}` };
  const problems: string[] = [];
  let name = '';
  let email: string | null = null;
  // A Map, then own data properties: `metadata[key] = value` with the key `__proto__` would set the
  // object's prototype instead of a key (and lose the value); Object.fromEntries defines own keys.
  const values = new Map<string, string>();
  columns.forEach((column, i) => {
    const value = unguardCell(fields[i]!);
    // PostgreSQL text cannot hold U+0000.
    if (value.includes('\u0000')) problems.push(`${column.kind === 'metadata' ? `metadata.${column.key}` : column.kind} contains a NUL character`);
    if (column.kind === 'name') name = value;
    else if (column.kind === 'email') email = value === '' ? null : value;
    else if (column.kind === 'metadata' && value !== '') values.set(column.key, value);
  });
  const metadata: Record<string, string> = Object.fromEntries(values);
  if (name === '') problems.push('name is required');
  else if (length(name) > NAME_MAX) problems.push(`name is longer than ${NAME_MAX} characters`);
  if (email !== null) {
    if (length(email) > EMAIL_MAX) problems.push(`email is longer than ${EMAIL_MAX} characters`);
    else if (!EMAIL.test(email)) problems.push('email is not a valid email address');
  }
  if (values.size > METADATA_MAX_KEYS) problems.push(`has ${values.size} metadata values, at most ${METADATA_MAX_KEYS} are allowed`);
  for (const [key, value] of values) {
    if (length(value) > METADATA_VALUE_MAX) problems.push(`metadata.${key} is longer than ${METADATA_VALUE_MAX} characters`);
  }
  if (problems.length > 0) return { error: problems.join('; ') };
  return { client: { name, email, metadata } };
}

/**
 * Yields each data record as a client or as an error, in file order, with the line it starts on
 * (line 1 is the header). A bad header yields its errors on line 1 and nothing else.
 */
export async function* readClientCsv(input: AsyncIterable<Buffer>): AsyncGenerator<ClientCsvItem> {
  // Multi-byte characters split across chunks are joined; invalid UTF-8 becomes U+FFFD.
  const decoder = new StringDecoder('utf8');
  const reader = new CsvReader(MAX_RECORD_CHARS);
  let columns: Column[] | null = null;
  let done = false;
  function* handle(items: CsvItem[]): Generator<ClientCsvItem> {
    for (const item of items) {
      if (done) return;
      if (columns === null) {
        if ('error' in item) {
          yield { line: item.line, error: `the header row is malformed: ${item.error}` };
          done = true;
          return;
        }
        const header = readHeader(item.fields);
        if (header.errors.length > 0) {
          for (const error of header.errors) yield { line: item.line, error };
          done = true;
          return;
        }
        columns = header.columns;
        continue;
      }
      if ('error' in item) {
        yield item;
        continue;
      }
      // A blank line reads as one empty field.
      if (item.fields.length === 1 && item.fields[0] === '') continue;
      const result = readRecord(columns, item.fields);
      yield 'error' in result ? { line: item.line, error: result.error } : { line: item.line, client: result.client };
    }
  }
  for await (const chunk of input) {
    yield* handle(reader.push(decoder.write(chunk)));
    if (done) return;
  }
  yield* handle(reader.push(decoder.end()));
  yield* handle(reader.end());
  if (columns === null && !done) yield { line: 1, error: 'the file has no header row' };
}
