// The ledger page: lists accounts with balances, creates accounts and transactions, shows the
// API's errors. Amounts stay strings of integer cents end to end: never a float.

/** "1234" -> "12.34", "-5" -> "-0.05" (string arithmetic: no rounding, any size). */
export function formatCents(cents) {
  const text = String(cents);
  const negative = text.startsWith("-");
  const digits = (negative ? text.slice(1) : text).padStart(3, "0");
  const whole = digits.slice(0, -2).replace(/^0+(?=\d)/, "");
  return `${negative ? "-" : ""}${whole}.${digits.slice(-2)}`;
}

/** Calls the API; resolves to the JSON answer or throws an Error with the API's message. */
async function api(path, body) {
  const init =
    body === undefined
      ? {}
      : {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        };
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new Error(`the server cannot be reached (${error.message})`);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer.error ?? `the server answered ${response.status}`);
  }
  return answer;
}

function showError(error) {
  document.getElementById("error").textContent = error ? String(error.message ?? error) : "";
}

function option(account) {
  const item = document.createElement("option");
  item.value = String(account.id);
  item.textContent = account.name;
  return item;
}

function render(accounts) {
  const body = document.querySelector("#accounts tbody");
  body.replaceChildren(
    ...accounts.map((account) => {
      const row = document.createElement("tr");
      row.dataset.account = account.name;
      const name = document.createElement("td");
      name.textContent = account.name;
      const balance = document.createElement("td");
      balance.className = "amount balance";
      balance.textContent = formatCents(account.balance_cents);
      row.append(name, balance);
      return row;
    }),
  );
  document.getElementById("empty").hidden = accounts.length > 0;
  const form = document.getElementById("new-transaction");
  for (const select of [form.elements.from, form.elements.to]) {
    const keep = select.value;
    const fixed = select.name === "from" ? [select.options[0]] : [];
    select.replaceChildren(...fixed, ...accounts.map(option));
    select.value = keep;
  }
}

async function refresh() {
  render(await api("/api/accounts"));
}

async function submit(event, action) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const done = await action(new FormData(form));
    showError(null);
    document.getElementById("status").textContent = done;
    form.reset();
    await refresh();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

function start() {
  document.getElementById("new-account").addEventListener("submit", (event) =>
    submit(event, async (data) => {
      const account = await api("/api/accounts", { name: data.get("name") });
      return `Account ${account.name} created.`;
    }),
  );
  document.getElementById("new-transaction").addEventListener("submit", (event) =>
    submit(event, async (data) => {
      const from = data.get("from");
      const amount = String(data.get("amount")).trim();
      // A deposit (money from outside the ledger) has its own endpoint; a transfer needs "from".
      if (!from) {
        const sent = await api("/api/deposits", { to: data.get("to"), amount });
        return `Deposit of ${sent.amount} recorded.`;
      }
      const sent = await api("/api/transactions", { from, to: data.get("to"), amount });
      return `Transaction of ${sent.amount} recorded.`;
    }),
  );
  refresh().catch(showError);
}

if (typeof document !== "undefined") {
  start();
}
