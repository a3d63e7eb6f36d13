/** Plain-text rendering: aligned columns, and server values that cannot drive the terminal. */
import { describe, expect, it } from 'vitest';
import { cell, formatRecord, formatTable, sanitize } from './table.js';

describe('tables and records', () => {
  it('aligns columns under upper-case headers and cuts long cells with an ellipsis', () => {
    const text = formatTable(
      [
        { header: 'id', value: (r: { id: string; name: string }) => r.id },
        { header: 'name', value: (r) => r.name, max: 8 },
        { header: 'last', value: () => '-' },
      ],
      [
        { id: 'a', name: 'short' },
        { id: 'longer-id', name: 'a very long name' },
      ],
    );
    expect(text).toBe(['ID         NAME      LAST', 'a          short     -', 'longer-id  a very …  -', ''].join('\n'));
  });

  it('escapes control characters from server values, so a name cannot move the cursor or recolour the terminal', () => {
    expect(sanitize('evil\u001b[2J\u001b]0;title\u0007\r\nname\u009b31m')).toBe('evil\\x1b[2J\\x1b]0;title\\x07\\x0d\\x0aname\\x9b31m');
    expect(formatRecord([['name', 'a\u001bb'], ['skipped', undefined]])).toBe('name  a\\x1bb\n');
    expect(formatTable([{ header: 'n', value: (v: string) => v }], ['x\u001b[1my'])).toContain('x\\x1b[1my');
  });

  it('cells: "-" for nothing, lists joined, times without milliseconds', () => {
    expect(cell(null)).toBe('-');
    expect(cell([])).toBe('-');
    expect(cell(['a:read', 'b:read'])).toBe('a:read,b:read');
    expect(cell('2026-12-03T11:59:33.123Z')).toBe('2026-12-03T11:59:33Z');
    expect(cell(true)).toBe('yes');
  });
});
