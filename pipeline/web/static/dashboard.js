// finsent dashboard: read-only views over the JSON API. No build step; uPlot is vendored.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const $ = (id) => document.getElementById(id);
const charts = {};

async function api(path, query = {}) {
  const url = new URL(path, location.href);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fillTable(id, rows, columns) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const column of columns) tr.appendChild(column(row));
    return tr;
  }));
  $(id).dataset.rows = String(rows.length);
}

function drawChart(id, series, data) {
  const el = $(id);
  if (charts[id]) charts[id].destroy();
  const width = Math.max(320, el.clientWidth || 600);
  charts[id] = new uPlot({ width, height: 260, series, scales: { x: { time: true } } }, data, el);
  const points = data.slice(1).reduce((n, values) => n + values.filter((v) => v != null && v !== 0).length, 0);
  el.dataset.points = String(points);  // what the browser test reads back
}

async function loadKeys() {
  const keys = await api("api/keys", { dimension: $("dimension").value, since_s: $("since").value });
  const select = $("key");
  const current = params.get("key") || select.value;
  select.replaceChildren(new Option("all", ""), ...keys.map((k) => new Option(`${k.key} (${k.items})`, k.key)));
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

async function loadSeries() {
  const s = await api("api/series", {
    dimension: $("dimension").value, key: $("key").value, since_s: $("since").value, bucket_s: $("bucket").value,
  });
  drawChart("volume-chart", [{}, { label: "items", stroke: "#1f77b4", fill: "rgba(31,119,180,0.15)" }], [s.t, s.volume]);
  drawChart("sentiment-chart", [
    {},
    { label: "negative share", stroke: "#d62728", width: 2, spanGaps: true },
    { label: "mean sentiment", stroke: "#2ca02c", width: 2, spanGaps: true },
  ], [s.t, s.negative_share, s.mean_sentiment]);
}

async function loadTables() {
  const since = $("since").value;
  const [alerts, latest, models] = await Promise.all([
    api("api/alerts", { since_s: since }), api("api/latest", { n: 50 }), api("api/models"),
  ]);
  fillTable("alerts", alerts, [
    (a) => cell(a.state, a.state), (a) => cell(a.severity), (a) => cell(a.rule),
    (a) => cell(`${a.dimension}=${a.key}`), (a) => cell(a.started_at.slice(0, 16).replace("T", " ")),
    (a) => cell(a.peak_score), (a) => cell(a.summary),
  ]);
  fillTable("latest", latest, [
    (r) => cell(r.published_at.slice(0, 16)), (r) => cell(r.title),
    (r) => cell(r.topic == null ? "" : `${r.topic} (${r.topic_score})`),
    (r) => cell(r.sentiment == null ? "" : `${r.sentiment} (${r.sentiment_score})`, r.sentiment),
    (r) => cell(r.model_version),
  ]);
  fillTable("models", models, [
    (m) => cell(m.version), (m) => cell(m.status), (m) => cell(m.created_at.slice(0, 16).replace("T", " ")),
    (m) => cell(Object.entries(m.metrics).map(([k, v]) => `${k} ${v}`).join(", ")), (m) => cell(m.decision_reason),
  ]);
}

async function refresh(withKeys) {
  try {
    if (withKeys) await loadKeys();
    await Promise.all([loadSeries(), loadTables()]);
    $("updated").textContent = "updated " + new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
    document.body.dataset.rendered = "1";
  } catch (error) {
    $("updated").textContent = String(error);
    document.body.dataset.error = String(error);
  }
}

for (const [id, name] of [["dimension", "dimension"], ["since", "since_s"], ["bucket", "bucket_s"]]) {
  if (params.get(name)) $(id).value = params.get(name);
}
if (params.get("report")) document.body.classList.add("report");
$("dimension").addEventListener("change", () => { $("key").value = ""; refresh(true); });
$("key").addEventListener("change", () => refresh(false));
$("since").addEventListener("change", () => refresh(true));
$("bucket").addEventListener("change", () => refresh(false));
refresh(true);
if (!params.get("report")) setInterval(() => refresh(false), 30000);
