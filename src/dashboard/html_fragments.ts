/**
 * HTML fragments shared by the dashboard's server-rendered parts and the static run report: tables of
 * checkpoints and benchmark results, key–value lists, status badges. Every value is escaped.
 *
 * @module
 */
import type { CheckpointSummary } from "../checkpoint/checkpoint_reader.ts";
import type { BenchmarkView, DataSummary } from "./checkpoint_details.ts";
import { escapeXml } from "./svg_chart.ts";

const esc = (v: unknown) => escapeXml(v === null || v === undefined ? "–" : String(v));

/** A number with `digits` decimals, or "–". */
export function fixed(v: unknown, digits = 4): string {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–";
}

/** A status badge. */
export function statusBadge(status: string, stale = false): string {
  const cls = stale
    ? "stale"
    : ["running", "finished", "interrupted", "failed"].includes(status)
    ? status
    : "unknown";
  return `<span class="badge ${cls}">${esc(stale ? `${status}? (no update)` : status)}</span>`;
}

/** A key–value list. */
export function keyValues(rows: [string, string][]): string {
  return `<div class="kv">${rows.map(([k, v]) => `<div>${esc(k)}</div><div>${v}</div>`).join("")}</div>`;
}

/** Table of a run's checkpoints; rows carry `data-checkpoint` (the directory name). */
export function checkpointsTable(checkpoints: readonly CheckpointSummary[], clickable = false): string {
  if (checkpoints.length === 0) return '<p class="muted">no checkpoints yet</p>';
  const rows = checkpoints.map((c) => {
    const m = c.metrics ?? {};
    return `<tr${clickable ? ' class="clickable"' : ""} data-checkpoint="${esc(c.name)}">` +
      `<td>${esc(c.step)}</td><td><code>${esc(c.manifest?.checkpointHash.slice(0, 12) ?? "?")}</code></td>` +
      `<td>${fixed(m.loss)}</td><td>${fixed(m.val_loss)}</td>` +
      `<td>${typeof m.val_accuracy === "number" ? `${(100 * m.val_accuracy).toFixed(1)}%` : "–"}</td>` +
      `<td>${esc(c.manifest?.writtenAt ?? c.problem ?? "")}</td></tr>`;
  });
  return `<table class="checkpoints"><thead><tr><th>step</th><th>hash</th><th>loss</th><th>val loss</th>` +
    `<th>val accuracy</th><th>written</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** Table of benchmark results: point estimates with their confidence intervals. */
export function benchmarksTable(results: readonly BenchmarkView[]): string {
  if (results.length === 0) return '<p class="muted">no benchmark results</p>';
  const rows = results.map((r) => {
    const metrics = Object.entries(r.metrics).map(([name, m]) =>
      `${esc(name)} <b>${fixed(m.value, 3)}</b> <span class="muted">[${fixed(m.ciLow, 3)}, ${
        fixed(m.ciHigh, 3)
      }]</span>`
    ).join("<br>");
    return `<tr class="benchmark"><td>${esc(r.suite)}</td><td>${esc(r.step)}</td>` +
      `<td><code>${esc(r.checkpointHash.slice(0, 12))}</code></td><td>${esc(r.partialSubset)}</td>` +
      `<td>${esc(r.windows)}</td><td>${metrics}${
        r.overlapAllowed ? '<br><span class="bad">overlap allowed</span>' : ""
      }</td>` +
      `<td class="muted">${esc(r.source)}</td></tr>`;
  });
  return `<table class="benchmarks"><thead><tr><th>suite</th><th>step</th><th>checkpoint</th><th>subset</th>` +
    `<th>windows</th><th>metrics [95% CI]</th><th>from</th></tr></thead><tbody>${
      rows.join("")
    }</tbody></table>`;
}

/** A data summary: totals and the per participant × modality table. */
export function dataSummaryHtml(data: DataSummary | null): string {
  if (!data) return '<p class="muted">no data ledger</p>';
  const head = `<p>${data.recordings} recordings, ${(data.seconds / 60).toFixed(1)} min of signal read` +
    `${data.unknownRecordings ? ` (${data.unknownRecordings} not in the catalog)` : ""}</p>`;
  if (data.groups.length === 0) return head;
  const rows = data.groups.map((g) =>
    `<tr><td>${esc(g.participant)}</td><td>${esc(g.modality)}</td><td>${g.recordings}</td><td>${
      fixed(g.seconds, 1)
    }</td></tr>`
  );
  return head +
    `<table><thead><tr><th>participant</th><th>modality</th><th>recordings</th><th>seconds</th></tr>` +
    `</thead><tbody>${rows.join("")}</tbody></table>`;
}

/** JSON in a collapsible block. */
export function jsonBlock(title: string, value: unknown, open = false): string {
  return `<details${open ? " open" : ""}><summary>${esc(title)}</summary><pre>${
    esc(JSON.stringify(value, null, 2))
  }</pre></details>`;
}
