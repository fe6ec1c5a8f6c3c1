// fieldkit hub dashboard: plain JavaScript, no dependencies. Every value from the server is
// inserted with textContent (never as HTML), so an entry cannot inject markup.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  if (r.status === 401) {
    showSignIn();
    throw new Error("signed out");
  }
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

function time(t) {
  return (t || "").replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "");
}

// ---- sign in ---------------------------------------------------------------------------

function showSignIn() {
  $("#signin").hidden = false;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  document.querySelectorAll(".view").forEach((v) => (v.hidden = true));
}

// The hub says how it is served; over plain HTTP on a network, every page warns.
async function transport() {
  try {
    const r = await fetch("/api/v1/hub", { credentials: "same-origin" });
    const hub = await r.json();
    $("#insecure").hidden = hub.transport !== "insecure-http";
  } catch (_) {
    // The warning stays hidden only if the hub cannot say; the sign-in below reports errors.
  }
}

async function start() {
  transport();
  try {
    const me = await api("/api/v1/session");
    signedIn(me);
  } catch (_) {
    showSignIn();
  }
}

function signedIn(me) {
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#who").hidden = false;
  $("#who-name").textContent = me.name;
  show("timeline");
}

$("#signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $("#signin-error").textContent = "";
  const r = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: f.get("name"), password: f.get("password") }),
  });
  const body = await r.json();
  if (!r.ok) {
    $("#signin-error").textContent = body.message;
    return;
  }
  ev.target.reset();
  signedIn(body);
});

$("#sign-out").addEventListener("click", async () => {
  await fetch("/api/v1/session", { method: "DELETE" });
  showSignIn();
});

// ---- navigation -------------------------------------------------------------------------

function show(view) {
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== view));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  if (view === "timeline") loadTimeline();
  if (view === "fleet") loadFleet();
  if (view === "laptops") loadLaptops();
  // The post-market pages live in postmarket.js.
  if (typeof postmarketShow === "function") postmarketShow(view);
}

document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => show(t.dataset.view)));

// ---- timeline ---------------------------------------------------------------------------

function filterQuery() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) if (v) params.set(k, v);
  return params;
}

$("#filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  loadTimeline();
});
$("#filters").addEventListener("reset", () => setTimeout(loadTimeline, 0));

function outcomePill(o) {
  return el("span", { class: "pill " + o }, o);
}

function badges(b) {
  const out = [];
  if (b.fork) out.push(el("span", { class: "badge bad", title: "different contents were later sent for this entry" }, "fork"));
  if (b.pending) out.push(el("span", { class: "badge warn", title: "outcome not synced yet" }, "pending"));
  if (b.clock) out.push(el("span", { class: "badge warn", title: "the laptop's clock jumped" }, "clock"));
  if (b.receipt) out.push(el("span", { class: "badge ok", title: "covered by a cosigned checkpoint" }, "receipt"));
  return out;
}

function deviceLink(serial) {
  if (!serial) return "—";
  return el("a", {
    class: "serial",
    href: "#",
    onclick: (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      deviceHistory(serial);
    },
  }, serial);
}

function deviceHistory(serial) {
  const form = $("#filters");
  form.reset();
  form.elements.serial.value = serial;
  show("timeline");
}

async function loadTimeline() {
  const q = filterQuery();
  $("#export-csv").href = "/api/v1/export?format=csv&" + q;
  $("#export-json").href = "/api/v1/export?format=json&" + q;
  const serial = q.get("serial");
  $("#timeline-title").textContent = serial ? "Device history: " + serial : "Timeline";
  $("#detail").hidden = true;
  const page = await api("/api/v1/entries?" + q);
  const tbody = $("#entries tbody");
  tbody.replaceChildren();
  $("#timeline-count").textContent =
    page.more
      ? `Showing the latest ${page.entries.length} of more than ${page.total.toLocaleString("en")} entries (narrow the filters for an exact count)`
      : page.total === page.entries.length
        ? `${page.total} entries`
        : `Showing the latest ${page.entries.length} of ${page.total} entries`;
  if (page.entries.length === 0) {
    const why = [...q.keys()].length ? "No entries match these filters." : "No laptop has synced any entries yet.";
    tbody.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, why)));
    return;
  }
  for (const e of page.entries) {
    const row = el("tr", { class: "clickable" },
      el("td", { class: "time" }, time(e.time)),
      el("td", {}, e.technician),
      el("td", {}, e.site),
      el("td", {}, deviceLink(e.device_serial)),
      el("td", {}, e.device_model || "—"),
      el("td", {}, el("code", {}, e.event)),
      el("td", {}, outcomePill(e.outcome)),
      el("td", {}, badges(e.badges)),
    );
    row.addEventListener("click", () => {
      tbody.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
      row.classList.add("selected");
      showDetail(e);
    });
    tbody.append(row);
  }
}

