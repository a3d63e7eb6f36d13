/**
 * `paygate audit list`: the audit log, filtered, one page or `--all`; with `--follow`, new events as
 * they are written, until Ctrl-C.
 *
 * Where: `/v1/audit-events` (an organization key's organization), `--org <orgId>` for
 * `/v1/organizations/{orgId}/audit-events`, `--system` for every event (`/v1/system/audit-events`:
 * a global admin, or a system key with audit:read).
 *
 * Following polls the newest page every `--interval` seconds and walks back to the last event it
 * printed. Reading the audit log is itself audited (`audit.read`, and `admin.accessed` for a global
 * admin in an organization), so each poll writes events: the follower recognises its own by their
 * request ids (the server names each event's request, and an `audit.read` that aggregates a
 * minute of polls names the last of them) and does not print them, or it would report itself
 * forever.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { segment, type ListPage, type Query } from '../api.js';
import { connect, type Connection } from '../connection.js';
import { ApiError, UnreachableError, describeFailure } from '../errors.js';
import { fetchList, printList } from '../lists.js';
import { addPageOptions, orgOption, parseTime, type PageOptions } from '../options.js';
import { cell, sanitize, type Column } from '../table.js';

interface AuditEvent {
  id: string;
  at: string;
  action: string;
  actor: { type: string; id: string | null };
  organizationId: string | null;
  target: { type: string; id: string } | null;
  ip: string | null;
  requestId: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

interface Options extends PageOptions {
  org?: string;
  system?: boolean;
  action?: string;
  actorType?: string;
  actorId?: string;
  from?: string;
  to?: string;
  follow?: boolean;
  interval: number;
}

const actorText = (e: AuditEvent) => (e.actor.id ? `${e.actor.type}:${e.actor.id}` : e.actor.type);
const targetText = (e: AuditEvent) => (e.target ? `${e.target.type}:${e.target.id}` : '-');

const COLUMNS: Array<Column<AuditEvent>> = [
  { header: 'at', value: (e) => cell(e.at) },
  { header: 'action', value: (e) => e.action },
  { header: 'actor', value: actorText },
  { header: 'target', value: targetText },
  { header: 'outcome', value: (e) => e.outcome },
  { header: 'ip', value: (e) => cell(e.ip) },
];

/** Column widths of the followed table, fixed because rows arrive one by one (ids are of fixed length). */
const FOLLOW_WIDTHS = [20, 30, 31, 39, 8];

function followLine(values: string[]): string {
  return values.map((v, i) => (i < FOLLOW_WIDTHS.length ? v.padEnd(FOLLOW_WIDTHS[i]!) : v)).join('  ').trimEnd();
}

function pathOf(options: Options): string {
  if (options.system) return '/system/audit-events';
  if (options.org) return `/organizations/${segment(options.org, 'organization id')}/audit-events`;
  return '/audit-events';
}

function filterOf(options: Options): Query {
  return { action: options.action, actorType: options.actorType, actorId: options.actorId, from: options.from, to: options.to };
}

function parseInterval(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) throw new InvalidArgumentError('must be a number of seconds from 0.1 to 3600');
  return seconds;
}

/** Failures a follower rides out (the server restarting, a moment of overload): it warns and polls on. */
function isTransient(error: unknown): boolean {
  return error instanceof UnreachableError || (error instanceof ApiError && (error.problem.status >= 500 || error.problem.status === 429));
}

/**
 * How many of our own poll request ids to remember: enough for every poll of the last two minutes
 * at the shortest interval (0.1 s), since the server writes a minute's further reads as one
 * `audit.read` naming the newest of them up to a minute (and a few seconds) later.
 */
const OWN_READS_KEPT = 1200;

