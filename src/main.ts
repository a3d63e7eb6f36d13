/** Paygate's entry point (`npm start`): runs the server process; see server-process.ts. */
import { runServer } from './server-process.js';

runServer().catch((error: unknown) => {
  // runServer reports its own failures; this is the last resort, still one line and no stack.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`paygate: failed to start: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
});
