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
// The WebDriver client is a few lines over fetch (W3C WebDriver protocol), so no browser or
// driver is downloaded. Waiting for the UI is done in the page: a MutationObserver resolves an
// async script as soon as the condition holds (no sleeps).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";

const APP = process.env.FIELDKIT_APP;
const HUB = process.env.FIELDKIT_HUB;
const CLI = process.env.FIELDKIT_CLI;
const DRIVER = process.env.TAURI_DRIVER || "tauri-driver";
const SHOTS = process.env.FIELDKIT_SCREENSHOTS;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A minimal W3C WebDriver session. */
class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async create(base, application) {
    const r = await wd(base, "POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application } } },
    });
    const s = new Session(base, r.sessionId);
    await s.cmd("POST", "/timeouts", { implicit: 20000, script: 180000, pageLoad: 60000 });
    return s;
  }

  cmd(method, path, body) {
    return wd(this.base, method, `/session/${this.id}${path}`, body).then((r) => r.value);
  }

  async find(css) {
    const el = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return Object.values(el)[0];
  }

  /**
   * Runs `f` on the element `css`, finding it again if the screen was redrawn in between (the
   * UI rebuilds a screen's DOM whenever its state changes, e.g. on every progress message).
   */
  async withElement(css, f) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await f(await this.find(css));
      } catch (e) {
        if (attempt >= 5 || !/stale element/.test(e.message)) throw e;
      }
    }
  }

  click(css) {
    return this.withElement(css, (el) => this.cmd("POST", `/element/${el}/click`, {}));
  }

  text(css) {
    return this.withElement(css, (el) => this.cmd("GET", `/element/${el}/text`));
  }

  type(css, value) {
    return this.withElement(css, async (el) => {
      await this.cmd("POST", `/element/${el}/clear`, {});
      await this.cmd("POST", `/element/${el}/value`, { text: value });
    });
  }

  script(body, ...args) {
    return this.cmd("POST", "/execute/sync", { script: body, args });
  }

  /**
   * Resolves with the value of `predicate` (a function body run in the page) as soon as it is
   * truthy, re-evaluating on every DOM change; fails with `what` after the script timeout.
   */
  async waitFor(what, predicate) {
    try {
      return await this.cmd("POST", "/execute/async", {
        script: `
          const done = arguments[arguments.length - 1];
          const pred = () => { ${predicate} };
          let obs;
          const check = () => {
            let v;
            try { v = pred(); } catch (e) { v = null; }
            if (v) { if (obs) obs.disconnect(); done(v); return true; }
            return false;
          };
          if (!check()) {
            obs = new MutationObserver(check);
            obs.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
          }`,
        args: [],
      });
    } catch (e) {
      const page = await this.script("return document.querySelector('main')?.innerText ?? ''").catch(() => "");
      throw new Error(`waiting for ${what}: ${e.message}\n--- the screen shows ---\n${page}`);
    }
  }

  async screenshot(name) {
    if (!SHOTS) return;
    // Let the window paint what the DOM holds now before it is captured.
    await this.cmd("POST", "/execute/async", {
      script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
      args: [],
    });
    const png = await this.cmd("GET", "/screenshot");
    mkdirSync(SHOTS, { recursive: true });
    writeFileSync(join(SHOTS, `app-${name}.png`), Buffer.from(png, "base64"));
  }

  async go(screen) {
    await this.click(`#nav-${screen}`);
    await this.waitFor(`the ${screen} screen`, `return document.querySelector('main')?.dataset.screen === ${JSON.stringify(screen)} && !document.getElementById('busy')`);
  }

  close() {
    return wd(this.base, "DELETE", `/session/${this.id}`).catch(() => {});
  }
}

async function wd(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const v = json.value ?? {};
    throw new Error(`${method} ${path}: ${res.status} ${v.error ?? ""} ${v.message ?? ""}`);
  }
  return json.value && json.value.sessionId ? json.value : json;
}

/** Starts a process and resolves with the first stdout line matching `pattern`. */
async function startAndRead(cmd, args, pattern, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`${cmd} exited (${code}) before printing ${pattern}`);
  });
  const found = (async () => {
    for await (const line of lines) {
      const m = line.match(pattern);
      if (m) return m;
    }
    throw new Error(`${cmd} closed its output before printing ${pattern}`);
  })();
  const match = await Promise.race([found, exited]);
  return { child, match };
}

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

/** Waits until the WebDriver server answers /status (it prints nothing when ready). */
async function driverReady(base, child) {
  let exited = false;
  child.once("exit", () => (exited = true));
  for (let i = 0; i < 400 && !exited; i++) {
    try {
      const r = await fetch(`${base}/status`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`tauri-driver did not start listening on ${base}`);
}

test("a technician's visit: connect, identify, import, refused and passing checks, update, audit, sync", { timeout: 600_000 }, async (t) => {
  assert.ok(APP, "FIELDKIT_APP must name the fieldkit-app binary");
  assert.ok(HUB, "FIELDKIT_HUB must name the fieldkit-hub binary");
  assert.ok(CLI, "FIELDKIT_CLI must name the fieldkit binary");
  const dir = mkdtempSync(join(tmpdir(), "fieldkit-app-e2e-"));
  const home = join(dir, "home");
  const children = [];
  let s = null;
  t.after(async () => {
    if (s) await s.close(); // closes the app's window and ends the app
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
  s = await Session.create(base, APP);

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
  const kit = JSON.parse(readFileSync(join(home, "demo", "kit.json"), "utf8"));
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
  // factory-fresh, updated by the CLI from this home, ends with the same steps, verdicts,
  // descriptions and summary as the screen shows.
  const screen = await s.script(
    `return {
       summary: document.getElementById('update-summary').textContent,
       steps: [...document.querySelectorAll('#update-result li')].map((li) => ({ verdict: li.dataset.verdict, text: li.textContent })),
     }`,
  );
  const second = await startSim("acme-infusion-p7", dir);
  children.push(second.child);
  const out = execFileSync(CLI, ["--home", home, "--json", "update", "--port", second.port, "--yes"], {
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
