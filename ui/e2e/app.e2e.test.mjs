// End to end: the real app (src-tauri binary) in a real window, driven through tauri-driver
// and WebKitWebDriver, against simulated devices in the app and a real fieldkit-hub on
// loopback. `cargo xtask test` runs it under Xvfb (see xtask/src/app.rs), with:
//
//   FIELDKIT_APP      the fieldkit-app binary
//   FIELDKIT_HUB      the fieldkit-hub binary
//   FIELDKIT_CLI      the fieldkit binary (the CLI, and the simulator it runs)
//   TAURI_DRIVER      tauri-driver (default: on PATH)
//   FIELDKIT_SCREENSHOTS  optional: a folder to save a screenshot of every screen into
//
// The WebDriver client is webdriver.mjs: a few lines over fetch, so no browser or driver is
// downloaded, and waiting for the UI happens in the page (no sleeps).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";

import { Session, freePort, startAndRead, driverReady } from "./webdriver.mjs";

const APP = process.env.FIELDKIT_APP;
const HUB = process.env.FIELDKIT_HUB;
const CLI = process.env.FIELDKIT_CLI;
const DRIVER = process.env.TAURI_DRIVER || "tauri-driver";
const SHOTS = process.env.FIELDKIT_SCREENSHOTS;

/**
 * Starts `fieldkit sim` for a factory-fresh device and resolves with its port (the first line
 * it prints) once it is listening; its further output is read and dropped.
 */
async function startSim(profile, dir) {
  const link = join(dir, `${profile}.port`);
  const child = spawn(CLI, ["sim", "--profile", profile, "--state", join(dir, `${profile}.json`), "--port-link", link], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const first = once(lines, "line");
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`fieldkit sim exited (${code}) before it was listening`);
  });
  const [port] = await Promise.race([first, exited]);
  return { child, port: port.trim() };
}

/**
 * Starts tauri-driver and, through it, the app with a fresh home (`FIELDKIT_HOME`) in a
 * temporary directory. When test `t` ends the app's window is closed (which ends the app),
 * every process in `children` is killed and the directory is removed.
 */
