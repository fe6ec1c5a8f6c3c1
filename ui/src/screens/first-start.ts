// First start of an installed app without a trust root: nothing can be checked or applied
// until the technician imports the manufacturer's trust root, or chooses the demo, which runs in
// a home of its own with demo keys, packages and simulated devices.

import type { App } from "../app";
import { h } from "../dom";

export function firstStartScreen(app: App): Node {
  const info = app.m.info;
  let path = app.m.rootPath;
  return h(
    "section",
    { id: "first-start" },
    h("h1", { id: "screen-title", tabindex: "-1" }, "Welcome to fieldkit"),
    h(
      "p",
      { class: "purpose", id: "no-root" },
      "This laptop has no trust root yet. fieldkit verifies every update package, entitlement and recall list against your manufacturer's trust root, so until one is installed it refuses to check or update any device.",
    ),
    app.busyLine(),
    app.errorBox("connect"),
    h(
      "div",
      { class: "choices" },
      h(
        "div",
        { class: "card choice" },
        h("h2", null, "Install the manufacturer's trust root"),
        h(
          "p",
          null,
          "Your service manager gives you the trust root file (root.json) on the service laptop's set-up medium. fieldkit keeps it in ",
          h("span", { class: "mono" }, info?.home ?? "its data folder"),
          "; a later root replaces it only when signed by it.",
        ),
        h(
          "form",
          {
            onsubmit: (e: Event) => {
              e.preventDefault();
              void app.importTrustRoot(path);
            },
          },
          h("label", { for: "root-path" }, "Trust root file"),
          h("input", {
            id: "root-path",
            type: "text",
            class: "mono",
            value: path,
            placeholder: "/media/usb/root.json",
            oninput: (e: Event) => {
              path = (e.target as HTMLInputElement).value;
              app.m.rootPath = path;
            },
          }),
          h("button", { id: "import-root", class: "primary", type: "submit", disabled: app.busy }, "Install trust root"),
        ),
      ),
      h(
        "div",
        { class: "card choice demo" },
        h("h2", null, "Try with simulated devices"),
        h(
          "p",
          null,
          "Opens the DEMO: a demo trust root, demo packages and one simulated device per device model, in a separate demo folder. Nothing from the demo is trusted for real devices.",
        ),
        h("button", { id: "try-demo", disabled: app.busy, onclick: () => void app.tryDemo() }, "Try the DEMO with simulated devices"),
      ),
    ),
  );
}
