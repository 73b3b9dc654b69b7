// proviso dashboard: reads GET /v1/live (server-sent events) with the
// token the operator enters; the token stays in this tab (sessionStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: 0 }) : "–");

function rows(tbody, entries) {
  tbody.replaceChildren(...entries.map(([k, v]) => {
    const tr = document.createElement("tr");
    const a = document.createElement("td"); a.textContent = k;
    const b = document.createElement("td"); b.textContent = fmt(v);
    tr.append(a, b);
    return tr;
  }));
}

const series = [[], [], []];
let plot = null;

function chart() {
  const width = Math.min($("chart").clientWidth || 600, 1060);
  plot = new uPlot({
    width, height: 240,
    series: [{}, { label: "events/s", stroke: "#3b82f6" }, { label: "DAU", stroke: "#16a34a", scale: "dau" }],
    axes: [{}, {}, { scale: "dau", side: 1 }],
  }, series, $("chart"));
}

function show(f) {
  $("dau").textContent = fmt(f.dau);
  $("wau").textContent = fmt(f.wau);
  $("mau").textContent = fmt(f.mau);
  $("eps").textContent = fmt(f.events_per_second);
  $("subjects").textContent = fmt(f.subjects);
  $("day").textContent = f.day || "–";
  rows($("messages"), Object.entries(f.messages || {}));
  rows($("abuse"), Object.entries(f.abuse || {}));
  const refusals = [];
  for (const [purpose, byRegion] of Object.entries(f.refusals || {})) {
    for (const [region, n] of Object.entries(byRegion)) refusals.push([`${purpose} · ${region}`, n]);
  }
  rows($("refusals"), refusals);
  rows($("rejected"), Object.entries(f.rejected || {}));
  rows($("disclosures"), Object.entries(f.disclosures || {}));
  series[0].push(Date.now() / 1000); series[1].push(f.events_per_second); series[2].push(f.dau);
  if (series[0].length > 300) series.forEach((s) => s.shift());
  if (plot) plot.setData(series);
}

async function stream(token) {
  const response = await fetch("/v1/live?interval_ms=1000", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message || `HTTP ${response.status}`);
  }
  $("login").hidden = true;
  $("board").hidden = false;
  if (!plot) chart();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("");
      if (data) show(JSON.parse(data));
    }
  }
}

function start(token) {
  stream(token).catch((error) => {
    $("login").hidden = false;
    $("board").hidden = true;
    $("login-error").textContent = `Could not connect: ${error.message}`;
  });
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.setItem("proviso-token", token);
  start(token);
});
const saved = sessionStorage.getItem("proviso-token");
if (saved) start(saved);