async function follow(connection: Connection, options: Options): Promise<void> {
  const { client, output } = connection;
  const path = pathOf(options);
  const filter = filterOf(options);
  const stopped = new AbortController();
  const stop = () => stopped.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const ownReads: string[] = [];
  const poll = async (query: Query): Promise<ListPage<AuditEvent>> => {
    const response = await client.request<ListPage<AuditEvent>>('GET', path, { query: { ...filter, ...query }, signal: stopped.signal });
    if (response.requestId) {
      ownReads.push(response.requestId);
      if (ownReads.length > OWN_READS_KEPT) ownReads.shift();
    }
    return response.body;
  };
  // Every event a poll itself caused: its audit.read, and the admin.accessed of a global admin.
  const isOwnRead = (e: AuditEvent) => e.requestId !== null && ownReads.includes(e.requestId);

  let headerShown = false;
  const print = (newestFirst: AuditEvent[]) => {
    for (const event of [...newestFirst].reverse()) {
      if (isOwnRead(event)) continue;
      if (output.isJson) {
        output.jsonLine(event);
        continue;
      }
      if (!headerShown) {
        output.line(followLine(COLUMNS.map((c) => c.header.toUpperCase())));
        headerShown = true;
      }
      output.line(followLine(COLUMNS.map((c) => sanitize(c.value(event)))));
    }
  };

  /** Events newer than `anchor`, newest first: pages back until the anchor (or the end of the log). */
  const newerThan = async (anchor: string | null): Promise<AuditEvent[]> => {
    const fresh: AuditEvent[] = [];
    let startingAfter: string | undefined;
    for (;;) {
      const page = await poll({ limit: 100, startingAfter });
      for (const event of page.data) {
        if (event.id === anchor) return fresh;
        fresh.push(event);
      }
      if (!page.hasMore || page.data.length === 0) return fresh;
      startingAfter = page.data[page.data.length - 1]!.id;
    }
  };

  try {
    // The last few events first, as `tail -f` shows the end of a file; then whatever comes.
    const first = await poll({ limit: options.limit ?? 20 });
    print(first.data);
    let anchor = first.data[0]?.id ?? null;
    let failing = false;
    while (!stopped.signal.aborted) {
      await sleep(options.interval * 1000, undefined, { signal: stopped.signal }).catch(() => undefined);
      if (stopped.signal.aborted) break;
      try {
        const fresh = await newerThan(anchor);
        if (fresh.length > 0) anchor = fresh[0]!.id;
        print(fresh);
        if (failing) output.warn('the server answers again; following');
        failing = false;
      } catch (error) {
        if (stopped.signal.aborted) break;
        if (!isTransient(error)) throw error;
        if (!failing) output.warn(`${describeFailure(error).message}; retrying every ${options.interval} s`);
        failing = true;
      }
    }
  } catch (error) {
    // Ctrl-C during a request: the normal way to stop following.
    if (!stopped.signal.aborted) throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit log: --org <orgId> for an organization, --system for every event');
  const list = audit
    .command('list')
    .description('list audit events, newest first; --follow prints new ones as they are written (oldest first), until Ctrl-C')
    .addOption(orgOption().conflicts('system'))
    .addOption(new Option('--system', 'every event (/v1/system/audit-events: a global admin, or a system key with audit:read)'))
    .option('--action <action>', 'only this action, e.g. api_key.created')
    .addOption(new Option('--actor-type <type>', 'only events by this kind of actor').choices(['user', 'api_key', 'system']))
    .option('--actor-id <id>', 'only events by this actor (a user id or key id)')
    .option('--from <time>', 'from this time on (inclusive): ISO 8601, or a duration ago such as 30m, 2h, 7d', parseTime)
    .addOption(new Option('--to <time>', 'before this time (exclusive): ISO 8601, or a duration ago').argParser(parseTime).conflicts('follow'))
    .addOption(new Option('--follow', 'keep polling and print new events as they come (JSON Lines with --json), until Ctrl-C').conflicts(['all', 'startingAfter']))
    .addOption(new Option('--interval <seconds>', 'how often --follow polls').argParser(parseInterval).default(5));
  addPageOptions(list, 'events');
  list.action(async (options: Options, command: Command) => {
    const connection = await connect(command);
    if (options.follow) return follow(connection, options);
    printList(connection, await fetchList<AuditEvent>(connection, pathOf(options), filterOf(options), options, 'audit events'), COLUMNS, 'audit events');
  });
}
