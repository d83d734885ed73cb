/**
 * `orion ckpt …`: the command-line handler for checkpoint storage.
 *
 * ```
 * orion ckpt gc <runDir> [--dry-run] [--keep-last N] [--keep-best K --metric NAME --mode min|max]
 *                        [--keep-every N] [--pin NAME|PATH|HASH]... [--json]
 * orion ckpt show <ckptDir> [--no-verify] [--json]
 * orion ckpt verify <ckptDir|runDir> [--json]
 * ```
 * Exit codes: 0 success, 1 verification failed or an operation failed, 2 usage error.
 *
 * @module
 */
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import type { JsonObject, JsonValue } from "./checkpoint_state.ts";
import { MANIFEST_FILE, parseCheckpointManifest } from "./checkpoint_manifest.ts";
import { listCheckpointDirs, verifyCheckpoint } from "./checkpoint_reader.ts";
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
                         [--keep-every N] [--pin NAME|PATH|HASH]... [--json]
      apply the retention policy (default --keep-last 3); --dry-run shows what would go
  orion ckpt show <ckptDir> [--no-verify] [--json]
      manifest, config summary, code version, metrics, benchmarks, data summary, lineage
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

async function gc(args: string[], io: CommandIo): Promise<number> {
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
      json: { type: "boolean", default: false },
    },
  });
  const runDir = positional(positionals, "run directory");
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
  const result = await gcCheckpoints(runDir, policy, { pins: values.pin, dryRun });
  if (values.json) {
    io.out(JSON.stringify({ dryRun, policy, ...result }, null, 2));
    return 0;
  }
  const verb = dryRun ? "would delete" : "deleted";
  for (const d of result.keep) io.out(`keep    ${d.name}  ${d.reasons.join("; ")}`);
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

async function show(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { "no-verify": { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const dir = positional(positionals, "checkpoint directory");
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
  if (values.json) {
    io.out(
      JSON.stringify(
        { dir, manifest, config, codeVersion, metrics, benchmarks, lineage, dataHashes, verification },
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
    `benchmarks${Object.keys(benchmarks).length === 0 ? "  (none)" : ""}`,
    ...Object.keys(benchmarks).sort().map((k) => `  ${k}: ${oneLine(benchmarks[k])}`),
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
 * @example
 * ```ts
 * import { ckptCommand } from "./ckpt_command.ts";
 * Deno.exit(await ckptCommand(["gc", "runs/demo", "--dry-run", "--keep-last", "2"]));
 * ```
 */
export async function ckptCommand(args: string[], io: CommandIo = consoleIo): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case "gc":
        return await gc(rest, io);
      case "show":
        return await show(rest, io);
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
    const isUsage = e instanceof UsageError || (e as { code?: string })?.code?.startsWith?.("ERR_PARSE_ARGS");
    if (isUsage) {
      io.err(`orion ckpt: ${(e as Error).message}\n${CKPT_USAGE}`);
      return 2;
    }
    io.err(`orion ckpt ${sub}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
