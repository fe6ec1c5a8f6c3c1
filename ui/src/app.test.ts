// The screens against a mocked IPC (`@tauri-apps/api/mocks`): what the technician sees for
// each answer from Rust, including errors and the update's progress channel.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { App } from "./app";
import type { CheckView, DeviceView, Devices, Finding, ProgressEvent } from "./api";

type Handler = (args: Record<string, unknown>) => unknown;

const identity = {
  profile: "acme-infusion-p7",
  model: "InfuSafe P7",
  serial: "P7-004217",
  hardware_revision: "C",
  bootloader: "MCUboot",
  bootloader_version: "2.1.0",
  slots: [
    { image: 0, slot: 0, component: "app", version: "2.3.1", hash: "74526c9b1bdcbf9b00", bootable: true, pending: false, confirmed: true, active: true, permanent: false },
  ],
  fields: {
    serial: { value: "P7-004217", label: "Serial number", source: "vendor" as const },
    battery_percent: { value: 87, label: "Battery (%)", source: "vendor" as const },
    therapy_running: { value: false, label: "Infusion running", source: "vendor" as const },
  },
  buffers: [4, 2048] as [number, number],
};

const device: DeviceView = {
  port: "/home/t/simulators/acme-infusion-p7.tty",
  simulated: true,
  identity,
  vendor: "ACME Medical",
  model: "InfuSafe P7",
  kind: "infusion pump",
  family: "smp",
  components: [{ name: "app", image: 0, description: "application", updatable: true }],
  sboms: [{ component: "app", version: "2.3.1", package: "acme-infusion-p7@2.3.1", spec_version: "1.6", components: [{ name: "zephyr", version: "3.7.0", purl: "pkg:github/zephyrproject-rtos/zephyr@v3.7.0", licenses: ["Apache-2.0"] }] }],
};

const devices: Devices = {
  ports: [],
  ports_error: null,
  simulators: [{ profile: "acme-infusion-p7", vendor: "ACME Medical", model: "InfuSafe P7", kind: "infusion pump", family: "smp", serial: "P7-004217", running: false, port: null }],
  typed_fields: {},
};

const finding = (rule: string, passed: boolean, found: string, required: string): Finding => ({
  rule,
  passed,
  found,
  required,
  explanation: passed ? `${rule} holds.` : `${rule} does not hold.`,
});

function checkView(verdict: "go" | "refused"): CheckView {
  return {
    id: 7,
    checked: {
      identity,
      plan: {
        verdict,
        summary: verdict === "go" ? "P7-004217 can be updated to acme-infusion-p7@2.4.0 in 1 step." : "Refused: made for hardware revision D.",
        target: "acme-infusion-p7@2.4.0",
        basis: [],
        steps:
          verdict === "go"
            ? [{ package: "acme-infusion-p7@2.4.0", reason: "the target", payloads: [{ component: "app", image: 0, from: "2.3.1", to: "2.4.0", file: "app.bin", image_hash: null, size: 4000 }] }]
            : [],
        rules: [
          { scope: "device", findings: [finding("time.clock", true, "ok", "ok")] },
          { scope: "acme-infusion-p7@2.4.0", findings: [finding("target.hardware", verdict === "go", "C", "D")] },
        ],
        risks: [],
      },
      files: [],
      set_aside: [],
      audit_seq: 3,
    },
  };
}

let handlers: Record<string, Handler>;
let calls: string[];

beforeEach(() => {
  document.body.innerHTML = '<div id="app"></div>';
  calls = [];
  handlers = {
    app_info: () => ({ version: "0.0.0", home: "/home/t", demo: true, usb_stick: "/home/t/demo/usb-stick", needs_trust_root: false }),
    ui_ready: () => null,
    list_devices: () => devices,
    start_simulator: () => device.port,
    identify: () => device,
    connected_device: () => device,
    list_packages: () => ({ device: "InfuSafe P7 P7-004217", packages: [] }),
    suggest_import_folders: () => [{ path: "/home/t/demo/usb-stick", label: "DEMO USB stick (demo packages)" }],
  };
  mockIPC((cmd, args) => {
    calls.push(cmd);
    const f = handlers[cmd];
    if (!f) throw { kind: "internal", message: `unexpected command ${cmd}` };
    return f((args ?? {}) as Record<string, unknown>);
  });
});

