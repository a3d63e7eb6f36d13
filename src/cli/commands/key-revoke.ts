/** `paygate key revoke`: irreversible; the current and any previous secret stop working at once. */
import type { Command } from 'commander';
import { systemContext } from '../../auth/context.js';
import { withServices } from '../context.js';
import { keyScopeOf } from '../key-lookup.js';
import { printJson } from '../output.js';

export function registerKeyRevoke(key: Command): void {
  key
    .command('revoke')
    .description('revoke an API key (irreversible) and print it')
    .argument('<keyId>', 'the key id (the 20 characters after sk_)')
    .action(async (keyId: string) => {
      await withServices(async ({ services, runtime }) => {
        const where = await keyScopeOf(runtime.db, keyId);
        printJson(await services.keys.revoke(systemContext(), where, keyId));
      });
    });
}
