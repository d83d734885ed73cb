/**
 * `report.html`: a static, self-contained page of one run (no script, no external assets) with the same
 * curves and results as the dashboard: status, loss / accuracy / learning-rate / throughput charts, the
 * checkpoints, benchmark results, where its weights came from, its config and code version. The training
 * loop writes it at the end of every run; {@link writeRunReport} can be called any time.
 *
 * @module
 */
import { join } from "node:path";
import {
  attachedBenchmarks,
  type BenchmarkView,
  catalogBenchmarks,
  mergeBenchmarks,
} from "./checkpoint_details.ts";
import { runCatalogDir, withExistingCatalog } from "./catalog_access.ts";
import { benchmarksTable, checkpointsTable, jsonBlock, keyValues, statusBadge } from "./html_fragments.ts";
import { readRunMetrics } from "./metrics_tail.ts";
import { PAGE_CSS } from "./page_style.ts";
import { runChartsSvg } from "./run_charts.ts";
import {
  listRunCheckpoints,
  parentEdgeOf,
  readJsonFile,
  readRunConfigJson,
  readRunSummary,
} from "./run_directory.ts";
import { escapeXml } from "./svg_chart.ts";

/**
 * File name of the report inside a run directory.
 *
 * @example
 * ```ts
 * import { RUN_REPORT_FILE } from "./run_report.ts";
 * console.log(`open runs/demo/${RUN_REPORT_FILE}`);
 * ```
 */
export const RUN_REPORT_FILE = "report.html";

/** Options of {@link runReportHtml} and {@link writeRunReport}. */
export interface RunReportOptions {
  /** Directory a relative `data.catalogDir` resolves against (default `Deno.cwd()`). */
  cwd?: string;
  /** Catalog to read benchmark results from when the config names none (default: the default catalog). */
  catalogDir?: string;
}

/** The report of the run in `runDir` as HTML text. */
export async function runReportHtml(runDir: string, options: RunReportOptions = {}): Promise<string> {
  const summary = await readRunSummary(runDir);
  const config = await readRunConfigJson(runDir);
  const metrics = await readRunMetrics(runDir);
  const charts = runChartsSvg(metrics, summary.samplesPerStep);
  const checkpoints = await listRunCheckpoints(runDir);
  const attached: BenchmarkView[] = [];
  for (const c of checkpoints) attached.push(...await attachedBenchmarks(c.dir));
  const catalogDir = runCatalogDir(config, options.cwd ?? Deno.cwd(), options.catalogDir);
  const stored = await withExistingCatalog(
    catalogDir,
    [],
    (catalog) => catalogBenchmarks(catalog, summary.name),
  )
    .catch(() => [] as BenchmarkView[]);
  const benchmarks = mergeBenchmarks(stored, attached);
  const parent = await parentEdgeOf(summary);
  const newest = checkpoints[checkpoints.length - 1];
  const codeVersion = newest ? await readJsonFile(join(newest.dir, "code_version.json")) : null;
  const title = `Orion run ${summary.name}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)}</title><style>${PAGE_CSS}</style></head>
<body><header><h1>${escapeXml(title)}</h1><span class="sub">static report written ${
    escapeXml(new Date().toISOString())
  }</span></header><main>
<section class="card">${
    keyValues([
      ["status", statusBadge(summary.status, summary.stale)],
      ["steps", escapeXml(`${summary.step ?? "?"} / ${summary.maxSteps ?? "?"}`)],
      ["config hash", `<code>${escapeXml(summary.configHash ?? "?")}</code>`],
      ["updated", escapeXml(summary.updatedAt ?? "?")],
      [
        "started from",
        parent
          ? escapeXml(
            `${parent.parent}${parent.checkpointStep !== null ? ` at step ${parent.checkpointStep}` : ""}${
              parent.checkpointHash ? ` (checkpoint ${parent.checkpointHash.slice(0, 12)})` : ""
            }`,
          )
          : "fresh initialization",
      ],
      ["metrics lines", `${metrics.train.length} training, ${metrics.val.length} validation`],
    ])
  }</section>
<h2>Curves</h2><div class="charts">${charts.loss}${charts.accuracy}${charts.lr}${charts.throughput}</div>
<h2>Checkpoints</h2><section class="card">${checkpointsTable(checkpoints)}</section>
<h2>Benchmark results</h2><section class="card">${benchmarksTable(benchmarks)}</section>
<h2>Config and code</h2><section class="card">${jsonBlock("config.json", config)}${
    jsonBlock("code version (newest checkpoint)", codeVersion)
  }</section>
</main></body></html>
`;
}

/**
 * Writes `<runDir>/report.html` (atomically: temporary file, then rename) and returns its path.
 *
 * @example
 * ```ts
 * import { writeRunReport } from "./run_report.ts";
 * const path = await writeRunReport("runs/demo");
 * console.log(`open ${path}`);
 * ```
 */
export async function writeRunReport(runDir: string, options: RunReportOptions = {}): Promise<string> {
  const html = await runReportHtml(runDir, options);
  const path = join(runDir, RUN_REPORT_FILE);
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(temp, html);
  try {
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
  return path;
}
