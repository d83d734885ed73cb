/**
 * `orion runs ls|show|query`: the runs, checkpoints and benchmark results registered in the catalog.
 *
 * ```
 * orion runs ls [--catalog dir] [--json]
 * orion runs show <run> [--catalog dir] [--json]
 * orion runs query ["<filter>"] [--table runs|checkpoints|benchmark_results] [--columns a,b,...]
 *                  [--order-by col [--desc]] [--limit N] [--best MONITOR [--mode min|max] [--run NAME] [--partial]]
 *                  [--catalog dir] [--json]
 * ```
 *
 * @module
 */
import { resolve } from "node:path";
import { EXIT, UsageError } from "../cli/cli_errors.ts";
import type { CliIO } from "../cli/cli_io.ts";
import type { Command, CommandContext } from "../cli/command_registry.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { type Catalog, defaultCatalogDir, openCatalog } from "../ursa/catalog.ts";
import { formatLineage } from "../pipeline/lineage_catalog.ts";
import {
  bestCheckpointBy,
  describeRun,
  listRuns,
  QUERYABLE_TABLES,
  type QueryableTable,
  queryRunTable,
  type RunDetails,
} from "../train/run_queries.ts";
import { readPath, RowFilterError } from "./row_filter.ts";

/** Usage text of `orion runs`. */
export const RUNS_USAGE = `orion runs <ls|show|query> ...

  orion runs ls [--catalog dir] [--json]
      every run in the catalog: status, steps, last metrics, last checkpoint
  orion runs show <run> [--catalog dir] [--json]
      config summary, status, steps, checkpoints (metrics, benchmark results, on disk or deleted), lineage
  orion runs query ["<filter>"] [--table runs|checkpoints|benchmark_results] [--columns a,b,...]
                   [--order-by col [--desc]] [--limit N] [--catalog dir] [--json]
      rows matching a SQL-like filter, e.g.
        orion runs query "status = 'finished' AND steps > 100"
        orion runs query --table checkpoints "run_name = 'demo' AND metrics.val_loss < 1.1"
        orion runs query --table benchmark_results "suite_key = 'cognitive_load_eval@1' AND metrics.accuracy > 0.6"
      (AND OR NOT, = != < <= > >=, IS [NOT] NULL, [NOT] IN (...), [NOT] LIKE '%x_', BETWEEN a AND b;
       dotted names read inside JSON columns: metrics.val_loss, metrics."cognitive_load_eval@1/accuracy")
  orion runs query --best MONITOR [--mode min|max] [--run NAME] [--partial] ["<filter over checkpoints>"]
      the best checkpoint by a benchmark metric (cognitive_load_eval@1/accuracy; whole-suite results
      unless --partial) or by a metrics-snapshot value (val_loss, metrics.val_accuracy)

  --catalog dir   the catalog (default: $ORION_HOME/catalog, else ./.orion/catalog)
Exit codes: 0 ok (query: rows found), 1 nothing found or a failure, 2 usage error.`;

const DEFAULT_COLUMNS: Record<QueryableTable, string[]> = {
  runs: [
    "run_name",
    "status",
    "steps",
    "max_steps",
    "metrics.loss",
    "metrics.val_loss",
    "metrics.val_accuracy",
    "last_checkpoint_hash",
    "updated_at",
  ],
  checkpoints: [
    "run_name",
    "step",
    "checkpoint_hash",
    "parent_hash",
    "metrics.loss",
    "metrics.val_loss",
    "metrics.val_accuracy",
    "path",
  ],
  benchmark_results: [
    "run",
    "step",
    "suite_key",
    "checkpoint_hash",
    "partial_subset",
    "metrics.accuracy",
    "metrics.balanced_accuracy",
    "metrics.macro_f1",
    "created_at",
  ],
};

/** A value as one table cell: hashes shortened, numbers to 4 significant digits, missing as "-". */
function cell(column: string, value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  if (typeof value === "number") {
    return Number.isInteger(value)
      ? String(value)
      : Math.abs(value) >= 1e-3 && Math.abs(value) < 1e5
      ? String(Number(value.toPrecision(4)))
      : value.toExponential(3);
  }
  if (typeof value === "string") {
    return /hash$/.test(column) && /^[0-9a-f]{16,}$/.test(value) ? value.slice(0, 12) : value;
  }
  return JSON.stringify(value);
}

/** Rows as an aligned text table. */
export function formatTable(rows: readonly Record<string, unknown>[], columns: readonly string[]): string[] {
  const header = columns.map((c) => c.replace(/^metrics\./, ""));
  const body = rows.map((r) => columns.map((c) => cell(c, readPath(r, c.split(".")))));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...body.map(line)];
}

