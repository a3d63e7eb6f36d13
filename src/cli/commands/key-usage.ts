/**
 * `paygate key usage <keyId>` and `paygate key end-grace <keyId>` (SPEC §12): a key's verifications
 * per bucket by outcome and by secret, and ending a rotation's grace period now. A table on a
 * terminal (`--table`), JSON otherwise (`--json`), as every command.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { segment } from '../api.js';
import { connect } from '../connection.js';
import { parseTime } from '../options.js';
import { cell, type Column } from '../table.js';
import type { ApiKey } from './key.js';

const OUTCOMES = ['ok', 'invalid_api_key', 'api_key_revoked', 'api_key_expired', 'ip_not_allowed', 'rate_limited', 'insufficient_scope', 'api_key_quarantined'] as const;

interface Counts {
  total: number;
  outcomes: Record<(typeof OUTCOMES)[number], number>;
  bySecret: { current: number; previous: number };
}

export interface KeyUsage {
  object: 'api_key_usage';
  keyId: string;
  granularity: string;
  from: string;
  to: string;
  totals: Counts;
  buckets: Array<Counts & { start: string }>;
}

/** Short column headers: the table stays within a terminal's width. */
const HEADERS: Record<(typeof OUTCOMES)[number], string> = {
  ok: 'ok',
  invalid_api_key: 'invalid',
  api_key_revoked: 'revoked',
  api_key_expired: 'expired',
  ip_not_allowed: 'ip',
  rate_limited: 'limited',
  insufficient_scope: 'scope',
  api_key_quarantined: 'quarant.',
};

const COLUMNS: Array<Column<Counts & { start: string }>> = [
  { header: 'start', value: (b) => cell(b.start) },
  { header: 'total', value: (b) => String(b.total) },
  ...OUTCOMES.map((o) => ({ header: HEADERS[o], value: (b: Counts) => String(b.outcomes[o]) })),
  { header: 'current', value: (b) => String(b.bySecret.current) },
  { header: 'previous', value: (b) => String(b.bySecret.previous) },
];

function parseGranularity(value: string): string {
  if (value !== 'minute' && value !== 'hour' && value !== 'day') throw new InvalidArgumentError('must be minute, hour or day');
  return value;
}

interface Where {
  org?: string;
  system?: boolean;
}

/**
 * Adds the usage commands to `paygate key` (registerKeyCommands calls it with its own helpers for
 * `--org` / `--system`, so the paths are those of the other key commands).
 */
export function addKeyUsageCommands(key: Command, helpers: { addWhere: (command: Command) => Command; basePath: (where: Where) => string; printKey: (connection: Awaited<ReturnType<typeof connect>>, key: ApiKey) => void }): void {
  helpers
    .addWhere(
      key
        .command('usage')
        .description("a key's verifications by outcome and by secret (default: the last 24 hours, by hour; buckets without any are left out of the table)")
        .argument('<keyId>', 'the key id')
        .option('--from <time>', 'start: an ISO 8601 date-time or a duration ago (30m, 2h, 7d)', parseTime)
        .option('--to <time>', 'end (default now): an ISO 8601 date-time or a duration ago', parseTime)
        .option('--granularity <g>', 'minute, hour or day', parseGranularity),
    )
    .action(async (id: string, options: Where & { from?: string; to?: string; granularity?: string }, command: Command) => {
      const connection = await connect(command);
      const query: Record<string, string> = {};
      if (options.from) query.from = options.from;
      if (options.to) query.to = options.to;
      if (options.granularity) query.granularity = options.granularity;
      const usage = await connection.client.get<KeyUsage>(`${helpers.basePath(options)}/${segment(id, 'key id')}/usage`, query);
      const { output } = connection;
      if (output.isJson) return output.json(usage);
      output.line(`Key ${usage.keyId}, ${usage.from} to ${usage.to}, by ${usage.granularity}`);
      output.line();
      output.table(COLUMNS, [...usage.buckets.filter((b) => b.total > 0), { start: 'total', ...usage.totals }]);
    });

  helpers
    .addWhere(key.command('end-grace').description("end a rotated key's grace period now: its previous secret stops working everywhere").argument('<keyId>', 'the key id'))
    .action(async (id: string, options: Where, command: Command) => {
      const connection = await connect(command);
      helpers.printKey(connection, await connection.client.post<ApiKey>(`${helpers.basePath(options)}/${segment(id, 'key id')}/end-grace`));
    });
}
