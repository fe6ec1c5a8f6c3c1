// Connect: the serial ports of this laptop (with USB details and the device model each one
// matches) and the simulated devices, one per known model.

import type { FieldPrompt } from "../api";
import type { App } from "../app";
import { h } from "../dom";

/**
 * Inputs for the fields of `profile` the device cannot report (a serial number on the rating
 * plate, whether a patient is connected): the technician states them, and the record says so.
 */
function typedInputs(app: App, profile: string, prompts: FieldPrompt[] | undefined): Node | null {
  if (!prompts || prompts.length === 0) return null;
  const typed = app.m.typed[profile] ?? {};
  return h(
    "fieldset",
    { class: "typed", id: `typed-${profile}` },
    h("legend", null, "Read off the device and type (recorded as typed)"),
    prompts.map((f) => {
      const id = `typed-${profile}-${f.name}`;
      const label = f.always ? f.label : `${f.label} (if the device does not report it)`;
      const input =
        f.kind === "boolean"
          ? h(
              "select",
              { id, onchange: (e: Event) => app.setTyped(profile, f.name, (e.target as HTMLSelectElement).value) },
              [
                ["", "— choose —"],
                ["true", "yes"],
                ["false", "no"],
              ].map(([v, t]) => h("option", { value: v, selected: (typed[f.name] ?? "") === v }, t)),
            )
          : h("input", {
              id,
              type: f.kind === "integer" ? "number" : "text",
              value: typed[f.name] ?? "",
              oninput: (e: Event) => app.setTyped(profile, f.name, (e.target as HTMLInputElement).value),
            });
      return h("label", { for: id }, label, " ", input);
    }),
  );
}

export function connectScreen(app: App): Node {
  const d = app.m.devices;
  const hex = (n: number | null) => (n === null ? "—" : n.toString(16).padStart(4, "0"));
  return h(
    "section",
    null,
    app.title("Connect", "Plug the service cable into the device, then choose its port. Or practise on a simulated device."),
    app.busyLine(),
    app.errorBox("connect"),
    h(
      "div",
      { class: "section-head" },
      h("h2", null, "Devices on this laptop's ports"),
      h(
        "button",
        { id: "refresh-ports", disabled: app.busy, onclick: () => void app.refresh("connect") },
        "Refresh",
      ),
    ),
    d?.ports_error ? h("p", { class: "warn" }, `The ports could not be listed: ${d.ports_error}`) : null,
    d && d.ports.length === 0
      ? h(
          "p",
          { class: "empty", id: "no-ports" },
          "No serial device is plugged in. Connect the service cable to the device and to this laptop, then press Refresh.",
        )
      : null,
    d && d.ports.length > 0
      ? h(
          "table",
          { id: "ports" },
          h(
            "thead",
            null,
            h("tr", null, ["Port", "Type", "USB vendor:product", "Maker / product", "USB serial", "Device model", ""].map((c) => h("th", null, c))),
          ),
          h(
            "tbody",
            null,
            d.ports.map((p) =>
              h(
                "tr",
                null,
                h("td", { class: "mono" }, p.path),
                h("td", null, p.kind.toUpperCase()),
                h("td", { class: "mono" }, p.vid === null ? "—" : `${hex(p.vid)}:${hex(p.pid)}`),
                h("td", null, [p.manufacturer, p.product].filter(Boolean).join(" / ") || "—"),
                h("td", { class: "mono" }, p.serial_number ?? "—"),
                h("td", null, p.profile ?? h("span", { class: "muted" }, "not recognised — fieldkit will ask the device")),
                h(
                  "td",
                  null,
                  p.profile ? typedInputs(app, p.profile, d.typed_fields[p.profile]) : null,
                  h("button", { class: "primary", disabled: app.busy, onclick: () => void app.connectPort(p.path, p.profile) }, "Connect"),
                ),
              ),
            ),
          ),
        )
      : null,
    h(
      "div",
      { class: "section-head" },
      h("h2", null, "Simulated devices ", h("span", { class: "tag sim" }, "SIMULATED")),
    ),
    h(
      "p",
      { class: "purpose" },
      "Virtual devices on this laptop that behave like the real models, for training and demonstration. Nothing real is changed.",
    ),
    h(
      "div",
      { class: "cards", id: "simulators" },
      (d?.simulators ?? []).map((s) =>
        h(
          "div",
          { class: "card", "data-profile": s.profile },
          h("h3", null, s.model, " ", h("span", { class: "tag sim" }, "SIMULATED")),
          h("p", null, `${s.vendor} ${s.kind}`),
          h("p", { class: "muted" }, `Serial ${s.serial} · ${s.family === "smp" ? "MCUmgr/SMP" : "text commands + YMODEM"}`),
          s.running ? h("p", { class: "muted mono" }, `Running on ${s.port}`) : null,
          typedInputs(app, s.profile, d?.typed_fields[s.profile]),
          h(
            "button",
            {
              class: "primary",
              id: `connect-sim-${s.profile}`,
              disabled: app.busy,
              onclick: () => void app.connectSimulator(s.profile),
            },
            `Connect to simulated ${s.model}`,
          ),
        ),
      ),
    ),
  );
}
