/**
 * Asking the person at the terminal (email, password, a typed confirmation), and reading a secret
 * from standard input for scripts (`--password-stdin`). Prompts are written to stderr, so stdout
 * keeps only the command's result.
 */
import readline from 'node:readline';
import { CliError, EXIT } from './errors.js';

/** Whether there is a person to ask: a terminal on stdin (to type) and on stderr (to see the question). */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

const interrupted = () => new CliError('interrupted', EXIT.interrupted);

/** A line typed at the terminal, echoed. */
export async function promptVisible(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  let answered = false;
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.once('SIGINT', () => reject(interrupted()));
      rl.once('close', () => answered || reject(interrupted())); // Ctrl-D
      rl.question(question, (answer) => {
        answered = true;
        resolve(answer.trim());
      });
    });
  } finally {
    rl.close();
  }
}

/**
 * A line typed at the terminal without echo (a password). Raw mode, so the characters are never
 * shown; Backspace edits, Enter ends, Ctrl-C and Ctrl-D cancel.
 */
export async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (chunk: string) => {
        for (const c of chunk) {
          if (c === '\r' || c === '\n') {
            stdin.off('data', onData);
            return resolve(value);
          }
          if (c === '\u0003' || (c === '\u0004' && value === '')) {
            stdin.off('data', onData);
            return reject(interrupted());
          }
          if (c === '\u007f' || c === '\b') value = [...value].slice(0, -1).join('');
          else if (c >= ' ') value += c;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/**
 * The first line of standard input, without its line ending (read up to the first newline or the
 * end): `--password-stdin`, as `docker login` takes it. A secret on the command line would be
 * visible to other local users (ps) and kept in shell history; stdin avoids both.
 */
export async function readFirstLineOfStdin(option = '--password-stdin'): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8'); // decodes characters split across chunks
  for await (const chunk of process.stdin) {
    text += chunk as string;
    if (text.includes('\n')) break; // a terminal user presses Enter, not Ctrl-D
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (!line) throw new CliError(`${option}: standard input held no password`, EXIT.usage);
  return line;
}

/** Fails at once (before any request) when there is no terminal to confirm on. */
export function assertCanConfirm(what: string): void {
  if (!canPrompt()) throw new CliError(`refusing to ${what} without confirmation: pass --yes (no terminal to ask on)`, EXIT.usage);
}

/**
 * For irreversible commands: the person types `expected` (a name) to go on. Without a terminal the
 * command needs `--yes` instead, so a script states its intent.
 */
export async function confirmByTyping(what: string, expected: string): Promise<void> {
  assertCanConfirm(what);
  const answer = await promptVisible(`This will ${what}. Type ${JSON.stringify(expected)} to confirm: `);
  if (answer !== expected) throw new CliError(`not confirmed: nothing was changed`, EXIT.usage);
}
