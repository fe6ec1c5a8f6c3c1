// fieldkit hub dashboard, post-market pages: exposure, up to date, licences. Plain JavaScript
// over app.js's helpers (el, svg, api, time, show); every value from the server is inserted as
// text, never as HTML, so an advisory's summary or a site typed on a laptop cannot inject markup.
"use strict";

const SEVERITY_COLOURS = {
  critical: "#7a1d5a",
  high: "#d64531",
  medium: "#e49b1a",
  low: "#2e86c1",
  none: "#7f8c8d",
  unknown: "#95a5a6",
};
const SEVERITY_ORDER = ["critical", "high", "medium", "low", "none", "unknown"];

function severityBadge(s, score) {
  return el("span", { class: "sev sev-" + (SEVERITY_COLOURS[s] ? s : "unknown") },
    s + (score ? " " + score.toFixed(1) : ""));
}

function q(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  return p.toString();
}

function empty(colspan, text) {
  return el("tr", {}, el("td", { colspan, class: "empty" }, text));
}

function customerText(c) {
  return c || "customer unknown";
}

// ---- charts -------------------------------------------------------------------------------

// A line chart of weekly values: one line per series [{name, colour, values}].
function lineChart(box, label, ticks, series) {
  box.replaceChildren();
  const top = Math.max(1, ...series.flatMap((s) => s.values));
  const step = Math.max(1, Math.ceil(top / 4));
  const max = step * Math.ceil(top / step);
  const W = box.classList.contains("small-chart") ? 560 : 1160, H = 230, L = 44, R = 170, T = 12, B = 28;
  const x = (i) => L + (ticks.length <= 1 ? 0 : (i * (W - L - R)) / (ticks.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const s = svg("svg", { role: "img", "aria-label": label, viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  for (let v = 0; v <= max; v += step) {
    s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    s.append(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
  }
  ticks.forEach((t, i) => {
    if (i % Math.ceil(ticks.length / 6) === 0 || i === ticks.length - 1) {
      s.append(svg("text", { x: x(i), y: H - 8, class: "axis", "text-anchor": "middle" },
        i === ticks.length - 1 ? "now" : t.slice(5, 10)));
    }
  });
  let labelY = T + 10;
  for (const ser of series) {
    const pts = ser.values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
    s.append(svg("polyline", { points: pts, fill: "none", stroke: ser.colour, "stroke-width": 2.5 }));
    const last = ser.values[ser.values.length - 1];
    s.append(svg("circle", { cx: x(ser.values.length - 1), cy: y(last), r: 3.5, fill: ser.colour }));
    s.append(svg("rect", { x: W - R + 14, y: labelY - 9, width: 10, height: 10, rx: 2, fill: ser.colour }));
    s.append(svg("text", { x: W - R + 30, y: labelY, class: "legend" }, `${ser.name}: ${last}`));
    labelY += 18;
  }
  if (series.length === 0) {
    s.append(svg("text", { x: L + 10, y: H / 2, class: "axis" }, "No device has run an exposed release."));
  }
  box.append(s);
}

// Horizontal bars, one per product component: on the newest release they may install, behind,
// on a release the hub does not hold.
function shareChart(box, lines) {
  box.replaceChildren();
  if (lines.length === 0) {
    box.append(el("p", { class: "muted" }, "No device has been seen yet."));
    return;
  }
  const W = 1160, rowH = 34, L = 230, barW = 640;
  const H = lines.length * rowH + 30;
  const s = svg("svg", { role: "img", "aria-label": "Share of the fleet on the newest release", viewBox: `0 0 ${W} ${H}`, width: W, height: H });
  const parts = [["current", "#2e7d4f", "on the newest they may install"], ["behind", "#c0392b", "behind"], ["unknown", "#95a5a6", "release not held"]];
  lines.forEach((l, i) => {
    const y = 8 + i * rowH;
    s.append(svg("text", { x: 0, y: y + 16, class: "label" }, `${l.product} · ${l.component}`));
    let x = L;
    for (const [k, colour] of parts) {
      const w = l.devices ? (l[k] / l.devices) * barW : 0;
      if (w > 0) s.append(svg("rect", { x, y: y + 3, width: Math.max(w, 1), height: 18, fill: colour }));
      x += w;
    }
    const pct = l.devices ? Math.round((100 * l.current) / l.devices) : 0;
    s.append(svg("text", { x: L + barW + 10, y: y + 16 }, `${pct} % current · ${l.current} of ${l.devices}`));
  });
  let lx = L;
  for (const [, colour, name] of parts) {
    s.append(svg("rect", { x: lx, y: H - 14, width: 10, height: 10, rx: 2, fill: colour }));
    s.append(svg("text", { x: lx + 14, y: H - 5, class: "axis" }, name));
    lx += 14 + name.length * 6.5 + 18;
  }
  box.append(s);
}

// ---- exposure -----------------------------------------------------------------------------

let pmStatus = null;

async function loadStatus() {
  pmStatus = await api("/api/v1/postmarket/status");
  const lines = [];
  lines.push(pmStatus.root
    ? `Trust root version ${pmStatus.root.version}`
    : "No trust root pinned (fieldkit-hub trust pin)");
  lines.push(`${pmStatus.releases} release${pmStatus.releases === 1 ? "" : "s"}`);
  lines.push(`${pmStatus.vulnerabilities} vulnerabilit${pmStatus.vulnerabilities === 1 ? "y" : "ies"} known`);
  lines.push(`${pmStatus.entitlements} entitlement${pmStatus.entitlements === 1 ? "" : "s"}`);
  lines.push(pmStatus.recall_list ? `recall list ${pmStatus.recall_list}` : "no recall list");
  for (const id of ["#exposure-status", "#uptodate-status"]) $(id).textContent = lines.join(" · ");
}

function pmShowPanel(name) {
  for (const p of ["exposure-list", "exposure-vuln", "exposure-device", "exposure-component"]) {
    $("#" + p).hidden = p !== name;
  }
}

async function loadExposure() {
  pmShowPanel("exposure-list");
  await loadStatus();
  const [overview, series] = await Promise.all([
    api("/api/v1/postmarket/overview?limit=200"),
    api("/api/v1/postmarket/series?weeks=26"),
  ]);
  const lines = SEVERITY_ORDER.filter((s) => series.by_severity[s])
    .map((s) => ({ name: s, colour: SEVERITY_COLOURS[s], values: series.by_severity[s] }));
  lineChart($("#exposure-chart"), "Exposed devices over time, by severity", series.ticks, lines);
  const tbody = $("#vuln-table tbody");
  tbody.replaceChildren();
  $("#vuln-count").textContent = overview.total
    ? `${overview.total} vulnerabilit${overview.total === 1 ? "y affects" : "ies affect"} a release the fleet may run`
    : "";
  if (overview.rows.length === 0) {
    tbody.append(empty(6, "No imported advisory affects a release the hub holds."));
  }
  for (const r of overview.rows) {
    const v = r.vulnerability;
    const row = el("tr", { class: "clickable" },
      el("td", {}, severityBadge(v.severity, v.score)),
      el("td", {}, el("strong", {}, v.name), el("div", { class: "muted" }, v.summary)),
      el("td", {}, r.releases.map((x) => el("div", {}, el("code", {}, x)))),
      el("td", { class: "num" }, String(r.devices)),
      el("td", { class: "num" }, r.exposed ? el("span", { class: "badge bad" }, String(r.exposed)) : el("span", { class: "badge ok" }, "0")),
      el("td", {}, v.withdrawn ? "withdrawn" : v.published ? time(v.published).slice(0, 10) : ""),
    );
    row.addEventListener("click", () => openVulnerability(v.name));
    tbody.append(row);
  }
}

$("#exposure-search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const what = f.get("what").trim();
  if (!what) return;
  const by = f.get("by");
  if (by === "device") openDevice(what);
  else if (by === "component") openComponent(what);
  else openVulnerability(what);
});

// Shows a post-market view without reloading its landing page.
function pmView(view) {
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== view));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
}

function errorInto(box, e) {
  box.replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
}

function fixText(fix) {
  if (!fix.fixed_in) return el("span", { class: "muted" }, "no fixing release known");
  if (fix.installable) return el("span", {}, el("span", { class: "badge ok" }, "may install"), " ", el("code", {}, fix.installable.release));
  const why = fix.why_not ? fix.why_not.because : "";
  return el("span", {}, el("span", { class: "badge warn" }, "fixed in"), " ", el("code", {}, fix.fixed_in),
    el("div", { class: "muted small" }, "may not install it: " + why));
}

// A device reporting another image hash than the release's runs a build nobody released.
function buildBadge(build) {
  return build === "differs"
    ? el("div", {}, el("span", { class: "badge warn", title: "The image hash the device reports is not the release's: a development or altered build. It is still counted as this version." }, "not the released build"))
    : null;
}

function deviceRows(tbody, rows) {
  tbody.replaceChildren();
  if (rows.length === 0) tbody.append(empty(7, "No device runs an affected release."));
  for (const d of rows) {
    tbody.append(el("tr", {},
      el("td", {}, el("a", { class: "serial", href: "#", onclick: (ev) => { ev.preventDefault(); openDevice(d.serial); } }, d.serial)),
      el("td", {}, customerText(d.customer), el("div", { class: "muted" }, d.site)),
      el("td", {}, el("span", { class: "muted" }, d.component + " "), el("code", {}, d.version),
        el("div", { class: "muted small" }, d.releases.join(", ") || "release not held"),
        buildBadge(d.build)),
      el("td", {}, d.exposed ? el("span", { class: "badge bad" }, "exposed") : el("span", { class: "badge ok" }, d.vex_state.replace("_", " ") || "not exposed")),
      el("td", {}, fixText(d.fix)),
      el("td", { class: "time" }, time(d.last_seen)),
    ));
  }
}

function siteRows(tbody, sites) {
  tbody.replaceChildren();
  if (sites.length === 0) tbody.append(empty(4, "No site."));
  for (const s of sites) {
    tbody.append(el("tr", {},
      el("td", {}, s.site), el("td", {}, customerText(s.customer)),
      el("td", { class: "num" }, String(s.devices)),
      el("td", { class: "num" }, s.exposed ? el("span", { class: "badge bad" }, String(s.exposed)) : "0")));
  }
}

async function openVulnerability(id) {
  pmView("exposure");
  pmShowPanel("exposure-vuln");
  const box = $("#vuln-error");
  box.replaceChildren();
  let v;
  try {
    const a = await api("/api/v1/postmarket/exposure?" + q({ id, limit: 500 }));
    v = a;
  } catch (e) {
    errorInto(box, e);
    $("#vuln-title").textContent = id;
    return;
  }
  const x = v.vulnerability;
  $("#vuln-csv").href = "/api/v1/postmarket/exposure.csv?" + q({ id: x.name });
  $("#vuln-title").replaceChildren(x.name, " ", severityBadge(x.severity, x.score), x.withdrawn ? el("span", { class: "badge warn" }, "withdrawn") : "");
  $("#vuln-summary").replaceChildren(
    el("p", {}, x.summary),
    el("p", { class: "muted" }, "Also known as " + (x.ids.filter((i) => i !== x.name).join(", ") || "—") +
      (x.published ? ` · published ${time(x.published).slice(0, 10)}` : "")),
    el("p", { class: "big" }, el("strong", {}, String(v.exposed)), ` of ${v.devices} device${v.devices === 1 ? "" : "s"} running an affected release ${v.exposed === 1 ? "is" : "are"} exposed`),
  );
  const rel = $("#vuln-releases tbody");
  rel.replaceChildren();
  if (v.releases.length === 0) rel.append(empty(5, "It affects no release the hub holds."));
  for (const r of v.releases) {
    rel.append(el("tr", {},
      el("td", {}, el("code", {}, r.release)),
      el("td", {}, r.component, el("div", { class: "muted small" }, `${r.verdict} by ${r.matched_by || "—"}: ${r.because}`)),
      el("td", {}, r.vex ? el("span", {}, el("span", { class: r.exposed ? "badge warn" : "badge ok" }, r.vex.state.replace("_", " ")),
        el("div", { class: "muted small" }, [r.vex.justification, r.vex.detail].filter(Boolean).join(" — ")),
        el("div", { class: "muted small" }, `${r.vex.author}, ${r.vex.format}`)) : el("span", { class: "muted" }, "no statement")),
      el("td", {}, r.fixed_versions.join(", ") || "—"),
      el("td", {}, r.exposed ? el("span", { class: "badge bad" }, "devices exposed") : el("span", { class: "badge ok" }, "cleared by VEX")),
    ));
  }
  siteRows($("#vuln-sites tbody"), v.by_site);
  deviceRows($("#vuln-devices tbody"), v.rows.rows);
  $("#vuln-devices-count").textContent = v.rows.total > v.rows.rows.length ? `first ${v.rows.rows.length} of ${v.rows.total}` : "";
  const series = await api("/api/v1/postmarket/series?" + q({ id: x.name, weeks: 26 }));
  const one = series.by_vulnerability[0];
  lineChart($("#vuln-chart"), "Devices exposed over time", series.ticks,
    one ? [{ name: "exposed devices", colour: SEVERITY_COLOURS[one.severity] || "#555", values: one.devices }] : []);
  // The decision form, prefilled for the first affected release.
  const form = $("#vex-form");
  form.elements.vulnerability.value = x.name;
  const first = v.releases[0];
  form.elements.product.value = first ? first.purl.split("@")[0] : "";
  $("#vex-result").textContent = "";
}

$("#vex-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#vex-result").replaceChildren(el("span", { class: "muted" }, "recording…"));
  const f = new FormData(ev.target);
  const body = {
    vulnerability: f.get("vulnerability"),
    product: f.get("product"),
    status: f.get("status"),
    justification: f.get("justification") || null,
    impact: f.get("impact") || null,
    action: f.get("action") || null,
  };
  const r = await fetch("/api/v1/postmarket/vex", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  if (!r.ok) {
    $("#vex-result").replaceChildren(el("span", { class: "error" }, answer.message));
    return;
  }
  await openVulnerability(body.vulnerability);
  $("#vex-result").replaceChildren(el("span", { class: "badge ok" }, `recorded as VEX record ${answer.record}, signed by the hub`));
});

async function openDevice(serial) {
  pmView("exposure");
  pmShowPanel("exposure-device");
  $("#device-title").textContent = "Device " + serial;
  const box = $("#device-body");
  box.replaceChildren();
  let d;
  try {
    d = await api("/api/v1/postmarket/exposure?" + q({ device: serial }));
  } catch (e) {
    errorInto(box, e);
    return;
  }
  const exposed = d.vulnerabilities.filter((v) => v.matched.exposed).length;
  box.append(el("div", { class: "card" },
    el("p", {}, el("strong", {}, d.model || d.product), ` · ${customerText(d.customer)} · ${d.site}`),
    el("p", { class: "big" }, exposed
      ? el("span", {}, el("span", { class: "badge bad" }, `${exposed} exposed`), ` of ${d.vulnerabilities.length} known vulnerabilit${d.vulnerabilities.length === 1 ? "y" : "ies"}`)
      : el("span", { class: "badge ok" }, "no exposed vulnerability"))));
  const comps = el("tbody");
  for (const c of d.components) {
    comps.append(el("tr", {},
      el("td", {}, c.component), el("td", {}, el("code", {}, c.version)),
      el("td", {}, c.releases.length ? c.releases.map((r) => el("div", {}, el("code", {}, r))) : el("span", { class: "muted" }, "no release the hub holds"), buildBadge(c.build)),
      el("td", {}, el("details", {}, el("summary", {}, `${c.sbom.length} SBOM components`),
        el("ul", { class: "sbom" }, c.sbom.map((s) => el("li", {}, `${s.name} ${s.version} `, el("span", { class: "muted" }, s.purl)))))),
      el("td", { class: "time" }, time(c.last_seen))));
  }
  box.append(el("div", { class: "card table-wrap" }, el("h2", {}, "Installed now"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Component", "Version", "Release", "As-installed SBOM", "Last seen (UTC)"].map((h) => el("th", {}, h)))), comps)));
  const vulns = el("tbody");
  if (d.vulnerabilities.length === 0) vulns.append(empty(5, "No known vulnerability in what it runs."));
  for (const v of d.vulnerabilities) {
    vulns.append(el("tr", { class: "clickable", onclick: () => openVulnerability(v.vulnerability.name) },
      el("td", {}, severityBadge(v.vulnerability.severity, v.vulnerability.score)),
      el("td", {}, el("strong", {}, v.vulnerability.name), el("div", { class: "muted" }, v.vulnerability.summary)),
      el("td", {}, v.matched.component, el("div", { class: "muted small" }, "in " + v.component)),
      el("td", {}, v.matched.exposed ? el("span", { class: "badge bad" }, "exposed") : el("span", { class: "badge ok" }, v.matched.vex ? v.matched.vex.state.replace("_", " ") : "cleared")),
      el("td", {}, fixText(v.fix))));
  }
  box.append(el("div", { class: "card table-wrap" }, el("h2", {}, "Vulnerabilities"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Severity", "Vulnerability", "Component", "State", "Fix"].map((h) => el("th", {}, h)))), vulns)));
  const hist = el("tbody");
  for (const h of d.history) {
    hist.append(el("tr", {}, el("td", { class: "time" }, time(h.time)), el("td", {}, h.component), el("td", {}, el("code", {}, h.version)),
      el("td", {}, h.site), el("td", {}, el("code", {}, h.event)), el("td", {}, h.package ? el("code", {}, h.package) : "")));
  }
  box.append(el("div", { class: "card table-wrap" }, el("h2", {}, "History ", el("span", { class: "muted" }, "what the field records showed, change by change")),
    el("table", {}, el("thead", {}, el("tr", {}, ["Time (UTC)", "Component", "Version", "Site", "Event", "Package"].map((h) => el("th", {}, h)))), hist)));
}

async function openComponent(purl) {
  pmView("exposure");
  pmShowPanel("exposure-component");
  $("#component-title").textContent = purl;
  const box = $("#component-body");
  box.replaceChildren();
  let c;
  try {
    c = await api("/api/v1/postmarket/exposure?" + q({ component: purl, limit: 500 }));
  } catch (e) {
    errorInto(box, e);
    return;
  }
  const rel = el("tbody");
  if (c.releases.length === 0) rel.append(empty(3, "No release the hub holds carries it."));
  for (const r of c.releases) {
    rel.append(el("tr", {}, el("td", {}, el("code", {}, r.release)), el("td", {}, r.component, el("div", { class: "muted small" }, r.purl)),
      el("td", {}, r.vulnerabilities.length ? r.vulnerabilities.map((v) => el("div", {}, severityBadge(v.severity), " ", v.name, v.exposed ? "" : " (cleared)")) : el("span", { class: "muted" }, "none known"))));
  }
  box.append(el("div", { class: "card table-wrap" }, el("h2", {}, `In ${c.releases.length} release${c.releases.length === 1 ? "" : "s"}, run by ${c.devices} device${c.devices === 1 ? "" : "s"}`),
    el("table", {}, el("thead", {}, el("tr", {}, ["Release", "Component", "Vulnerabilities"].map((h) => el("th", {}, h)))), rel)));
  const devs = el("tbody");
  deviceRows(devs, c.rows.rows);
  box.append(el("div", { class: "card table-wrap" }, el("h2", {}, "Devices"),
    el("table", {}, el("thead", {}, el("tr", {}, ["Serial", "Customer · site", "Running", "State", "Fix", "Last seen (UTC)"].map((h) => el("th", {}, h)))), devs)));
}

document.querySelectorAll(".back-to-exposure").forEach((b) => b.addEventListener("click", () => loadExposure()));

// ---- up to date ---------------------------------------------------------------------------

async function loadUpToDate() {
  await loadStatus();
  const f = new FormData($("#uptodate-filters"));
  const u = await api("/api/v1/postmarket/uptodate?" + q({ product: f.get("product"), customer: f.get("customer"), site: f.get("site"), limit: 500 }));
  shareChart($("#uptodate-chart"), u.lines);
  const sites = $("#uptodate-sites tbody");
  sites.replaceChildren();
  const behindSites = u.by_site.filter((s) => s.behind > 0);
  if (behindSites.length === 0) sites.append(empty(5, "Every device runs the newest release it may install."));
  for (const s of behindSites) {
    sites.append(el("tr", {}, el("td", {}, `${s.product} · ${s.component}`), el("td", {}, customerText(s.customer)), el("td", {}, s.site),
      el("td", { class: "num" }, String(s.devices)), el("td", { class: "num" }, el("span", { class: "badge bad" }, String(s.behind)))));
  }
  const rows = $("#uptodate-devices tbody");
  rows.replaceChildren();
  $("#uptodate-count").textContent = u.rows.total ? `${u.rows.total} device component${u.rows.total === 1 ? "" : "s"} behind` : "";
  if (u.rows.rows.length === 0) rows.append(empty(6, "No device is behind."));
  for (const d of u.rows.rows) {
    rows.append(el("tr", {},
      el("td", {}, el("a", { class: "serial", href: "#", onclick: (ev) => { ev.preventDefault(); openDevice(d.serial); } }, d.serial)),
      el("td", {}, customerText(d.customer), el("div", { class: "muted" }, d.site)),
      el("td", {}, el("span", { class: "muted" }, d.component + " "), el("code", {}, d.version)),
      el("td", {}, el("code", {}, d.to), " ", el("span", { class: "muted small" }, "(" + d.newest_installable + ")")),
      el("td", {}, d.blocked ? el("span", { class: "muted small" }, `not ${d.blocked.release}: ${d.blocked.because}`) : ""),
      el("td", { class: "time" }, time(d.last_seen))));
  }
}

$("#uptodate-filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  loadUpToDate();
});
$("#uptodate-filters").addEventListener("reset", () => setTimeout(loadUpToDate, 0));

// ---- licences -----------------------------------------------------------------------------

async function loadLicences() {
  const r = await api("/api/v1/postmarket/licences");
  $("#licence-policy").textContent = "Policy: " + r.policy;
  const tbody = $("#licence-table tbody");
  tbody.replaceChildren();
  if (r.releases.length === 0) tbody.append(empty(4, "No release imported yet."));
  for (const rel of r.releases) {
    const cls = rel.verdict === "deny" ? "badge bad" : rel.verdict === "flag" ? "badge warn" : "badge ok";
    tbody.append(el("tr", {},
      el("td", {}, el("code", {}, rel.release), el("div", { class: "muted small" }, `${rel.components} components`)),
      el("td", {}, el("span", { class: cls }, rel.verdict)),
      el("td", { class: "num" }, String(rel.devices)),
      el("td", {}, rel.findings.length ? rel.findings.map((x) => el("div", { class: "finding" },
        el("span", { class: x.verdict === "deny" ? "badge bad" : "badge warn" }, x.verdict), " ", el("strong", {}, x.component), " ",
        el("span", { class: "muted" }, x.licences.join(", ") || "no licence"),
        el("div", { class: "muted small" }, x.because.join("; ")))) : el("span", { class: "muted" }, "every component allowed"))));
  }
}

// Called by app.js's show().
function postmarketShow(view) {
  if (view === "exposure") loadExposure();
  if (view === "uptodate") loadUpToDate();
  if (view === "licences") loadLicences();
}
