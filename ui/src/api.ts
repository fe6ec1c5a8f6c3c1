// The only door to Rust: typed wrappers around `invoke` and the update's progress `Channel`.
// Every command rejects with `{kind, message}` (src-tauri/src/error.rs).

import { Channel, invoke } from "@tauri-apps/api/core";

export interface AppError {
  kind: string;
  message: string;
}

export function isAppError(e: unknown): e is AppError {
  return typeof e === "object" && e !== null && "kind" in e && "message" in e;
}

/** Any rejection as an AppError (a plain string or Error becomes kind "internal"). */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  return { kind: "internal", message: e instanceof Error ? e.message : String(e) };
}

export interface AppInfo {
  version: string;
  home: string;
  demo: boolean;
  usb_stick: string | null;
  /** No trust root is installed or pinned: nothing can be checked until one is, or the demo is chosen. */
  needs_trust_root: boolean;
}

export interface PortInfo {
  path: string;
  kind: string;
  vid: number | null;
  pid: number | null;
  serial_number: string | null;
  manufacturer: string | null;
  product: string | null;
  profile: string | null;
}

export interface SimulatorView {
  profile: string;
  vendor: string;
  model: string;
  kind: string;
  family: "smp" | "line";
  serial: string;
  running: boolean;
  port: string | null;
}

export interface Devices {
  ports: PortInfo[];
  ports_error: string | null;
  simulators: SimulatorView[];
  /** For each profile, the fields the technician may have to type. */
  typed_fields: Record<string, FieldPrompt[]>;
}

export interface SlotState {
  image: number;
  slot: number;
  component: string | null;
  version: string;
  hash: string;
  bootable: boolean;
  pending: boolean;
  confirmed: boolean;
  active: boolean;
  permanent: boolean;
}

/** One identity field: its value, its label, and where it came from ("typed" when the technician typed it). */
export interface Reading {
  value: string | number | boolean;
  label: string;
  source: "vendor" | "os-info" | "bootloader-info" | "usb-serial" | "line" | "typed";
}

export interface Identity {
  profile: string;
  model: string;
  serial: string;
  hardware_revision: string;
  bootloader: string | null;
  bootloader_version: string | null;
  slots: SlotState[];
  fields: Record<string, Reading>;
  buffers: [number, number] | null;
}

/** A field the technician may have to type, because the device cannot report it. */
export interface FieldPrompt {
  name: string;
  label: string;
  kind: "text" | "integer" | "boolean";
  /** Typed always, or only when the device does not report it. */
  always: boolean;
}

export interface SbomComponent {
  name: string;
  version: string;
  purl: string;
  licenses: string[];
}

export interface DeviceView {
  port: string;
  simulated: boolean;
  identity: Identity;
  vendor: string;
  model: string;
  kind: string;
  family: "smp" | "line";
  components: { name: string; image: number; description: string; updatable: boolean }[];
  sboms: {
    component: string;
    version: string;
    package: string;
    spec_version: string;
    components: SbomComponent[];
  }[];
}

export interface Finding {
  rule: string;
  passed: boolean;
  found: string;
  required: string;
  explanation: string;
}

export interface PackageView {
  file: string;
  ok: boolean;
  id: string | null;
  product: string | null;
  version: string | null;
  class: "security" | "feature" | "maintenance" | null;
  release_date: string | null;
  payloads: [string, string][];
  findings: Finding[];
  for_device: boolean | null;
  entitlement: { findings: Finding[] } | null;
}

export interface Packages {
  device: string | null;
  packages: PackageView[];
}

export interface Folder {
  path: string;
  label: string;
}

export interface ImportResult {
  file: string;
  ok: boolean;
  already_present: boolean;
  id: string | null;
  finding: Finding | null;
  message: string | null;
}

export interface StepPayload {
  component: string;
  image: number;
  from: string;
  to: string;
  file: string;
  image_hash: string | null;
  size: number;
}

export interface Step {
  package: string;
  reason: string;
  payloads: StepPayload[];
}

export interface Plan {
  verdict: "go" | "refused" | "up_to_date";
  summary: string;
  target: string | null;
  /** How the installed versions were read (an image on test is not counted as installed). */
  basis: string[];
  steps: Step[];
  /** Every rule evaluated, grouped: the device and visit first, then each package's. */
  rules: { scope: string; findings: Finding[] }[];
  risks: string[];
}

export interface CheckView {
  id: number;
  checked: {
    identity: Identity;
    plan: Plan;
    files: { path: string; sha256: string | null; named: boolean }[];
    set_aside: { path: string; finding: Finding }[];
    audit_seq: number;
  };
}

