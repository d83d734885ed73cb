/**
 * `orion ckpt …`: the command-line handler for checkpoint storage.
 *
 * ```
 * orion ckpt gc <runDir> [--dry-run] [--keep-last N] [--keep-best K --metric NAME --mode min|max]
 *                        [--keep-every N] [--pin NAME|PATH|HASH]... [--catalog dir] [--json]
 * orion ckpt show <ckptDir|hash> [--no-verify] [--catalog dir] [--json]
 * orion ckpt verify <ckptDir|runDir> [--json]
 * ```
 * `show` resolves a hash (or a unique prefix of at least 6 hex digits) through the catalog's `checkpoints`
 * table and lists the benchmark results the catalog holds for the checkpoint. `gc` also keeps every
 * checkpoint another run was started from (the catalog's `run_lineage`: pipeline stages, finetuning).
 * Exit codes: 0 success, 1 verification failed or an operation failed, 2 usage error.
 *
 * @module
 */
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { JsonObject, JsonValue } from "./checkpoint_state.ts";
import { MANIFEST_FILE, parseCheckpointManifest } from "./checkpoint_manifest.ts";
import { listCheckpointDirs, summarizeCheckpoint, verifyCheckpoint } from "./checkpoint_reader.ts";
import { UsageError as CliUsageError } from "../cli/cli_errors.ts";
import { defaultCatalogDir, openCatalog } from "../ursa/catalog.ts";
import { type BenchmarkResult, listBenchmarkResults, metricValues } from "../bench/results.ts";
import { RUN_LINEAGE_TABLE } from "../pipeline/lineage_catalog.ts";
import { resolveCheckpointArg } from "./checkpoint_arg.ts";
import { gcCheckpoints, parseRetentionPolicy, type RetentionPolicy } from "./retention.ts";

/** Where the command writes; defaults to the console. */
export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIo: CommandIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Usage text of `orion ckpt`. */
export const CKPT_USAGE = `usage:
  orion ckpt gc <runDir> [--dry-run] [--keep-last N] [--keep-best K --metric NAME --mode min|max]
                         [--keep-every N] [--pin NAME|PATH|HASH]... [--catalog dir] [--json]
      apply the retention policy (default --keep-last 3); --dry-run shows what would go; checkpoints
      other runs started from (catalog run_lineage) are always kept
  orion ckpt show <ckptDir|hash> [--no-verify] [--catalog dir] [--json]
      manifest, config summary, code version, metrics, benchmarks (files and catalog), data summary,
      lineage; a hash (6+ hex digits) is looked up in the catalog's checkpoints table
  --catalog dir   default: $ORION_HOME/catalog, else ./.orion/catalog
  orion ckpt verify <ckptDir|runDir> [--json]
      check every file against the manifest; a run directory verifies all its checkpoints`;

class UsageError extends Error {}

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

function oneLine(value: unknown, max = 100): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** Summarizes a JSON object by key: scalars as is, containers by size. */
function summarizeObject(obj: JsonObject | null): string[] {
  if (obj === null) return ["(missing)"];
  return Object.keys(obj).sort().map((key) => {
    const v: JsonValue = obj[key];
    if (Array.isArray(v)) return `${key}: [${v.length} items]`;
    if (v !== null && typeof v === "object") {
      return `${key}: {${Object.keys(v).length} keys} ${oneLine(v, 60)}`;
    }
    return `${key}: ${JSON.stringify(v)}`;
  });
}

async function readJson(path: string): Promise<JsonObject | null> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function positional(values: string[], name: string): string {
  if (values.length !== 1) throw new UsageError(`expected exactly one ${name}: got ${values.length}`);
  return values[0];
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`Cannot use ${flag} as it must be a positive integer: current value is ${value}`);
  }
  return n;
}

/**
 * Hashes of `runDir`'s checkpoints that other runs were started from (the catalog's `run_lineage`: init
 * checkpoints and ancestors of pipeline stages and finetuning runs) → those runs. Empty without a catalog.
 */
async function checkpointsStartedFrom(runDir: string, catalogDir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  try {
    if (!(await Deno.stat(catalogDir)).isDirectory) return out;
  } catch {
    return out;
  }
  const here = new Set<string>();
  for (const entry of await listCheckpointDirs(runDir)) {
    const hash = (await summarizeCheckpoint(entry)).manifest?.checkpointHash;
    if (hash) here.add(hash);
  }
  if (here.size === 0) return out;
  const catalog = await openCatalog(catalogDir);
  try {
    for (const row of await catalog.query(RUN_LINEAGE_TABLE)) {
      const ancestors = Array.isArray(row.ancestors) ? row.ancestors as { checkpointHash?: unknown }[] : [];
      const hashes = [row.init_checkpoint_hash, ...ancestors.map((a) => a.checkpointHash)];
      for (const h of hashes) {
        if (typeof h !== "string" || !here.has(h)) continue;
        const runs = out.get(h) ?? [];
        if (!runs.includes(String(row.run_name))) runs.push(String(row.run_name));
        out.set(h, runs);
      }
    }
  } finally {
    catalog.close();
  }
  return out;
}

