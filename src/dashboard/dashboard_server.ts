/**
 * The dashboard's HTTP server (Deno.serve): the page, a read-only JSON API over a runs directory and the
 * catalog, and each run's static report. Loopback by default; any other address needs a token, and then
 * every request must carry it (`?token=` or `Authorization: Bearer`). Without a token, requests must name a
 * loopback host (guards against DNS rebinding). Only GET and HEAD are served.
 *
 * API (JSON): `/api/runs`, `/api/runs/<run>`, `/api/runs/<run>/charts`,
 * `/api/runs/<run>/checkpoints/<ckpt-step…>`, `/api/runs/<run>/checkpoints/<ckpt-step…>/overlap?suite=<key>`,
 * `/api/lineage`, `/api/suites`; HTML: `/`, `/report/<run>`.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { isAbsolute, join, resolve } from "node:path";
import { parseCheckpointDirName } from "../checkpoint/checkpoint_layout.ts";
import "../bench/cognitive_load_eval.ts";
import { listBenchmarks } from "../bench/registry.ts";
import { runCatalogDir, withExistingCatalog } from "./catalog_access.ts";
import {
  attachedBenchmarks,
  type BenchmarkView,
  catalogBenchmarks,
  type CheckpointDetails,
  mergeBenchmarks,
  readCheckpointDetails,
} from "./checkpoint_details.ts";
import { dashboardPageHtml } from "./dashboard_page.ts";
import {
  benchmarksTable,
  checkpointsTable,
  dataSummaryHtml,
  fixed,
  jsonBlock,
  keyValues,
  statusBadge,
} from "./html_fragments.ts";
import { lineageGraphSvg } from "./lineage_graph.ts";
import { MetricsTail } from "./metrics_tail.ts";
import { checkTrainTestOverlap, type OverlapReport } from "./overlap_check.ts";
import { runChartsSvg } from "./run_charts.ts";
import {
  isRunName,
  type LineageEdge,
  listRunCheckpoints,
  listRuns,
  parentEdgeOf,
  readRunConfigJson,
  readRunSummary,
  type RunSummary,
} from "./run_directory.ts";
import { runReportHtml } from "./run_report.ts";
import { escapeXml } from "./svg_chart.ts";

/** Options of {@link serveDashboard}. */
export interface DashboardOptions {
  /** Directory holding the run directories (relative to `cwd`). */
  runsDir: string;
  /** Directory relative paths resolve against (default `Deno.cwd()`). */
  cwd?: string;
  /** Catalog for runs whose config names none (default `$ORION_HOME/catalog` or `./.orion/catalog`). */
  catalogDir?: string;
  /** Address to bind (default `127.0.0.1`); anything but loopback requires `token`. */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Required on every request when set (`?token=` or `Authorization: Bearer`). */
  token?: string;
  /** Stops the server when aborted. */
  signal?: AbortSignal;
}

/** A running dashboard. */
export interface DashboardServer {
  /** The page's URL (with `?token=` when a token is required). */
  url: string;
  /** The address bound. */
  hostname: string;
  /** The port bound (the one picked when 0 was asked). */
  port: number;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stops the server. */
  shutdown(): Promise<void>;
}

/** Whether `host` is a loopback address or name. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Refuses settings that would expose the dashboard without a token.
 *
 * @throws when `host` is not loopback and `token` is empty.
 */
export function checkDashboardBinding(host: string, token: string | undefined): void {
  if (!isLoopbackHost(host) && !token) {
    throw new Error(
      `Cannot serve the dashboard on ${host} without a token as anyone who can reach that address could read every run: ` +
        `current --token is unset; pass --host ${host} --token <secret> (or keep the default --host 127.0.0.1)`,
    );
  }
  if (token !== undefined && token.length < 8) {
    throw new Error(
      `Cannot use a dashboard token of ${token.length} characters as it is too easy to guess: use at least 8 (e.g. openssl rand -hex 16)`,
    );
  }
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const digest = (s: string) => createHash("sha256").update(s).digest();

function tokenMatches(expected: string, given: string | null): boolean {
  return given !== null && timingSafeEqual(digest(expected), digest(given));
}

const SECURITY_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
};

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "application/json; charset=utf-8" },
  });
}