afterEach(() => clearMocks());

const $ = (sel: string) => document.querySelector(sel) as HTMLElement;
const text = (sel: string) => $(sel)?.textContent ?? "";

async function started(): Promise<App> {
  const app = new App(document.getElementById("app")!);
  await app.start();
  return app;
}

describe("connect", () => {
  it("offers the simulated devices, labelled, when nothing is plugged in, and says so", async () => {
    await started();
    expect(text("#no-ports")).toMatch(/No serial device is plugged in/);
    expect(text("#simulators")).toMatch(/InfuSafe P7/);
    expect(text("#simulators")).toMatch(/SIMULATED/);
    expect(text("#demo-banner")).toMatch(/DEMO/);
  });

  it("connects to a simulated device and shows its identity, firmware and SBOM", async () => {
    const app = await started();
    await app.connectSimulator("acme-infusion-p7");
    expect(calls).toContain("start_simulator");
    expect(app.m.screen).toBe("device");
    expect(text("#device-serial")).toBe("P7-004217");
    expect(text("#slots")).toMatch(/2\.3\.1/);
    expect(text("#slots")).toMatch(/running, confirmed/);
    expect(document.body.textContent).toMatch(/zephyr/);
    expect(text("#connected-device")).toMatch(/P7-004217/);
  });

  it("asks for the fields a device in its bootloader cannot report, and sends what was typed", async () => {
    devices.simulators.push({ profile: "vm3-recovery", vendor: "Vitalis", model: "VM-3", kind: "monitor (bootloader)", family: "smp", serial: "VM3-1", running: false, port: null });
    devices.typed_fields = {
      "vm3-recovery": [
        { name: "serial", label: "Serial number (rating plate)", kind: "text", always: false },
        { name: "on_mains", label: "Connected to mains power", kind: "boolean", always: true },
      ],
    };
    let sent: unknown = null;
    const typedDevice = { ...device, identity: { ...identity, fields: { ...identity.fields, on_mains: { value: true, label: "Connected to mains power", source: "typed" as const } } } };
    handlers.identify = (args) => {
      sent = args.typed;
      return typedDevice;
    };
    handlers.connected_device = () => typedDevice;
    const app = await started();
    expect(text("#typed-vm3-recovery")).toMatch(/Serial number \(rating plate\) \(if the device does not report it\)/);
    const serial = $("#typed-vm3-recovery-serial") as HTMLInputElement;
    serial.value = "VM3-1180-2291";
    serial.dispatchEvent(new Event("input"));
    const mains = $("#typed-vm3-recovery-on_mains") as HTMLSelectElement;
    mains.value = "true";
    mains.dispatchEvent(new Event("change"));
    await app.connectSimulator("vm3-recovery");
    expect(sent).toEqual({ serial: "VM3-1180-2291", on_mains: "true" });
    // The device screen marks a typed value as typed.
    expect(text('[data-field="on_mains"]')).toMatch(/yes\s*typed/);
    devices.simulators.pop();
    devices.typed_fields = {};
  });

  it("says what happened and what to do when the device does not answer", async () => {
    handlers.identify = () => {
      throw { kind: "timeout", message: "the device did not answer image state within 2000 ms" };
    };
    const app = await started();
    await app.connectSimulator("acme-infusion-p7");
    expect(app.m.screen).toBe("connect");
    expect(text("#error")).toMatch(/did not answer/);
    expect(text("#error")).toMatch(/What to do: .*cable/);
  });
});

