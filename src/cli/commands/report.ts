/**
 * `paygate report [--system] [--org <orgId>] [--format csv|json] [--output <file>]`: the credential
 * report (SPEC §14) over the HTTP API, streamed to stdout (or a file) as the server streams it,
 * never held whole in memory.
 *
 * Where: `/v1/api-keys/report` (an organization key's organization), `--org <orgId>` for
 * `/v1/organizations/{orgId}/api-keys/report` (a session names its organization so), `--system` for
 * every key (`/v1/system/credential-report`: a global admin, or a system key with audit:read).
 * The report is audited (`audit.read`) like any read of the audit log.
 */
import fs from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Option, type Command } from 'commander';
import { segment } from '../api.js';
import { connect, userAgent } from '../connection.js';
import { ApiError, UnreachableError, type Problem } from '../errors.js';
import { orgOption } from '../options.js';

interface Options {
  org?: string;
  system?: boolean;
  format: 'csv' | 'json';
  output?: string;
}

function pathOf(options: Options): string {
  if (options.system) return '/system/credential-report';
  if (options.org) return `/organizations/${segment(options.org, 'organization id')}/api-keys/report`;
  return '/api-keys/report';
}

/** The problem of a refused report, from its problem+json (or whatever the server answered). */
function problemOf(response: Response, text: string): Problem {
  const requestId = response.headers.get('x-request-id');
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (typeof body.code === 'string') {
      return {
        status: response.status,
        code: body.code,
        detail: typeof body.detail === 'string' ? body.detail : response.statusText,
        requestId: typeof body.requestId === 'string' ? body.requestId : requestId,
        retryAfter: response.headers.get('retry-after'),
      };
    }
  } catch {
    /* not JSON */
  }
  return { status: response.status, code: null, detail: `HTTP ${response.status} ${response.statusText}`.trim(), requestId, retryAfter: null };
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('the credential report: one row per API key with its age, use, restrictions and hygiene flags (CSV or JSON, streamed)')
    .addOption(orgOption().conflicts('system'))
    .addOption(new Option('--system', 'every key of the instance (/v1/system/credential-report: a global admin, or a system key with audit:read)'))
    .addOption(new Option('--format <format>', 'csv (formula-safe) or json').choices(['csv', 'json']).default('csv'))
    .option('--output <file>', 'write the report to this file instead of stdout')
    .action(async (options: Options, command: Command) => {
      const connection = await connect(command);
      const url = new URL(`${connection.url}/v1${pathOf(options)}`);
      url.searchParams.set('format', options.format);
      const headers: Record<string, string> = { accept: options.format === 'csv' ? 'text/csv, application/problem+json' : 'application/json, application/problem+json', 'user-agent': userAgent() };
      if (connection.credential) headers.authorization = `Bearer ${connection.credential.token}`;
      let response: Response;
      // Bounded until the answer starts (30 s); the body then streams for as long as it takes.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), 30_000);
      try {
        response = await fetch(url, { headers, redirect: 'manual', signal: abort.signal });
      } catch (error) {
        const cause = (error as { cause?: unknown }).cause;
        const reason = abort.signal.aborted ? 'no answer within 30 s' : cause instanceof Error ? cause.message : (error as Error).message;
        throw new UnreachableError(`cannot reach ${connection.url}: ${reason}`);
      } finally {
        clearTimeout(timer);
      }
      if (!response.ok || !response.body) throw new ApiError(problemOf(response, await response.text()));
      const target: Writable = options.output ? fs.createWriteStream(options.output, { mode: 0o600 }) : process.stdout;
      await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), target, { end: options.output !== undefined });
    });
}
