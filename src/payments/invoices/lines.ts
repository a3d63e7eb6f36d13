/**
 * Invoice lines and their total: pure, no database. Invoices and recurring schedule templates share
 * the line schema and the total rule, so a template can never issue an invoice the API would refuse.
 */
import { MAX_AMOUNT } from '../money.js';

export interface InvoiceLine {
  description: string;
  quantity: number;
  unitAmount: number;
}

/** Bounds of one line (SPEC §10; money in integer minor units, SPEC §11); the request schema is LinesInput in ../schemas.ts. */
export const MAX_QUANTITY = 1_000_000;
export const MAX_LINES = 100;

/**
 * The total of the lines in minor units, or null when it is not a payable amount (0, or above
 * MAX_AMOUNT). Computed in BigInt: one line can reach 10^6 x 10^11 = 10^17, past Number's exact
 * range (2^53 ~ 9 x 10^15), so a float sum could round a refused total into an accepted one.
 */
export function totalOf(lines: readonly InvoiceLine[]): number | null {
  let total = 0n;
  for (const line of lines) total += BigInt(line.quantity) * BigInt(line.unitAmount);
  if (total < 1n || total > BigInt(MAX_AMOUNT)) return null;
  return Number(total);
}

/** Only the contract's fields, in a fixed order (the stored JSON never carries extras). */
export function normalizeLines(lines: readonly InvoiceLine[]): InvoiceLine[] {
  return lines.map((l) => ({ description: l.description, quantity: l.quantity, unitAmount: l.unitAmount }));
}
