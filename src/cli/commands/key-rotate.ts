/** `paygate key rotate`: a new secret for the same key id; the previous one works until its grace ends. */
import type { Command } from 'commander';
import { systemContext } from '../../auth/context.js';
import { MAX_GRACE_MINUTES } from '../../keys/service.js';
import { withServices } from '../context.js';
import { keyScopeOf } from '../key-lookup.js';
import { parseNonNegativeInteger } from '../options.js';
import { printJson } from '../output.js';

export function registerKeyRotate(key: Command): void {
  key
    .command('rotate')
    .description('rotate an API key and print it with its new secret (shown once)')
    .argument('<keyId>', 'the key id (the 20 characters after sk_)')
    .option(
      '--grace-minutes <minutes>',
      `how long the previous secret keeps working, 0 to ${MAX_GRACE_MINUTES} (default: the system setting apiKeyRotationGraceMinutes)`,
      parseNonNegativeInteger,
    )
    .action(async (keyId: string, options: { graceMinutes?: number }) => {
      await withServices(async ({ services, runtime }) => {
        const where = await keyScopeOf(runtime.db, keyId);
        const view = await services.keys.rotate(
          systemContext(),
          where,
          keyId,
          options.graceMinutes !== undefined ? { gracePeriodMinutes: options.graceMinutes } : {},
        );
        printJson(view);
      });
    });
}
