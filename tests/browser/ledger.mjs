// Drives the ledger page the way a person would, in Debian's headless Chromium:
//   node tests/browser/ledger.mjs URL SCREENSHOT
// creates two accounts and two transactions through the forms, tries one that the API refuses,
// and prints what the page showed as one JSON object (tests/test_dev_browser.py asserts it).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(path.join(tmpdir(), "flowlet-chromium-"));
const suffix = Date.now().toString(36);
const alice = `alice-${suffix}`;
const bob = `bob-${suffix}`;
const seen = { console: [], failed: [] };

const browser = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(15000);
  page.on("console", (message) => {
    if (message.type() === "error") seen.console.push(message.text());
  });
  page.on("pageerror", (error) => seen.console.push(String(error)));
  await page.goto(url);
  seen.heading = await page.locator("h1").textContent();

  const balanceOf = (name) => page.locator(`tr[data-account="${name}"] td.balance`);
  for (const name of [alice, bob]) {
    await page.getByLabel("Name").fill(name);
    await page.getByRole("button", { name: "Create account" }).click();
    await balanceOf(name).waitFor();
  }
  seen.created = {
    [alice]: await balanceOf(alice).textContent(),
    [bob]: await balanceOf(bob).textContent(),
  };

  const form = page.locator("#new-transaction");
  async function transfer(from, to, amount) {
    await form.getByLabel("From").selectOption(from === null ? "" : { label: from });
    await form.getByLabel("To").selectOption({ label: to });
    await form.getByLabel("Amount").fill(amount);
    await form.getByRole("button", { name: "Record transaction" }).click();
  }
  await transfer(null, alice, "125.50");
  await page.getByText("Deposit of 125.50 recorded.").waitFor();
  await transfer(alice, bob, "0.75");
  await page.getByText("Transaction of 0.75 recorded.").waitFor();
  await page.waitForFunction(
    ([name, want]) =>
      document.querySelector(`tr[data-account="${name}"] td.balance`)?.textContent === want,
    [bob, "0.75"],
  );
  seen.balances = {
    [alice]: await balanceOf(alice).textContent(),
    [bob]: await balanceOf(bob).textContent(),
  };

  await transfer(bob, alice, "5.00"); // more than bob has: the API says no
  await page.locator("#error").filter({ hasText: /./ }).waitFor();
  seen.error = await page.locator("#error").textContent();
  seen.afterError = { [bob]: await balanceOf(bob).textContent() };

  await page.reload();
  await balanceOf(bob).waitFor();
  seen.reloaded = {
    [alice]: await balanceOf(alice).textContent(),
    [bob]: await balanceOf(bob).textContent(),
  };
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  seen.names = { alice, bob };
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
