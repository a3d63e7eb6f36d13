/**
 * `paygate member list|invite|remove`: an organization's members and invitations
 * (`/v1/organizations/{orgId}/members`: the organization's owners and global admins, by session).
 *
 * Inviting always creates an invitation (SPEC §7): the membership exists once the invitee accepts
 * through its link. The link is mailed when the server has SMTP; otherwise the answer carries it
 * (`url`) and the CLI prints it for the inviter to hand over.
 */
import { Option, type Command } from 'commander';
import { ROLES } from '../../scopes/catalog.js';
import { segment } from '../api.js';
import { connect, type Connection } from '../connection.js';
import { CliError, EXIT } from '../errors.js';
import { fetchList, printList } from '../lists.js';
import { addPageOptions, parseEmail, type PageOptions } from '../options.js';
import { readFirstLineOfStdin } from '../prompt.js';
import { cell, type Column } from '../table.js';

export interface Invitation {
  id: string;
  object: 'invitation';
  organizationId: string;
  email: string;
  role: string;
  status: string;
  expiresAt: string;
  createdAt: string;
  url?: string;
}

interface Member {
  object: 'member';
  userId: string;
  email: string;
  role: string;
  status: string;
  createdAt: string;
}

type Entry = Member | Invitation;

/** The id a member list names an entry by, and `startingAfter` and DELETE take. */
const entryId = (e: Entry) => (e.object === 'member' ? e.userId : e.id);

const COLUMNS: Array<Column<Entry>> = [
  { header: 'id', value: entryId },
  { header: 'email', value: (e) => e.email, max: 40 },
  { header: 'role', value: (e) => e.role },
  { header: 'status', value: (e) => e.status },
  { header: 'since', value: (e) => cell(e.createdAt) },
  { header: 'invitation expires', value: (e) => (e.object === 'invitation' ? cell(e.expiresAt) : '-') },
];

export function printInvitation(connection: Connection, invitation: Invitation): void {
  const { output } = connection;
  if (output.isJson) return output.json(invitation);
  output.record([
    ['id', invitation.id],
    ['email', invitation.email],
    ['role', invitation.role],
    ['status', invitation.status],
    ['expires', cell(invitation.expiresAt)],
    ['link', invitation.url],
  ]);
  output.line(
    invitation.url
      ? 'Hand this link to the invitee: it is single-use, and it is the only copy (Paygate has no SMTP configured to mail it).'
      : invitation.status === 'accepted'
        ? 'The account and membership exist now.'
        : 'Paygate mailed the invitation link to this address.',
  );
}

const membersPath = (org: string) => `/organizations/${segment(org, 'organization id')}/members`;

/** A member or invitation named by id, or by email (looked up in the list). */
async function resolveEntry(connection: Connection, org: string, who: string): Promise<string> {
  if (!who.includes('@')) return segment(who);
  const list = await fetchList<Entry>(connection, membersPath(org), {}, { all: true }, 'members', entryId);
  const wanted = who.trim().toLowerCase();
  const matches = list.data.filter((e) => e.email.toLowerCase() === wanted);
  if (matches.length === 0) throw new CliError(`no member or invitation with the email ${who} in ${org}`, EXIT.failed);
  if (matches.length > 1) throw new CliError(`${who} is both a member and invited: name the one to remove by id (${matches.map(entryId).join(', ')})`, EXIT.usage);
  return entryId(matches[0]!);
}

export function registerMemberCommands(program: Command): void {
  const member = program
    .command('member')
    .description("an organization's members and invitations (its owners, or a global admin)");
  const org = () => new Option('--org <orgId>', 'the organization (org_...)').makeOptionMandatory();

  const list = member
    .command('list')
    .description('list members and pending invitations (status "invited"), oldest first')
    .addOption(org())
    .action(async (options: { org: string } & PageOptions, command: Command) => {
      const connection = await connect(command);
      printList(connection, await fetchList<Entry>(connection, membersPath(options.org), {}, options, 'members', entryId), COLUMNS, 'members', entryId);
    });
  addPageOptions(list, 'members');

  member
    .command('invite')
    .description('invite someone: they become a member once they accept through the link (mailed, or printed when there is no SMTP)')
    .addOption(org())
    .requiredOption('--email <email>', 'their address', parseEmail)
    .addOption(new Option('--role <role>', 'their role').choices(ROLES).makeOptionMandatory())
    .option('--password-stdin', 'global admins only: create the account at once with the password on standard input (operator provisioning)')
    .action(async (options: { org: string; email: string; role: string; passwordStdin?: boolean }, command: Command) => {
      const connection = await connect(command);
      const password = options.passwordStdin ? await readFirstLineOfStdin() : undefined;
      const invitation = await connection.client.post<Invitation>(membersPath(options.org), {
        email: options.email,
        role: options.role,
        ...(password !== undefined ? { password } : {}),
      });
      printInvitation(connection, invitation);
    });

  member
    .command('remove')
    .description('remove a member, or cancel an invitation')
    .addOption(org())
    .argument('<member>', 'a user id (usr_...), an invitation id (ivt_...), or an email address')
    .action(async (who: string, options: { org: string }, command: Command) => {
      const connection = await connect(command);
      const id = await resolveEntry(connection, options.org, who);
      await connection.client.delete(`${membersPath(options.org)}/${id}`);
      const what = id.startsWith('ivt_') ? 'invitation' : 'member';
      if (connection.output.isJson) connection.output.json({ id, object: what, organizationId: options.org, removed: true });
      else connection.output.line(what === 'invitation' ? `Cancelled invitation ${id}.` : `Removed member ${id} from ${options.org}.`);
    });
}
