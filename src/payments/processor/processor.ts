/** The processor interface and the built-in test-mode simulator. */
export interface ChargeRequest {
  amount: number;
  currency: string;
  cardNumber: string;
}

export type ChargeResult =
  | { status: 'succeeded'; cardBrand: string; cardLast4: string }
  | { status: 'failed'; failureCode: string; message: string; cardBrand: string | null; cardLast4: string | null };

export interface PaymentProcessor {
  readonly name: string;
  charge(request: ChargeRequest): Promise<ChargeResult>;
}

export class TestModeProcessor implements PaymentProcessor {
  readonly name = 'test';
  async charge(_request: ChargeRequest): Promise<ChargeResult> {
    throw new Error('not implemented yet');
  }
}
