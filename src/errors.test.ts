/**
 * One catalogue, three places: ERRORS (src/errors.ts), docs/errors.md and the codes SPEC.md names.
 * A code added to one must be added to the others; a status or title must agree everywhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AppError, ERRORS, isErrorCode, validationError, type ErrorCode } from './errors.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = readFileSync(path.join(REPO, 'docs/errors.md'), 'utf8');
const SPEC_PATH = [path.resolve(REPO, '../shared/SPEC.md'), '/work/shared/SPEC.md'].find((p) => existsSync(p));
const CODES = Object.keys(ERRORS) as ErrorCode[];

interface DocRow {
  code: string;
  status: number;
  title: string;
  when: string;
  headers: string;
}

/** The rows of the table in docs/errors.md: | `code` | status | title | when it happens | headers |. */
function docRows(markdown: string): DocRow[] {
  return markdown
    .split('\n')
    .filter((line) => /^\|\s*`[a-z_]+`\s*\|/.test(line))
    .map((line) => {
      const cells = line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim());
      expect(cells, line).toHaveLength(5);
      const [code, status, title, when, headers] = cells as [string, string, string, string, string];
      return { code: code.replace(/`/g, ''), status: Number(status), title, when, headers };
    });
}

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(heading);
  expect(start, `SPEC.md has "${heading}"`).toBeGreaterThanOrEqual(0);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end === -1 ? undefined : end);
}

describe('the error catalogue', () => {
  it('has a 4xx or 5xx status and a title for every code', () => {
    for (const code of CODES) {
      expect(ERRORS[code].status).toBeGreaterThanOrEqual(400);
      expect(ERRORS[code].status).toBeLessThan(600);
      expect(ERRORS[code].title.length).toBeGreaterThan(0);
      expect(isErrorCode(code)).toBe(true);
    }
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('no_such_code')).toBe(false);
  });

  it('AppError takes status and title from the catalogue, and validationError carries errors', () => {
    const error = new AppError('rate_limited', 'slow down', { headers: { 'Retry-After': '3' }, extra: { retryAfterSeconds: 3 } });
    expect(error).toMatchObject({ code: 'rate_limited', status: 429, message: 'slow down', headers: { 'Retry-After': '3' }, extra: { retryAfterSeconds: 3 } });
    expect(new AppError('not_found').message).toBe(ERRORS.not_found.title);
    const invalid = validationError([{ path: '/name', message: 'is required' }]);
    expect(invalid).toMatchObject({ code: 'validation_error', status: 400, extra: { errors: [{ path: '/name', message: 'is required' }] } });
    expect(invalid.message).toContain('/name');
  });
});

describe('docs/errors.md', () => {
  const rows = docRows(DOCS);

  it('lists every code of the catalogue, in its order, and no other', () => {
    expect(rows.map((r) => r.code)).toEqual(CODES);
  });

  it('gives each code the status and title of the catalogue, and says when it happens', () => {
    for (const row of rows) {
      const entry = ERRORS[row.code as ErrorCode];
      expect(row.status, row.code).toBe(entry.status);
      expect(row.title, row.code).toBe(entry.title);
      expect(row.when.length, row.code).toBeGreaterThan(20);
    }
  });

  it('names the WWW-Authenticate and Retry-After headers where they are sent', () => {
    for (const row of rows) {
      if (row.status === 401) expect(row.headers, row.code).toBe('`WWW-Authenticate: Bearer error="invalid_token"`');
      else if (row.code === 'insufficient_scope') expect(row.headers).toBe('`WWW-Authenticate: Bearer error="insufficient_scope", scope="<scope>"`');
      else if (row.code === 'rate_limited' || row.code === 'service_unavailable') expect(row.headers, row.code).toBe('`Retry-After: <seconds>`');
      else expect(row.headers, row.code).toBe('');
    }
  });
});

describe.skipIf(!SPEC_PATH)('SPEC.md', () => {
  const spec = SPEC_PATH ? readFileSync(SPEC_PATH, 'utf8') : '';

  it('every code named in §8 is in the catalogue, with the status §8 gives it', () => {
    const errors = section(spec, '## 8. Errors');
    // Backticked snake_case words of §8 are codes, except the member name `code` itself.
    const named = [...errors.matchAll(/`([a-z]+(?:_[a-z]+)*)`/g)].map((m) => m[1]!).filter((word) => word !== 'code');
    expect(named.length).toBeGreaterThanOrEqual(10);
    for (const code of named) expect(CODES, `§8 names ${code}`).toContain(code);
    for (const [, code, status] of errors.matchAll(/`([a-z_]+)` \((\d{3})\)/g)) expect(ERRORS[code as ErrorCode]?.status, code).toBe(Number(status));
    // §8's own sentences: 401s, insufficient_scope, validation_error.
    expect(errors).toContain('WWW-Authenticate: Bearer error="invalid_token"');
    expect(errors).toContain('WWW-Authenticate: Bearer error="insufficient_scope", scope="<scope>"');
    expect(DOCS).toContain('WWW-Authenticate: Bearer error="insufficient_scope", scope="<scope>"');
  });

  it('every "`<status> <code>`" anywhere in the contract is in the catalogue with that status', () => {
    const pairs = [...spec.matchAll(/`(\d{3}) ([a-z_]+)`/g)].map(([, status, code]) => ({ status: Number(status), code: code! }));
    expect(pairs.length).toBeGreaterThanOrEqual(10);
    for (const { status, code } of pairs) {
      expect(CODES, `SPEC.md names ${status} ${code}`).toContain(code);
      expect(ERRORS[code as ErrorCode].status, code).toBe(status);
    }
  });
});
