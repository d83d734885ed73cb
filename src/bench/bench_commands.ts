/**
 * Registers `orion eval` and `orion bench` with the CLI and the bench-suite registry with the config
 * pre-flight (`benchSuiteExists`, `knownBenchSuites`). Import once (e.g. from `src/cli/builtin_commands.ts`).
 *
 * @module
 */
import { registerCommand } from "../cli/command_registry.ts";
import { registerPreflightProvider } from "../config/preflight_environment.ts";
import { BENCH_USAGE, EVAL_USAGE, runBenchCommand, runEvalCommand } from "./bench_cli.ts";
import { benchSuiteExists, listBenchmarks } from "./registry.ts";

registerCommand({
  name: "eval",
  summary: "evaluate benchmark suites on a checkpoint or run (results stored in the catalog)",
  usage: EVAL_USAGE,
  run: (args, ctx) => runEvalCommand(args, ctx.io, ctx.cwd),
});

registerCommand({
  name: "bench",
  summary: "list benchmark suites, stored results and the best checkpoint by a metric",
  usage: BENCH_USAGE,
  run: (args, ctx) => runBenchCommand(args, ctx.io, ctx.cwd),
});

registerPreflightProvider({
  benchSuiteExists,
  knownBenchSuites: () => listBenchmarks().map((b) => b.key),
});
