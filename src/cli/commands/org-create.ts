/**
 * `paygate org create`: provisions an organization as POST /v1/system/organizations does, acting as
 * Paygate itself (audited with actor type "system"). Prints the same object as that route.
 */
import type { Command } from 'commander';
import { systemContext } from '../../auth/context.js';
import type { ProvisionInput } from '../../organizations/service.js';
import { CliError, EXIT } from '../errors.js';
import { withServices } from '../context.js';
import { nameParser, parseEmail, parseScopeList } from '../options.js';
import { printJson } from '../output.js';

interface Options {
  name: string;
  ownerEmail?: string;
  keyName?: string;
  scopes?: string[];
}

export function registerOrgCreate(org: Command): void {
  org
    .command('create')
    .description('create an organization, optionally with an owner and an initial API key (its secret is printed once)')
    .requiredOption('--name <name>', 'organization name', nameParser(200))
    .option('--owner-email <email>', 'owner; a new user gets an invitation link', parseEmail)
    .option('--key-name <name>', 'name of the initial API key (default: "Initial key")', nameParser(100))
    .option('--scopes <scopes>', 'scopes of the initial API key, comma-separated (e.g. checkout:create,transaction:read)', parseScopeList)
    .action(async (options: Options) => {
      if (options.keyName !== undefined && options.scopes === undefined) {
        throw new CliError('--key-name needs --scopes: the initial API key must have scopes', EXIT.usage);
      }
      const input: ProvisionInput = {
        name: options.name,
        ...(options.ownerEmail ? { owner: { email: options.ownerEmail } } : {}),
        ...(options.scopes ? { initialApiKey: { name: options.keyName ?? 'Initial key', scopes: options.scopes } } : {}),
      };
      await withServices(async ({ services }) => {
        const result = await services.organizations.provision(systemContext(), input);
        printJson({
          ...result.organization,
          ...(result.owner ? { owner: result.owner } : {}),
          ...(result.initialApiKey ? { initialApiKey: result.initialApiKey } : {}),
        });
      });
    });
}
