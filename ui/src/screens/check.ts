// Check: may the connected device take an update, and why or why not. Every rule the planner
// evaluated is shown, passed or not, with the value found and the value required.

import type { App } from "../app";
import { h } from "../dom";
import { failedFirst, readableTimes, ruleTitle } from "../format";

export function checkScreen(app: App): Node {
  const m = app.m;
  if (!m.device) {
    return h(
      "section",
      null,
      app.title("Check", "Whether the connected device may take an update, and why."),
      h("p", { class: "empty" }, "No device is connected. ", h("button", { onclick: () => void app.go("connect") }, "Go to Connect")),
    );
  }
  const usable = (m.packages?.packages ?? []).filter((p) => p.ok && p.for_device !== false);
  const c = m.check;
  const plan = c?.checked.plan;
  // Groups with a failed rule first, so the reason for a refusal is at the top.
  const groups = [...(plan?.rules ?? [])].sort(
    (a, b) => Number(b.findings.some((f) => !f.passed)) - Number(a.findings.some((f) => !f.passed)),
  );
  const all = groups.flatMap((g) => g.findings);
  return h(
    "section",
    null,
    app.title("Check", `Whether ${m.device.model} ${m.device.identity.serial} may take an update, and why. Nothing is sent to the device.`),
    app.busyLine(),
    app.errorBox("check"),
    h(
      "form",
      {
        class: "row",
        onsubmit: (e: Event) => {
          e.preventDefault();
          void app.runCheck();
        },
      },
      h("label", { for: "check-package" }, "Check for"),
      h(
        "select",
        {
          id: "check-package",
          onchange: (e: Event) => (m.checkPackage = (e.target as HTMLSelectElement).value),
        },
        h("option", { value: "", selected: m.checkPackage === "" }, "the newest update this device may take (recommended)"),
        usable.map((p) => h("option", { value: p.file, selected: m.checkPackage === p.file }, `package ${p.id}`)),
      ),
      h("button", { class: "primary", type: "submit", id: "run-check", disabled: app.busy }, "Check now"),
    ),
    usable.length === 0
      ? h("p", { class: "warn" }, "No imported package is made for this device. ", h("button", { class: "link", onclick: () => void app.go("packages") }, "Import packages first."))
      : null,
    plan && c
      ? [
          h(
            "div",
            { class: `verdict ${plan.verdict}`, id: "verdict", "data-verdict": plan.verdict, role: "status" },
            h(
              "h2",
              null,
              plan.verdict === "go" ? "✓ Update allowed" : plan.verdict === "refused" ? "✗ Update refused" : "✓ Up to date",
            ),
            h("p", { id: "verdict-summary" }, plan.summary),
            plan.basis.length > 0 ? h("ul", { id: "verdict-basis", class: "muted" }, plan.basis.map((b) => h("li", null, b))) : null,
            plan.verdict === "go"
              ? h(
                  "p",
                  null,
                  h("button", { class: "primary", id: "go-update", onclick: () => void app.go("update") }, `Review the ${plan.steps.length}-step plan and update`),
                )
              : plan.verdict === "refused"
                ? h("p", null, "Nothing was sent to the device. The rules marked ✗ below say why; the check is recorded in the audit log.")
                : null,
          ),
          h("h2", null, `Every rule checked (${all.filter((f) => !f.passed).length} failed, ${all.filter((f) => f.passed).length} passed)`),
          h(
            "table",
            { id: "findings" },
            h("thead", null, h("tr", null, ["", "Rule", "What it means", "Found", "Required"].map((x) => h("th", null, x)))),
            groups.map((g) =>
              h(
                "tbody",
                { "data-scope": g.scope },
                h(
                  "tr",
                  { class: "group" },
                  h("th", { colspan: "5", scope: "rowgroup" }, g.scope === "device" ? "This device and this visit" : `Package ${g.scope}`),
                ),
                failedFirst(g.findings).map((f) =>
                  h(
                    "tr",
                    { class: f.passed ? "passed" : "failed", "data-rule": f.rule },
                    h("td", null, h("span", { class: f.passed ? "pill ok" : "pill bad" }, f.passed ? "✓ Passed" : "✗ Failed")),
                    h("td", null, h("strong", null, ruleTitle(f.rule)), h("div", { class: "muted small mono" }, f.rule)),
                    h("td", null, f.explanation),
                    h("td", { class: "value" }, readableTimes(f.found)),
                    h("td", { class: "value" }, readableTimes(f.required)),
                  ),
                ),
              ),
            ),
          ),
          c.checked.set_aside.length > 0
            ? [
                h("h2", null, "Files set aside"),
                h(
                  "ul",
                  { id: "set-aside" },
                  c.checked.set_aside.map((s) =>
                    h("li", null, h("span", { class: "mono" }, s.path.split("/").pop()), `: ${ruleTitle(s.finding.rule)} — ${s.finding.explanation}`),
                  ),
                ),
              ]
            : null,
        ]
      : null,
  );
}
