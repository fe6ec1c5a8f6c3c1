// A few lines of W3C WebDriver over fetch, and the process helpers the end-to-end tests share:
// the app's visit (app.e2e.test.mjs) and the installed package's first start
// (installed-app.mjs, run by `cargo xtask dist-test`). No browser or driver is downloaded.
// Waiting for the UI is done in the page: a MutationObserver resolves an async script as soon as
// the condition holds (no sleeps).

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";

export function freePort() {
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
export class Session {
  constructor(base, id, shots) {
    this.base = base;
    this.id = id;
    this.shots = shots;
  }

  /** A session on the app `application`; `shots`: a folder screenshots are saved into, or none. */
  static async create(base, application, shots, args = []) {
    const r = await wd(base, "POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    const s = new Session(base, r.sessionId, shots);
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
    if (!this.shots) return;
    // Let the window paint what the DOM holds now before it is captured.
    await this.cmd("POST", "/execute/async", {
      script: "const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
      args: [],
    });
    const png = await this.cmd("GET", "/screenshot");
    mkdirSync(this.shots, { recursive: true });
    writeFileSync(join(this.shots, `app-${name}.png`), Buffer.from(png, "base64"));
  }

  async go(screen) {
    await this.click(`#nav-${screen}`);
    await this.waitFor(`the ${screen} screen`, `return document.querySelector('main')?.dataset.screen === ${JSON.stringify(screen)} && !document.getElementById('busy')`);
  }

  close() {
    return wd(this.base, "DELETE", `/session/${this.id}`).catch(() => {});
  }
}

export async function wd(base, method, path, body) {
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
export async function startAndRead(cmd, args, pattern, env) {
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

/** Waits until the WebDriver server answers /status (it prints nothing when ready). */
export async function driverReady(base, child) {
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