function showDetail(e) {
  const d = $("#detail");
  d.replaceChildren(
    el("h2", {}, `Entry ${e.seq} of ${e.laptop}`,
      el("button", { class: "plain", onclick: () => (d.hidden = true) }, "Close")),
    el("p", { class: "muted" }, `${time(e.time)} UTC · ${e.technician} at ${e.site} · log `, el("code", {}, e.origin)),
    el("div", { class: "cols" },
      el("div", {}, el("h2", {}, "Device"), el("pre", {}, JSON.stringify(e.device, null, 2))),
      el("div", {}, el("h2", {}, "Details"), el("pre", {}, JSON.stringify(e.details, null, 2))),
    ),
  );
  d.hidden = false;
  d.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// ---- fleet ------------------------------------------------------------------------------

async function loadFleet() {
  const inv = await api("/api/v1/inventory");
  const tbody = $("#inventory tbody");
  tbody.replaceChildren();
  if (inv.devices.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No device has been seen yet.")));
  }
  for (const d of inv.devices) {
    tbody.append(el("tr", {},
      el("td", {}, deviceLink(d.serial)),
      el("td", {}, d.model || "—"),
      el("td", {}, d.firmware.map(([c, v]) => el("div", {}, el("span", { class: "muted" }, c + " "), el("code", {}, v)))),
      el("td", {}, d.site),
      el("td", { class: "time" }, time(d.last_seen)),
      el("td", {}, el("code", {}, d.last_event)),
    ));
  }
  drawChart(inv.versions);
}

// A horizontal bar chart: one group per model and component, one bar per version.
function drawChart(versions) {
  const box = $("#chart");
  box.replaceChildren();
  if (versions.length === 0) {
    box.append(el("p", { class: "muted" }, "No firmware versions reported yet."));
    return;
  }
  const groups = new Map();
  for (const v of versions) {
    const key = `${v.model} · ${v.component}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(v);
  }
  const max = Math.max(...versions.map((v) => v.devices));
  const palette = ["#1f5f8b", "#3c8dbc", "#6aaed6", "#9ecae1", "#2e7d4f", "#8a5a00"];
  const labelW = 150, barW = 520, rowH = 24, groupGap = 18, width = labelW + barW + 110;
  let y = 4;
  const s = svg("svg", { role: "img", "aria-label": "Firmware versions across the fleet" });
  for (const [name, items] of groups) {
    s.append(svg("text", { x: 0, y: y + 14, class: "group" }, name));
    y += 22;
    items.sort((a, b) => b.devices - a.devices);
    items.forEach((v, i) => {
      const w = Math.max(2, Math.round((v.devices / max) * barW));
      s.append(svg("text", { x: 12, y: y + 15, class: "label" }, v.version));
      s.append(svg("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 3, fill: palette[i % palette.length] }));
      s.append(svg("text", { x: labelW + w + 6, y: y + 15 }, `${v.devices} device${v.devices === 1 ? "" : "s"}`));
      y += rowH;
    });
    y += groupGap;
  }
  s.setAttribute("width", width);
  s.setAttribute("height", y);
  s.setAttribute("viewBox", `0 0 ${width} ${y}`);
  box.append(s);
}

// ---- laptops and integrity --------------------------------------------------------------

async function loadLaptops() {
  const [laptops, forks] = await Promise.all([api("/api/v1/laptops"), api("/api/v1/forks")]);
  const tbody = $("#laptop-table tbody");
  tbody.replaceChildren();
  if (laptops.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "No laptop is enrolled yet.")));
  }
  for (const l of laptops) {
    tbody.append(el("tr", {},
      el("td", {}, l.name),
      el("td", {}, el("code", {}, l.origin)),
      el("td", {}, l.size),
      el("td", {}, l.receipt_size === l.size ? el("span", { class: "badge ok" }, "all " + l.size) : l.receipt_size),
      el("td", { class: "time" }, l.last_sync ? time(l.last_sync) : "never"),
      el("td", {}, l.forks ? el("span", { class: "badge bad" }, l.forks) : "0"),
    ));
  }
  const box = $("#forks");
  box.replaceChildren();
  if (forks.length === 0) box.append(el("p", { class: "muted" }, "No forks. Every laptop's log is consistent with what it synced before."));
  for (const f of forks) {
    box.append(el("div", { class: "fork" },
      el("strong", {}, `${f.laptop}, entry ${f.seq}`), " detected ", time(f.detected_at), " UTC",
      el("div", { class: "cols" },
        el("div", {}, el("div", { class: "muted" }, "Held by the hub"), el("pre", {}, f.held)),
        el("div", {}, el("div", { class: "muted" }, "Sent later"), el("pre", {}, f.sent)),
      ),
    ));
  }
}

start();
