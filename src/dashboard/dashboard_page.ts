/**
 * The dashboard's single page: layout, stylesheet and a small script that polls the JSON API and swaps in
 * the server-rendered SVG charts and tables. Routes live in the URL hash: `#/run/<name>` and
 * `#/run/<name>/checkpoint/<ckpt-step…>`. A `?token=` in the page's URL is passed on to every API call.
 *
 * @module
 */
import { PAGE_CSS } from "./page_style.ts";
import { escapeXml } from "./svg_chart.ts";

const SCRIPT = String.raw`
"use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
async function api(path) {
  const r = await fetch(withToken(path), { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
const $ = (id) => document.getElementById(id);
const state = { run: null, checkpoint: null, chartsKey: "", runKey: "", runsHtml: undefined };
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  state.run = parts[0] === "run" && parts[1] ? parts[1] : null;
  state.checkpoint = state.run && parts[2] === "checkpoint" && parts[3] ? parts[3] : null;
  state.chartsKey = "";
  state.runKey = "";
  $("run-view").hidden = !state.run;
  $("checkpoint-view").hidden = !state.checkpoint;
  $("overlap-result").innerHTML = "";
  if (state.run) {
    $("run-title").textContent = state.run;
    $("report-link").href = withToken("/report/" + encodeURIComponent(state.run));
    $("charts").innerHTML = "";
    refreshRun();
    refreshCharts();
  }
  if (state.checkpoint) refreshCheckpoint();
  markSelected();
}
function markSelected() {
  for (const tr of document.querySelectorAll("tr[data-run]")) tr.classList.toggle("selected", tr.dataset.run === state.run);
  for (const tr of document.querySelectorAll("tr[data-checkpoint]")) tr.classList.toggle("selected", tr.dataset.checkpoint === state.checkpoint);
}
function showError(where, e) { $(where).innerHTML = '<p class="bad"></p>'; $(where).firstChild.textContent = String(e.message || e); }
async function refreshRuns() {
  try {
    const body = await api("/api/runs");
    if (body.html === state.runsHtml) return;
    const first = state.runsHtml === undefined;
    state.runsHtml = body.html;
    $("runs").innerHTML = body.html;
    if (!first) refreshLineage();
    $("runs-count").textContent = body.runs.length + " run(s)";
    markSelected();
  } catch (e) { showError("runs", e); }
}
async function refreshLineage() {
  try { $("lineage").innerHTML = (await api("/api/lineage")).svg; } catch (e) { showError("lineage", e); }
}
async function refreshRun() {
  const run = state.run;
  if (!run) return;
  try {
    const body = await api("/api/runs/" + encodeURIComponent(run));
    if (run !== state.run) return;
    const key = JSON.stringify([body.summary.status, body.summary.step, body.checkpointsHtml.length, body.benchmarksHtml.length]);
    if (key === state.runKey) return;
    state.runKey = key;
    $("run-status").innerHTML = body.statusHtml;
    $("run-facts").innerHTML = body.factsHtml;
    $("checkpoints").innerHTML = body.checkpointsHtml;
    $("benchmarks").innerHTML = body.benchmarksHtml;
    markSelected();
  } catch (e) { showError("run-facts", e); }
}
async function refreshCharts() {
  const run = state.run;
  if (!run) return;
  try {
    const body = await api("/api/runs/" + encodeURIComponent(run) + "/charts");
    if (run !== state.run) return;
    const key = body.trainPoints + "/" + body.valPoints + "/" + body.restarts;
    $("live").textContent = body.trainPoints + " training and " + body.valPoints + " validation points" +
      (body.lastStep === null ? "" : ", last step " + body.lastStep) + (body.running ? " · live" : "");
    if (key === state.chartsKey) return;
    state.chartsKey = key;
    $("charts").innerHTML = body.loss + body.accuracy + body.lr + body.throughput;
  } catch (e) { showError("charts", e); }
}
async function refreshCheckpoint() {
  const run = state.run, ckpt = state.checkpoint;
  if (!run || !ckpt) return;
  $("checkpoint-title").textContent = run + " / " + ckpt;
  $("checkpoint-body").innerHTML = '<p class="muted">loading…</p>';
  try {
    const body = await api("/api/runs/" + encodeURIComponent(run) + "/checkpoints/" + encodeURIComponent(ckpt));
    if (run !== state.run || ckpt !== state.checkpoint) return;
    $("checkpoint-body").innerHTML = body.html;
    $("checkpoint-view").scrollIntoView({ behavior: "instant", block: "start" });
  } catch (e) { showError("checkpoint-body", e); }
}
async function loadSuites() {
  try {
    const suites = await api("/api/suites");
    $("overlap-suite").innerHTML = "";
    for (const s of suites) {
      const o = document.createElement("option");
      o.value = s.key;
      o.textContent = s.key;
      $("overlap-suite").appendChild(o);
    }
  } catch (e) { showError("overlap-result", e); }
}
async function checkOverlap() {
  const run = state.run, ckpt = state.checkpoint, suite = $("overlap-suite").value;
  if (!run || !ckpt || !suite) return;
  $("overlap-result").innerHTML = '<p class="muted">checking…</p>';
  try {
    const body = await api("/api/runs/" + encodeURIComponent(run) + "/checkpoints/" + encodeURIComponent(ckpt) +
      "/overlap?suite=" + encodeURIComponent(suite));
    $("overlap-result").innerHTML = body.html;
  } catch (e) { showError("overlap-result", e); }
}
document.addEventListener("click", (event) => {
  const runRow = event.target.closest("tr[data-run]");
  if (runRow) { location.hash = "#/run/" + encodeURIComponent(runRow.dataset.run); return; }
  const ckptRow = event.target.closest("tr[data-checkpoint]");
  if (ckptRow && state.run) {
    location.hash = "#/run/" + encodeURIComponent(state.run) + "/checkpoint/" + encodeURIComponent(ckptRow.dataset.checkpoint);
  }
});
$("overlap-button").addEventListener("click", checkOverlap);
window.addEventListener("hashchange", route);
refreshRuns();
refreshLineage();
loadSuites();
route();
setInterval(refreshRuns, 2000);
setInterval(refreshLineage, 5000);
setInterval(refreshCharts, 1000);
setInterval(refreshRun, 2000);
`;

