/** `paygate serve`: the server, exactly as `npm start` runs it (same configuration, signals, exit codes). */
import type { Command } from 'commander';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the Paygate server (same as npm start); configuration comes from the environment')
    .action(async () => {
      // Loaded here, not at the top: the other commands start without the server's code.
      const { runServer } = await import('../../server-process.js');
      // Resolves once the server listens; the process then lives on and exits from its signal handler.
      await runServer();
    });
}
