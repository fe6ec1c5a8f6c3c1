// The app shell: the model, navigation, the busy and error states every screen shares, and
// rendering. Screens (src/screens/) are functions of the App that return DOM.

import {
  api,
  toAppError,
  type AppError,
  type AppInfo,
  type AuditEntry,
  type AuditStatus,
  type CheckView,
  type DeviceView,
  type Devices,
  type Folder,
  type ImportResult,
  type Packages,
  type ProgressEvent,
  type Settings,
  type Step,
  type SyncReport,
  type TrustDetails,
  type UpdateResult,
  type VerifyReport,
} from "./api";
import { h } from "./dom";
import { advice, RateMeter } from "./format";
import { connectScreen } from "./screens/connect";
import { deviceScreen } from "./screens/device";
import { packagesScreen } from "./screens/packages";
import { checkScreen } from "./screens/check";
import { updateScreen } from "./screens/update";
import { auditScreen } from "./screens/audit";
import { settingsScreen } from "./screens/settings";
import { firstStartScreen } from "./screens/first-start";

export type ScreenId = "connect" | "device" | "packages" | "check" | "update" | "audit" | "settings";

export const SCREENS: { id: ScreenId; title: string }[] = [
  { id: "connect", title: "Connect" },
  { id: "device", title: "Device" },
  { id: "packages", title: "Packages" },
  { id: "check", title: "Check" },
  { id: "update", title: "Update" },
  { id: "audit", title: "Audit log" },
  { id: "settings", title: "Settings" },
];

/** An update under way or finished, as the Update screen shows it. */
export interface UpdateRun {
  checkId: number;
  steps: Step[];
  /** The step under way (steps.length once all are done). */
  stepIndex: number;
  stage: { stage: string; label: string; message: string; cancel_safe: boolean } | null;
  component: string | null;
  done: number;
  total: number;
  /** Bytes of the steps already finished. */
  finishedBytes: number;
  /** Bytes of the components already sent in the step under way. */
  stepBytes: number;
  overallTotal: number;
  meter: RateMeter;
  history: string[];
  cancelRequested: boolean;
  result: UpdateResult | null;
  error: AppError | null;
}

export interface Model {
  screen: ScreenId;
  info: AppInfo | null;
  busy: string | null;
  errors: Partial<Record<ScreenId, AppError>>;
  devices: Devices | null;
  device: DeviceView | null;
  packages: Packages | null;
  folders: Folder[];
  importPath: string;
  imports: ImportResult[] | null;
  checkPackage: string;
  check: CheckView | null;
  acceptRisks: boolean;
  update: UpdateRun | null;
  auditEntries: AuditEntry[] | null;
  auditStatus: AuditStatus | null;
  verify: VerifyReport | null;
  sync: SyncReport | null;
  settings: Settings | null;
  settingsSaved: boolean;
  trust: TrustDetails | null;
  /** What the technician typed for each profile's fields the device cannot report. */
  typed: Record<string, Record<string, string>>;
  /** The trust root file typed on the first-start screen. */
  rootPath: string;
}

export function emptyModel(): Model {
  return {
    screen: "connect",
    info: null,
    busy: null,
    errors: {},
    devices: null,
    device: null,
    packages: null,
    folders: [],
    importPath: "",
    imports: null,
    checkPackage: "",
    check: null,
    acceptRisks: false,
    update: null,
    auditEntries: null,
    auditStatus: null,
    verify: null,
    sync: null,
    settings: null,
    settingsSaved: false,
    trust: null,
    typed: {},
    rootPath: "",
  };
}

export class App {
  m: Model = emptyModel();
  private now: () => number;
  /** The last element with an id that had the keyboard focus, to give it back after a redraw. */
  private lastFocus: string | null = null;

  constructor(
    private root: HTMLElement,
    now?: () => number,
  ) {
    this.now = now ?? (() => performance.now());
    document.addEventListener("keydown", (e) => this.onKey(e));
    document.addEventListener("focusin", (e) => {
      const id = (e.target as HTMLElement | null)?.id;
      if (id) this.lastFocus = id;
    });
  }

  /** Loads what the first screen needs, paints it, and tells Rust the first paint is done. */
  async start(): Promise<void> {
    this.render();
    await this.run("connect", "Looking for devices…", async () => {
      this.m.info = await api.appInfo();
      if (!this.m.info.needs_trust_root) this.m.devices = await api.listDevices();
    });
    requestAnimationFrame(() => requestAnimationFrame(() => void api.uiReady().catch(() => {})));
  }

