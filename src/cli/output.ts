/** Command results go to stdout as JSON (one document per command), so scripts can pipe them to jq. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
