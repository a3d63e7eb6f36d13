/**
 * Plain-text rendering for people: aligned tables and "label  value" records. Values come from the
 * server and may hold anything a user typed (a key's name, an organization's), so control
 * characters are shown escaped: a name must not be able to move the cursor or recolour a terminal.
 */

/** Terminal escapes (ESC, CSI and the other C0/C1 controls, DEL) as visible `\xNN`. */
export function sanitize(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Width in code points (good enough for the ids, dates and names we print). */
const width = (text: string) => [...text].length;

function truncate(text: string, max: number): string {
  return width(text) <= max ? text : `${[...text].slice(0, max - 1).join('')}…`;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Longer cells are cut with an ellipsis (list views; the full value is in `get` and --json). */
  max?: number;
}

/** Renders `rows` under upper-case headers, columns two spaces apart; the last column is not padded. */
export function formatTable<T>(columns: Array<Column<T>>, rows: T[]): string {
  const cells = rows.map((row) => columns.map((c) => truncate(sanitize(c.value(row)), c.max ?? Infinity)));
  const headers = columns.map((c) => c.header.toUpperCase());
  const widths = headers.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i]!))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v + ' '.repeat(widths[i]! - width(v))))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/** `label  value` lines, labels aligned; rows whose value is undefined are left out. */
export function formatRecord(rows: Array<[string, string | undefined]>): string {
  const shown = rows.filter((r): r is [string, string] => r[1] !== undefined);
  const labelWidth = Math.max(0, ...shown.map(([label]) => width(label)));
  return shown.map(([label, value]) => `${label}${' '.repeat(labelWidth - width(label))}  ${sanitize(value)}`.trimEnd()).join('\n') + '\n';
}

/** A value as a table cell: '-' for nothing, lists comma-separated, times without milliseconds. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.map((v) => cell(v)).join(',');
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(value)) return value.replace(/\.\d+Z$/, 'Z');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
