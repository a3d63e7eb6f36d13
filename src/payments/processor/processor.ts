/**
 * The processor seam (SPEC §10): Paygate moves money only through a `PaymentProcessor`. The built-in
 * one is `TestModeProcessor`, a deterministic simulator, so every flow runs end to end on one machine.
 *
 * Plugging in a real processor (Stripe, Adyen, ...): write a class implementing `PaymentProcessor`
 * in this folder and build it in `src/payments/services.ts` instead of `new TestModeProcessor()`.
 * Its contract:
 * - `charge()` is called while the checkout row is locked (FOR UPDATE) in the payment's database
 *   transaction, so two submissions of one checkout never reach the processor together. Pass
 *   `request.reference` (unique per attempt) to the processor as its idempotency key: if the
 *   database transaction fails after the processor answered, a retry of that attempt cannot charge twice.
 * - Expected outcomes are values: a decline is `{ status: 'failed', failureCode }`, never a throw.
 *   Throw only when the outcome is unknown (timeout, 5xx); the attempt then rolls back and nothing
 *   is recorded, and the payer sees a generic error.
 * - `refund()` runs inside the refund's database transaction, after the amount has been reserved
 *   on the transaction row; a throw rolls the refund back.
 * - In production the card number should never reach Paygate at all: a real adapter would take a
 *   processor token (Stripe PaymentMethod id, Adyen encrypted card fields) from the hosted page
 *   instead. The test-mode page posts the number itself, which is acceptable only for test cards.
 * - Security: the full card number is never stored, logged or returned. Only `cardBrand` and
 *   `cardLast4` leave the processor; the caller keeps nothing else.
 */
import { randomBase62 } from '../../ids.js';

export interface ChargeRequest {
  /** Minor units, positive. */
  amount: number;
  /** ISO 4217. */
  currency: string;
  /** As typed by the payer; spaces and dashes are allowed and ignored. */
  cardNumber: string;
  /** Unique per attempt (the Paygate transaction id): the processor's idempotency key. */
  reference: string;
}

/** Why a charge failed; stored on the failed transaction as `failureCode`. */
export type FailureCode = 'card_declined' | 'insufficient_funds' | 'invalid_number' | 'processing_error';

export type ChargeResult =
  | { status: 'succeeded'; cardBrand: string; cardLast4: string; processorReference: string }
  | { status: 'failed'; failureCode: FailureCode; message: string; cardBrand: string | null; cardLast4: string | null };

export interface RefundRequest {
  /** The processor's reference of the captured charge (`ChargeResult.processorReference`). */
  chargeReference: string;
  amount: number;
  currency: string;
  /** Unique per refund (the Paygate refund id): the processor's idempotency key. */
  reference: string;
}

export interface RefundResult {
  processorReference: string;
}

export interface PaymentProcessor {
  /** Stored on every transaction (`test` for the simulator). */
  readonly name: string;
  charge(request: ChargeRequest): Promise<ChargeResult>;
  /** Throws when the processor refuses or cannot be reached: the refund is then not recorded. */
  refund(request: RefundRequest): Promise<RefundResult>;
}

/** Digits only, or null when anything but digits, spaces and dashes was typed. */
export function normalizeCardNumber(raw: string): string | null {
  const compact = raw.replace(/[\s-]/g, '');
  return /^[0-9]+$/.test(compact) ? compact : null;
}

/** The Luhn (mod 10) check digit test that every payment card number passes. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Card brand from the issuer identification number prefix (enough for display). */
export function cardBrand(digits: string): string {
  if (/^4/.test(digits)) return 'visa';
  if (/^(5[1-5]|2(2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720))/.test(digits)) return 'mastercard';
  if (/^3[47]/.test(digits)) return 'amex';
  if (/^(6011|65|64[4-9])/.test(digits)) return 'discover';
  return 'unknown';
}

/**
 * Test cards (the numbers Stripe's test mode uses). Any other number that passes the Luhn check is
 * declined with `card_declined`, as Stripe's test mode does: a typo must never look like a payment.
 */
export const TEST_CARDS: Readonly<Record<string, { outcome: 'succeeded' } | { outcome: 'failed'; failureCode: FailureCode }>> = {
  '4242424242424242': { outcome: 'succeeded' },
  '5555555555554444': { outcome: 'succeeded' },
  '4000000000000002': { outcome: 'failed', failureCode: 'card_declined' },
  '4000000000009995': { outcome: 'failed', failureCode: 'insufficient_funds' },
};

const MESSAGES: Record<FailureCode, string> = {
  card_declined: 'Your card was declined.',
  insufficient_funds: 'Your card has insufficient funds.',
  invalid_number: 'The card number is not valid.',
  processing_error: 'The payment could not be processed. Please try again.',
};

/** Deterministic simulator: the outcome depends on the card number alone (TEST_CARDS). */
export class TestModeProcessor implements PaymentProcessor {
  readonly name = 'test';

  async charge(request: ChargeRequest): Promise<ChargeResult> {
    const digits = normalizeCardNumber(request.cardNumber);
    // Card numbers are 12 to 19 digits (ISO/IEC 7812). Nothing of an invalid number is kept.
    if (digits === null || digits.length < 12 || digits.length > 19 || !luhnValid(digits)) {
      return { status: 'failed', failureCode: 'invalid_number', message: MESSAGES.invalid_number, cardBrand: null, cardLast4: null };
    }
    const brand = cardBrand(digits);
    const last4 = digits.slice(-4);
    const card = TEST_CARDS[digits];
    if (card?.outcome === 'succeeded') {
      return { status: 'succeeded', cardBrand: brand, cardLast4: last4, processorReference: `test_ch_${randomBase62(24)}` };
    }
    const failureCode = card?.outcome === 'failed' ? card.failureCode : 'card_declined';
    return { status: 'failed', failureCode, message: MESSAGES[failureCode], cardBrand: brand, cardLast4: last4 };
  }

  async refund(_request: RefundRequest): Promise<RefundResult> {
    return { processorReference: `test_re_${randomBase62(24)}` };
  }
}

/** The payer-facing sentence for a failure code. */
export function failureMessage(code: string): string {
  return MESSAGES[code as FailureCode] ?? MESSAGES.card_declined;
}