async function gc(args: string[], io: CommandIo, cwd: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "dry-run": { type: "boolean", default: false },
      "keep-last": { type: "string" },
      "keep-best": { type: "string" },
      metric: { type: "string" },
      mode: { type: "string" },
      "keep-every": { type: "string" },
      pin: { type: "string", multiple: true, default: [] },
      catalog: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const runDir = positional(positionals, "run directory");
  const lineagePins = await checkpointsStartedFrom(
    runDir,
    resolve(cwd, values.catalog ?? defaultCatalogDir()),
  );
  const keepBest = positiveInt(values["keep-best"], "--keep-best");
  if (keepBest !== undefined && (values.metric === undefined || values.mode === undefined)) {
    throw new UsageError("Cannot use --keep-best as it needs --metric NAME and --mode min|max");
  }
  if (values.mode !== undefined && values.mode !== "min" && values.mode !== "max") {
    throw new UsageError(`Cannot use --mode as it must be min or max: current value is ${values.mode}`);
  }
  let policy: RetentionPolicy;
  try {
    policy = parseRetentionPolicy({
      keepLast: positiveInt(values["keep-last"], "--keep-last") ?? 3,
      ...(keepBest === undefined
        ? {}
        : { keepBest: { k: keepBest, metric: values.metric, mode: values.mode } }),
      ...(values["keep-every"] === undefined
        ? {}
        : { keepEvery: positiveInt(values["keep-every"], "--keep-every") }),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const dryRun = values["dry-run"];
  const result = await gcCheckpoints(runDir, policy, {
    pins: [...values.pin, ...lineagePins.keys()],
    dryRun,
  });
  if (values.json) {
    io.out(JSON.stringify({ dryRun, policy, ...result }, null, 2));
    return 0;
  }
  const verb = dryRun ? "would delete" : "deleted";
  for (const d of result.keep) {
    const children = d.hash === null ? undefined : lineagePins.get(d.hash);
    io.out(
      `keep    ${d.name}  ${d.reasons.join("; ")}${
        children ? ` (runs started from it: ${children.join(", ")})` : ""
      }`,
    );
  }
  for (const d of result.delete) {
    io.out(`${dryRun ? "delete? " : "delete  "}${d.name}  ${d.reasons.join("; ")}`);
  }
  for (const pin of result.unmatchedPins) io.err(`warning: pin ${pin} matches no checkpoint in ${runDir}`);
  for (const name of result.removedScratch) io.out(`removed stale ${name}`);
  io.out(
    `${verb} ${result.delete.length} of ${result.keep.length + result.delete.length} checkpoint(s)${
      dryRun ? " (dry run: nothing deleted)" : ""
    }`,
  );
  return 0;
}

async function show(args: string[], io: CommandIo, cwd: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "no-verify": { type: "boolean", default: false },
      catalog: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const target = positional(positionals, "checkpoint directory or hash");
  let resolved;
  try {
    resolved = await resolveCheckpointArg(target, cwd, values.catalog);
  } catch (e) {
    if (e instanceof CliUsageError) {
      io.err(`orion ckpt show: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const dir = resolved.dir;
  let manifest;
  try {
    manifest = parseCheckpointManifest(await Deno.readFile(join(dir, MANIFEST_FILE)));
  } catch (e) {
    io.err(`Cannot show checkpoint ${dir} as its ${MANIFEST_FILE} is unreadable: ${(e as Error).message}`);
    return 1;
  }
  const [config, codeVersion, metrics, lineage, dataHashes] = await Promise.all(
    ["config.json", "code_version.json", "metrics/snapshot.json", "lineage.json", "data_hashes/manifest.json"]
      .map((p) => readJson(join(dir, p))),
  );
  const benchmarks: Record<string, JsonValue> = {};
  for (const f of manifest.files) {
    const m = /^benchmarks\/(.+)\.json$/.exec(f.path);
    if (m !== null) benchmarks[m[1]] = (await readJson(join(dir, f.path))) ?? null;
  }
  const verification = values["no-verify"] ? null : await verifyCheckpoint(dir);
  const catalogResults = await catalogBenchmarks(
    manifest.checkpointHash,
    resolve(
      cwd,
      values.catalog ?? configCatalogDir(config) ?? defaultCatalogDir(),
    ),
  );
  if (values.json) {
    io.out(
      JSON.stringify(
        {
          dir,
          manifest,
          config,
          codeVersion,
          metrics,
          benchmarks,
          catalogBenchmarks: catalogResults,
          lineage,
          dataHashes,
          verification,
        },
        null,
        2,
      ),
    );
    return verification === null || verification.ok ? 0 : 1;
  }
  const total = manifest.files.reduce((s, f) => s + f.bytes, 0);
  const git = (codeVersion?.git ?? {}) as JsonObject;
  const orion = (codeVersion?.orion ?? {}) as JsonObject;
  const lines = [
    `checkpoint  ${dir}`,
    `step        ${manifest.step}`,
    `hash        ${manifest.checkpointHash}`,
    `parent      ${manifest.parentHash ?? "(none)"}`,
    `written     ${manifest.writtenAt}`,
    `files       ${manifest.files.length} + manifest, ${mib(total)}`,
    ...manifest.files.map((f) =>
      `  ${f.path.padEnd(34)} ${mib(f.bytes).padStart(10)}  ${f.sha256.slice(0, 16)}`
    ),
    `code        orion ${orion.version ?? "?"}, git ${git.commit ?? "?"}${
      git.dirty ? " (dirty)" : ""
    }, deno ${codeVersion?.deno ?? "?"}`,
    `config`,
    ...summarizeObject(config).map((l) => `  ${l}`),
    `metrics`,
    ...summarizeObject(metrics).map((l) => `  ${l}`),
    `benchmarks${Object.keys(benchmarks).length === 0 ? "  (none in the checkpoint)" : ""}`,
    ...Object.keys(benchmarks).sort().map((k) => `  ${k}: ${oneLine(benchmarks[k])}`),
    `benchmarks measured on it (catalog)${
      catalogResults === null ? "  (no catalog)" : catalogResults.length === 0 ? "  (none)" : ""
    }`,
    ...(catalogResults ?? []).map((r) =>
      `  ${r.suite_key}${r.partial_subset < 1 ? ` (partial ${r.partial_subset})` : ""}: ${
        Object.entries(metricValues(r)).filter(([k]) => !k.includes("/")).map(([k, v]) =>
          `${k} ${v.toFixed(4)}`
        )
          .join(", ")
      }  (${r.windows_used}/${r.windows_total} windows, ${r.created_at})`
    ),
    `data`,
    ...summarizeObject(dataHashes).map((l) => `  ${l}`),
    `lineage`,
    ...summarizeObject(lineage).map((l) => `  ${l}`),
    `verified    ${
      verification === null
        ? "not checked (--no-verify)"
        : verification.ok
        ? "ok"
        : `FAILED: ${verification.problems.map((p) => `${p.file}: ${p.reason}`).join("; ")}`
    }`,
  ];
  for (const l of lines) io.out(l);
  return verification === null || verification.ok ? 0 : 1;
}

/** `data.catalogDir` of a checkpoint's config.json (inside its `{config, config_version, ...}` envelope). */
function configCatalogDir(doc: JsonObject | null): string | undefined {
  const inner = doc?.config !== undefined ? doc.config : doc;
  const dir = ((inner as JsonObject | null)?.data as JsonObject | undefined)?.catalogDir;
  return typeof dir === "string" ? dir : undefined;
}

/** Benchmark results the catalog holds for a checkpoint hash (null when there is no catalog). */
async function catalogBenchmarks(hash: string, catalogDir: string): Promise<BenchmarkResult[] | null> {
  try {
    if (!(await Deno.stat(catalogDir)).isDirectory) return null;
  } catch {
    return null;
  }
  const catalog = await openCatalog(catalogDir);
  try {
    return await listBenchmarkResults(catalog, { checkpointHash: hash });
  } finally {
    catalog.close();
  }
}

async function verify(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false } },
  });
  const target = positional(positionals, "checkpoint or run directory");
  let dirs: string[];
  try {
    await Deno.lstat(join(target, MANIFEST_FILE));
    dirs = [target];
  } catch {
    dirs = (await listCheckpointDirs(target)).map((e) => e.dir);
    if (dirs.length === 0) dirs = [target]; // report why the target itself is not a checkpoint
  }
  const results = [];
  for (const dir of dirs) results.push(await verifyCheckpoint(dir));
  if (values.json) io.out(JSON.stringify(results, null, 2));
  else {
    for (const r of results) {
      if (r.ok) io.out(`ok      ${basename(r.dir)}  ${r.manifest.checkpointHash}`);
      else {
        io.out(`FAILED  ${basename(r.dir)}`);
        for (const p of r.problems) io.out(`  ${p.file}: ${p.reason}`);
      }
    }
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

/**
 * Runs `orion ckpt <subcommand> …` and returns the exit code.
 *
 * @param args the arguments after `ckpt`.
 * @param cwd where relative paths and the default catalog resolve.
 * @example
 * ```ts
 * import { ckptCommand } from "./ckpt_command.ts";
 * Deno.exit(await ckptCommand(["gc", "runs/demo", "--dry-run", "--keep-last", "2"]));
 * ```
 */
export async function ckptCommand(
  args: string[],
  io: CommandIo = consoleIo,
  cwd: string = Deno.cwd(),
): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case "gc":
        return await gc(rest, io, cwd);
      case "show":
        return await show(rest, io, cwd);
      case "verify":
        return await verify(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out(CKPT_USAGE);
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    }
  } catch (e) {
    const isUsage = e instanceof UsageError || e instanceof CliUsageError ||
      (e as { code?: string })?.code?.startsWith?.("ERR_PARSE_ARGS");
    if (isUsage) {
      io.err(`orion ckpt: ${(e as Error).message}\n${CKPT_USAGE}`);
      return 2;
    }
    io.err(`orion ckpt ${sub}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
