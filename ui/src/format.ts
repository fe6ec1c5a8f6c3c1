// Presentation only: words, numbers and advice for the technician. No rule is decided here;
// every verdict, finding and message comes from Rust.

import type { AppError, Finding } from "./api";

/** What to do next, for each error kind the commands return. */
const ADVICE: Record<string, string> = {
  timeout:
    "Check that the service cable is plugged in firmly and the device is switched on, then try again.",
  link: "The port could not be opened or was lost. Re-seat the cable, press Refresh on the Connect screen and connect again.",
  no_device: "Go to the Connect screen and connect to a device first.",
  disconnected:
    "The device stopped answering (cable pulled or device restarted). Re-seat the cable, connect again and repeat; an interrupted update resumes.",
  io: "The port could not be read or written. Re-seat the cable, press Refresh on the Connect screen and connect again.",
  no_profile:
    "The device did not answer like any model fieldkit knows. Check it is switched on and in service mode, or choose its model explicitly.",
  wrong_model: "The device says it is another model than the one chosen. Check the label on the device and connect again.",
  missing_field:
    "The device cannot report part of its identity (a device in its bootloader cannot). Read the values off its rating plate, type them on the Connect screen, and connect again.",
  bad_value: "A value (read from the device or typed) is not what its model declares. Check what was typed, then connect again.",
  not_typed: "That value is read from the device and cannot be typed. Clear it on the Connect screen and connect again.",
  unsupported: "The device does not support what was asked. Ask your service manager whether this model can be serviced with fieldkit.",
  upload: "The firmware transfer failed; the device keeps its previous firmware. Check the cable and run the check and update again.",
  hash_mismatch: "The device received a damaged copy; nothing was activated. Check the cable and update again.",
  upload_stalled: "The transfer kept failing at the same point; the device keeps its previous firmware. Check the cable and update again.",
  cancelled: "You cancelled; the device keeps its previous firmware.",
  unknown_profile: "This device model is not known to fieldkit. Ask your service manager for its device profile.",
  refused: "Nothing was sent to the device. Read the reasons above; fix what they ask for, or choose another package.",
  risk_not_accepted: "Read the risk and tick the box to accept it if the customer agrees, then start again.",
  stale_check: "The device or the packages changed since the check. Run the check again on the Check screen.",
  audit: "The audit log could not record this, so nothing was done. Check free disk space, then try again.",
  audit_integrity:
    "The local audit log has been altered or damaged. Do not delete it: contact your service manager before any further work.",
  trust_store: "The trust material on this laptop could not be read. Ask your service manager to reinstall it.",
  no_trust_root:
    "Install your manufacturer's trust root (the root.json file your service manager gives you) on the first screen, or run `fieldkit trust import FILE`. To try fieldkit without one, start the DEMO: `fieldkit-app --demo`.",
  conflict: "A different file with the same name is already imported. Ask your service manager which one is genuine.",
  no_packages: "Choose the folder that contains the .fkpkg files (often the top folder of the USB stick).",
  not_found: "Check the folder path and that the USB stick is mounted.",
  clock: "This laptop's clock looks wrong. Set the correct date and time, then try again.",
  no_hub: "Enter the hub address on the Settings screen, then sync again.",
  bad_hub_url: "Correct the hub address on the Settings screen (for example https://hub.example.com).",
  hub_unreachable:
    "The hub cannot be reached from here. Nothing is lost: the entries stay on this laptop. Sync again when you have a network.",
  not_enrolled:
    "The hub does not know this laptop yet. Give the laptop key on the Settings screen to your hub administrator to enrol it.",
  hub_key_unconfirmed:
    "Ask the hub's operator to read you the hub's key (fieldkit-hub key). Only if it is the key shown here, type it below: from then on this laptop accepts receipts from that hub only.",
  hub_key_mismatch:
    "This hub is not the one this laptop trusts. Do not sync to it: nothing more is sent, and what it sent was refused. Contact your service manager.",
  hub_key: "The hub key pinned on this laptop cannot be read. Contact your service manager.",
  hub_refused: "The hub refused the entries. Nothing is lost locally; contact your service manager with this message.",
  fork: "The hub holds different entries for this laptop. Do not delete anything: contact your service manager.",
  local_behind_hub:
    "This laptop's log is older than what the hub holds (a restored backup?). Contact your service manager.",
  invalid_settings: "Fill in both your name and the site, then save again.",
  simulator: "The simulated device could not start. Close other fieldkit windows and try again.",
  demo: "The demo material could not be prepared. Check free disk space and restart the app.",
  home: "fieldkit cannot use its data folder. Check that it exists and is writable.",
};

