// Money in minor units (cents): amounts are integers, never floats, from the API to the page.

export type Currency = "EUR" | "USD" | "GBP" | "CHF";

/** An amount in the currency's minor unit (1234 EUR cents = 12.34 EUR). */
export interface Money {
  readonly minor: number;
  readonly currency: Currency;
}

const MINOR_DIGITS: Readonly<Record<Currency, number>> = { EUR: 2, USD: 2, GBP: 2, CHF: 2 };

export function money(minor: number, currency: Currency = "EUR"): Money {
  if (!Number.isSafeInteger(minor)) {
    throw new RangeError(`not a whole number of minor units: ${minor}`);
  }
  return { minor, currency };
}

/** "-12.34 EUR" for money(-1234): sign, major units, minor units padded, the currency. */
export function formatMoney(value: Money): string {
  const digits = MINOR_DIGITS[value.currency];
  const scale = 10 ** digits;
  const sign = value.minor < 0 ? "-" : "";
  const abs = Math.abs(value.minor);
  const major = Math.floor(abs / scale);
  const minor = String(abs % scale).padStart(digits, "0");
  return `${sign}${major}.${minor} ${value.currency}`;
}

/** "12.34" or "-0.5" (text a user typed) in minor units; null when it is not an amount. */
export function parseMinor(text: string, currency: Currency = "EUR"): Money | null {
  const digits = MINOR_DIGITS[currency];
  const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (match === null || (match[3] ?? "").length > digits) {
    return null;
  }
  const [, sign, major, fraction = ""] = match;
  const minor = Number(major) * 10 ** digits + Number(fraction.padEnd(digits, "0"));
  return money(sign ? -minor : minor, currency);
}

export function addMoney(a: Money, b: Money): Money {
  if (a.currency !== b.currency) {
    throw new TypeError(`cannot add ${a.currency} to ${b.currency}`);
  }
  return money(a.minor + b.minor, a.currency);
}
