/**
 * `deno task bench`: runs every per-area benchmark script that exists (kernels, attention, train, loader,
 * read-back, all-reduce, checkpoint), each in its own process (its own GPU device), and collects their JSON into one
 * file.
 *
 * Usage:
 *   deno task bench [-- --json out/bench.json] [--small] [--only kernels,attention] [--keep-going]
 *     [--kernels-args "--sweep"] [--attention-args "..."] ...
 *   --json          where the combined JSON goes (default out/bench.json); each script writes its own
 *                   `bench_<area>.json` next to it
 *   --small         small problems everywhere (the software adapter; quick checks)
 *   --only          comma-separated areas to run
 *   --keep-going    run the remaining scripts after one fails (the exit status still reports the failure)
 *   --<area>-args   extra arguments for one area's script (split on spaces)
 *
 * The scripts differ in how they take an output path and a "small" switch; {@linkcode BENCH_AREAS} holds
 * each one's calling convention.
 *
 * @module
 */
import { parseArgs } from "node:util";

/** How to call one area's script. */
export interface BenchArea {
  area: string;
  script: string;
  /** Arguments writing the JSON result to `jsonPath` (or none when it prints JSON on stdout). */
  args(jsonPath: string, small: boolean): string[];
  /** The script prints its JSON result as the last JSON line of stdout instead of writing a file. */
  stdoutJson?: boolean;
}

/** Areas in run order; `scripts/bench_<area>.ts` is run when it exists. */
export const BENCH_AREAS: readonly BenchArea[] = [
  {
    area: "kernels",
    script: "scripts/bench_kernels.ts",
    args: (json, small) => ["--json", json, ...(small ? ["--small"] : [])],
  },
  {
    area: "attention",
    script: "scripts/bench_attention.ts",
    args: (json, small) => ["--out", json, ...(small ? ["--small"] : [])],
  },
  {
    area: "train",
    script: "scripts/bench_train.ts",
    args: (json, small) => [
      "--json",
      json,
      ...(small ? ["--preset", "demo_small", "--steps", "3", "--warmup", "2", "--batch", "4"] : []),
    ],
  },
  {
    area: "loader",
    script: "scripts/bench_loader.ts",
    args: (_json, small) => (small ? ["--participants", "3", "--batches", "5"] : []),
    stdoutJson: true,
  },
  {
    area: "readback",
    script: "scripts/bench_readback.ts",
    args: (json, small) => ["--json", json, ...(small ? ["--reps", "3"] : [])],
  },
  {
    area: "allreduce",
    script: "scripts/bench_allreduce.ts",
    args: (json, small) => [
      "--json",
      json,
      "--raw-ring",
      ...(small ? ["--ranks", "2", "--sizes-mib", "1,4"] : []),
    ],
  },
  {
    area: "checkpoint",
    script: "scripts/bench_checkpoint.ts",
    args: (_json, small) => ["--json", ...(small ? ["--mb", "8", "--reps", "1"] : [])],
    stdoutJson: true,
  },
];

const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
  "--allow-net=127.0.0.1,localhost",
];

/** The outcome of one area's script. */
export interface AreaResult {
  area: string;
  script: string;
  exitCode: number;
  seconds: number;
  /** The script's JSON output, or null when it wrote none. */
  result: unknown;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

if (import.meta.main) {
  const argOptions: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {
    json: { type: "string", default: "out/bench.json" },
    small: { type: "boolean", default: false },
    only: { type: "string" },
    "keep-going": { type: "boolean", default: false },
  };
  for (const a of BENCH_AREAS) argOptions[`${a.area}-args`] = { type: "string" };
  // `deno task bench -- --small` hands the script a literal "--" first; drop it.
  const argv = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  const { values } = parseArgs({ args: argv, options: argOptions });
  const jsonPath = String(values.json);
  const outDir = jsonPath.includes("/") ? jsonPath.slice(0, jsonPath.lastIndexOf("/")) : ".";
  const only = typeof values.only === "string" ? new Set(values.only.split(",")) : null;
  if (only) {
    for (const a of only) {
      if (!BENCH_AREAS.some((b) => b.area === a)) {
        const names = BENCH_AREAS.map((b) => b.area).join(", ");
        throw new RangeError(`Cannot run --only ${a} as it is not a benchmark area: use one of ${names}`);
      }
    }
  }
  const started = new Date().toISOString();
  const root = new URL("..", import.meta.url).pathname;
  await Deno.mkdir(outDir, { recursive: true });
  const results: AreaResult[] = [];
  let failed = false;
  for (const { area, script, args: areaArgs, stdoutJson } of BENCH_AREAS) {
    if (only && !only.has(area)) continue;
    if (!(await exists(`${root}${script}`))) continue;
    const areaJson = `${outDir}/bench_${area}.json`;
    await Deno.remove(areaJson).catch(() => {});
    const extra = values[`${area}-args`];
    const scriptArgs = [...areaArgs(areaJson, Boolean(values.small))];
    if (typeof extra === "string" && extra.trim()) scriptArgs.push(...extra.trim().split(/\s+/));
    const args = ["run", ...PERMISSIONS, `${root}${script}`, ...scriptArgs];
    console.error(`[bench] ${script} ${scriptArgs.join(" ")}`);
    const t0 = performance.now();
    const child = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: stdoutJson ? "piped" : "inherit",
      stderr: "inherit",
    }).output();
    const seconds = (performance.now() - t0) / 1000;
    if (stdoutJson) {
      const text = new TextDecoder().decode(child.stdout);
      await Deno.stdout.write(child.stdout);
      const line = text.trim().split("\n").reverse().find((l) => l.trim().startsWith("{"));
      if (line) await Deno.writeTextFile(areaJson, line + "\n");
    }
    let result: unknown = null;
    try {
      result = JSON.parse(await Deno.readTextFile(areaJson));
    } catch {
      result = null;
    }
    results.push({ area, script, exitCode: child.code, seconds: Math.round(seconds * 10) / 10, result });
    if (child.code !== 0) {
      failed = true;
      console.error(`[bench] ${script} exited with status ${child.code}`);
      if (!values["keep-going"]) break;
    }
  }
  const combined = { bench: "all", started, small: Boolean(values.small), areas: results };
  await Deno.writeTextFile(jsonPath, JSON.stringify(combined, null, 1) + "\n");
  console.error(
    `[bench] wrote ${jsonPath} (${
      results.map((r) => `${r.area}: ${r.exitCode === 0 ? "ok" : "failed"}`).join(", ")
    })`,
  );
  if (failed) Deno.exit(1);
}
