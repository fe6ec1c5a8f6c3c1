// Update: the plan's steps, then the update itself with its stage, a progress bar with rate
// and time left, and Cancel while cancelling is safe. Whether cancelling is safe, whether the
// update completed and what each step came to are decided in core and arrive with the
// progress events and the result: this screen only shows them.

import type { App, UpdateRun } from "../app";
import { h } from "../dom";
import { bytes, duration } from "../format";

function progressPanel(app: App, run: UpdateRun): Node {
  const overallDone = Math.min(run.overallTotal, run.finishedBytes + run.stepBytes + run.done);
  const pct = run.overallTotal > 0 ? Math.min(100, Math.round((overallDone / run.overallTotal) * 100)) : 0;
  const rate = run.meter.rate();
  const eta = run.total > 0 ? run.meter.eta(run.total) : null;
  const finished = run.result !== null || run.error !== null;
  const cancelSafe = run.stage?.cancel_safe ?? true;
  const canCancel = !finished && !run.cancelRequested && cancelSafe;
  const step = run.steps[run.stepIndex];
  return h(
    "div",
    { class: "progress-panel", id: "progress" },
    h(
      "p",
      { class: "stage", id: "stage", "aria-live": "polite" },
      finished
        ? "Finished"
        : step
          ? `Step ${run.stepIndex + 1} of ${run.steps.length} (${step.package}): ${run.stage?.label ?? "starting"}`
          : "Reading the device back…",
    ),
    h(
      "div",
      { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct), id: "progress-bar" },
      h("div", { class: "fill", style: `width: ${pct}%` }),
    ),
    h(
      "p",
      { class: "numbers", id: "progress-numbers" },
      `${pct} % · ${bytes(overallDone)} of ${bytes(run.overallTotal)}`,
      run.component && !finished ? ` · ${run.component}: ${bytes(run.done)} of ${bytes(run.total)}` : "",
      rate && !finished ? ` · ${bytes(Math.round(rate))}/s` : "",
      eta !== null && !finished && run.done < run.total ? ` · about ${duration(eta)} left for this image` : "",
    ),
    run.stage && !finished ? h("p", { class: "muted" }, run.stage.message) : null,
    !finished
      ? h(
          "p",
          null,
          h(
            "button",
            { class: "danger", id: "cancel-update", disabled: !canCancel, onclick: () => void app.cancelUpdate() },
            run.cancelRequested ? "Cancelling at the next safe point…" : "Cancel update",
          ),
          " ",
          h(
            "span",
            { class: "muted" },
            canCancel
              ? "Cancelling is safe now: the device keeps running its current firmware."
              : !cancelSafe
                ? "Too late to cancel: the device is confirming the new firmware. Keep the cable plugged in."
                : "",
          ),
        )
      : null,
    h("details", null, h("summary", null, "What happened so far"), h("ol", { class: "history" }, run.history.map((x) => h("li", null, x)))),
  );
}

function resultPanel(app: App, run: UpdateRun): Node | null {
  if (run.result) {
    const r = run.result;
    const running = r.identity.slots
      .filter((s) => s.active)
      .map((s) => `${s.component ?? `image ${s.image}`} ${s.version}${s.confirmed ? "" : " (on test)"}`)
      .join(", ");
    return h(
      "div",
      { class: `verdict ${r.completed ? "go" : "refused"}`, id: "update-result", "data-result": r.completed ? "done" : "stopped", role: "status" },
      h("h2", null, r.completed ? "✓ Update complete" : "Update stopped"),
      h("p", { id: "update-summary" }, r.summary),
      h("ul", null, r.steps.map((s) => h("li", { "data-verdict": s.verdict.verdict }, `${s.package}: ${s.description}`))),
      h("p", null, `The device now runs: ${running}. Everything is recorded in the audit log.`),
      run.result.continue_as
        ? h(
            "p",
            { class: "note", id: "continue-as" },
            `The device restarted from its bootloader into its application. Connect to it again (model profile ${run.result.continue_as}) and run the check: the remaining steps get a test boot there.`,
          )
        : null,
      h("button", { onclick: () => void app.go("audit") }, "See the audit log"),
    );
  }
  if (run.error) {
    return h(
      "div",
      { class: "error", role: "alert", id: "update-error", "data-kind": run.error.kind },
      h("h2", null, "The update did not complete"),
      h("p", null, h("strong", null, "What happened: "), run.error.message),
      h(
        "p",
        null,
        h("strong", null, "What to do: "),
        "The device keeps running its previous firmware unless it confirmed the new one. Check the cable, connect again and run the check again; the next attempt resumes where this one stopped.",
      ),
      h("button", { onclick: () => void app.go("connect") }, "Connect again"),
    );
  }
  return null;
}

export function updateScreen(app: App): Node {
  const m = app.m;
  const run = m.update;
  const plan = m.check?.checked.plan;
  const title = app.title("Update", "Install the checked plan: upload, verify, test boot, confirm. The device never runs an unconfirmed image for good; a device without a test slot is written in place, only with its risk accepted.");
  if (run) {
    return h(
      "section",
      null,
      title,
      h("h2", null, "Plan"),
      h(
        "ol",
        { class: "steps" },
        run.steps.map((s, i) =>
          h(
            "li",
            { class: i < run.stepIndex ? "done" : i === run.stepIndex ? "current" : "" },
            i < run.stepIndex ? "✓ " : "",
            `${s.package}: `,
            s.payloads.map((p) => `${p.component} ${p.from} → ${p.to}`).join(", "),
            h("span", { class: "muted" }, ` — ${s.reason}`),
          ),
        ),
      ),
      progressPanel(app, run),
      resultPanel(app, run),
    );
  }
  if (!plan || plan.verdict !== "go") {
    return h(
      "section",
      null,
      title,
      h(
        "p",
        { class: "empty", id: "update-needs-check" },
        "Run a check first: an update applies exactly the plan a check allowed. ",
        h("button", { onclick: () => void app.go("check") }, "Go to Check"),
      ),
    );
  }
  const needsRisk = plan.risks.length > 0;
  return h(
    "section",
    null,
    title,
    app.errorBox("update"),
    h("p", { class: "lead" }, plan.summary),
    h("h2", null, `Plan: ${plan.steps.length} step${plan.steps.length === 1 ? "" : "s"}`),
    h(
      "ol",
      { class: "steps", id: "plan-steps" },
      plan.steps.map((s) =>
        h(
          "li",
          null,
          h("strong", null, s.package),
          ` — ${s.reason}`,
          h("ul", null, s.payloads.map((p) => h("li", null, `${p.component}: ${p.from} → ${p.to} (${bytes(p.size)})`))),
        ),
      ),
    ),
    needsRisk
      ? h(
          "div",
          { class: "warn", id: "risks" },
          h("h3", null, "Risk to accept"),
          plan.risks.map((r) => h("p", null, r)),
          h(
            "label",
            null,
            h("input", {
              type: "checkbox",
              id: "accept-risks",
              checked: m.acceptRisks,
              onchange: (e: Event) => {
                m.acceptRisks = (e.target as HTMLInputElement).checked;
                app.render();
              },
            }),
            " I have read this risk and the customer accepts it.",
          ),
        )
      : null,
    h(
      "p",
      null,
      h(
        "button",
        { class: "primary big", id: "start-update", disabled: app.busy || (needsRisk && !m.acceptRisks), onclick: () => void app.startUpdate() },
        "Start update",
      ),
      " ",
      h("span", { class: "muted" }, "Keep the cable plugged in until it says complete. Cancel stays available for as long as stopping is safe."),
    ),
  );
}
