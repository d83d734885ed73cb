/**
 * `orion eval` and `orion bench` as plain async functions: `evalCommand(args)` / `benchCommand(args)`
 * resolve to the exit code (0 ok, 1 an evaluation failed, 2 usage error) and print results to stdout,
 * problems to stderr. `runEvalCommand` / `runBenchCommand` are the same but throw (for the CLI dispatcher).
 *
 * @module
 */
import { resolve } from "node:path";
import { listCheckpointDirs, summarizeCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { MANIFEST_FILE } from "../checkpoint/checkpoint_manifest.ts";
import { debugEnabled, EXIT, reportError, UsageError } from "../cli/cli_errors.ts";
import { type CliIO, consoleIO } from "../cli/cli_io.ts";
import { parseCommandArgs } from "../cli/parse_command_args.ts";
import { openCatalog } from "../ursa/catalog.ts";
import { evaluateCheckpoint } from "./evaluate_checkpoint.ts";
import { formatEvalOutput } from "./eval_process.ts";
import { listBenchmarks, parseSuiteKey } from "./registry.ts";
import { type BenchmarkResult, bestBenchmarkResult, listBenchmarkResults } from "./results.ts";
import "./cognitive_load_eval.ts";

/** Usage of `orion eval`. */
export const EVAL_USAGE = `orion eval <checkpoint-dir | run-dir | run-name> --suite <name@version> [options]

Evaluates benchmark suites on a checkpoint (a run: its newest complete checkpoint). A result already in the
catalog for the same suite, checkpoint, data and subset is shown without recomputation.

Options:
  --suite KEY        suite to evaluate, e.g. cognitive_load_eval@1 (repeatable; see \`orion bench ls\`)
  --partial F        fraction of windows to evaluate, 0 < F ≤ 1 (default 1)
  --seed N           seed of the partial subset (default 0)
  --force            recompute even when the catalog holds this result
  --allow-overlap    evaluate even when the held-out data overlaps the training data
  --ledger PATH      data ledger of an ancestor stage (checkpoint dir or ledger JSON; repeatable)
  --catalog DIR      catalog directory (default: $ORION_HOME/catalog or ./.orion/catalog)
  --runs-dir DIR     where run names are looked up (default: runs)
  --no-record        do not store results in the catalog
  --json             print one JSON line: {"format":"orion.eval_output","results":[…],"failures":[…]}
  -h, --help         show this help`;

/** Usage of `orion bench`. */
export const BENCH_USAGE = `orion bench <command> [options]

Commands:
  ls [--json]
      List the registered benchmark suites.
  results [--checkpoint HASH] [--suite KEY] [--run NAME] [--full] [--json]
      List stored results (catalog table benchmark_results).
  best <suite@version/metric> [--run NAME] [--min] [--include-partial] [--json]
      The checkpoint with the best value of a metric, e.g. cognitive_load_eval@1/accuracy.

Common options:
  --catalog DIR   catalog directory (default: $ORION_HOME/catalog or ./.orion/catalog)
  -h, --help      show this help`;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** The checkpoint directory `target` names: itself, the newest complete checkpoint of a run, or of `<runsDir>/<target>`. */
export async function resolveEvalTarget(target: string, runsDir: string, cwd: string): Promise<string> {
  const candidates = [resolve(cwd, target)];
  if (!target.includes("/")) candidates.push(resolve(cwd, runsDir, target));
  for (const dir of candidates) {
    if (await isFile(`${dir}/${MANIFEST_FILE}`)) return dir;
    for (const entry of await listCheckpointDirs(dir)) {
      if ((await summarizeCheckpoint(entry)).manifest !== null) return entry.dir;
    }
  }
  throw new UsageError(
    `Cannot evaluate ${
      JSON.stringify(target)
    } as it is neither a checkpoint directory (with ${MANIFEST_FILE}) nor a ` +
      `run with a complete checkpoint: tried ${candidates.join(", ")}`,
    EVAL_USAGE,
  );
}

const fmt = (v: number | null) => (v === null ? "n/a" : v.toFixed(3));

/** Human-readable lines of one result. */
export function describeResult(result: BenchmarkResult, cached: boolean, where = ""): string[] {
  const lines = [
    `${result.suite_key}${where} (step ${result.step ?? "?"}, checkpoint ${
      result.checkpoint_hash.slice(0, 12)
    }…): ${cached ? "stored result" : `computed in ${(result.duration_ms / 1000).toFixed(1)} s`}`,
    `  windows ${result.windows_used}/${result.windows_total}, blocks ${result.groups_used}/${result.groups_total}, ` +
    `partial ${result.partial_subset} (seed ${result.partial_seed}), ${
      Math.round(result.bootstrap.confidence * 100)
    }% CI over ${result.bootstrap.unit}s` +
    (result.overlap_allowed ? `, OVERLAP ALLOWED (${result.overlap_seconds.toFixed(1)} s)` : ""),
  ];
  const grouped = new Map<string, [string, number | null][]>();
  for (const [name, m] of Object.entries(result.metrics)) {
    const slash = name.indexOf("/");
    if (slash < 0) {
      lines.push(`  ${name.padEnd(20)} ${fmt(m.value)}  [${fmt(m.ci_low)}, ${fmt(m.ci_high)}]`);
    } else {
      const base = name.slice(0, slash);
      if (!grouped.has(base)) grouped.set(base, []);
      grouped.get(base)!.push([name.slice(slash + 1), m.value]);
    }
  }
  for (const [base, values] of grouped) {
    const defined = values.filter((v): v is [string, number] => v[1] !== null).sort((a, b) => a[1] - b[1]);
    if (defined.length === 0) continue;
    const median = defined[Math.floor((defined.length - 1) / 2)];
    lines.push(
      `  ${base}: ${defined.length} groups, min ${fmt(defined[0][1])} (${defined[0][0]}), median ${
        fmt(median[1])
      }, max ${fmt(defined[defined.length - 1][1])} (${defined[defined.length - 1][0]})`,
    );
  }
  return lines;
}

/**
 * `orion eval …` (throws usage errors; see {@link evalCommand}).
 *
 * @example
 * ```ts
 * const code = await runEvalCommand(["runs/demo", "--suite", "cognitive_load_eval@1", "--partial", "0.1"], consoleIO);
 * ```
 */
export async function runEvalCommand(args: string[], io: CliIO, cwd: string = Deno.cwd()): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    suite: { type: "string", multiple: true },
    partial: { type: "string" },
    seed: { type: "string" },
    force: { type: "boolean" },
    "allow-overlap": { type: "boolean" },
    ledger: { type: "string", multiple: true },
    catalog: { type: "string" },
    "runs-dir": { type: "string" },
    "no-record": { type: "boolean" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, EVAL_USAGE);
  if (values.help) {
    io.out(EVAL_USAGE);
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `Cannot evaluate as exactly one checkpoint or run must be given: current arguments name ${positionals.length}`,
      EVAL_USAGE,
    );
  }
  const suites = values.suite ?? [];
  if (suites.length === 0) {
    throw new UsageError(
      `Cannot evaluate without --suite: registered suites are ${
        listBenchmarks().map((b) => b.key).join(", ")
      }`,
      EVAL_USAGE,
    );
  }
  for (const s of suites) {
    try {
      parseSuiteKey(s);
    } catch (e) {
      throw new UsageError((e as Error).message, EVAL_USAGE);
    }
  }
  const number = (flag: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const v = Number(text);
    if (text.trim() === "" || !Number.isFinite(v)) {
      throw new UsageError(`Cannot use --${flag} ${JSON.stringify(text)} as it is not a number`, EVAL_USAGE);
    }
    return v;
  };
  const partialSubset = number("partial", values.partial, 1);
  if (!(partialSubset > 0 && partialSubset <= 1)) {
    throw new UsageError(
      `Cannot evaluate a fraction of ${partialSubset}: --partial must lie in (0, 1]`,
      EVAL_USAGE,
    );
  }
  const partialSeed = number("seed", values.seed, 0);
  if (!Number.isSafeInteger(partialSeed) || partialSeed < 0) {
    throw new UsageError(`Cannot use --seed ${partialSeed}: it must be a non-negative integer`, EVAL_USAGE);
  }
  const dir = await resolveEvalTarget(positionals[0], values["runs-dir"] ?? "runs", cwd);
  const out = await evaluateCheckpoint(dir, suites, {
    catalogDir: values.catalog === undefined ? undefined : resolve(cwd, values.catalog),
    partialSubset,
    partialSeed,
    force: values.force ?? false,
    allowOverlap: values["allow-overlap"] ?? false,
    ledgers: (values.ledger ?? []).map((l) => resolve(cwd, l)),
    record: !values["no-record"],
  });
  if (values.json) {
    io.out(formatEvalOutput({
      checkpoint_hash: out.checkpointHash,
      results: out.outcomes.map((o) => o.result),
      failures: out.failures.map((f) => ({ suite: f.suite, message: f.message })),
    }));
  } else {
    for (const o of out.outcomes) io.out(describeResult(o.result, o.cached, ` on ${dir}`).join("\n"));
  }
  for (const f of out.failures) io.err(`orion eval: ${f.suite} failed: ${f.message}`);
  return out.failures.length > 0 ? EXIT.runtimeFailure : EXIT.ok;
}

