/**
 * `paygate key list|get|create|update|rotate|revoke|delete`: API keys over the HTTP API.
 *
 * Where: `/v1/api-keys` (an organization key acts in its own organization), `--org <orgId>` for
 * `/v1/organizations/{orgId}/api-keys` (a session names its organization so), or `--system` for
 * `/v1/system/api-keys` (system keys; global-admin sessions only). A key's secret is printed once,
 * by create and rotate, as the API shows it once.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { segment } from '../api.js';
import { connect, type Connection } from '../connection.js';
import { CliError, EXIT } from '../errors.js';
import { fetchList, printList } from '../lists.js';
import {
  CLEAR,
  addPageOptions,
  nameParser,
  orgOption,
  parseExpiry,
  parseIpList,
  parseNonNegativeInteger,
  parseRateLimit,
  parseScopeList,
  type Clearable,
  type PageOptions,
} from '../options.js';
import { assertCanConfirm, confirmByTyping } from '../prompt.js';
import { cell, type Column } from '../table.js';
import { addKeyUsageCommands } from './key-usage.js';

export interface ApiKey {
  id: string;
  tier: string;
  organizationId: string | null;
  name: string;
  description: string | null;
  scopes: string[];
  status: string;
  createdAt: string;
  createdBy: { type: string; id: string | null } | null;
  updatedAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  rotatedAt: string | null;
  previousSecretExpiresAt: string | null;
  /** SPEC §12: evidence of use, per secret. */
  lastUsedIp?: string | null;
  lastUserAgent?: string | null;
  previousSecretLastUsedAt?: string | null;
  previousSecretLastUsedIp?: string | null;
  previousSecretLastUserAgent?: string | null;
  allowedIps: string[] | null;
  rateLimit: { requests: number; windowSeconds: number } | null;
  hint: string;
  flags?: string[];
  secret?: string;
}

interface Where {
  org?: string;
  system?: boolean;
}

function basePath(where: Where): string {
  if (where.system) return '/system/api-keys';
  if (where.org) return `/organizations/${segment(where.org, 'organization id')}/api-keys`;
  return '/api-keys';
}

/** `--org` / `--system` on a key command. */
function addWhere(command: Command): Command {
  return command
    .addOption(orgOption().conflicts('system'))
    .addOption(new Option('--system', 'system keys (/v1/system/api-keys; a global admin\'s session only)'));
}

const COLUMNS: Array<Column<ApiKey>> = [
  { header: 'id', value: (k) => k.id },
  { header: 'name', value: (k) => k.name, max: 30 },
  { header: 'status', value: (k) => k.status },
  { header: 'scopes', value: (k) => cell(k.scopes), max: 40 },
  { header: 'hint', value: (k) => k.hint },
  { header: 'last used', value: (k) => cell(k.lastUsedAt) },
  { header: 'expires', value: (k) => cell(k.expiresAt) },
];

const rateLimitText = (r: ApiKey['rateLimit']) => (r ? `${r.requests} requests / ${r.windowSeconds} s` : '-');

export function printKey(connection: Connection, key: ApiKey): void {
  const { output } = connection;
  if (output.isJson) return output.json(key);
  output.record([
    ['id', key.id],
    ['name', key.name],
    ['description', key.description ?? undefined],
    ['tier', key.tier],
    ['organization', key.organizationId ?? undefined],
    ['status', key.status],
    ['scopes', cell(key.scopes)],
    ['hint', key.hint],
    ['created', `${cell(key.createdAt)}${key.createdBy ? ` by ${key.createdBy.type}${key.createdBy.id ? ` ${key.createdBy.id}` : ''}` : ''}`],
    ['last used', `${cell(key.lastUsedAt)}${key.lastUsedIp ? ` from ${key.lastUsedIp}` : ''}${key.lastUserAgent ? ` (${key.lastUserAgent})` : ''}`],
    ['expires', cell(key.expiresAt)],
    ['rotated', key.rotatedAt ? cell(key.rotatedAt) : undefined],
    ['previous secret until', key.previousSecretExpiresAt ? cell(key.previousSecretExpiresAt) : undefined],
    [
      'previous secret used',
      key.previousSecretExpiresAt
        ? key.previousSecretLastUsedAt
          ? `${cell(key.previousSecretLastUsedAt)}${key.previousSecretLastUsedIp ? ` from ${key.previousSecretLastUsedIp}` : ''}${key.previousSecretLastUserAgent ? ` (${key.previousSecretLastUserAgent})` : ''}`
          : 'not since the rotation'
        : undefined,
    ],
    ['revoked', key.revokedAt ? cell(key.revokedAt) : undefined],
    ['allowed IPs', cell(key.allowedIps)],
    ['rate limit', rateLimitText(key.rateLimit)],
    ['flags', key.flags?.length ? cell(key.flags) : undefined],
  ]);
  if (key.secret) {
    output.line();
    output.line('Secret (shown once: Paygate keeps only a hash of it; store it now):');
    output.line(`  ${key.secret}`);
  }
}

