/** `paygate key create`: an organization or system API key, created as Paygate itself (no scope ceiling). */
import { Option, type Command } from 'commander';
import { systemContext } from '../../auth/context.js';
import type { KeyScope } from '../../keys/store.js';
import { CliError, EXIT } from '../errors.js';
import { withServices } from '../context.js';
import { nameParser, parseScopeList } from '../options.js';
import { printJson } from '../output.js';

interface Options {
  org?: string;
  system?: boolean;
  name: string;
  scopes: string[];
  expiresAt?: string;
}

export function registerKeyCreate(key: Command): void {
  key
    .command('create')
    .description('create an API key and print it with its secret (shown once)')
    .addOption(new Option('--org <organizationId>', 'organization the key acts in (org_...)').conflicts('system'))
    .option('--system', 'create a system key (global automation) instead')
    .requiredOption('--name <name>', 'key name', nameParser(100))
    .requiredOption('--scopes <scopes>', 'comma-separated scopes, e.g. checkout:create,transaction:read', parseScopeList)
    .option('--expires-at <iso>', 'expiry as an ISO 8601 date-time in the future')
    .action(async (options: Options) => {
      if (!options.org && !options.system) throw new CliError('one of --org <organizationId> or --system is required', EXIT.usage);
      await withServices(async ({ services }) => {
        const where: KeyScope = options.system ? { tier: 'system', organizationId: null } : { tier: 'organization', organizationId: options.org! };
        // The HTTP routes know the organization exists (it is the credential's); here it is checked.
        if (where.organizationId) await services.organizations.get(where.organizationId);
        const view = await services.keys.create(systemContext(), where, {
          name: options.name,
          scopes: options.scopes,
          expiresAt: options.expiresAt ?? null,
        });
        printJson(view);
      });
    });
}