/** Opens the catalog at `--catalog` (or the default), refusing one that does not exist instead of creating it. */
export async function openExistingCatalog(dir: string | undefined, cwd: string): Promise<Catalog> {
  const path = resolve(cwd, dir ?? defaultCatalogDir());
  try {
    if (!(await Deno.stat(path)).isDirectory) throw new Deno.errors.NotFound(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new UsageError(
      `Cannot read the catalog ${path} as it does not exist: pass --catalog <dir> (a run's data.catalogDir), or set ORION_HOME`,
    );
  }
  return await openCatalog(path);
}

function formatRunDetails(d: RunDetails): string[] {
  const r = d.run;
  const c = d.config ?? {};
  const get = (path: string) => readPath(c, path.split("."));
  const oneLine = (v: unknown) => JSON.stringify(v) ?? "-";
  const metrics = Object.entries(r.metrics).filter(([k]) => k !== "step").map(([k, v]) =>
    `${k} ${cell(k, v)}`
  );
  const onDisk = d.checkpoints.filter((x) => x.onDisk).length;
  const lines = [
    `run          ${r.run_name}`,
    `status       ${r.status}, step ${r.steps}/${r.max_steps}${
      d.record ? ` (run.json: ${d.record.status}, updated ${d.record.updatedAt})` : " (run.json missing)"
    }`,
    `directory    ${r.run_dir}`,
    `config       ${r.config_hash}${d.config ? "" : " (config.json missing)"}`,
  ];
  if (d.config) {
    lines.push(
      `  model      ${get("model.cls")} ${oneLine(get("model.kwargs"))}`,
      `  data       query ${oneLine(get("data.ursaQuery"))}, window ${get("data.trainWindow")} s, split ${
        get("data.trainSplit")
      }/${get("data.valSplit")} (seed ${get("data.splitSeed")})`,
      `  training   ${get("training.optimizer")} lr ${get("training.lr")} ${
        get("training.scheduler")
      }, batch ${get("training.batchSize")} × ${get("training.accumulateGradBatches")}, ${
        get("training.maxSteps")
      } steps, seed ${get("training.seed")}, checkpoint every ${get("training.ckptEveryNSteps")}, precision ${
        get("training.precision")
      }`,
      `  infra      ${get("infra.accelerator")} ${get("infra.nodes")}×${get("infra.gpusPerNode")}`,
      `  initFrom   ${oneLine(get("initFrom"))}`,
    );
  }
  lines.push(
    `metrics      ${metrics.length ? metrics.join(", ") : "-"}`,
    `checkpoints  ${d.checkpoints.length} registered, ${onDisk} on disk (retention deleted the others)`,
  );
  const table = formatTable(
    d.checkpoints.map((x) => ({
      ...x,
      disk: x.onDisk ? "yes" : "deleted",
      benchmarks: x.benchmarks.map((b) =>
        `${b.suiteKey}${b.partialSubset < 1 ? `[${b.partialSubset}]` : ""}: ${
          Object.entries(b.metrics).filter(([k]) => !k.includes("/")).map(([k, v]) => `${k} ${cell(k, v)}`)
            .join(" ")
        }`
      ).join("; "),
    })),
    [
      "step",
      "checkpoint_hash",
      "parent_hash",
      "metrics.loss",
      "metrics.val_loss",
      "metrics.val_accuracy",
      "disk",
      "benchmarks",
    ],
  );
  lines.push(...table.map((l) => `  ${l}`));
  for (const b of d.otherBenchmarks) {
    lines.push(
      `  benchmark on unregistered checkpoint ${b.checkpoint_hash.slice(0, 12)} (step ${b.step ?? "?"}): ${
        Object.entries(b.metrics).filter(([k]) => !k.includes("/")).map(([k, v]) =>
          `${k} ${cell(k, v.value)}`
        )
          .join(" ")
      }`,
    );
  }
  lines.push(
    `lineage      ${r.parent_run ? `started from run ${r.parent_run}` : "fresh start"}`,
    ...(d.lineage ? formatLineage(d.lineage).split("\n").map((l) => `  ${l}`) : []),
  );
  return lines;
}

function table(value: string | undefined): QueryableTable {
  const t = value ?? "runs";
  if (!(QUERYABLE_TABLES as readonly string[]).includes(t)) {
    throw new UsageError(
      `Cannot query table ${JSON.stringify(t)} as --table must be one of ${QUERYABLE_TABLES.join(", ")}`,
      RUNS_USAGE,
    );
  }
  return t as QueryableTable;
}

async function withCatalog<T>(
  dir: string | undefined,
  cwd: string,
  fn: (c: Catalog) => Promise<T>,
): Promise<T> {
  const catalog = await openExistingCatalog(dir, cwd);
  try {
    return await fn(catalog);
  } catch (e) {
    if (e instanceof RowFilterError) throw new UsageError(e.message);
    throw e;
  } finally {
    catalog.close();
  }
}

/**
 * Runs `orion runs <ls|show|query> …` and returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { runsCommand } from "./runs_command.ts";
 * await runsCommand(["query", "status = 'finished' AND steps > 100"], consoleIO, Deno.cwd());
 * ```
 */
export async function runsCommand(args: string[], io: CliIO, cwd: string): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined) throw new UsageError("Cannot run `orion runs` without a subcommand", RUNS_USAGE);
  if (sub === "ls") {
    const { values, positionals } = parseCommandArgs(rest, {
      catalog: { type: "string" },
      json: { type: "boolean" },
    }, RUNS_USAGE);
    if (positionals.length > 0) {
      throw new UsageError(`Cannot list runs by ${positionals.join(" ")}`, RUNS_USAGE);
    }
    const runs = await withCatalog(values.catalog, cwd, listRuns);
    if (values.json) io.out(JSON.stringify(runs, null, 2));
    else if (runs.length === 0) io.out("no runs in the catalog");
    else io.out(formatTable(runs as unknown as Record<string, unknown>[], DEFAULT_COLUMNS.runs).join("\n"));
    return EXIT.ok;
  }
  if (sub === "show") {
    const { values, positionals } = parseCommandArgs(rest, {
      catalog: { type: "string" },
      json: { type: "boolean" },
    }, RUNS_USAGE);
    if (positionals.length !== 1) {
      throw new UsageError(
        `Cannot show runs without exactly one run name: got ${positionals.length}`,
        RUNS_USAGE,
      );
    }
    const details = await withCatalog(values.catalog, cwd, (c) => describeRun(c, positionals[0]));
    io.out(values.json ? JSON.stringify(details, null, 2) : formatRunDetails(details).join("\n"));
    return EXIT.ok;
  }
  if (sub === "query") {
    const { values, positionals } = parseCommandArgs(rest, {
      table: { type: "string" },
      columns: { type: "string" },
      "order-by": { type: "string" },
      desc: { type: "boolean" },
      limit: { type: "string" },
      best: { type: "string" },
      mode: { type: "string" },
      run: { type: "string" },
      partial: { type: "boolean" },
      catalog: { type: "string" },
      json: { type: "boolean" },
    }, RUNS_USAGE);
    if (positionals.length > 1) {
      throw new UsageError(
        `Cannot query with ${positionals.length} filters: quote the filter as one argument, e.g. "status = 'finished' AND steps > 100"`,
        RUNS_USAGE,
      );
    }
    const filter = positionals[0];
    const mode = values.mode;
    if (mode !== undefined && mode !== "min" && mode !== "max") {
      throw new UsageError(`Cannot rank with --mode ${mode} as it must be min or max`, RUNS_USAGE);
    }
    if (values.best !== undefined) {
      const best = await withCatalog(
        values.catalog,
        cwd,
        (c) =>
          bestCheckpointBy(c, values.best!, {
            mode: mode as "min" | "max" | undefined,
            run: values.run,
            fullOnly: !values.partial,
            filter,
          }),
      );
      if (!best) {
        io.err(`no checkpoint has a value of ${values.best}${values.run ? ` in run ${values.run}` : ""}`);
        return EXIT.runtimeFailure;
      }
      if (values.json) io.out(JSON.stringify({ ...best, result: undefined }, null, 2));
      else {
        io.out(
          [
            `best by ${best.monitor} (${best.mode}): ${cell("value", best.value)}`,
            `checkpoint ${best.checkpointHash}`,
            `run        ${best.run ?? "-"}, step ${best.step ?? "-"}`,
            `path       ${best.path ?? "(not registered in checkpoints)"}`,
          ].join("\n"),
        );
      }
      return EXIT.ok;
    }
    const t = table(values.table);
    let limit: number | undefined;
    if (values.limit !== undefined) {
      limit = Number(values.limit);
      if (!Number.isSafeInteger(limit) || limit < 1) {
        throw new UsageError(
          `Cannot use --limit ${values.limit} as it must be a positive integer`,
          RUNS_USAGE,
        );
      }
    }
    const rows = await withCatalog(
      values.catalog,
      cwd,
      (c) => queryRunTable(c, t, { filter, orderBy: values["order-by"], descending: values.desc, limit }),
    );
    if (values.json) io.out(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) io.err(`no rows of ${t} match${filter ? ` ${filter}` : ""}`);
    else {
      const columns = values.columns?.split(",").map((s) => s.trim()).filter((s) => s) ?? DEFAULT_COLUMNS[t];
      io.out(formatTable(rows, columns).join("\n"));
      io.out(`${rows.length} row(s) of ${t}`);
    }
    return rows.length > 0 ? EXIT.ok : EXIT.runtimeFailure;
  }
  throw new UsageError(
    `Cannot run \`orion runs ${sub}\` as the subcommands are ls, show and query`,
    RUNS_USAGE,
  );
}

/** The `orion runs` command. */
export const runsCLICommand: Command = {
  name: "runs",
  summary: "list, show and query runs, checkpoints and benchmark results in the catalog",
  usage: RUNS_USAGE,
  run: (args: string[], ctx: CommandContext) => runsCommand(args, ctx.io, ctx.cwd),
};
