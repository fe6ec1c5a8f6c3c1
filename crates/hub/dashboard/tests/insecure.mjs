// The dashboard of a hub started with --insecure-http, in headless Chromium: the warning is on
// the sign-in page and stays on every page after signing in. Saves screenshots.
//
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, SCREENSHOTS (directory), CHROMIUM. Exits
// non-zero with a reason on the first failure.
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
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`dashboard check failed: ${what}`);
  console.log(`ok - ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "fieldkit-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1366, height: 700 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = context.pages()[0] || (await context.newPage());
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));

try {
  await page.goto(url);
  await page.waitForSelector("#signin:not([hidden])");
  await page.waitForSelector("#insecure:not([hidden])");
  const warning = (await page.textContent("#insecure")).replace(/\s+/g, " ");
  check(warning.startsWith("Not secure") && warning.includes("read the passwords"), `the sign-in page warns: ${warning}`);
  await page.screenshot({ path: join(shots, "hub-insecure-http-signin.png") });

  await page.fill("input[name=name]", env("HUB_USER"));
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#timeline:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#timeline-count").textContent.length > 0);
  check(await page.isVisible("#insecure"), "the warning stays after signing in");
  await page.click("button[data-view=fleet]");
  await page.waitForSelector("#fleet:not([hidden])");
  check(await page.isVisible("#insecure"), "and on the fleet page");
  await page.click("button[data-view=timeline]");
  await page.screenshot({ path: join(shots, "hub-insecure-http-timeline.png") });

  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