  /** Alt+1…7 open the screens; everything else is ordinary Tab / Enter / Space. */
  private onKey(e: KeyboardEvent) {
    if (e.altKey && !e.ctrlKey && !e.metaKey && e.key >= "1" && e.key <= String(SCREENS.length)) {
      e.preventDefault();
      void this.go(SCREENS[Number(e.key) - 1].id);
    }
  }

  /** Opens a screen, refreshing what it shows, and moves the keyboard focus to its title. */
  async go(screen: ScreenId): Promise<void> {
    this.m.screen = screen;
    // One-off confirmations belong to the moment they were shown.
    this.m.settingsSaved = false;
    this.m.sync = null;
    this.m.verify = null;
    this.render();
    document.getElementById("screen-title")?.focus();
    await this.refresh(screen);
  }

  async refresh(screen: ScreenId): Promise<boolean | void> {
    switch (screen) {
      case "connect":
        return this.run(screen, "Looking for devices…", async () => {
          this.m.devices = await api.listDevices();
        });
      case "packages":
        return this.run(screen, "Verifying the imported packages…", async () => {
          this.m.folders = await api.suggestImportFolders();
          if (!this.m.importPath && this.m.folders[0]) this.m.importPath = this.m.folders[0].path;
          this.m.packages = await api.listPackages();
        });
      case "device":
        if (!this.m.device) return;
        return this.run(screen, "Reading the device's details…", async () => {
          this.m.device = await api.connectedDevice();
        });
      case "check":
        if (this.m.packages) return;
        return this.run(screen, "Reading the imported packages…", async () => {
          this.m.packages = await api.listPackages();
        });
      case "audit":
        return this.run(screen, "Reading the audit log…", async () => {
          this.m.auditStatus = await api.auditStatus();
          this.m.auditEntries = await api.auditEntries();
        });
      case "settings":
        return this.run(screen, "Reading the settings…", async () => {
          this.m.settings = await api.getSettings();
          this.m.trust = await api.trustDetails();
        });
      default:
        return;
    }
  }

  /**
   * Runs a long operation: the screen says what is being done while it runs, and an error is
   * kept for `where` to show with what to do next. Returns whether it succeeded.
   */
  async run(where: ScreenId, label: string, f: () => Promise<void>): Promise<boolean> {
    this.m.busy = label;
    delete this.m.errors[where];
    this.render();
    try {
      await f();
      return true;
    } catch (e) {
      this.m.errors[where] = toAppError(e);
      return false;
    } finally {
      this.m.busy = null;
      this.render();
    }
  }

  // Actions shared by several screens.

  /** First start: installs the manufacturer's trust root from `path`, then opens Connect. */
  async importTrustRoot(path: string): Promise<void> {
    const ok = await this.run("connect", `Installing the trust root from ${path}…`, async () => {
      this.m.info = await api.importTrustRoot(path.trim());
    });
    if (ok) await this.go("connect");
  }

  /** First start: switches to the DEMO (its own home, demo kit, simulated devices). */
  async tryDemo(): Promise<void> {
    const ok = await this.run("connect", "Preparing the DEMO: demo keys, packages and simulated devices…", async () => {
      this.m = { ...emptyModel(), info: await api.startDemo() };
    });
    if (ok) await this.go("connect");
  }

  async connectSimulator(profile: string): Promise<void> {
    const ok = await this.run("connect", "Starting the simulated device and reading it…", async () => {
      const port = await api.startSimulator(profile);
      this.setDevice(await api.identify(port, profile, this.typedFor(profile)));
      this.m.devices = await api.listDevices();
    });
    if (ok) await this.go("device");
  }

  async connectPort(port: string, profile: string | null): Promise<void> {
    const ok = await this.run("connect", `Reading the device on ${port}…`, async () => {
      this.setDevice(await api.identify(port, profile, profile ? this.typedFor(profile) : {}));
    });
    if (ok) await this.go("device");
  }

  /** What the technician typed for `profile`'s fields, without the empty ones. */
  typedFor(profile: string): Record<string, string> {
    const typed = this.m.typed[profile] ?? {};
    return Object.fromEntries(Object.entries(typed).filter(([, v]) => v.trim() !== ""));
  }