/**
 * `orion eval …`, resolving to the exit code.
 *
 * @example
 * ```ts
 * const code = await evalCommand(["runs/demo/ckpt-step000000300", "--suite", "cognitive_load_eval@1", "--json"]);
 * ```
 */
export async function evalCommand(args: string[], io: CliIO = consoleIO): Promise<number> {
  try {
    return await runEvalCommand(args, io);
  } catch (e) {
    return reportError(e, "eval", io, debugEnabled());
  }
}

/** `orion bench …` (throws usage errors; see {@link benchCommand}). */
export async function runBenchCommand(args: string[], io: CliIO, cwd: string = Deno.cwd()): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    if (sub === undefined) {
      io.err(BENCH_USAGE);
      return EXIT.usageOrConfig;
    }
    io.out(BENCH_USAGE);
    return EXIT.ok;
  }
  const { values, positionals } = parseCommandArgs(rest, {
    json: { type: "boolean" },
    catalog: { type: "string" },
    checkpoint: { type: "string" },
    suite: { type: "string" },
    run: { type: "string" },
    full: { type: "boolean" },
    min: { type: "boolean" },
    "include-partial": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, BENCH_USAGE);
  if (values.help) {
    io.out(BENCH_USAGE);
    return EXIT.ok;
  }
  const catalogDir = values.catalog === undefined ? undefined : resolve(cwd, values.catalog);
  switch (sub) {
    case "ls": {
      const suites = listBenchmarks();
      if (values.json) {
        io.out(JSON.stringify(suites.map((s) => ({
          key: s.key,
          name: s.name,
          version: s.version,
          description: s.description,
          code_hash: s.codeHash,
          origin: s.origin,
          metrics: s.suite().metrics().map((m) => m.name),
        }))));
      } else if (suites.length === 0) io.out("no benchmark suites registered");
      else {
        for (const s of suites) {
          io.out(`${s.key}  ${s.description}`);
          io.out(
            `    metrics: ${s.suite().metrics().map((m) => m.name).join(", ")}; ${s.origin}; code ${
              s.codeHash.slice(0, 12)
            }…`,
          );
        }
      }
      return EXIT.ok;
    }
    case "results": {
      const catalog = await openCatalog(catalogDir);
      try {
        const results = await listBenchmarkResults(catalog, {
          checkpointHash: values.checkpoint,
          suiteKey: values.suite,
          run: values.run,
          fullOnly: values.full ?? false,
        });
        if (values.json) io.out(JSON.stringify(results));
        else if (results.length === 0) io.out("no stored benchmark results match");
        else {
          for (const r of results) {
            const metrics = Object.entries(r.metrics).filter(([n]) => !n.includes("/"))
              .map(([n, m]) => `${n} ${fmt(m.value)}`).join(", ");
            io.out(
              `${r.run ?? "-"} step ${
                r.step ?? "?"
              } ${r.suite_key} partial ${r.partial_subset}: ${metrics} ` +
                `(checkpoint ${r.checkpoint_hash.slice(0, 12)}…, key ${r.result_key.slice(0, 12)}…)`,
            );
          }
        }
      } finally {
        catalog.close();
      }
      return EXIT.ok;
    }
    case "best": {
      if (positionals.length !== 1) {
        throw new UsageError(
          `Cannot rank checkpoints as \`orion bench best\` takes one <suite@version/metric>: current arguments name ${positionals.length}`,
          BENCH_USAGE,
        );
      }
      const catalog = await openCatalog(catalogDir);
      try {
        const best = await bestBenchmarkResult(catalog, positionals[0], {
          mode: values.min ? "min" : "max",
          run: values.run,
          fullOnly: !values["include-partial"],
        });
        if (values.json) io.out(JSON.stringify(best ?? null));
        else if (!best) io.out(`no stored result has ${positionals[0]}`);
        else {
          const metric = positionals[0].slice(positionals[0].indexOf("/") + 1);
          io.out(
            `${best.run ?? "-"} step ${best.step ?? "?"} checkpoint ${best.checkpoint_hash}: ${metric} ${
              fmt(best.metrics[metric].value)
            } [${fmt(best.metrics[metric].ci_low)}, ${fmt(best.metrics[metric].ci_high)}]`,
          );
        }
      } finally {
        catalog.close();
      }
      return EXIT.ok;
    }
    default:
      throw new UsageError(
        `Cannot run \`orion bench ${sub}\` as there is no such command: use ls, results or best`,
        BENCH_USAGE,
      );
  }
}

/**
 * `orion bench …`, resolving to the exit code.
 *
 * @example
 * ```ts
 * await benchCommand(["ls"]);
 * ```
 */
export async function benchCommand(args: string[], io: CliIO = consoleIO): Promise<number> {
  try {
    return await runBenchCommand(args, io);
  } catch (e) {
    return reportError(e, "bench", io, debugEnabled());
  }
}