describe("first start", () => {
  const bare = { version: "0.0.0", home: "/home/t/.local/share/fieldkit", demo: false, usb_stick: null, needs_trust_root: true };

  it("without a trust root offers to install one or to try the labelled DEMO, and nothing else", async () => {
    handlers.app_info = () => bare;
    await started();
    expect(text("#no-root")).toMatch(/refuses to check or update/);
    expect($("#import-root")).not.toBeNull();
    expect(text("#try-demo")).toMatch(/DEMO/);
    expect($("#nav-check")).toBeNull();
    expect(calls).not.toContain("list_devices");
  });

  it("installs the trust root the technician names, then opens Connect without a DEMO banner", async () => {
    handlers.app_info = () => bare;
    let given: unknown = null;
    handlers.import_trust_root = (args) => {
      given = args.path;
      return { ...bare, needs_trust_root: false };
    };
    const app = await started();
    await app.importTrustRoot("  /media/usb/root.json ");
    expect(given).toBe("/media/usb/root.json");
    expect(app.m.screen).toBe("connect");
    expect($("#demo-banner")).toBeNull();
    expect($("#nav-check")).not.toBeNull();
  });

  it("keeps the first screen and says why when the file is not a trust root", async () => {
    handlers.app_info = () => bare;
    handlers.import_trust_root = () => {
      throw { kind: "refused", message: "/tmp/x.json: not a trust root" };
    };
    const app = await started();
    await app.importTrustRoot("/tmp/x.json");
    expect($("#first-start")).not.toBeNull();
    expect(text("#error")).toMatch(/not a trust root/);
  });

  it("opens the DEMO in one click", async () => {
    handlers.app_info = () => bare;
    handlers.start_demo = () => ({ version: "0.0.0", home: "/home/t/.local/share/fieldkit-demo", demo: true, usb_stick: "/x/usb-stick", needs_trust_root: false });
    const app = await started();
    await app.tryDemo();
    expect(text("#demo-banner")).toMatch(/DEMO/);
    expect(text("#simulators")).toMatch(/SIMULATED/);
  });
});

describe("check", () => {
  it("shows a refusal with every rule, the failed one first, with found and required", async () => {
    handlers.check = () => checkView("refused");
    const app = await started();
    await app.connectSimulator("acme-infusion-p7");
    await app.go("check");
    await app.runCheck();
    expect($("#verdict").dataset.verdict).toBe("refused");
    expect(text("#verdict")).toMatch(/Update refused/);
    const rows = [...document.querySelectorAll("#findings tbody tr[data-rule]")] as HTMLElement[];
    expect(rows.map((r) => r.dataset.rule)).toEqual(["target.hardware", "time.clock"]);
    expect(rows[0].textContent).toMatch(/Failed.*Fits this hardware revision.*C.*D/);
    expect(rows[1].textContent).toMatch(/Passed/);
    expect(text("#findings")).toMatch(/Package acme-infusion-p7@2\.4\.0[\s\S]*This device and this visit/);
    expect($("#go-update")).toBeNull();
  });

  it("sends the chosen package and offers the update when the check passes", async () => {
    let sent: unknown = "unset";
    handlers.check = (args) => {
      sent = args.package;
      return checkView("go");
    };
    const app = await started();
    await app.connectSimulator("acme-infusion-p7");
    await app.go("check");
    app.m.checkPackage = "/home/t/packages/x.fkpkg";
    await app.runCheck();
    expect(sent).toBe("/home/t/packages/x.fkpkg");
    expect($("#verdict").dataset.verdict).toBe("go");
    expect($("#go-update")).not.toBeNull();
  });
});

