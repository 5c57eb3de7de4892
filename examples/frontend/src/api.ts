// Types of the backend's JSON API (examples/backend), as the page reads it.
import { type Currency, type Money, money } from "./money";

/** One row of GET /api/accounts. */
export interface AccountRow {
  id: number;
  name: string;
  balance_cents: number;
  currency?: Currency;
}

export interface Account {
  id: number;
  name: string;
  balance: Money;
}

export type ApiResult<T> = { ok: true; value: T } | { ok: false; status: number };

export function toAccount(row: AccountRow): Account {
  return { id: row.id, name: row.name, balance: money(row.balance_cents, row.currency) };
}

export async function fetchAccounts(fetcher: typeof fetch = fetch): Promise<ApiResult<Account[]>> {
  const response = await fetcher("/api/accounts");
  if (!response.ok) {
    return { ok: false, status: response.status };
  }
  const rows = (await response.json()) as AccountRow[];
  return { ok: true, value: rows.map(toAccount) };
}