/** How one step ended, as core decided it. */
export type StepVerdict =
  | { verdict: "applied" }
  | { verdict: "applied_in_place" }
  | { verdict: "already_installed" }
  | { verdict: "refused"; rules: Finding[] }
  | { verdict: "failed"; stage: string; kind: string; message: string }
  | { verdict: "reverted"; stage: string; reason: string }
  | { verdict: "cancelled"; stage: string }
  | { verdict: "wrong_image"; component: string; found: string; required: string }
  | { verdict: "not_attempted" };

/** One step of an update and how it ended (`description` is core's sentence for it). */
export interface StepResult {
  package: string;
  verdict: StepVerdict;
  description: string;
  before: Record<string, string>;
  after: Record<string, string>;
  audit_seq: number | null;
}

/** An update, decided in core: the screen renders it and decides nothing. */
export interface UpdateResult {
  completed: boolean;
  summary: string;
  steps: StepResult[];
  identity: Identity;
  /** Set when the device restarted from its bootloader into its application before the last step: the profile to connect with again. */
  continue_as: string | null;
}

export type ProgressEvent =
  | { type: "stage"; stage: string; label: string; message: string; cancel_safe: boolean }
  | { type: "bytes"; component: string; done: number; total: number };

export interface AuditEntry {
  seq: number;
  origin: string;
  time: string;
  technician: string;
  site: string;
  device: Record<string, unknown>;
  event: string;
  details: Record<string, unknown>;
  outcome: string;
  /** The device serial, as the audit log's reader reads it. */
  serial: string | null;
  /** One line for a person, as the audit log's reader reads the record. */
  summary: string;
}

export interface AuditStatus {
  size: number;
  acked: number;
  unsynced: number;
  hub: string | null;
  origin: string;
}

export interface VerifyReport {
  size: number;
  root: string;
  checkpoints: number;
  receipts: number;
  acked_size: number;
  pending_intents: number;
  clock_flags: { seq: number; wall_delta_secs: number; mono_delta_secs: number }[];
}

export interface SyncReport {
  acked_size: number;
  sent: number;
  batches: number;
  retries: number;
  hub: string | null;
}

export interface Settings {
  technician: string;
  site: string;
  customer: string | null;
  hub: string | null;
}

export interface TrustDetails {
  demo: boolean;
  home: string;
  root_version: number | null;
  root_expires: string | null;
  roles: { name: string; threshold: number; keys: string[] }[];
  security_updates_without_entitlement: boolean | null;
  recall_version: number | null;
  time_mark: string | null;
  entitlements: {
    id: string;
    customer: string;
    features: string[];
    valid_from: string;
    valid_until: string;
    devices: string[];
  }[];
  problems: { path: string; finding: Finding }[];
  root_error: AppError | null;
  laptop_origin: string | null;
  laptop_key_id: string | null;
  laptop_public_key: string | null;
}

export const api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  importTrustRoot: (path: string) => invoke<AppInfo>("import_trust_root", { path }),
  startDemo: () => invoke<AppInfo>("start_demo"),
  uiReady: () => invoke<void>("ui_ready"),
  listDevices: () => invoke<Devices>("list_devices"),
  startSimulator: (profile: string) => invoke<string>("start_simulator", { profile }),
  stopSimulator: (profile: string) => invoke<void>("stop_simulator", { profile }),
  identify: (port: string, profile: string | null, typed: Record<string, string> = {}) =>
    invoke<DeviceView>("identify", { port, profile, typed }),
  connectedDevice: () => invoke<DeviceView | null>("connected_device"),
  listPackages: () => invoke<Packages>("list_packages"),
  suggestImportFolders: () => invoke<Folder[]>("suggest_import_folders"),
  importPackages: (path: string) => invoke<ImportResult[]>("import_packages", { path }),
  check: (pkg: string | null) => invoke<CheckView>("check", { package: pkg }),
  update: (checkId: number, acceptRisks: boolean, onEvent: (e: ProgressEvent) => void) => {
    const onProgress = new Channel<ProgressEvent>();
    onProgress.onmessage = onEvent;
    return invoke<UpdateResult>("update", { checkId, acceptRisks, onProgress });
  },
  cancelUpdate: () => invoke<boolean>("cancel_update"),
  auditEntries: (limit?: number) => invoke<AuditEntry[]>("audit_entries", { limit: limit ?? null }),
  auditVerify: () => invoke<VerifyReport>("audit_verify"),
  auditStatus: () => invoke<AuditStatus>("audit_status"),
  syncNow: () => invoke<SyncReport>("sync_now"),
  confirmHubKey: (key: string) => invoke<string>("confirm_hub_key", { key }),
  getSettings: () => invoke<Settings>("get_settings"),
  setSettings: (settings: Settings) => invoke<Settings>("set_settings", { settings }),
  trustDetails: () => invoke<TrustDetails>("trust_details"),
};
