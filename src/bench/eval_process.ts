/**
 * Side evaluation processes: the request a training process sends, the `orion eval` arguments it becomes,
 * the JSON the process prints, and the default spawner (`Deno.execPath()` running the CLI's `eval` command).
 *
 * Protocol: the side process prints, as its last non-empty stdout line, one JSON object
 * `{"format": "orion.eval_output", "format_version": 1, "checkpoint_hash", "results": [BenchmarkResult…],
 * "failures": [{"suite", "message"}…]}` (what `orion eval --json` prints). It does not record results
 * (`--no-record`): the training process records them as they arrive, so one process writes the catalog.
 *
 * @module
 */
import { type BenchmarkResult, parseBenchmarkResult } from "./results.ts";

/** What a side evaluation is asked to do. */
export interface EvalRequest {
  checkpointDir: string;
  /** Suite keys, `name@version`. */
  suites: string[];
  partialSubset: number;
  partialSeed: number;
  /** Catalog directory (default: the process's default catalog). */
  catalogDir?: string;
  force?: boolean;
  allowOverlap?: boolean;
  /** Ancestor ledgers (checkpoint directories or ledger files). */
  ledgers?: string[];
}

/** What a finished side process left. */
export interface EvalProcessOutput {
  /** Exit code (non-zero: crashed or failed). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Starts one side evaluation and resolves when it exits. Injectable: tests and cluster launchers. */
export type SpawnEval = (request: EvalRequest) => Promise<EvalProcessOutput>;

/** The printed output of `orion eval --json`. */
export interface EvalOutput {
  format: "orion.eval_output";
  format_version: 1;
  checkpoint_hash: string | null;
  results: BenchmarkResult[];
  failures: { suite: string; message: string }[];
}

/** Arguments after `orion` for `request` (`eval <dir> --suite … --json --no-record`). */
export function evalCommandArgs(request: EvalRequest): string[] {
  const args = ["eval", request.checkpointDir];
  for (const s of request.suites) args.push("--suite", s);
  args.push("--partial", String(request.partialSubset), "--seed", String(request.partialSeed));
  if (request.catalogDir) args.push("--catalog", request.catalogDir);
  if (request.force) args.push("--force");
  if (request.allowOverlap) args.push("--allow-overlap");
  for (const l of request.ledgers ?? []) args.push("--ledger", l);
  args.push("--json", "--no-record");
  return args;
}

/** One line of JSON for {@link EvalOutput}. */
export function formatEvalOutput(output: Omit<EvalOutput, "format" | "format_version">): string {
  return JSON.stringify({ format: "orion.eval_output", format_version: 1, ...output });
}

/**
 * Parses a side process's stdout (its last non-empty line), validating every result.
 *
 * @throws when no line is an eval output or a result is invalid.
 */
export function parseEvalOutput(stdout: string): EvalOutput {
  const lines = stdout.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  const last = lines[lines.length - 1];
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(last ?? "");
  } catch {
    throw new Error(
      `Cannot read the evaluation output as its last stdout line is not JSON: current value is ${
        JSON.stringify((last ?? "").slice(0, 200))
      }`,
    );
  }
  if (value?.format !== "orion.eval_output" || value.format_version !== 1) {
    throw new Error(
      `Cannot read the evaluation output as it is not format orion.eval_output version 1: current format is ${
        JSON.stringify(value?.format)
      }`,
    );
  }
  const results = Array.isArray(value.results) ? value.results : [];
  const failures = Array.isArray(value.failures) ? value.failures : [];
  return {
    format: "orion.eval_output",
    format_version: 1,
    checkpoint_hash: typeof value.checkpoint_hash === "string" ? value.checkpoint_hash : null,
    results: results.map((r, i) => parseBenchmarkResult(r, `evaluation output result ${i}`)),
    failures: failures.map((f) => ({ suite: String(f?.suite), message: String(f?.message) })),
  };
}

/** Permissions of the side process: what `orion eval` needs (files, catalog FFI, env, GPU adapter info). */
export const EVAL_PROCESS_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
];

/** Options of {@link createProcessSpawner}. */
export interface ProcessSpawnerOptions {
  /** Script run with the eval arguments (default: the repository's `mod.ts`, the `orion` CLI). */
  entry?: string | URL;
  /** `deno.json` to run with (default: the repository's, when `entry` is the default). */
  config?: string | URL | null;
  /** Permission flags (default {@link EVAL_PROCESS_PERMISSIONS}). */
  permissions?: readonly string[];
  /** Extra environment variables. */
  env?: Record<string, string>;
  cwd?: string;
  /** Called with each started process's pid (for logs and tests). */
  onStart?: (pid: number, args: string[]) => void;
}

const pathOf = (u: string | URL) =>
  u instanceof URL ? (u.protocol === "file:" ? decodeURIComponent(u.pathname) : u.href) : u;

/**
 * The default spawner: `deno run <permissions> <entry> eval …` as a child process, output collected. The
 * default entry is the program running now: the checkout's `mod.ts` (with its `deno.json`) when Orion runs
 * from source (a file: or http: URL), the main module when it runs as a single-file bundle, and the binary
 * itself (`<binary> eval …`, no `deno run`) when it runs as a `deno compile` executable.
 *
 * @example
 * ```ts
 * const spawn = createProcessSpawner();
 * const out = await spawn({ checkpointDir, suites: ["cognitive_load_eval@1"], partialSubset: 0.1, partialSeed: 0 });
 * console.log(parseEvalOutput(out.stdout).results);
 * ```
 */
export function createProcessSpawner(options: ProcessSpawnerOptions = {}): SpawnEval {
  const standalone = options.entry === undefined && Deno.build.standalone;
  const fromSource = import.meta.url.endsWith("/bench/eval_process.ts");
  const entry = options.entry ??
    (fromSource ? new URL("../../mod.ts", import.meta.url) : new URL(Deno.mainModule));
  const config = options.config === undefined
    ? (options.entry === undefined && fromSource && entry.toString().startsWith("file:")
      ? new URL("../../deno.json", import.meta.url)
      : null)
    : options.config;
  const remote = /^https?:/.test(entry.toString()) ? [`--allow-import=${new URL(entry).host}`] : [];
  return async (request) => {
    const args = standalone ? evalCommandArgs(request) : [
      "run",
      ...(config ? ["--config", pathOf(config)] : []),
      ...(options.permissions ?? EVAL_PROCESS_PERMISSIONS),
      ...remote,
      pathOf(entry),
      ...evalCommandArgs(request),
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    options.onStart?.(child.pid, args);
    const out = await child.output();
    const decoder = new TextDecoder();
    return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
  };
}