describe("update", () => {
  it("streams progress over the channel with rate and time left, then shows the outcome", async () => {
    let clock = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    handlers.check = () => checkView("go");
    handlers.update = async (args) => {
      expect(args.checkId).toBe(7);
      const channel = args.onProgress as { id: number };
      let index = 0;
      const send = (message: ProgressEvent) =>
        (window as unknown as { __TAURI_INTERNALS__: { runCallback: (id: number, d: unknown) => void } }).__TAURI_INTERNALS__.runCallback(channel.id, { index: index++, message });
      send({ type: "stage", stage: "preparing", label: "preparing", message: "re-reading the device", cancel_safe: true });
      send({ type: "stage", stage: "uploading", label: "uploading", message: "sending app 2.4.0", cancel_safe: true });
      clock = 0;
      send({ type: "bytes", component: "app", done: 0, total: 4000 });
      clock = 1000;
      send({ type: "bytes", component: "app", done: 1000, total: 4000 });
      await gate;
      send({ type: "stage", stage: "confirming", label: "confirming the new image", message: "", cancel_safe: false });
      await new Promise((r) => setTimeout(r, 0));
      // Core says cancelling is no longer safe: the button goes, and says why.
      expect(($("#cancel-update") as HTMLButtonElement).disabled).toBe(true);
      expect(text("#progress")).toMatch(/Too late to cancel/);
      return {
        completed: true,
        continue_as: null,
        summary: "Update complete: 1 step applied; P7-004217 runs acme-infusion-p7@2.4.0.",
        steps: [
          {
            package: "acme-infusion-p7@2.4.0",
            verdict: { verdict: "applied" },
            description: "applied; the new firmware runs and is confirmed",
            before: { app: "2.3.1" },
            after: { app: "2.4.0" },
            audit_seq: 5,
          },
        ],
        identity: { ...identity, slots: [{ ...identity.slots[0], version: "2.4.0" }] },
      };
    };
    const app = new App(document.getElementById("app")!, () => clock);
    await app.start();
    await app.connectSimulator("acme-infusion-p7");
    await app.runCheck();
    await app.go("update");
    expect(text("#plan-steps")).toMatch(/app: 2\.3\.1 → 2\.4\.0/);
    const done = app.startUpdate();
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(text("#stage")).toMatch(/Step 1 of 1 .*uploading/);
    expect($("#progress-bar").getAttribute("aria-valuenow")).toBe("25");
    expect(text("#progress-numbers")).toMatch(/1000 B\/s/);
    expect(text("#progress-numbers")).toMatch(/about 3 s left/);
    expect(($("#cancel-update") as HTMLButtonElement).disabled).toBe(false);
    release();
    await done;
    expect($("#update-result").dataset.result).toBe("done");
    expect(text("#update-result")).toMatch(/app 2\.4\.0/);
    expect(text("#update-summary")).toBe("Update complete: 1 step applied; P7-004217 runs acme-infusion-p7@2.4.0.");
    expect(text("#connected-device")).toMatch(/P7-004217/);
  });

  it("shows a stopped update as core decided it", async () => {
    const app = await started();
    app.m.update = {
      checkId: 1, steps: [], stepIndex: 0, stage: null, component: null, done: 0, total: 0,
      finishedBytes: 0, stepBytes: 0, overallTotal: 0, meter: new (await import("./format")).RateMeter(), history: [], cancelRequested: false, error: null,
      result: {
        completed: false,
        continue_as: null,
        summary: "acme-infusion-p7@2.4.0: WRONG IMAGE: app runs 9.9.9, the plan installs 2.4.0; check the device",
        steps: [
          { package: "acme-infusion-p7@2.4.0", verdict: { verdict: "wrong_image", component: "app", found: "9.9.9", required: "2.4.0" }, description: "WRONG IMAGE: app runs 9.9.9, the plan installs 2.4.0; check the device", before: {}, after: {}, audit_seq: 9 },
          { package: "acme-infusion-p7@3.0.0", verdict: { verdict: "not_attempted" }, description: "not attempted: an earlier step did not complete", before: {}, after: {}, audit_seq: null },
        ],
        identity,
      },
    };
    await app.go("update");
    expect($("#update-result").dataset.result).toBe("stopped");
    expect(text("#update-summary")).toMatch(/WRONG IMAGE/);
    expect(text("#update-result")).toMatch(/3\.0\.0: not attempted/);
  });

  it("cancels through the cancel command", async () => {
    let cancelled = false;
    handlers.cancel_update = () => {
      cancelled = true;
      return true;
    };
    const app = await started();
    app.m.update = {
      checkId: 1, steps: [], stepIndex: 0, stage: { stage: "uploading", label: "uploading", message: "", cancel_safe: true }, component: "app", done: 1, total: 2,
      finishedBytes: 0, stepBytes: 0, overallTotal: 2, meter: new (await import("./format")).RateMeter(), history: [], cancelRequested: false, result: null, error: null,
    };
    await app.go("update");
    ($("#cancel-update") as HTMLButtonElement).click();
    await new Promise((r) => setTimeout(r, 0));
    expect(cancelled).toBe(true);
    expect(text("#cancel-update")).toMatch(/Cancelling/);
  });
});

