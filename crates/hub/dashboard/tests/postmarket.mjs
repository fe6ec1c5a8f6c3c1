// Drives the dashboard's post-market pages in headless Chromium and saves screenshots.
//
// Environment: HUB_URL, HUB_USER, HUB_PASSWORD, SCREENSHOTS (directory), PHASE ("pages": the
// fleet of crates/hub/tests/dashboard_postmarket.rs; "hostile": the same with hostile strings
// added). Exits non-zero with a reason on the first failure.
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
const phase = env("PHASE");
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
page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && errors.push(m.text()));

const texts = (sel) => page.locator(sel).allTextContents();

async function signIn() {
  await page.goto(url);
  await page.waitForSelector("#signin:not([hidden])");
  await page.fill("input[name=name]", env("HUB_USER"));
  await page.fill("input[name=password]", env("HUB_PASSWORD"));
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#timeline:not([hidden])");
}

async function openExposure() {
  await page.click("button[data-view=exposure]");
  await page.waitForSelector("#exposure-list:not([hidden]) #vuln-table tbody tr td:nth-child(2)");
  await page.waitForSelector("#exposure-chart svg polyline");
}

async function pages() {
  await openExposure();
  const names = await texts("#vuln-table tbody tr td:nth-child(2) strong");
  check(JSON.stringify(names) === JSON.stringify(["CVE-2024-45159", "CVE-2026-1001", "ACME-2026-0002"]),
    `the exposure page lists the vulnerabilities most severe first (${names})`);
  const exposed = await texts("#vuln-table tbody tr td:nth-child(5)");
  check(JSON.stringify(exposed) === JSON.stringify(["9", "7", "0"]), `exposed devices per vulnerability (${exposed})`);
  const lines = await page.locator("#exposure-chart svg polyline").count();
  check(lines === 2, `the chart draws one line per severity with exposed devices (${lines})`);
  const legend = await texts("#exposure-chart svg text.legend");
  check(legend.includes("critical: 9") && legend.includes("high: 7"), `the chart's legend says today's figures (${legend})`);
  await page.screenshot({ path: join(shots, "hub-exposure.png"), fullPage: true });

  // One vulnerability: exactly the pumps on the affected network core.
  await page.click("#vuln-table tbody tr:nth-child(2)");
  await page.waitForSelector("#exposure-vuln:not([hidden]) #vuln-devices tbody a.serial");
  await page.waitForSelector("#vuln-chart svg polyline");
  const serials = await texts("#vuln-devices tbody a.serial");
  const want = ["P7-1005", "P7-1006", "P7-2003", "P7-2004", "P7-3001", "P7-3002", "P7-3003"];
  check(JSON.stringify(serials) === JSON.stringify(want), `CVE-2026-1001 lists exactly the pumps on netcore 1.4.0 (${serials})`);
  const fixes = await texts("#vuln-devices tbody td:nth-child(5)");
  check(fixes[0].includes("may install") && fixes[0].includes("acme-infusion-p7@1.5.0"), `a rev C pump may install the security release (${fixes[0]})`);
  check(fixes[6].includes("acme-infusion-p7@1.6.0"), `the rev B pump may not install 1.5.0 (built for rev C) but may install 1.6.0 (${fixes[6]})`);
  const sites = await texts("#vuln-sites tbody td:nth-child(2)");
  check(sites.includes("Northgate Clinic") && sites.includes("St. Elsewhere Health"), `exposure by site names the customers (${sites})`);
  await page.screenshot({ path: join(shots, "hub-exposure-vulnerability.png"), fullPage: true });
  const href = await page.getAttribute("#vuln-csv", "href");
  const csv = await page.request.get(url + href);
  const csvLines = (await csv.text()).trim().split("\n");
  check(csv.ok() && csvLines.length === 8 && csvLines[1].startsWith("CVE-2026-1001,P7-1005"), `the CSV export lists the 7 pumps (${csvLines.length - 1})`);

  // A decision: the service manager records that netcore 1.4.0 is not affected after all.
  await page.selectOption("#vex-form select[name=status]", "not_affected");
  await page.fill("#vex-form input[name=impact]", "");
  await page.click("#vex-form button[type=submit]");
  await page.waitForSelector("#vex-result .error");
  const refusal = await page.textContent("#vex-result");
  check(refusal.includes("a justification or an impact statement"), `a not_affected decision without a reason is refused with the rule (${refusal})`);
  await page.fill("#vex-form input[name=product]", "pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0");
  await page.selectOption("#vex-form select[name=justification]", "vulnerable_code_not_in_execute_path");
  await page.fill("#vex-form input[name=impact]", "Oversized frames are dropped by the radio before the network core parses them.");
  await page.click("#vex-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#vex-result").textContent.includes("signed by the hub"));
  const first = await page.textContent("#vex-result");
  const states = await texts("#vuln-devices tbody td:nth-child(4)");
  check(states.every((s) => s.includes("not affected")), `after the decision no pump is exposed (${states})`);
  const author = await page.textContent("#vuln-releases tbody");
  check(author.includes(env("HUB_USER")), "the decision shows its author");
  // Undo for the next screenshots: the manufacturer's analysis says affected.
  await page.selectOption("#vex-form select[name=status]", "affected");
  await page.selectOption("#vex-form select[name=justification]", "");
  await page.fill("#vex-form input[name=impact]", "");
  await page.fill("#vex-form input[name=action]", "Install the security release 1.5.0.");
  await page.fill("#vex-form input[name=product]", "pkg:generic/acme-medical/acme-infusion-p7-netcore@1.4.0");
  await page.click("#vex-form button[type=submit]");
  await page.waitForFunction((prev) => {
    const t = document.querySelector("#vex-result").textContent;
    return t.includes("signed by the hub") && t !== prev;
  }, first);
  const again = await texts("#vuln-devices tbody td:nth-child(4)");
  check(again.every((s) => s.includes("exposed")), `a later decision decides again (${again})`);

  // A device.
  await page.click("#vuln-devices tbody a.serial:text-is('P7-3003')");
  await page.waitForSelector("#exposure-device:not([hidden]) #device-body table");
  const body = await page.textContent("#device-body");
  check(body.includes("acme-infusion-p7@1.4.0") && body.includes("CVE-2024-45159") && body.includes("Northgate Clinic"),
    "the device page shows what runs, its vulnerabilities and its customer");
  await page.screenshot({ path: join(shots, "hub-exposure-device.png"), fullPage: true });

  // A component in a range, from the search box.
  await page.click("#exposure-device .back-to-exposure");
  await page.waitForSelector("#exposure-list:not([hidden])");
  await page.selectOption("#exposure-search select[name=by]", "component");
  await page.fill("#exposure-search input[name=what]", "pkg:github/Mbed-TLS/mbedtls@vers:semver/<3.6.1");
  await page.click("#exposure-search button[type=submit]");
  await page.waitForSelector("#exposure-component:not([hidden]) #component-body table");
  const comp = await page.textContent("#component-body h2");
  check(comp.includes("run by 9 devices"), `a component range finds the devices that run it (${comp})`);

  // A bad question gets the rule, not a crash.
  await page.click("#exposure-component .back-to-exposure");
  await page.waitForSelector("#exposure-list:not([hidden])");
  await page.selectOption("#exposure-search select[name=by]", "id");
  await page.fill("#exposure-search input[name=what]", "no such id!");
  await page.click("#exposure-search button[type=submit]");
  await page.waitForSelector("#vuln-error .error");
  const err = await page.textContent("#vuln-error");
  check(err.includes("required a vulnerability id"), `an invalid id is refused with the rule (${err})`);

  // Up to date.
  await page.click("button[data-view=uptodate]");
  await page.waitForSelector("#uptodate:not([hidden]) #uptodate-chart svg rect");
  await page.waitForSelector("#uptodate-devices tbody a.serial");
  const share = await texts("#uptodate-chart svg text");
  check(share.some((s) => s.includes("netcore")) && share.some((s) => s.includes("2 of 13")), `the share chart shows netcore current on 2 of 13 (${share})`);
  const behind = await page.locator("#uptodate-devices tbody tr").count();
  check(behind === 24, `24 device components are behind (${behind})`);
  await page.screenshot({ path: join(shots, "hub-uptodate.png"), fullPage: true });
  await page.fill("#uptodate-filters input[name=customer]", "Northgate Clinic");
  await page.click("#uptodate-filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#uptodate-devices tbody tr").length === 6);
  check(true, "filtering by customer shows Northgate's six device components");

  // Licences.
  await page.click("button[data-view=licences]");
  await page.waitForSelector("#licence-table tbody tr td .badge");
  const verdicts = await texts("#licence-table tbody td:nth-child(2)");
  check(verdicts[0] === "deny", `the release with GPL-3.0-only comes first, denied (${verdicts})`);
  await page.screenshot({ path: join(shots, "hub-licences.png"), fullPage: true });
}

async function hostile() {
  await openExposure();
  const row = page.locator("#vuln-table tbody tr", { hasText: "HOSTILE-0001" });
  const text = await row.textContent();
  check(text.includes('<img src=x onerror="window.pwned=1">'), "an advisory's markup is shown as text");
  await row.click();
  await page.waitForSelector("#vuln-devices tbody a.serial");
  const devices = await page.textContent("#vuln-devices tbody");
  check(devices.includes("P7-9<b>9</b>") && devices.includes('<img src=x onerror="window.pwned=3">'), "a serial and a site typed on a laptop are shown as text");
  const pwned = await page.evaluate(() => window.pwned);
  check(pwned === undefined, "no injected script ran");
  const imgs = await page.locator("#exposure img").count();
  check(imgs === 0, "no injected element exists");
}

try {
  await signIn();
  if (phase === "pages") await pages();
  else await hostile();
  check(errors.length === 0, `no script errors (${errors.join("; ")})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
