// Audit log: what was done on this laptop, whether the log is intact, and how much of it the
// hub already holds.

import type { App } from "../app";
import { h } from "../dom";
import { eventLabel, localTime } from "../format";

const OUTCOME_CLASS: Record<string, string> = {
  succeeded: "ok",
  refused: "bad",
  failed: "bad",
  reverted: "bad",
  cancelled: "neutral",
  interrupted: "bad",
  started: "neutral",
  info: "neutral",
};

// The first sync to a hub: the technician types the key the hub's operator reads out, and the
// laptop pins it only if the hub presents that very key.
function confirmHubKey(app: App): Node {
  const input = h("input", {
    id: "hub-key-confirm",
    placeholder: "fieldkit-hub/…",
    autocomplete: "off",
    spellcheck: "false",
  });
  return h(
    "form",
    {
      class: "row",
      id: "hub-key-form",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void app.confirmHubKey(input.value);
      },
    },
    h("label", { for: "hub-key-confirm" }, "Hub key, as the hub's operator reads it"),
    input,
    h("button", { class: "primary", id: "pin-hub-key", type: "submit", disabled: app.busy }, "Pin this key and sync"),
  );
}

export function auditScreen(app: App): Node {
  const m = app.m;
  const s = m.auditStatus;
  return h(
    "section",
    null,
    app.title("Audit log", "Every device read, check and update on this laptop, in a tamper-evident log that syncs to the hub."),
    app.busyLine(),
    app.errorBox("audit"),
    m.errors.audit?.kind === "hub_key_unconfirmed" ? confirmHubKey(app) : null,
    s
      ? h(
          "div",
          { class: "stats", id: "audit-status" },
          h("div", { class: "stat" }, h("span", { class: "n", id: "audit-size" }, String(s.size)), "entries on this laptop"),
          h("div", { class: "stat" }, h("span", { class: "n", id: "audit-acked" }, String(s.acked)), "held by the hub"),
          h(
            "div",
            { class: s.unsynced > 0 ? "stat pending" : "stat" },
            h("span", { class: "n", id: "audit-unsynced" }, String(s.unsynced)),
            s.unsynced === 1 ? "not yet synced" : "not yet synced",
          ),
        )
      : null,
    h(
      "p",
      { class: "row" },
      h("button", { class: "primary", id: "sync-now", disabled: app.busy, onclick: () => void app.syncNow() }, "Sync now"),
      h("span", { class: "muted" }, s?.hub ? `to ${s.hub}` : "no hub set — add it in Settings"),
      h("button", { id: "verify-audit", disabled: app.busy, onclick: () => void app.verifyAudit() }, "Check integrity"),
    ),
    m.sync
      ? h(
          "p",
          { class: "okline", id: "sync-result", role: "status" },
          `✓ Synced: sent ${m.sync.sent} new entr${m.sync.sent === 1 ? "y" : "ies"}; the hub now holds ${m.sync.acked_size}.`,
        )
      : null,
    m.verify
      ? h(
          "p",
          { class: "okline", id: "verify-result", role: "status" },
          `✓ Intact: all ${m.verify.size} entries and ${m.verify.checkpoints} checkpoint${m.verify.checkpoints === 1 ? "" : "s"} check out` +
            (m.verify.receipts ? `, ${m.verify.receipts} hub receipt${m.verify.receipts === 1 ? "" : "s"} verified` : "") +
            (m.verify.clock_flags.length ? `; ${m.verify.clock_flags.length} entries show the laptop clock was changed` : "") +
            ".",
        )
      : null,
    m.auditEntries && m.auditEntries.length === 0 ? h("p", { class: "empty" }, "Nothing recorded yet.") : null,
    m.auditEntries && m.auditEntries.length > 0
      ? h(
          "table",
          { id: "audit-entries" },
          h("thead", null, h("tr", null, ["#", "Time", "What", "Result", "Device", "Who and where", "Details"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            m.auditEntries.map((e) =>
              h(
                "tr",
                { "data-event": e.event, "data-seq": String(e.seq) },
                h("td", null, String(e.seq)),
                h("td", { class: "nowrap" }, localTime(e.time)),
                h("td", { class: "nowrap" }, eventLabel(e.event)),
                h("td", null, h("span", { class: `pill ${OUTCOME_CLASS[e.outcome] ?? "neutral"}` }, e.outcome)),
                h("td", { class: "nowrap" }, e.serial ?? "—"),
                h("td", { class: "who" }, e.technician, h("div", { class: "muted small" }, e.site)),
                h("td", { class: "small" }, e.summary),
              ),
            ),
          ),
        )
      : null,
  );
}
