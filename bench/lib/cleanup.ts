/**
 * Everything the bench starts or creates registers its undo here: child processes, temporary
 * databases, embedded PostgreSQL servers, temporary directories. The undos run last-in first-out at
 * the end of the run, after an error, and on SIGINT/SIGTERM (Ctrl-C), each at most once.
 */
import { log } from './common.js';

type Undo = () => Promise<void>;

interface Entry {
  name: string;
  undo: Undo;
  done: boolean;
}

const stack: Entry[] = [];
export const runState = { interrupted: false };

export interface Resource {
  /** Runs the undo now (once) and forgets it. */
  release(): Promise<void>;
}

async function runEntry(entry: Entry): Promise<void> {
  if (entry.done) return;
  entry.done = true;
  const index = stack.indexOf(entry);
  if (index >= 0) stack.splice(index, 1);
  try {
    await entry.undo();
  } catch (error) {
    log(`cleanup "${entry.name}" failed: ${String(error)}`);
  }
}

export function defer(name: string, undo: Undo): Resource {
  const entry: Entry = { name, undo, done: false };
  stack.push(entry);
  return { release: () => runEntry(entry) };
}

let running: Promise<void> | null = null;

/** Undoes everything, last first; concurrent callers (the end of main and a signal) share one pass. */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (stack.length > 0) await runEntry(stack[stack.length - 1]!);
  })().finally(() => (running = null));
  return running;
}

/** On SIGINT/SIGTERM: stop what runs, undo everything, exit 130. */
export function installSignalHandlers(): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (runState.interrupted) return;
    runState.interrupted = true;
    log(`${signal}: stopping and cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

export class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

export function checkInterrupted(): void {
  if (runState.interrupted) throw new Interrupted();
}