  /** Keeps what the technician types into a field the device cannot report. */
  setTyped(profile: string, field: string, value: string): void {
    this.m.typed[profile] = { ...(this.m.typed[profile] ?? {}), [field]: value };
  }

  private setDevice(d: DeviceView) {
    this.m.device = d;
    this.m.check = null;
    this.m.update = null;
    this.m.packages = null;
  }

  async importFrom(path: string): Promise<void> {
    await this.run("packages", `Importing and verifying the packages in ${path}…`, async () => {
      this.m.imports = await api.importPackages(path);
      this.m.packages = await api.listPackages();
    });
  }

  async runCheck(): Promise<void> {
    const pkg = this.m.checkPackage || null;
    this.m.check = null;
    this.m.acceptRisks = false;
    await this.run("check", "Reading the device and checking every rule…", async () => {
      this.m.check = await api.check(pkg);
      if (this.m.device) this.m.device.identity = this.m.check.checked.identity;
    });
  }

  async startUpdate(): Promise<void> {
    const check = this.m.check;
    if (!check || check.checked.plan.verdict !== "go") return;
    const steps = check.checked.plan.steps;
    const run: UpdateRun = {
      checkId: check.id,
      steps,
      stepIndex: 0,
      stage: null,
      component: null,
      done: 0,
      total: 0,
      finishedBytes: 0,
      stepBytes: 0,
      overallTotal: steps.flatMap((s) => s.payloads).reduce((n, p) => n + p.size, 0),
      meter: new RateMeter(),
      history: [],
      cancelRequested: false,
      result: null,
      error: null,
    };
    this.m.update = run;
    this.m.busy = "Updating the device…";
    delete this.m.errors.update;
    this.render();
    try {
      run.result = await api.update(check.id, this.m.acceptRisks, (e) => this.onProgress(run, e));
      if (this.m.device) this.m.device.identity = run.result.identity;
    } catch (e) {
      run.error = toAppError(e);
    } finally {
      this.m.check = null;
      this.m.packages = null;
      this.m.busy = null;
      this.render();
    }
  }

  onProgress(run: UpdateRun, e: ProgressEvent): void {
    if (e.type === "stage") {
      run.stage = e;
      run.history.push(`${e.label}: ${e.message}`);
      if (e.stage === "done" && run.stepIndex < run.steps.length) {
        // A step ends with "done": count its bytes in full and move to the next one.
        run.finishedBytes += run.steps[run.stepIndex].payloads.reduce((n, p) => n + p.size, 0);
        run.stepIndex += 1;
        run.stepBytes = 0;
        run.component = null;
        run.done = 0;
        run.total = 0;
      }
    } else {
      if (run.component !== null && e.component !== run.component) {
        run.stepBytes += run.total; // the step's previous component is sent
      }
      run.component = e.component;
      run.done = e.done;
      run.total = e.total;
      run.meter.add(e.done, this.now());
    }
    this.render();
  }

  async cancelUpdate(): Promise<void> {
    if (!this.m.update) return;
    this.m.update.cancelRequested = true;
    this.render();
    await api.cancelUpdate().catch(() => false);
  }

  async syncNow(): Promise<void> {
    await this.run("audit", "Sending the audit log to the hub…", async () => {
      this.m.sync = null;
      this.m.sync = await api.syncNow();
      this.m.auditStatus = await api.auditStatus();
    });
  }

  /** Pins the hub key the technician confirmed with the hub's operator, then syncs. */
  async confirmHubKey(key: string): Promise<void> {
    await this.run("audit", "Pinning the hub's key and sending the audit log…", async () => {
      this.m.sync = null;
      await api.confirmHubKey(key);
      this.m.sync = await api.syncNow();
      this.m.auditStatus = await api.auditStatus();
    });
  }

  async verifyAudit(): Promise<void> {
    await this.run("audit", "Checking the integrity of every entry…", async () => {
      this.m.verify = null;
      this.m.verify = await api.auditVerify();
    });
  }

  async saveSettings(s: Settings): Promise<void> {
    this.m.settingsSaved = false;
    const ok = await this.run("settings", "Saving…", async () => {
      this.m.settings = await api.setSettings(s);
    });
    this.m.settingsSaved = ok;
    this.render();
  }

  // Rendering.