function html(body: string): Response {
  return new Response(body, { headers: { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" } });
}

function overlapHtml(report: OverlapReport): string {
  const verdict = report.overlapSeconds === 0
    ? `<p class="ok" data-overlap="0">No overlap: the held-out data of ${
      escapeXml(report.suite)
    } is disjoint from the data this checkpoint trained on.</p>`
    : `<p class="bad" data-overlap="${report.overlaps.length}">Overlap: ${report.overlaps.length} recording(s), ${
      fixed(report.overlapSeconds, 1)
    } s shared with the training data — evaluation would be refused (train/test leakage).</p>`;
  const rows = report.overlaps.slice(0, 50).map((o) =>
    `<tr><td><code>${escapeXml(o.recordingHash.slice(0, 12))}</code></td><td>${
      escapeXml(o.session ?? "?")
    }</td>` +
    `<td>${fixed(o.seconds, 1)}</td></tr>`
  );
  return verdict + keyValues([
    [
      "held-out data",
      `${report.heldOut.sessions} sessions, ${report.heldOut.recordings} recordings, ${
        fixed(report.heldOut.seconds, 1)
      } s`,
    ],
    ["trained on", `${report.trained.recordings} recordings, ${fixed(report.trained.seconds, 1)} s`],
    ["dataset hash", `<code>${escapeXml(report.datasetHash.slice(0, 16))}…</code>`],
  ]) +
    (rows.length
      ? `<table><thead><tr><th>recording</th><th>session</th><th>seconds</th></tr></thead><tbody>${
        rows.join("")
      }</tbody></table>`
      : "");
}

function checkpointHtml(d: CheckpointDetails): string {
  const code = d.codeVersion as Record<string, unknown> | null;
  const git = (code?.git ?? {}) as Record<string, unknown>;
  const orion = (code?.orion ?? {}) as Record<string, unknown>;
  const lineage = d.lineage ?? {};
  const init = lineage.initCheckpoint as Record<string, unknown> | undefined;
  return `<div class="checkpoint-details" data-checkpoint="${escapeXml(d.name)}">` +
    (d.problem ? `<p class="bad">${escapeXml(d.problem)}</p>` : "") +
    keyValues([
      ["step", String(d.step)],
      ["hash", `<code>${escapeXml(d.hash ?? "?")}</code>`],
      ["parent checkpoint", `<code>${escapeXml(d.parentHash ?? "none")}</code>`],
      ["written", escapeXml(d.writtenAt ?? "?")],
      ["size", `${d.files} files, ${(d.bytes / 1024).toFixed(1)} KiB`],
      [
        "code version",
        escapeXml(
          `${orion.name ?? "?"} ${orion.version ?? "?"}, git ${
            typeof git.commit === "string" ? git.commit.slice(0, 12) : "unknown"
          }${git.dirty ? " (dirty)" : ""}, deno ${code?.deno ?? "?"}`,
        ),
      ],
      [
        "weights started from",
        init
          ? escapeXml(`${init.run} step ${init.step} (${String(init.checkpointHash).slice(0, 12)})`)
          : "fresh initialization",
      ],
      ["steps behind the weights", escapeXml(String(lineage.stepsConsumed ?? "?"))],
    ]) +
    `<h3>Metrics</h3>${jsonBlock("metrics/snapshot.json", d.metrics, true)}` +
    `<h3>Data</h3>${dataSummaryHtml(d.data)}` +
    `<h3>Benchmarks</h3>${benchmarksTable(d.benchmarks)}` +
    `<h3>Config and code</h3>${jsonBlock("config.json", d.config)}${
      jsonBlock("code_version.json", d.codeVersion)
    }` +
    `${jsonBlock("lineage.json", d.lineage)}</div>`;
}

/**
 * Starts the dashboard.
 *
 * @throws when the binding is refused (see {@link checkDashboardBinding}).
 * @example
 * ```ts
 * import { serveDashboard } from "./dashboard_server.ts";
 * const server = await serveDashboard({ runsDir: "runs", port: 8080 });
 * console.log(`open ${server.url}`);
 * await server.finished;
 * ```
 */
export async function serveDashboard(options: DashboardOptions): Promise<DashboardServer> {
  const host = options.host ?? "127.0.0.1";
  const token = options.token || undefined;
  checkDashboardBinding(host, token);
  const cwd = options.cwd ?? Deno.cwd();
  const runsDir = isAbsolute(options.runsDir) ? options.runsDir : resolve(cwd, options.runsDir);
  const tails = new Map<string, MetricsTail>();

  const runDirOf = async (name: string): Promise<string> => {
    if (!isRunName(name)) throw new HttpError(404, `Cannot show run ${JSON.stringify(name)}: not a run name`);
    const dir = join(runsDir, name);
    try {
      if ((await Deno.stat(dir)).isDirectory) return dir;
    } catch { /* reported below */ }
    throw new HttpError(404, `Cannot show run ${name} as ${dir} does not exist`);
  };
  const checkpointDirOf = async (run: string, name: string): Promise<string> => {
    if (parseCheckpointDirName(name) === null) {
      throw new HttpError(
        404,
        `Cannot show checkpoint ${JSON.stringify(name)}: not a ckpt-step<9 digits> name`,
      );
    }
    const dir = join(await runDirOf(run), name);
    try {
      if ((await Deno.stat(dir)).isDirectory) return dir;
    } catch { /* reported below */ }
    throw new HttpError(
      404,
      `Cannot show checkpoint ${name} of ${run}: it does not exist (retention may have removed it)`,
    );
  };
  const catalogOf = async (runDir: string) =>
    runCatalogDir(await readRunConfigJson(runDir), cwd, options.catalogDir);

  const runsHtml = (runs: RunSummary[]) =>
    runs.length === 0
      ? `<p class="muted">no runs in ${escapeXml(runsDir)} yet</p>`
      : `<table class="runs"><thead><tr><th>run</th><th>status</th><th>step</th><th>updated</th><th>started from</th></tr></thead><tbody>${
        runs.map((r) =>
          `<tr class="clickable" data-run="${escapeXml(r.name)}"><td>${escapeXml(r.name)}</td><td>${
            statusBadge(r.status, r.stale)
          }</td><td>${r.step ?? "–"}${r.maxSteps ? ` / ${r.maxSteps}` : ""}</td><td>${
            escapeXml(r.updatedAt ?? "–")
          }</td><td>${escapeXml(r.parentRun ?? "")}${
            r.problem ? ` <span class="bad">${escapeXml(r.problem)}</span>` : ""
          }</td></tr>`
        ).join("")
      }</tbody></table>`;

  const route = async (url: URL): Promise<Response> => {
    const path = url.pathname;
    if (path === "/" || path === "/index.html") return html(dashboardPageHtml(runsDir));
    if (path === "/api/runs") {
      const runs = await listRuns(runsDir);
      return json({ runs, html: runsHtml(runs) });
    }
    if (path === "/api/suites") {
      return json(listBenchmarks().map((b) => ({ key: b.key, description: b.description })));
    }
    if (path === "/api/lineage") {
      const runs = await listRuns(runsDir);
      const edges: LineageEdge[] = [];
      for (const r of runs) {
        const e = await parentEdgeOf(r);
        if (e) edges.push(e);
      }
      return json({ edges, svg: lineageGraphSvg(runs, edges) });
    }
    const report = path.match(/^\/report\/([^/]+)$/);
    if (report) {
      const dir = await runDirOf(decodeURIComponent(report[1]));
      return html(await runReportHtml(dir, { cwd, catalogDir: options.catalogDir }));
    }
    const m = path.match(/^\/api\/runs\/([^/]+)(?:\/(charts)|\/checkpoints\/([^/]+)(\/overlap)?)?$/);
    if (!m) throw new HttpError(404, `Cannot find ${path}: no such page or API route`);
    const run = decodeURIComponent(m[1]);
    const runDir = await runDirOf(run);
    if (m[2] === "charts") {
      let tail = tails.get(run);
      if (!tail) tails.set(run, tail = new MetricsTail(runDir));
      await tail.refresh();
      const summary = await readRunSummary(runDir);
      const charts = runChartsSvg(tail.metrics, summary.samplesPerStep);
      return json({
        ...charts,
        restarts: tail.restarts,
        running: summary.status === "running" && !summary.stale,
      });
    }
    if (m[3] !== undefined) {
      const ckptDir = await checkpointDirOf(run, decodeURIComponent(m[3]));
      const catalogDir = await catalogOf(runDir);
      if (m[4]) {
        const suite = url.searchParams.get("suite");
        if (!suite) throw new HttpError(400, "Cannot check overlap without ?suite=<name@version>");
        const result = await withExistingCatalog(
          catalogDir,
          null,
          (c) => checkTrainTestOverlap(ckptDir, suite, c),
        );
        if (!result) {
          throw new HttpError(404, `Cannot check overlap as the catalog ${catalogDir} does not exist`);
        }
        return json({ report: result, html: overlapHtml(result) });
      }
      const details = await withExistingCatalog(
        catalogDir,
        null as CheckpointDetails | null,
        (c) => readCheckpointDetails(run, ckptDir, c),
      ) ?? await readCheckpointDetails(run, ckptDir, null);
      return json({ details, html: checkpointHtml(details) });
    }
    const summary = await readRunSummary(runDir);
    const checkpoints = await listRunCheckpoints(runDir);
    const attached: BenchmarkView[] = [];
    for (const c of checkpoints) attached.push(...await attachedBenchmarks(c.dir));
    const stored = await withExistingCatalog(await catalogOf(runDir), [], (c) => catalogBenchmarks(c, run));
    const parent = await parentEdgeOf(summary);
    return json({
      summary,
      statusHtml: statusBadge(summary.status, summary.stale),
      factsHtml: keyValues([
        ["steps", escapeXml(`${summary.step ?? "?"} / ${summary.maxSteps ?? "?"}`)],
        ["config hash", `<code>${escapeXml(summary.configHash ?? "?")}</code>`],
        ["updated", escapeXml(summary.updatedAt ?? "?")],
        [
          "started from",
          parent
            ? `<a href="#/run/${encodeURIComponent(parent.parent)}">${escapeXml(parent.parent)}</a>${
              parent.checkpointStep !== null ? ` at step ${parent.checkpointStep}` : ""
            }`
            : "fresh initialization",
        ],
      ]),
      checkpointsHtml: checkpointsTable(checkpoints, true),
      benchmarksHtml: benchmarksTable(mergeBenchmarks(stored, attached)),
    });
  };

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json({ error: `Cannot ${request.method} ${url.pathname}: the dashboard is read-only` }, 405);
    }
    if (token) {
      const bearer = request.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1] ?? null;
      if (!tokenMatches(token, url.searchParams.get("token") ?? bearer)) {
        return json(
          { error: "Cannot show the dashboard without its token: add ?token=<token> to the URL" },
          401,
        );
      }
    } else {
      const hostHeader = request.headers.get("host") ?? "";
      const hostname = hostHeader.replace(/:\d+$/, "");
      if (!isLoopbackHost(hostname)) {
        return json(
          { error: `Cannot serve host ${hostHeader}: this dashboard answers loopback names only` },
          403,
        );
      }
    }
    try {
      return await route(url);
    } catch (e) {
      if (e instanceof HttpError) return json({ error: e.message }, e.status);
      return json({ error: (e as Error)?.message ?? String(e) }, 500);
    }
  };

  let listening: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((r) => (listening = r));
  const server = Deno.serve({
    hostname: host,
    port: options.port ?? 8080,
    signal: options.signal,
    onListen: (addr) => listening(addr as Deno.NetAddr),
  }, handler);
  const addr = await ready;
  const shownHost = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  const urlHost = shownHost === "0.0.0.0" || shownHost === "[::]" ? "127.0.0.1" : shownHost;
  return {
    url: `http://${urlHost}:${addr.port}/${token ? `?token=${encodeURIComponent(token)}` : ""}`,
    hostname: addr.hostname,
    port: addr.port,
    finished: server.finished,
    shutdown: () => server.shutdown(),
  };
}
