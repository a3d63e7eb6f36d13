/** `paygate serve`: the server, exactly as `npm start` runs it (same configuration, signals, exit codes). */
import type { Command } from 'commander';
import { runServer } from '../../server-process.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the Paygate server (same as npm start); configuration comes from the environment')
    .action(async () => {
      // Resolves once the server listens; the process then lives on and exits from its signal handler.
      await runServer();
    });
}
