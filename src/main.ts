/** Paygate's entry point (`npm start`): runs the server process; see server-process.ts. */
import { runServer } from './server-process.js';

runServer().catch((error) => {
  console.error('paygate: failed to start:', error);
  process.exit(1);
});