interface KeyFields {
  name?: string;
  description?: string;
  scopes?: string[];
  expiresAt?: Clearable<string>;
  allowedIps?: Clearable<string[]>;
  rateLimit?: Clearable<{ requests: number; windowSeconds: number }>;
}

const orNull = <T>(value: Clearable<T>): T | null => (value === CLEAR ? null : value);

/** The request body of create and update: only the fields given (`--description ""` clears it). */
function bodyOf(options: KeyFields): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (options.name !== undefined) body.name = options.name;
  if (options.description !== undefined) body.description = options.description === '' ? null : options.description;
  if (options.scopes !== undefined) body.scopes = options.scopes;
  if (options.expiresAt !== undefined) body.expiresAt = orNull(options.expiresAt);
  if (options.allowedIps !== undefined) body.allowedIps = orNull(options.allowedIps);
  if (options.rateLimit !== undefined) body.rateLimit = orNull(options.rateLimit);
  return body;
}

/** The options create and update share; on update each is optional and `none` clears. */
function addFieldOptions(command: Command, mode: 'create' | 'update'): Command {
  const clear = mode === 'update' ? ', or "none" to remove it' : '';
  if (mode === 'update') {
    command
      .option('--name <name>', 'new name', nameParser(100))
      .option('--scopes <scopes>', 'replace the scopes, comma-separated (you can grant only scopes you hold)', parseScopeList);
  }
  return command
    .option('--description <text>', `free text${mode === 'update' ? ' ("" removes it)' : ''}`)
    .option('--expires-at <iso>', `expiry, an ISO 8601 date-time${clear}`, mode === 'update' ? parseExpiry : parseCreateExpiry)
    .option('--allowed-ips <cidrs>', `comma-separated addresses or CIDR ranges the key may be used from${clear}`, mode === 'update' ? parseIpList : parseCreateIps)
    .option('--rate-limit <n/window>', `requests per window, e.g. 100/60 (seconds), 100/1m, 5000/1h${clear}`, mode === 'update' ? parseRateLimit : parseCreateRateLimit);
}

// On create, "none" is the default anyway: refuse it rather than send null.
const noNone = <T>(parse: (value: string) => Clearable<T>) => (value: string): T => {
  const parsed = parse(value);
  if (parsed === CLEAR) throw new InvalidArgumentError('"none" is only for key update (a new key has no such restriction unless given one)');
  return parsed;
};
const parseCreateExpiry = noNone(parseExpiry);
const parseCreateIps = noNone(parseIpList);
const parseCreateRateLimit = noNone(parseRateLimit);

