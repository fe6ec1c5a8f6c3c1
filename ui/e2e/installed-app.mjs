// The installed package's first start: `cargo xtask dist-test` installs the .deb, then runs
// this (with node --test) under Xvfb against the installed binary, as a technician with a fresh
// home:
//
//   FIELDKIT_APP          the installed app (/usr/bin/fieldkit-app)
//   TAURI_DRIVER          tauri-driver (default: on PATH)
//   FIELDKIT_SCREENSHOTS  the folder the first screen is saved into (app-installed.png)
//
// The package was built with a trust root pinned, so the app opens on Connect, trusting it, and
// is not the DEMO. Not a *.test.mjs file: `node --test ui/e2e/` (the app's visit) leaves it out.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";

import { Session, freePort, driverReady } from "./webdriver.mjs";

const APP = process.env.FIELDKIT_APP;
const DRIVER = process.env.TAURI_DRIVER || "tauri-driver";
const SHOTS = process.env.FIELDKIT_SCREENSHOTS;

test("the installed app starts, trusts its pinned root, and is not the DEMO", { timeout: 300_000 }, async (t) => {
  assert.ok(APP, "FIELDKIT_APP must name the installed fieldkit-app");
  let s = null;
  const port = await freePort();
  const nativePort = await freePort();
  const driver = spawn(DRIVER, ["--port", String(port), "--native-port", String(nativePort)], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  t.after(async () => {
    if (s) await s.close();
    driver.kill();
  });
  const base = `http://127.0.0.1:${port}`;
  await driverReady(base, driver);
  s = await Session.create(base, APP, SHOTS);

  const screen = await s.waitFor(
    "the first screen",
    "const m = document.querySelector('main'); return m && m.dataset.screen && !document.getElementById('busy') && m.dataset.screen",
  );
  assert.equal(screen, "connect", "a pinned build needs no trust root from the technician");
  assert.equal(await s.script("return document.querySelector('#first-start')"), null);
  assert.equal(await s.script("return document.querySelector('#demo-banner')"), null, "not the DEMO");
  assert.ok(await s.script("return document.querySelector('#nav-check')"), "every screen is there");
  // The trust root on Settings is the pinned one: version 1, not a DEMO root.
  await s.go("settings");
  assert.equal(await s.waitFor("the trust root", "return document.querySelector('#root-version')?.innerText"), "1");
  assert.doesNotMatch(await s.script("return document.querySelector('main').innerText"), /DEMO/);
  await s.go("connect");
  await s.screenshot("installed");
});