async function openApp(t) {
  const dir = mkdtempSync(join(tmpdir(), "fieldkit-app-e2e-"));
  const home = join(dir, "home");
  const children = [];
  let s = null;
  t.after(async () => {
    if (s) await s.close();
    for (const c of children) c.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  const port = await freePort();
  const nativePort = await freePort();
  const driver = spawn(DRIVER, ["--port", String(port), "--native-port", String(nativePort)], {
    env: { ...process.env, FIELDKIT_HOME: home },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(driver);
  const base = `http://127.0.0.1:${port}`;
  await driverReady(base, driver);
  s = await Session.create(base, APP, SHOTS);
  return { dir, home, children, s };
}

test("a technician's visit: connect, identify, import, refused and passing checks, update, audit, sync", { timeout: 600_000 }, async (t) => {
  assert.ok(APP, "FIELDKIT_APP must name the fieldkit-app binary");
  assert.ok(HUB, "FIELDKIT_HUB must name the fieldkit-hub binary");
  assert.ok(CLI, "FIELDKIT_CLI must name the fieldkit binary");
  const { dir, home, children, s } = await openApp(t);

  // First start without a trust root (this build pins none): nothing can be checked; the app
  // says so and offers to install the manufacturer's root or to try the DEMO.
  const first = await s.waitFor("the first-start screen", "return document.querySelector('#first-start') && !document.getElementById('busy') && document.querySelector('main').innerText");
  assert.match(first, /no trust root/i);
  assert.match(first, /refuses to check or update/);
  assert.equal(await s.script("return document.querySelector('#nav-check')"), null, "no screen to check from");
  await s.screenshot("first-start");
  // A file that is not a trust root is refused, and the first screen stays.
  writeFileSync(join(dir, "not-a-root.json"), "{\"signed\": {}}\n");
  await s.type("#root-path", join(dir, "not-a-root.json"));
  await s.click("#import-root");
  const refusal = await s.waitFor("the refusal", "return !document.getElementById('busy') && document.querySelector('#error')?.innerText");
  assert.match(refusal, /not-a-root\.json/);
  assert.ok(await s.script("return document.querySelector('#first-start')"));
  // One click: the DEMO, in a home of its own.
  await s.click("#try-demo");

  // Connect: nothing is plugged in; the simulated devices are offered, labelled.
  await s.waitFor("the simulated pump", "return document.querySelector('#connect-sim-acme-infusion-p7') && !document.getElementById('busy')");
  assert.match(await s.text("#demo-banner"), /DEMO/);
  assert.match(await s.text("#simulators"), /SIMULATED/);
  await s.screenshot("connect");

  // The technician says who and where: every audit entry carries it.
  await s.go("settings");
  await s.type("#set-technician", "Ana Ruiz");
  // The site as the demo entitlement names it: entitlements are scoped to the visit's site.
  await s.type("#set-site", "DEMO Ward 4");
  await s.click("#save-settings");
  await s.waitFor("the settings to be saved", "return document.querySelector('#settings-saved')");
  await s.go("connect");

  // Read its identity.
  await s.click("#connect-sim-acme-infusion-p7");
  const serial = await s.waitFor("the device's identity", "return document.querySelector('#device-serial')?.textContent");
  assert.equal(serial, "P7-004217");
  assert.match(await s.text("#slots"), /app[\s\S]*running, confirmed/);
  assert.match(await s.text("#connected-device"), /P7-004217[\s\S]*SIMULATED/);

  // Import the DEMO USB stick: each package verified, the recalled one refused.
  await s.go("packages");
  const importPath = await s.script("return document.getElementById('import-path').value");
  assert.match(importPath, /usb-stick$/);
  await s.click("#import");
  const imported = await s.waitFor("the import results", "return document.querySelector('#import-results')?.innerText");
  assert.match(imported, /verified/i);
  assert.match(imported, /Refused[\s\S]*(recall|Recall)/);
  const table = await s.waitFor("the packages table", "return document.querySelector('#packages')?.innerText");
  assert.match(table, /Entitled/);
  await s.screenshot("packages");

  // The device screen now has the running firmware's SBOM.
  await s.go("device");
  assert.match(await s.text("main"), /Software bill of materials[\s\S]*zephyr/);
  await s.screenshot("device");

  // A refused check, with its reasons: the release made for another hardware revision.
  // The DEMO lives beside the real home, never in it.
  assert.ok(!existsSync(join(home, "demo")), "no demo material in the production home");
  const prodKeys = existsSync(join(home, "keys")) ? readdirSync(join(home, "keys")) : [];
  assert.deepEqual(prodKeys.filter((k) => k.startsWith("demo")), [], "no demo keys in the production home");
  const kit = JSON.parse(readFileSync(join(`${home}-demo`, "demo", "kit.json"), "utf8"));
  const wrong = kit.items.find((i) => i.kind === "package" && i.label === "wrong-hardware" && i.product === "acme-infusion-p7");
  assert.ok(wrong, "the demo kit has a wrong-hardware package for the pump");
  await s.go("check");
  const chosen = await s.script(
    `const sel = document.getElementById('check-package');
     const opt = [...sel.options].find((o) => o.value.endsWith('/' + arguments[0]));
     if (!opt) return null;
     sel.value = opt.value; sel.dispatchEvent(new Event('change'));
     return opt.value;`,
    basename(wrong.files[0]),
  );
  assert.ok(chosen, `the wrong-hardware package ${basename(wrong.files[0])} is offered`);
  await s.click("#run-check");
  await s.waitFor("a refused verdict", "return document.querySelector('#verdict[data-verdict=refused]')");
  const failed = await s.text('#findings tr.failed[data-rule="target.hardware"]');
  assert.match(failed, /Failed/);
  assert.match(failed, /hardware/i);
  await s.screenshot("check-refused");

  // A passing check: the newest update the device may take.
  await s.script(
    "const sel = document.getElementById('check-package'); sel.value = ''; sel.dispatchEvent(new Event('change'));",
  );
  await s.click("#run-check");
  await s.waitFor("an allowed verdict", "return document.querySelector('#verdict[data-verdict=go]')");
  assert.ok(!(await s.script("return document.querySelector('#findings tr.failed')")), "no rule failed");
  await s.screenshot("check");

  // The update, with visible progress, to completion.
  await s.click("#go-update");
  await s.waitFor("the plan", "return document.querySelector('#plan-steps')");
  await s.screenshot("update-plan");
  await s.click("#start-update");
  const shown = await s.waitFor(
    "upload progress",
    "const b = document.getElementById('progress-bar'); const v = b && Number(b.getAttribute('aria-valuenow')); return v > 0 && v < 100 && /\\/s/.test(document.getElementById('progress-numbers').textContent) ? v : null",
  );
  assert.ok(shown > 0 && shown < 100);
  await s.screenshot("update-progress");
  const result = await s.waitFor("the update to finish", "return document.querySelector('#update-result, #update-error')?.innerText");
  assert.match(result, /Update complete/, result);
  await s.screenshot("update-done");

  // The screen renders the value core decided, as the CLI's `--json` does: a second pump,
  // factory-fresh, updated by the CLI from the app's (DEMO) home, ends with the same steps, verdicts,
  // descriptions and summary as the screen shows.
  const screen = await s.script(
    `return {
       summary: document.getElementById('update-summary').textContent,
       steps: [...document.querySelectorAll('#update-result li')].map((li) => ({ verdict: li.dataset.verdict, text: li.textContent })),
     }`,
  );
  const second = await startSim("acme-infusion-p7", dir);
  children.push(second.child);
  const out = execFileSync(CLI, ["--home", `${home}-demo`, "--json", "update", "--port", second.port, "--yes"], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  const cli = JSON.parse(out.trim().split("\n").pop()).result;
  assert.equal(cli.completed, true);
  assert.equal(screen.summary, cli.summary);
  assert.deepEqual(
    screen.steps,
    cli.steps.map((st) => ({ verdict: st.verdict.verdict, text: `${st.package}: ${st.description}` })),
  );
  assert.equal(screen.steps.length, 3, "the demo pump's three-step plan");

  // The audit log has every step, with who did it and where.
  await s.go("audit");
  assert.match(await s.text("#audit-entries"), /Ana Ruiz/);
  const events = await s.script("return [...document.querySelectorAll('#audit-entries tbody tr')].map((r) => r.dataset.event)");
  for (const e of ["device_identified", "check_refused", "check_passed", "update_started", "update_succeeded"]) {
    assert.ok(events.includes(e), `the audit log shows ${e}: ${events}`);
  }
  const unsynced = Number(await s.text("#audit-unsynced"));
  assert.ok(unsynced >= events.length, `${unsynced} entries wait for sync`);

  // Sync to a hub on loopback that has enrolled this laptop's key (shown in Settings).
  await s.go("settings");
  const key = await s.text("#laptop-key");
  assert.match(key, /BEGIN PUBLIC KEY/);
  writeFileSync(join(dir, "laptop.pem"), key.trim() + "\n");
  const db = `sqlite:${join(dir, "hub.db")}`;
  const enrolled = execFileSync(HUB, ["enroll-laptop", "--db", db, "--name", "e2e-laptop", "--key", join(dir, "laptop.pem")], { encoding: "utf8" });
  const hubKey = enrolled.match(/hub key (fieldkit-hub\/[0-9a-f]+)/)[1];
  const hub = await startAndRead(HUB, ["serve", "--db", db, "--listen", "127.0.0.1:0"], /listening on (http:\/\/\S+)/);
  children.push(hub.child);
  await s.type("#set-hub", hub.match[1]);
  await s.click("#save-settings");
  await s.waitFor("the hub to be saved", "return document.querySelector('#settings-saved') && document.getElementById('set-hub').value.startsWith('http')");
  await s.screenshot("settings");

  await s.go("audit");
  await s.click("#sync-now");
  // The first sync stops before anything is sent: the technician confirms the hub's key.
  const ask = await s.waitFor("the hub key question", "return document.querySelector('#hub-key-form') && document.querySelector('#error')?.innerText");
  assert.match(ask, new RegExp(`presents key ${hubKey}`), ask);
  assert.equal(await s.text("#audit-acked"), "0");
  await s.type("#hub-key-confirm", hubKey);
  await s.click("#pin-hub-key");
  const synced = await s.waitFor("the sync result", "return document.querySelector('#sync-result, #error')?.innerText");
  assert.match(synced, /Synced/, synced);
  assert.equal(await s.text("#audit-unsynced"), "0");
  await s.click("#verify-audit");
  assert.match(await s.waitFor("the integrity check", "return document.querySelector('#verify-result, #error')?.innerText"), /Intact/);
  await s.screenshot("audit");

  const exported = JSON.parse(execFileSync(HUB, ["export", "--db", db, "--format", "json"], { encoding: "utf8" }));
  const text = JSON.stringify(exported);
  assert.match(text, /update_succeeded/, "the hub holds the update");
  assert.match(text, /P7-004217/);
});

test("a monitor in MCUboot serial recovery: typed fields, identify, risk accepted, applied in place, audit", { timeout: 600_000 }, async (t) => {
  assert.ok(APP, "FIELDKIT_APP must name the fieldkit-app binary");
  const { dir, home, children, s } = await openApp(t);
  await s.waitFor("the first-start screen", "return document.querySelector('#first-start') && !document.getElementById('busy')");
  await s.click("#try-demo");

  const profile = "vitalis-monitor-m3-recovery";
  await s.waitFor("the simulated monitor in serial recovery", `return document.querySelector('#connect-sim-${profile}') && !document.getElementById('busy')`);
  await s.go("settings");
  await s.type("#set-technician", "Ana Ruiz");
  await s.type("#set-site", "DEMO Ward 4");
  await s.click("#save-settings");
  await s.waitFor("the settings to be saved", "return document.querySelector('#settings-saved')");
  await s.go("packages");
  await s.click("#import");
  await s.waitFor("the import results", "return document.querySelector('#import-results')?.innerText");
  await s.go("connect");

  // The bootloader cannot report these: the technician reads them off the rating plate.
  const typed = { serial: "VM3-1180-2291", hardware_revision: "B2", bootloader_version: "1.10.0", therapy_running: "false", on_mains: "true" };
  const missing = await s.script(
    `const [profile, typed] = arguments;
     const missing = [];
     for (const [name, value] of Object.entries(typed)) {
       const el = document.getElementById('typed-' + profile + '-' + name);
       if (!el) { missing.push(name); continue; }
       el.value = value;
       el.dispatchEvent(new Event(el.tagName === 'SELECT' ? 'change' : 'input'));
     }
     return missing;`,
    profile,
    typed,
  );
  assert.deepEqual(missing, [], "every field the bootloader cannot report is offered for typing");
  await s.screenshot("recovery-connect");
  await s.click(`#connect-sim-${profile}`);
  const serial = await s.waitFor("the device's identity", "return document.querySelector('#device-serial')?.textContent");
  assert.equal(serial, "VM3-1180-2291");
  assert.match(await s.text("main"), /typed/i, "the screen says which values were typed");

  // The newest release it can take in one step; in place, so the no-test-slot risk is shown.
  await s.go("check");
  const chosen = await s.script(
    `const sel = document.getElementById('check-package');
     const opt = [...sel.options].find((o) => o.value.endsWith('/vitalis-monitor-m3-4.1.0.fkpkg'));
     if (!opt) return null;
     sel.value = opt.value; sel.dispatchEvent(new Event('change'));
     return opt.value;`,
  );
  assert.ok(chosen, "the monitor's 4.1.0 package is offered");
  await s.click("#run-check");
  await s.waitFor("an allowed verdict", "return document.querySelector('#verdict[data-verdict=go]')");
  await s.click("#go-update");
  await s.waitFor("the plan with its risk", "return document.querySelector('#plan-steps') && document.querySelector('#risks')");
  assert.match(await s.text("#risks"), /test slot/i);
  assert.equal(await s.script("return document.getElementById('start-update').disabled"), true, "no update before the risk is accepted");
  await s.click("#accept-risks");
  await s.waitFor("the start button", "return !document.getElementById('start-update').disabled");
  await s.screenshot("recovery-plan");
  await s.click("#start-update");
  const result = await s.waitFor("the update to finish", "return document.querySelector('#update-result, #update-error')?.innerText");
  assert.match(result, /Update complete/, result);
  assert.match(result, /applied in place/, result);
  assert.ok(await s.script("return document.querySelector('#update-result li[data-verdict=applied_in_place]')"), result);
  await s.screenshot("recovery-done");

  await s.go("audit");
  const events = await s.script("return [...document.querySelectorAll('#audit-entries tbody tr')].map((r) => r.dataset.event)");
  for (const e of ["device_identified", "check_passed", "update_started", "update_succeeded"]) {
    assert.ok(events.includes(e), `the audit log shows ${e}: ${events}`);
  }
  assert.ok(!events.includes("update_failed"), `${events}`);
  await s.click("#verify-audit");
  assert.match(await s.waitFor("the integrity check", "return document.querySelector('#verify-result, #error')?.innerText"), /Intact/);
});
