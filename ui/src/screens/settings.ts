// Settings: who is working where (written into every audit entry), the hub to sync to, and
// what this laptop trusts (trust root, entitlements) and who it is (its key, for enrolment).

import type { App } from "../app";
import { h } from "../dom";
import { localTime } from "../format";

export function settingsScreen(app: App): Node {
  const m = app.m;
  const s = m.settings;
  const t = m.trust;
  const field = (id: string, label: string, value: string, help: string) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: id }, label),
      h("input", { id, type: "text", value, size: 40 }),
      h("p", { class: "muted small" }, help),
    );
  const value = (id: string) => (document.getElementById(id) as HTMLInputElement | null)?.value.trim() ?? "";
  return h(
    "section",
    null,
    app.title("Settings", "Who you are and where, the hub your audit log syncs to, and what this laptop trusts."),
    app.busyLine(),
    app.errorBox("settings"),
    s
      ? h(
          "form",
          {
            id: "settings-form",
            onsubmit: (e: Event) => {
              e.preventDefault();
              void app.saveSettings({
                technician: value("set-technician"),
                site: value("set-site"),
                customer: value("set-customer") || null,
                hub: value("set-hub") || null,
              });
            },
          },
          field("set-technician", "Technician", s.technician, "Your name, written into every audit entry."),
          field("set-site", "Site", s.site, "The site you are at, as entitlements name it (e.g. the ward); an entitlement that names sites covers only those."),
          field("set-customer", "Customer", s.customer ?? "", "The customer this visit is for, as entitlements name it; until it is set, releases that need an entitlement are refused."),
          field("set-hub", "Hub address", s.hub ?? "", "Where the audit log syncs to, e.g. https://hub.example.com."),
          h("button", { class: "primary", type: "submit", id: "save-settings", disabled: app.busy }, "Save"),
          m.settingsSaved ? h("span", { class: "okline", id: "settings-saved", role: "status" }, " ✓ Saved") : null,
        )
      : null,
    t
      ? h(
          "div",
          { id: "trust" },
          h("h2", null, "Trust root ", t.demo ? h("span", { class: "tag demo" }, "DEMO") : null),
          t.root_error
            ? h("p", { class: "error" }, t.root_error.message)
            : h(
                "table",
                { class: "facts" },
                h(
                  "tbody",
                  null,
                  h("tr", null, h("th", null, "Version"), h("td", { id: "root-version" }, String(t.root_version))),
                  h("tr", null, h("th", null, "Valid until"), h("td", null, t.root_expires ? localTime(t.root_expires) : "—")),
                  h(
                    "tr",
                    null,
                    h("th", null, "Security fixes"),
                    h("td", null, t.security_updates_without_entitlement ? "install without an entitlement (manufacturer's policy)" : "need an entitlement"),
                  ),
                  h("tr", null, h("th", null, "Recall list"), h("td", null, t.recall_version === null ? "none" : `version ${t.recall_version}`)),
                  h("tr", null, h("th", null, "Latest signed time seen"), h("td", null, t.time_mark ? localTime(t.time_mark) : "—")),
                  t.roles.map((r) =>
                    h(
                      "tr",
                      null,
                      h("th", null, `Role “${r.name}”`),
                      h("td", null, `${r.threshold} of ${r.keys.length} key${r.keys.length === 1 ? "" : "s"}: `, h("span", { class: "mono small" }, r.keys.map((k) => k.slice(0, 16)).join(", "))),
                    ),
                  ),
                ),
              ),
          h("h2", null, "Entitlements carried"),
          t.entitlements.length === 0
            ? h("p", { class: "muted" }, "None. Feature updates need one; security fixes may not.")
            : h(
                "ul",
                null,
                t.entitlements.map((e) =>
                  h("li", null, h("strong", null, e.id), ` — ${e.customer}; ${e.features.join(", ")}; ${e.valid_from} to ${e.valid_until}; devices ${e.devices.join("; ")}`),
                ),
              ),
          t.problems.length > 0
            ? [h("h3", null, "Files refused"), h("ul", null, t.problems.map((p) => h("li", null, `${p.path}: ${p.finding.explanation}`)))]
            : null,
          h("h2", null, "This laptop"),
          h("p", null, "Give this key to your hub administrator so the hub accepts this laptop's audit log (", h("code", null, "fieldkit-hub enroll-laptop"), ")."),
          h(
            "table",
            { class: "facts" },
            h(
              "tbody",
              null,
              h("tr", null, h("th", null, "Log origin"), h("td", { class: "mono", id: "laptop-origin" }, t.laptop_origin ?? "—")),
              h("tr", null, h("th", null, "Key id"), h("td", { class: "mono small" }, t.laptop_key_id ?? "—")),
              h("tr", null, h("th", null, "Data folder"), h("td", { class: "mono small" }, t.home)),
            ),
          ),
          t.laptop_public_key ? h("pre", { id: "laptop-key", tabindex: "0" }, t.laptop_public_key) : null,
        )
      : null,
  );
}
