/** Money: integer amounts in minor units and ISO 4217 currencies (the runtime's CLDR list, not a regex). */
export const CURRENCIES: readonly string[] = Intl.supportedValuesOf('currency');
const CURRENCY_SET = new Set(CURRENCIES);

/** Upper bound of any single amount: 10^11 minor units (a billion in two-decimal currencies). */
export const MAX_AMOUNT = 100_000_000_000;

export function isCurrency(value: string): boolean {
  return CURRENCY_SET.has(value);
}

/** Decimal places of a currency's minor unit (JPY 0, EUR 2, BHD 3). */
export function minorUnitDigits(currency: string): number {
  return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
}

/** Human display, e.g. formatAmount(1999, 'EUR') === '€19.99'. */
export function formatAmount(amount: number, currency: string, locale = 'en'): string {
  const digits = minorUnitDigits(currency);
  return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(amount / 10 ** digits);
}
