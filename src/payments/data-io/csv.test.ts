/** CSV writing, the formula guard, the streaming reader and the client CSV rules, without a server. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CsvReader, csvField, csvLine, guardCell, unguardCell, type CsvItem } from './csv.js';
import { readClientCsv, type ClientCsvItem } from './client-csv.js';

const read = async (text: string | Buffer[]): Promise<ClientCsvItem[]> => {
  const items: ClientCsvItem[] = [];
  for await (const item of readClientCsv(Readable.from(typeof text === 'string' ? [Buffer.from(text)] : text))) items.push(item);
  return items;
};

describe('CSV writing', () => {
  it('quotes fields holding a comma, a quote or a line break, doubling inner quotes', () => {
    expect(csvLine(['plain', 'a,b', 'say "hi"', 'two\nlines', 'cr\rhere', null, 42])).toBe('plain,"a,b","say ""hi""","two\nlines","cr\rhere",,42\r\n');
  });

  it('guards cells a spreadsheet would run as a formula, and the guard comes off exactly once', () => {
    for (const value of ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx']) {
      expect(guardCell(value)).toBe(`'${value}`);
      expect(unguardCell(guardCell(value))).toBe(value);
    }
    // Values that already look guarded get one more quote, so the round trip is exact.
    for (const value of ["'=1", "''+x", "'plain", 'plain', "it's", '']) expect(unguardCell(guardCell(value))).toBe(value);
    expect(guardCell("'plain")).toBe("'plain");
    expect(csvField('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
  });
});

describe('the CSV reader', () => {
  const readAll = (text: string, max?: number): CsvItem[] => {
    const reader = new CsvReader(max);
    return [...reader.push(text), ...reader.end()];
  };

  it('counts a line break inside quotes as one line, whatever its kind', () => {
    expect(readAll('a\r\n"x\r\ny\nz\rw",b\r\nc\n')).toEqual([
      { line: 1, fields: ['a'] },
      { line: 2, fields: ['x\r\ny\nz\rw', 'b'] },
      { line: 6, fields: ['c'] },
    ]);
  });

  it('gives the same records whatever the chunking', () => {
    const text = '\uFEFFh1,h2\r\n"a ""q""","b\r\nc"\r\n,\r\n\r\nlast,"x"';
    const whole = readAll(text);
    expect(whole).toEqual([
      { line: 1, fields: ['h1', 'h2'] },
      { line: 2, fields: ['a "q"', 'b\r\nc'] },
      { line: 4, fields: ['', ''] },
      { line: 5, fields: [''] },
      { line: 6, fields: ['last', 'x'] },
    ]);
    for (let cut = 1; cut < text.length; cut++) {
      const reader = new CsvReader();
      expect([...reader.push(text.slice(0, cut)), ...reader.push(text.slice(cut)), ...reader.end()]).toEqual(whole);
    }
  });

  it('reports a record that grows past the limit instead of keeping it', () => {
    expect(readAll(`a\n"${'x'.repeat(50)}"\nb\n`, 20)).toEqual([
      { line: 1, fields: ['a'] },
      { line: 2, error: 'the record is too long' },
      { line: 3, fields: ['b'] },
    ]);
  });
});

describe('reading a client CSV', () => {
  it('reads quoted fields, escaped quotes, mixed line ends, a BOM, blank lines and metadata columns', async () => {
    const items = await read('\uFEFFname,email,metadata.tier\r\n"Doe, Jane",jane@example.com,gold\r\n"Say ""hi""",,\n\r\n"two\nlines",x@example.com,\r\n');
    expect(items).toEqual([
      { line: 2, client: { name: 'Doe, Jane', email: 'jane@example.com', metadata: { tier: 'gold' } } },
      { line: 3, client: { name: 'Say "hi"', email: null, metadata: {} } },
      { line: 5, client: { name: 'two\nlines', email: 'x@example.com', metadata: {} } },
    ]);
  });

  it('finds records split across input chunks at any byte, multi-byte characters included', async () => {
    const bytes = Buffer.from('name,email\r\n"Zoë, ""Z""",z@example.com\r\nÅsa,\r\n');
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(await read([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual([
        { line: 2, client: { name: 'Zoë, "Z"', email: 'z@example.com', metadata: {} } },
        { line: 3, client: { name: 'Åsa', email: null, metadata: {} } },
      ]);
    }
  });

  it('names the line each bad record starts on', async () => {
    const items = await read(
      [
        'name,email', // 1
        'Good,good@example.com', // 2
        ',missing@example.com', // 3
        'Bad email,not-an-email', // 4
        `${'x'.repeat(201)},`, // 5
        'too,many,fields', // 6
        '"multi', // 7
        'line",ok@example.com', // 8
        'bad"quote,a@example.com', // 9
        '"closed"x,a@example.com', // 10
        'Nul\u0000,', // 11
        '"unclosed,a@example.com', // 12
        'Never reached,', // 13
      ].join('\r\n'),
    );
    expect(items.filter((i) => 'error' in i)).toEqual([
      { line: 3, error: 'name is required' },
      { line: 4, error: 'email is not a valid email address' },
      { line: 5, error: 'name is longer than 200 characters' },
      { line: 6, error: 'has 3 fields, the header has 2' },
      { line: 9, error: expect.stringContaining('a quote appears inside an unquoted field') },
      { line: 10, error: expect.stringContaining('a closing quote is followed by') },
      { line: 11, error: 'name contains a NUL character' },
      { line: 12, error: 'a quoted field is never closed' },
    ]);
    expect(items.filter((i) => 'client' in i).map((i) => i.line)).toEqual([2, 7]);
  });

  it('refuses a header without name, with unknown or repeated columns, and ignores exported id columns', async () => {
    expect(await read('email\r\nx@example.com\r\n')).toEqual([{ line: 1, error: 'the header has no "name" column' }]);
    expect((await read('name,emial,name\r\nA,b,c\r\n')).map((i) => i.line)).toEqual([1, 1]);
    expect(await read('id,name,email,createdAt,metadata.a\r\ncli_1,A,,2024-01-01T00:00:00Z,1\r\n')).toEqual([
      { line: 2, client: { name: 'A', email: null, metadata: { a: '1' } } },
    ]);
    expect(await read('')).toEqual([{ line: 1, error: 'the file has no header row' }]);
    expect(await read('name\r\n')).toEqual([]);
  });

  it('checks metadata like the API: at most 50 values of at most 500 characters', async () => {
    const keys = Array.from({ length: 51 }, (_, i) => `metadata.k${i}`);
    expect(await read(`name,${keys.join(',')}\r\nA,${keys.map(() => 'v').join(',')}\r\n`)).toEqual([{ line: 2, error: 'has 51 metadata values, at most 50 are allowed' }]);
    expect(await read(`name,metadata.note\r\nA,${'n'.repeat(501)}\r\n`)).toEqual([{ line: 2, error: 'metadata.note is longer than 500 characters' }]);
    expect((await read(`name,metadata.${'k'.repeat(41)}\r\n`))[0]).toMatchObject({ line: 1 });
  });

  it('metadata keys named like Object.prototype members are own keys of that client alone', async () => {
    const keys = ['constructor', '__proto__', 'toString', 'hasOwnProperty'];
    const items = await read(`name,${keys.map((k) => `metadata.${k}`).join(',')}\r\nA,c,p,t,h\r\nB,,,,\r\n`);
    const [a, b] = items as Array<{ client: { metadata: Record<string, string> } }>;
    expect(Object.keys(a!.client.metadata)).toEqual(keys);
    expect(Object.getPrototypeOf(a!.client.metadata)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(a!.client.metadata))).toEqual({ constructor: 'c', ['__proto__']: 'p', toString: 't', hasOwnProperty: 'h' });
    expect(Object.keys(b!.client.metadata)).toEqual([]);
  });

  it('removes the export formula guard', async () => {
    expect(await read(`name,email\r\n'=cmd,\r\n`)).toEqual([{ line: 2, client: { name: '=cmd', email: null, metadata: {} } }]);
  });
});