describe("audit and settings", () => {
  it("shows the unsynced count, syncs, and explains a hub that does not know this laptop", async () => {
    let status = { size: 5, acked: 0, unsynced: 5, hub: "http://127.0.0.1:9", origin: "fieldkit-laptop+abc" };
    handlers.audit_status = () => status;
    handlers.audit_entries = () => [
      { seq: 4, origin: "o", time: "2026-01-01T10:00:00Z", technician: "ana", site: "Ward 4", device: { serial: "P7-004217" }, event: "check_refused", details: { summary: "Refused: hardware." }, outcome: "refused", serial: "P7-004217", summary: "check: Refused: hardware." },
    ];
    handlers.sync_now = () => {
      throw { kind: "not_enrolled", message: "hub refused the sync (403, unknown_laptop)" };
    };
    const app = await started();
    await app.go("audit");
    expect(text("#audit-unsynced")).toBe("5");
    expect(text("#audit-entries")).toMatch(/Check: update refused/);
    expect(text("#audit-entries")).toMatch(/P7-004217.*check: Refused: hardware\./);
    await app.syncNow();
    expect(text("#error")).toMatch(/hub administrator/);
    handlers.sync_now = () => {
      status = { ...status, acked: 5, unsynced: 0 };
      return { acked_size: 5, sent: 5, batches: 1, retries: 0, hub: "hub" };
    };
    await app.syncNow();
    expect($("#error")).toBeNull();
    expect(text("#sync-result")).toMatch(/sent 5 new entries/);
    expect(text("#audit-unsynced")).toBe("0");
  });

  it("saves settings and shows the trust root and the laptop key", async () => {
    let saved: unknown = null;
    handlers.get_settings = () => ({ technician: "ana", site: "Ward 4", customer: null, hub: null });
    handlers.set_settings = (args) => (saved = args.settings);
    handlers.trust_details = () => ({
      demo: true, home: "/home/t", root_version: 1, root_expires: "2029-01-01T00:00:00Z",
      roles: [{ name: "release", threshold: 1, keys: ["ab".repeat(32)] }],
      security_updates_without_entitlement: true, recall_version: 1, time_mark: null, entitlements: [], problems: [],
      root_error: null, laptop_origin: "fieldkit-laptop+abc", laptop_key_id: "k", laptop_public_key: "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n",
    });
    const app = await started();
    await app.go("settings");
    expect(text("#root-version")).toBe("1");
    expect(text("#laptop-key")).toMatch(/BEGIN PUBLIC KEY/);
    ($("#set-hub") as HTMLInputElement).value = "http://127.0.0.1:8080";
    ($("#save-settings") as HTMLButtonElement).click();
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    expect(saved).toEqual({ technician: "ana", site: "Ward 4", customer: null, hub: "http://127.0.0.1:8080" });
    expect(text("#settings-saved")).toMatch(/Saved/);
  });

  it("moves between screens with Alt+digit", async () => {
    const app = await started();
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "3", altKey: true }));
    expect(app.m.screen).toBe("packages");
  });
});

describe("keyboard", () => {
  it("gives the focus back to the control that started an operation once it is done", async () => {
    const app = await started();
    let finish: () => void = () => {};
    const gate = new Promise<void>((r) => (finish = r));
    handlers.list_devices = async () => {
      await gate;
      return devices;
    };
    $("#refresh-ports").focus();
    const refreshing = app.refresh("connect");
    expect(($("#refresh-ports") as HTMLButtonElement).disabled).toBe(true);
    finish();
    await refreshing;
    expect(document.activeElement?.id).toBe("refresh-ports");
  });

  it("moves the focus to the title of the screen it opens", async () => {
    const app = await started();
    await app.go("audit").catch(() => {});
    expect(document.activeElement?.id).toBe("screen-title");
  });
});