export function advice(e: AppError): string {
  return (
    ADVICE[e.kind] ??
    (e.kind.startsWith("device") || e.kind.startsWith("smp") || e.kind.startsWith("line")
      ? "The device answered with an error. Check the device's own screen, then try again."
      : "Try again. If it happens again, note this message for your service manager.")
  );
}

/** Plain titles for rule ids; unknown ids are shown as they are. */
const RULES: Record<string, string> = {
  "time.clock": "Laptop clock",
  "root.expiry": "Trust root still valid",
  "package.signature": "Signed by the manufacturer",
  "signature.threshold": "Enough manufacturer signatures",
  "package.digest": "Package contents intact",
  "package.structure": "Package structure",
  "package.sbom": "Software bill of materials",
  "manifest.expiry": "Release information not expired",
  "payload.image": "Firmware image signature",
  "payload.version": "Firmware image version",
  "target.product": "Made for this device model",
  "target.hardware": "Fits this hardware revision",
  "target.bootloader": "Fits this bootloader",
  "target.requires": "Current firmware versions allowed",
  "target.dependency": "Other components new enough",
  "target.component": "Component known to the device",
  "target.downgrade": "Not a downgrade",
  "target.security_counter": "Security level not lowered",
  "recall.package": "Not recalled",
  "recall.version": "Recall list up to date",
  "entitlement.present": "Customer entitled",
  "entitlement.signature": "Entitlement signed by the manufacturer",
  "entitlement.device": "Entitlement covers this device",
  "entitlement.customer": "Entitlement for this customer",
  "entitlement.feature": "Entitlement includes firmware updates",
  "entitlement.window": "Service contract in force",
  "entitlement.revoked": "Entitlement not revoked",
  "safety.precondition": "Safe to update now",
  "plan.path": "Update path",
};

export function ruleTitle(rule: string): string {
  return RULES[rule] ?? rule;
}

export function failedFirst(findings: Finding[]): Finding[] {
  return [...findings.filter((f) => !f.passed), ...findings.filter((f) => f.passed)];
}

/** Human words for audit event types. */
const EVENTS: Record<string, string> = {
  device_identified: "Device read",
  check_passed: "Check: update allowed",
  check_refused: "Check: update refused",
  update_started: "Update started",
  update_succeeded: "Update succeeded",
  update_failed: "Update failed",
  update_reverted: "Update reverted",
  update_cancelled: "Update cancelled",
  update_refused: "Update refused before the first byte",
  update_wrong_image: "Update: a different image runs",
  check_up_to_date: "Check: up to date",
  trust_updated: "Trust state raised",
  update_interrupted: "Update interrupted",
  sync_succeeded: "Synced to hub",
  sync_failed: "Sync failed",
};

export function eventLabel(event: string): string {
  return EVENTS[event] ?? event.replace(/_/g, " ");
}

/** RFC 3339 times inside a rule's values, shortened to what a person reads: `2026-11-22 12:32 UTC`. */
export function readableTimes(text: string): string {
  return text.replace(/(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(\.\d+)?)?(\+00:00|Z)/g, "$1 $2 UTC");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(2)} MiB`;
}

export function duration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

export function shortHash(hash: string): string {
  return hash.length > 16 ? hash.slice(0, 16) : hash;
}

export function localTime(iso: string): string {
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/**
 * Transfer rate and time left, from byte counts and the times they arrived. The rate is taken
 * over the last `windowMs`, so it follows the line as it is now, not as it was at the start.
 */
export class RateMeter {
  private samples: { t: number; done: number }[] = [];
  constructor(private windowMs = 3000) {}

  add(done: number, t: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = []; // a new transfer (or a resume from 0)
    this.samples.push({ t, done });
    while (this.samples.length > 2 && t - this.samples[0].t > this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or null until two samples are far enough apart. */
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0.05 ? (b.done - a.done) / dt : null;
  }

  /** Seconds left to reach `total`, or null while the rate is unknown. */
  eta(total: number): number | null {
    const r = this.rate();
    const last = this.samples[this.samples.length - 1];
    if (!r || r <= 0 || !last) return null;
    return Math.max(0, (total - last.done) / r);
  }
}