  /**
   * Redraws. The keyboard focus stays where it was: on the same control, or, when that control
   * was disabled while busy, back on it as soon as it is enabled again.
   */
  render(): void {
    this.root.replaceChildren(this.layout());
    const el = this.lastFocus ? document.getElementById(this.lastFocus) : null;
    if (el && !(el as HTMLButtonElement).disabled) el.focus();
  }

  private layout(): HTMLElement {
    const m = this.m;
    if (m.info?.needs_trust_root) {
      return h(
        "div",
        { class: "shell" },
        h("header", { class: "topbar" }, h("span", { class: "brand" }, "fieldkit")),
        h("main", { id: "main", class: "first-start", "data-screen": "first-start" }, this.guard(() => firstStartScreen(this))),
      );
    }
    return h(
      "div",
      { class: "shell" },
      m.info?.demo
        ? h(
            "div",
            { class: "demo-banner", role: "note", id: "demo-banner" },
            h("strong", null, "DEMO"),
            " — demo trust root, demo packages and simulated devices. Not for clinical use.",
          )
        : null,
      h(
        "header",
        { class: "topbar" },
        h("span", { class: "brand" }, "fieldkit"),
        h(
          "span",
          { class: "connected", id: "connected-device", "aria-live": "polite" },
          m.device
            ? [
                h("span", { class: "dot ok", "aria-hidden": "true" }),
                `Connected: ${m.device.model} · serial ${m.device.identity.serial}`,
                m.device.simulated ? h("span", { class: "tag sim" }, "SIMULATED") : null,
              ]
            : [h("span", { class: "dot", "aria-hidden": "true" }), "No device connected"],
        ),
      ),
      h(
        "div",
        { class: "body" },
        h(
          "nav",
          { "aria-label": "Screens" },
          h(
            "ol",
            null,
            SCREENS.map((s, i) =>
              h(
                "li",
                null,
                h(
                  "button",
                  {
                    id: `nav-${s.id}`,
                    class: s.id === m.screen ? "nav current" : "nav",
                    "aria-current": s.id === m.screen ? "page" : null,
                    title: `Alt+${i + 1}`,
                    onclick: () => void this.go(s.id),
                  },
                  h("span", { class: "key" }, String(i + 1)),
                  s.title,
                ),
              ),
            ),
          ),
          h("p", { class: "hint" }, "Alt+1 … Alt+7 switch screens."),
        ),
        h("main", { id: "main", "data-screen": m.screen }, this.safeScreen()),
      ),
    );
  }

  /** The screen, or what went wrong building it: the window never freezes on a bad answer. */
  private safeScreen(): Node {
    return this.guard(() => this.screen());
  }

  private guard(screen: () => Node): Node {
    try {
      return screen();
    } catch (e) {
      return errorBox({
        kind: "internal",
        message: `this screen could not be shown: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  }

  private screen(): Node {
    switch (this.m.screen) {
      case "connect":
        return connectScreen(this);
      case "device":
        return deviceScreen(this);
      case "packages":
        return packagesScreen(this);
      case "check":
        return checkScreen(this);
      case "update":
        return updateScreen(this);
      case "audit":
        return auditScreen(this);
      case "settings":
        return settingsScreen(this);
    }
  }

  // Pieces every screen uses.

  /** The screen's title (focused when the screen opens) and a one-line purpose. */
  title(text: string, purpose: string): Node[] {
    return [
      h("h1", { id: "screen-title", tabindex: "-1" }, text),
      h("p", { class: "purpose" }, purpose),
    ];
  }

  /** What is being done right now, or nothing. */
  busyLine(): Node | null {
    if (!this.m.busy) return null;
    return h(
      "div",
      { class: "busy", role: "status", id: "busy" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      this.m.busy,
    );
  }

  /** The error of `where`, with what happened and what to do next. */
  errorBox(where: ScreenId): Node | null {
    const e = this.m.errors[where];
    return e ? errorBox(e) : null;
  }

  get busy(): boolean {
    return this.m.busy !== null;
  }
}

export function errorBox(e: AppError, id = "error"): HTMLElement {
  return h(
    "div",
    { class: "error", role: "alert", id, "data-kind": e.kind },
    h("h2", null, "Something went wrong"),
    h("p", null, h("strong", null, "What happened: "), e.message),
    h("p", null, h("strong", null, "What to do: "), advice(e)),
  );
}
