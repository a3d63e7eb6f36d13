/**
 * `paygate org list|get|create|delete`: organizations, on the system routes
 * (/v1/system/organizations: a global admin's session, or a system key with organization:* scopes).
 */
import { Option, type Command } from 'commander';
import { segment } from '../api.js';
import { connect, type Connection } from '../connection.js';
import { CliError, EXIT } from '../errors.js';
import { fetchList, printList } from '../lists.js';
import { addPageOptions, nameParser, parseEmail, parseScopeList, type PageOptions } from '../options.js';
import { assertCanConfirm, confirmByTyping } from '../prompt.js';
import { cell, type Column } from '../table.js';
import { printInvitation, type Invitation } from './member.js';
import { printKey, type ApiKey } from './key.js';

export interface Organization {
  id: string;
  name: string;
  status: string;
  createdAt: string;
  updatedAt: string;
  deletedAt: string | null;
  owner?: Invitation;
  initialApiKey?: ApiKey;
}

const COLUMNS: Array<Column<Organization>> = [
  { header: 'id', value: (o) => o.id },
  { header: 'name', value: (o) => o.name, max: 40 },
  { header: 'status', value: (o) => o.status },
  { header: 'created', value: (o) => cell(o.createdAt) },
];

function printOrganization(connection: Connection, org: Organization): void {
  const { output } = connection;
  if (output.isJson) return output.json(org);
  output.record([
    ['id', org.id],
    ['name', org.name],
    ['status', org.status],
    ['created', cell(org.createdAt)],
    ['updated', cell(org.updatedAt)],
    ['deleted', org.deletedAt ? cell(org.deletedAt) : undefined],
  ]);
  if (org.owner) {
    output.line();
    output.line('Owner invitation:');
    printInvitation(connection, org.owner);
  }
  if (org.initialApiKey) {
    output.line();
    output.line('Initial API key:');
    printKey(connection, org.initialApiKey);
  }
}

export function registerOrgCommands(program: Command): void {
  const org = program.command('org').description('organizations (system routes: a global admin, or a system key with organization:* scopes)');

  const list = org
    .command('list')
    .description('list organizations, newest first')
    .action(async (options: PageOptions, command: Command) => {
      const connection = await connect(command);
      printList(connection, await fetchList<Organization>(connection, '/system/organizations', {}, options, 'organizations'), COLUMNS, 'organizations');
    });
  addPageOptions(list, 'organizations');

  org
    .command('get')
    .description('show an organization')
    .argument('<orgId>', 'the organization (org_...)')
    .action(async (id: string, _options: unknown, command: Command) => {
      const connection = await connect(command);
      printOrganization(connection, await connection.client.get<Organization>(`/system/organizations/${segment(id)}`));
    });

  org
    .command('create')
    .description('create an organization, optionally inviting its owner and with an initial API key (its secret is printed once)')
    .requiredOption('--name <name>', 'organization name', nameParser(200))
    .option('--owner-email <email>', 'invite this address as the owner (the invitation link is printed unless Paygate mails it)', parseEmail)
    .option('--key-name <name>', 'name of the initial API key (default: "Initial key")', nameParser(100))
    .option('--scopes <scopes>', 'scopes of the initial API key, comma-separated (e.g. checkout:create,transaction:read)', parseScopeList)
    .action(async (options: { name: string; ownerEmail?: string; keyName?: string; scopes?: string[] }, command: Command) => {
      if (options.keyName !== undefined && options.scopes === undefined) {
        throw new CliError('--key-name needs --scopes: the initial API key must have scopes', EXIT.usage);
      }
      const connection = await connect(command);
      const created = await connection.client.post<Organization>('/system/organizations', {
        name: options.name,
        ...(options.ownerEmail ? { owner: { email: options.ownerEmail } } : {}),
        ...(options.scopes ? { initialApiKey: { name: options.keyName ?? 'Initial key', scopes: options.scopes } } : {}),
      });
      printOrganization(connection, created);
    });

  org
    .command('delete')
    .description('delete an organization: all its API keys stop working at once (irreversible)')
    .argument('<orgId>', 'the organization (org_...)')
    .addOption(new Option('--yes', 'do not ask for confirmation (needed without a terminal)'))
    .action(async (id: string, options: { yes?: boolean }, command: Command) => {
      const connection = await connect(command);
      const path = `/system/organizations/${segment(id)}`;
      if (!options.yes) {
        assertCanConfirm('delete an organization');
        const current = await connection.client.get<Organization>(path);
        await confirmByTyping(`delete the organization ${current.name} (${current.id}) and revoke all its API keys`, current.name);
      }
      printOrganization(connection, await connection.client.delete<Organization>(path));
    });
}
