// Drives the hub dashboard in headless Chromium and saves screenshots.
//
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, SCREENSHOTS (directory), EXPECT_TOTAL (entries
// the hub holds), EXPECT_TECH and EXPECT_TECH_TOTAL (a technician and their entry count),
// EXPECT_SERIAL (a device serial to open). Exits non-zero with a reason on the first failure.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};
const url = env("HUB_URL");
const shots = env("SCREENSHOTS");
const total = Number(env("EXPECT_TOTAL"));
const tech = env("EXPECT_TECH");
const techTotal = Number(env("EXPECT_TECH_TOTAL"));
const serial = env("EXPECT_SERIAL");
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`dashboard check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "fieldkit-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1366, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = context.pages()[0] || (await context.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
// Expected 401s (the session probe, the wrong password) appear as resource errors; script
// errors are what must not happen.
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));

try {
  await page.goto(url);
  await page.waitForSelector("#signin:not([hidden])");
  check(await page.isVisible("#signin-form"), "the sign-in form is shown first");
  await page.screenshot({ path: join(shots, "hub-signin.png") });

  await page.fill("input[name=name]", env("HUB_USER"));
  await page.fill("input[name=password]", "not-the-password");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#signin-error").textContent.length > 0);
  check((await page.textContent("#signin-error")).includes("wrong password"), "a wrong password is refused with a reason");

  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#timeline:not([hidden]) #entries tbody tr");
  await page.waitForFunction(() => document.querySelector("#timeline-count").textContent.length > 0);
  const count = await page.textContent("#timeline-count");
  check(count.includes(`${total} entries`), `the timeline counts ${total} entries (${count})`);
  const rows = await page.locator("#entries tbody tr").count();
  check(rows === Math.min(total, 200), `the timeline lists ${rows} rows`);
  await page.screenshot({ path: join(shots, "hub-timeline.png"), fullPage: false });

  await page.fill("#filters input[name=technician]", tech);
  await page.click("#filters button[type=submit]");
  await page.waitForFunction((n) => document.querySelectorAll("#entries tbody tr").length === n, techTotal);
  check(true, `filtering by technician ${tech} shows ${techTotal} entries`);
  await page.click("#filters button[type=reset]");
  await page.waitForFunction((n) => document.querySelectorAll("#entries tbody tr").length === n, Math.min(total, 200));

  await page.click("#entries tbody tr:first-child td:nth-child(2)");
  await page.waitForSelector("#detail:not([hidden])");
  check((await page.textContent("#detail")).includes("Device"), "clicking an entry shows its device and details");
  await page.screenshot({ path: join(shots, "hub-entry-detail.png"), fullPage: true });

  await page.click(`#entries a.serial:text-is("${serial}")`);
  await page.waitForFunction((s) => document.querySelector("#timeline-title").textContent.includes(s), serial);
  // The title changes before the rows arrive: wait for the rows of this device.
  await page.waitForFunction((s) => {
    const links = [...document.querySelectorAll("#entries tbody a.serial")];
    return links.length > 0 && links.every((a) => a.textContent === s);
  }, serial);
  const serials = await page.locator("#entries tbody a.serial").allTextContents();
  check(serials.length > 0 && serials.every((s) => s === serial), `device history shows only ${serial} (${serials.length} entries)`);
  await page.screenshot({ path: join(shots, "hub-device-history.png") });

  await page.click("button[data-view=fleet]");
  await page.waitForSelector("#chart svg rect");
  const bars = await page.locator("#chart svg rect").count();
  check(bars > 0, `the firmware chart draws ${bars} bars`);
  check((await page.locator("#inventory tbody tr").count()) > 0, "the inventory lists devices");
  await page.screenshot({ path: join(shots, "hub-fleet.png"), fullPage: true });

  await page.click("button[data-view=laptops]");
  await page.waitForSelector("#laptop-table tbody tr");
  await page.screenshot({ path: join(shots, "hub-laptops.png"), fullPage: true });

  const csv = await page.request.get(url + "/api/v1/export?format=csv");
  const lines = (await csv.text()).trim().split("\n").length;
  check(csv.ok() && lines === total + 1, `the CSV export has a header and ${total} rows`);

  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
