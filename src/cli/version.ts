/** The CLI's version: package.json's, read at run time (two levels up from src/cli/ and dist/cli/ alike). */
import { readFileSync } from 'node:fs';

let cached: string | null = null;

export function cliVersion(): string {
  cached ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  return cached;
}
