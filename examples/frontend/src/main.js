// Lists the ledger's accounts and balances from the backend.
export function formatCents(cents) {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

async function loadAccounts() {
  const list = document.getElementById("accounts");
  const response = await fetch("/api/accounts");
  if (!response.ok) {
    list.textContent = `backend answered ${response.status}`;
    return;
  }
  for (const account of await response.json()) {
    const item = document.createElement("li");
    item.textContent = `${account.name}: ${formatCents(account.balance_cents)}`;
    list.appendChild(item);
  }
}

if (typeof document !== "undefined") {
  loadAccounts();
}
