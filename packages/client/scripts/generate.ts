/**
 * Regenerates packages/client/src/generated/ from Paygate's OpenAPI document.
 *
 *   npm run generate:client                          # from this repository's server code (no server, no database)
 *   npm run generate:client -- --url http://127.0.0.1:8080/openapi.json   # from a running Paygate
 *   npm run generate:client -- --file openapi.json   # from a document file
 *   npm run generate:client -- --check               # exit 1 when the committed files are not current
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateFiles } from './generate-files.js';

const OUT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/generated');

async function loadDocument(options: { url?: string; file?: string }): Promise<Record<string, unknown>> {
  if (options.url) {
    const response = await fetch(options.url, { headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`${options.url} answered ${response.status}`);
    return (await response.json()) as Record<string, unknown>;
  }
  if (options.file) return JSON.parse(await readFile(options.file, 'utf8')) as Record<string, unknown>;
  const { openApiDocumentFromSource } = await import('./openapi-document.js');
  return openApiDocumentFromSource();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, file: { type: 'string' }, check: { type: 'boolean', default: false } } });
  const files = await generateFiles(await loadDocument(values));
  const stale: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const target = path.join(OUT_DIR, name);
    const current = await readFile(target, 'utf8').catch(() => null);
    if (current === text) continue;
    stale.push(path.relative(process.cwd(), target));
    if (!values.check) await writeFile(target, text);
  }
  if (values.check && stale.length > 0) {
    console.error(`not generated from the current document: ${stale.join(', ')} (run npm run generate:client)`);
    process.exit(1);
  }
  console.log(stale.length === 0 ? 'generated files are current' : `wrote ${stale.join(', ')}`);
}

await main();
