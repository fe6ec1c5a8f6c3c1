// Hostile device strings on the dashboard: a serial that is a spreadsheet formula and a
// hardware revision full of terminal escapes must appear as the text they are, in the timeline,
// the inventory and an entry's detail, with nothing injected into the page.
//
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, EXPECT_SERIAL, EXPECT_REVISION. Exits non-zero
// with a reason on the first failure. Run by tests/hostile_text.rs.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};
const url = env("HUB_URL");
const serial = env("EXPECT_SERIAL");
const revision = env("EXPECT_REVISION");

function check(cond, what) {
  if (!cond) throw new Error(`dashboard check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "fieldkit-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const page = context.pages()[0] || (await context.newPage());
const errors = [];
const dialogs = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("dialog", (d) => {
  dialogs.push(d.message());
  d.dismiss();
});
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));

try {
  await page.goto(url);
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("input[name=name]", env("HUB_USER"));
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#timeline:not([hidden]) #entries tbody tr");

  const serials = await page.locator("#entries tbody a.serial").allTextContents();
  check(serials.length > 0 && serials.every((s) => s === serial), "the serial is shown as text, exactly as reported");
  const injected = await page.evaluate(() => document.querySelectorAll('a[href*="evil.example"], script:not([src]), iframe').length);
  check(injected === 0, "nothing from the device became a link, a script or a frame");

  await page.click("#entries tbody tr:first-child td:nth-child(2)");
  await page.waitForSelector("#detail:not([hidden])");
  const detail = await page.textContent("#detail");
  check(detail.includes("HYPERLINK") && detail.includes(JSON.stringify(revision).slice(1, -1)), "the detail shows the device record as text, escapes written out");

  await page.click("button[data-view=fleet]");
  await page.waitForSelector("#inventory tbody tr");
  const inventory = await page.locator("#inventory tbody a.serial").allTextContents();
  check(inventory.includes(serial), "the inventory shows the serial as text");

  check(dialogs.length === 0, `no dialog opened (${dialogs.join("; ")})`);
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
