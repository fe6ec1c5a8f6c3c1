// Packages: import signed update packages from a folder or USB stick (each verified on the way
// in), and see each imported package's verification and what it means for the connected
// device (made for it? entitled?).

import type { App } from "../app";
import type { Finding, PackageView } from "../api";
import { h } from "../dom";
import { ruleTitle } from "../format";

function deviceStatus(p: PackageView, hasDevice: boolean): Node {
  if (!p.ok) return h("span", { class: "pill bad" }, "✗ Cannot be used");
  if (!hasDevice) return h("span", { class: "muted" }, "Connect a device to see");
  if (p.for_device === false) return h("span", { class: "pill neutral" }, `Other model (${p.product})`);
  const findings = p.entitlement?.findings ?? [];
  const failed = findings.find((f) => !f.passed);
  if (failed) {
    return h(
      "span",
      null,
      h("span", { class: "pill bad" }, "✗ Not entitled"),
      h("span", { class: "why" }, ` ${ruleTitle(failed.rule)}: ${failed.explanation} (found ${failed.found}; required ${failed.required})`),
    );
  }
  // Say what entitles it: the contract's window, or the rule that waived the need for one.
  const window: Finding | undefined = findings.find((f) => f.rule === "entitlement.window");
  const first: Finding | undefined = findings[0];
  return h(
    "span",
    null,
    h("span", { class: "pill ok" }, "✓ Entitled"),
    window
      ? h("span", { class: "why" }, ` ${window.explanation} (${window.required})`)
      : first
        ? h("span", { class: "why" }, ` ${first.explanation}`)
        : null,
  );
}

export function packagesScreen(app: App): Node {
  const m = app.m;
  const hasDevice = m.device !== null;
  let input: HTMLInputElement;
  return h(
    "section",
    null,
    app.title("Packages", "Signed update packages on this laptop. Each is verified when imported and again before use."),
    app.busyLine(),
    app.errorBox("packages"),
    h("h2", null, "Import from a folder or USB stick"),
    h(
      "form",
      {
        class: "row",
        id: "import-form",
        onsubmit: (e: Event) => {
          e.preventDefault();
          m.importPath = input.value.trim();
          if (m.importPath) void app.importFrom(m.importPath);
        },
      },
      h("label", { for: "import-path" }, "Folder or .fkpkg file"),
      (input = h("input", {
        id: "import-path",
        type: "text",
        size: 60,
        value: m.importPath,
        placeholder: "/media/technician/USBSTICK",
        oninput: (e: Event) => (m.importPath = (e.target as HTMLInputElement).value),
      })),
      h("button", { class: "primary", type: "submit", id: "import", disabled: app.busy }, "Import and verify"),
    ),
    m.folders.length > 0
      ? h(
          "p",
          { class: "row" },
          "Found: ",
          m.folders.map((f, i) =>
            h(
              "button",
              {
                id: `import-folder-${i}`,
                class: "link",
                disabled: app.busy,
                onclick: () => {
                  m.importPath = f.path;
                  void app.importFrom(f.path);
                },
              },
              `Import from ${f.label}`,
            ),
          ),
        )
      : h("p", { class: "muted" }, "No USB stick found. Insert it, or type the folder's path above."),
    m.imports
      ? h(
          "div",
          { id: "import-results", class: "results", role: "status" },
          h(
            "h3",
            null,
            `Imported ${m.imports.filter((r) => r.ok).length} of ${m.imports.length} files`,
          ),
          h(
            "ul",
            { id: "import-refused" },
            m.imports
              .filter((r) => !r.ok)
              .map((r) =>
                h(
                  "li",
                  { class: "bad" },
                  h("span", { class: "pill bad" }, "✗ Refused"),
                  ` ${r.file.split("/").pop()}: `,
                  r.finding
                    ? `${ruleTitle(r.finding.rule)} — ${r.finding.explanation} (found ${r.finding.found}; required ${r.finding.required})`
                    : r.message,
                ),
              ),
          ),
          h(
            "details",
            null,
            h("summary", null, `✓ ${m.imports.filter((r) => r.ok).length} verified and kept on this laptop`),
            h(
              "ul",
              null,
              m.imports
                .filter((r) => r.ok)
                .map((r) =>
                  h("li", { class: "ok" }, h("span", { class: "pill ok" }, "✓ Verified"), ` ${r.id}`, r.already_present ? " (was already imported)" : ""),
                ),
            ),
          ),
        )
      : null,
    h("h2", null, hasDevice ? `On this laptop, for ${m.packages?.device ?? "the connected device"}` : "On this laptop"),
    m.packages && m.packages.packages.length === 0
      ? h("p", { class: "empty", id: "no-packages" }, "No packages imported yet. Import them from the folder or USB stick your service manager gave you.")
      : null,
    m.packages && m.packages.packages.length > 0
      ? h(
          "table",
          { id: "packages" },
          h("thead", null, h("tr", null, ["Package", "Kind", "Released", "Contents", "Verification", "For the connected device"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            m.packages.packages.map((p) =>
              h(
                "tr",
                { "data-package": p.id ?? p.file },
                h("td", { class: "nowrap" }, p.id ?? p.file.split("/").pop()),
                h("td", null, p.class ? (p.class === "security" ? h("strong", null, "security fix") : p.class) : "—"),
                h("td", { class: "nowrap" }, p.release_date ?? "—"),
                h("td", null, p.payloads.map(([c, v]) => `${c} ${v}`).join(", ") || "—"),
                h(
                  "td",
                  null,
                  p.ok
                    ? h("span", { class: "pill ok", title: p.findings.map((f) => ruleTitle(f.rule)).join(", ") }, "✓ Genuine")
                    : [h("span", { class: "pill bad" }, "✗ Refused"), ` ${p.findings[0]?.explanation ?? ""}`],
                ),
                h("td", null, deviceStatus(p, hasDevice)),
              ),
            ),
          ),
        )
      : null,
  );
}
