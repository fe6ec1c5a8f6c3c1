// Device: who the connected device is, what runs on it (each image slot with its version and
// flags), and the software bill of materials of its running firmware.

import type { App } from "../app";
import type { SlotState } from "../api";
import { h } from "../dom";
import { shortHash } from "../format";

function flags(s: SlotState): string {
  const words = [];
  if (s.active) words.push("running");
  if (s.confirmed) words.push("confirmed");
  if (s.pending) words.push("test boot pending");
  if (s.permanent) words.push("permanent");
  if (!s.bootable) words.push("not bootable");
  return words.join(", ") || "stored, not running";
}

export function deviceScreen(app: App): Node {
  const d = app.m.device;
  if (!d) {
    return h(
      "section",
      null,
      app.title("Device", "The identity of the connected device and what runs on it."),
      h("p", { class: "empty" }, "No device is connected. ", h("button", { onclick: () => void app.go("connect") }, "Go to Connect")),
    );
  }
  const id = d.identity;
  const row = (k: string, v: Node | string) => h("tr", null, h("th", { scope: "row" }, k), h("td", null, v));
  return h(
    "section",
    null,
    app.title("Device", "The identity of the connected device, read just now, and what runs on it."),
    app.busyLine(),
    app.errorBox("device"),
    d.simulated ? h("p", { class: "note" }, h("span", { class: "tag sim" }, "SIMULATED"), " This is a simulated device for training and demonstration.") : null,
    h(
      "div",
      { class: "two" },
      h(
        "table",
        { class: "facts", id: "identity" },
        h(
          "tbody",
          null,
          row("Model", `${d.vendor} ${d.model} (${d.kind})`),
          row("Serial number", h("strong", { id: "device-serial" }, id.serial)),
          row("Hardware revision", id.hardware_revision),
          row("Bootloader", [id.bootloader, id.bootloader_version].filter(Boolean).join(" ") || "not reported"),
          // Every other field the profile declares, by its label; typed values say so.
          Object.entries(id.fields)
            .filter(([name]) => !["model", "serial", "hardware_revision", "bootloader_version"].includes(name))
            .map(([name, r]) =>
              h(
                "tr",
                { "data-field": name },
                h("th", { scope: "row" }, r.label),
                h(
                  "td",
                  null,
                  typeof r.value === "boolean" ? (r.value ? "yes" : "no") : String(r.value),
                  r.source === "typed" ? h("span", { class: "tag typed", title: "typed by the technician, not read from the device" }, " typed") : null,
                ),
              ),
            ),
          row("Port", h("span", { class: "mono" }, d.port)),
        ),
      ),
      h(
        "div",
        null,
        h("h2", null, "Next"),
        h("p", null, "Import the packages you brought, then check what this device may take."),
        h("button", { class: "primary", id: "device-to-packages", onclick: () => void app.go("packages") }, "Packages"),
        " ",
        h("button", { id: "device-to-check", onclick: () => void app.go("check") }, "Check"),
      ),
    ),
    h("h2", null, "Firmware"),
    h(
      "table",
      { id: "slots" },
      h("thead", null, h("tr", null, ["Component", "Image", "Slot", "Version", "Hash", "State"].map((c) => h("th", null, c)))),
      h(
        "tbody",
        null,
        id.slots.map((s) =>
          h(
            "tr",
            { class: s.active ? "active" : "" },
            h("td", null, s.component ?? `image ${s.image}`),
            h("td", null, String(s.image)),
            h("td", null, s.slot === 0 ? "0 (primary)" : `${s.slot} (secondary)`),
            h("td", { class: "version" }, s.version),
            h("td", { class: "mono" }, shortHash(s.hash)),
            h("td", null, flags(s)),
          ),
        ),
      ),
    ),
    h(
      "p",
      { class: "muted" },
      d.components.map((c) => `${c.name}: ${c.description || "component"}${c.updatable ? "" : " (not updated by fieldkit)"}`).join(" · "),
    ),
    h("h2", null, "Software bill of materials (SBOM)"),
    d.sboms.length === 0
      ? h(
          "p",
          { class: "empty", id: "sbom-none" },
          "No SBOM for the running firmware: the package it came from has not been imported on this laptop. Import it on the Packages screen to see it here.",
        )
      : d.sboms.map((s) =>
          h(
            "div",
            { class: "sbom" },
            h("h3", null, `${s.component} ${s.version}`, h("span", { class: "muted" }, ` — from package ${s.package}, CycloneDX ${s.spec_version}`)),
            h(
              "table",
              { class: "sbom-table" },
              h("thead", null, h("tr", null, ["Part", "Version", "Licence", "Package URL"].map((c) => h("th", null, c)))),
              h(
                "tbody",
                null,
                s.components.map((c) =>
                  h("tr", null, h("td", null, c.name), h("td", null, c.version), h("td", null, c.licenses.join(", ")), h("td", { class: "mono small" }, c.purl)),
                ),
              ),
            ),
          ),
        ),
  );
}