/** The dashboard page for a runs directory (shown in the header). */
export function dashboardPageHtml(runsDir: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Orion dashboard</title><style>${PAGE_CSS}</style></head>
<body><header><h1>Orion dashboard</h1><span class="sub">runs in ${escapeXml(runsDir)} · read-only</span>
<span class="sub" id="runs-count"></span></header>
<main>
<section class="card"><h2>Runs</h2><div id="runs"><p class="muted">loading…</p></div></section>
<section class="card"><h2>Lineage</h2><div id="lineage"></div></section>
<section class="card" id="run-view" hidden>
  <h2><span id="run-title"></span> <span id="run-status"></span>
    <a id="report-link" href="#" target="_blank" style="font-size:12px;font-weight:normal">static report</a></h2>
  <div id="run-facts"></div>
  <p class="muted" id="live"></p>
  <div class="charts" id="charts"></div>
  <h3>Checkpoints</h3><div id="checkpoints"></div>
  <h3>Benchmark results</h3><div id="benchmarks"></div>
</section>
<section class="card" id="checkpoint-view" hidden>
  <h2>Checkpoint <span id="checkpoint-title"></span></h2>
  <div id="checkpoint-body"></div>
  <h3>Train/test overlap</h3>
  <p class="muted">Intersects a benchmark's held-out data with the data this checkpoint (and its ancestors) trained on.</p>
  <select id="overlap-suite"></select> <button id="overlap-button" type="button">check overlap</button>
  <div id="overlap-result"></div>
</section>
</main>
<script>${SCRIPT}</script>
</body></html>
`;
}