export function registerKeyCommands(program: Command): void {
  const key = program
    .command('key')
    .description('API keys: /v1/api-keys, --org <orgId> for /v1/organizations/{orgId}/api-keys, --system for system keys');

  const list = addWhere(key.command('list').description('list API keys, newest first'))
    .option('--status <status>', 'only keys with this status: active, quarantined, expired, revoked')
    .option('--flag <flag>', 'only keys with this hygiene flag (rotation_due, inactive, expiring_soon, no_expiry, broad_scopes, creator_removed, leaked)')
    .option('--search <text>', 'an exact id or hint, or the start of the name')
    .action(async (options: Where & PageOptions & { status?: string; flag?: string; search?: string }, command: Command) => {
      const connection = await connect(command);
      // The server checks the values (400 validation_error names a bad one).
      const query = { status: options.status, flag: options.flag, q: options.search };
      printList(connection, await fetchList<ApiKey>(connection, basePath(options), query, options, 'API keys'), COLUMNS, 'API keys');
    });
  addPageOptions(list, 'keys');

  addWhere(key.command('get').description('show an API key').argument('<keyId>', 'the key id (the 20 characters after sk_)')).action(
    async (id: string, options: Where, command: Command) => {
      const connection = await connect(command);
      printKey(connection, await connection.client.get<ApiKey>(`${basePath(options)}/${segment(id, 'key id')}`));
    },
  );

  const create = addWhere(
    key
      .command('create')
      .description('create an API key and print it with its secret (shown once)')
      .requiredOption('--name <name>', 'key name', nameParser(100))
      .requiredOption('--scopes <scopes>', 'comma-separated scopes, e.g. checkout:create,transaction:read (you can grant only scopes you hold)', parseScopeList),
  );
  addFieldOptions(create, 'create').action(async (options: Where & KeyFields, command: Command) => {
    const connection = await connect(command);
    printKey(connection, await connection.client.post<ApiKey>(basePath(options), bodyOf(options)));
  });

  const update = addWhere(key.command('update').description("change a key's name, description, scopes, expiry, allowed IPs or rate limit").argument('<keyId>', 'the key id'));
  addFieldOptions(update, 'update').action(async (id: string, options: Where & KeyFields, command: Command) => {
    const body = bodyOf(options);
    if (Object.keys(body).length === 0) {
      throw new CliError('nothing to change: give at least one of --name, --description, --scopes, --expires-at, --allowed-ips, --rate-limit', EXIT.usage);
    }
    const connection = await connect(command);
    printKey(connection, await connection.client.patch<ApiKey>(`${basePath(options)}/${segment(id, 'key id')}`, body));
  });

  addWhere(
    key
      .command('rotate')
      .description('give a key a new secret (printed once); the previous one works until its grace period ends')
      .argument('<keyId>', 'the key id')
      .option(
        '--grace-minutes <minutes>',
        'how long the previous secret keeps working, 0 to 10080 (default: the system setting apiKeyRotationGraceMinutes)',
        parseNonNegativeInteger,
      )
      .option('--retire-when-idle <minutes>', 'also end the grace once the previous secret has been idle this many minutes (1 to 1440) after the new one is first used', parseNonNegativeInteger),
  ).action(async (id: string, options: Where & { graceMinutes?: number; retireWhenIdle?: number }, command: Command) => {
    const connection = await connect(command);
    const body: Record<string, number> = options.graceMinutes !== undefined ? { gracePeriodMinutes: options.graceMinutes } : {};
    if (options.retireWhenIdle !== undefined) body.retireWhenIdleMinutes = options.retireWhenIdle;
    printKey(connection, await connection.client.post<ApiKey>(`${basePath(options)}/${segment(id, 'key id')}/rotate`, body));
  });

  addWhere(
    key.command('revoke').description('revoke a key: its current and previous secrets stop working at once, everywhere (irreversible)').argument('<keyId>', 'the key id'),
  ).action(async (id: string, options: Where, command: Command) => {
    const connection = await connect(command);
    printKey(connection, await connection.client.post<ApiKey>(`${basePath(options)}/${segment(id, 'key id')}/revoke`));
  });

  addWhere(
    key
      .command('delete')
      .description('delete a key for good (it stops working; its audit events stay)')
      .argument('<keyId>', 'the key id')
      .option('--yes', 'do not ask for confirmation (needed without a terminal)'),
  ).action(async (id: string, options: Where & { yes?: boolean }, command: Command) => {
    const connection = await connect(command);
    const path = `${basePath(options)}/${segment(id, 'key id')}`;
    if (!options.yes) {
      assertCanConfirm('delete an API key');
      const current = await connection.client.get<ApiKey>(path);
      await confirmByTyping(`delete the API key ${current.name} (${current.id}) for good`, current.name);
    }
    await connection.client.delete(path);
    if (connection.output.isJson) connection.output.json({ id, object: 'api_key', deleted: true });
    else connection.output.line(`Deleted API key ${id}.`);
  });

  addKeyUsageCommands(key, { addWhere, basePath, printKey });
}
