/**
 * What the dashboard and the run report read from a runs directory: each run's record (`run.json`), its
 * config (`config.json`, read as plain JSON so any config version displays), its checkpoints and where its
 * initial weights came from. Reading never writes and never throws for one broken run: the problem is
 * reported in the run's summary instead.
 *
 * @module
 */
import { join } from "node:path";
import {
  type CheckpointSummary,
  listCheckpointDirs,
  summarizeCheckpoint,
} from "../checkpoint/checkpoint_reader.ts";
import { RUN_CONFIG_FILE } from "../config/serialize_config.ts";
import { RUN_NAME_PATTERN } from "../config/run_name.ts";
import { METRICS_FILE } from "../checkpoint/metrics_log.ts";

/** A run is shown as possibly dead when it says "running" but wrote nothing for this long. */
export const STALE_AFTER_MS = 10 * 60 * 1000;

/** One run directory as the dashboard lists it. */
export interface RunSummary {
  /** Run name (the directory name). */
  name: string;
  /** Absolute run directory. */
  dir: string;
  /** `run.json` status, or `"unknown"` when the record is missing. */
  status: string;
  /** True when the status is "running" but neither `run.json` nor `metrics.jsonl` changed for {@link STALE_AFTER_MS}. */
  stale: boolean;
  /** Steps done (from `run.json`). */
  step: number | null;
  /** `training.maxSteps` of the config. */
  maxSteps: number | null;
  /** Samples per optimizer step (`batchSize × accumulateGradBatches`), for throughput. */
  samplesPerStep: number | null;
  /** Last time `run.json` or `metrics.jsonl` changed (ISO-8601). */
  updatedAt: string | null;
  /** The run its initial weights came from (`initFrom.run` or the checkpoint lineage), or null. */
  parentRun: string | null;
  /** `sha256:` config hash from `run.json`. */
  configHash: string | null;
  /** Why part of the run could not be read. */
  problem: string | null;
}

/** The serialized config of a run (`config.json`, the `config` member of the document), or null. */
export async function readRunConfigJson(runDir: string): Promise<Record<string, unknown> | null> {
  const doc = await readJsonFile(join(runDir, RUN_CONFIG_FILE));
  if (!doc) return null;
  const config = (doc as { config?: unknown }).config;
  return config && typeof config === "object" ? config as Record<string, unknown> : doc;
}

/** A JSON object from a file, or null when it is missing or not a JSON object. */
export async function readJsonFile(path: string): Promise<Record<string, unknown> | null> {
  try {
    const v = JSON.parse(await Deno.readTextFile(path));
    return v && typeof v === "object" && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

async function mtimeOf(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? null;
  } catch {
    return null;
  }
}

function pick(obj: unknown, ...path: string[]): unknown {
  let cur = obj;
  for (const k of path) {
    cur = cur && typeof cur === "object" ? (cur as Record<string, unknown>)[k] : undefined;
  }
  return cur;
}

const numberOrNull = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The summary of one run directory. */
export async function readRunSummary(runDir: string, now: number = Date.now()): Promise<RunSummary> {
  const name = runDir.replace(/\/+$/, "").split("/").pop() ?? runDir;
  const record = await readJsonFile(join(runDir, "run.json"));
  const config = await readRunConfigJson(runDir);
  const times = [await mtimeOf(join(runDir, "run.json")), await mtimeOf(join(runDir, METRICS_FILE))]
    .filter((t): t is number => t !== null);
  const updated = times.length ? Math.max(...times) : null;
  const status = typeof record?.status === "string" ? record.status : "unknown";
  const batch = numberOrNull(pick(config, "training", "batchSize"));
  const accumulate = numberOrNull(pick(config, "training", "accumulateGradBatches")) ?? 1;
  const initRun = pick(config, "initFrom", "run");
  const problems: string[] = [];
  if (!record) problems.push("run.json is missing or unreadable");
  if (!config) problems.push(`${RUN_CONFIG_FILE} is missing or unreadable`);
  return {
    name,
    dir: runDir,
    status,
    stale: status === "running" && updated !== null && now - updated > STALE_AFTER_MS,
    step: numberOrNull(record?.step),
    maxSteps: numberOrNull(pick(config, "training", "maxSteps")),
    samplesPerStep: batch === null ? null : batch * accumulate,
    updatedAt: updated === null ? null : new Date(updated).toISOString(),
    parentRun: typeof initRun === "string" ? initRun : null,
    configHash: typeof record?.configHash === "string" ? record.configHash : null,
    problem: problems.length ? problems.join("; ") : null,
  };
}

/** Whether `name` can be a run directory name (guards every path built from a request). */
export function isRunName(name: string): boolean {
  return RUN_NAME_PATTERN.test(name);
}

/**
 * Every run directory under `runsDir` (directories holding `run.json` or `config.json`), sorted by name.
 * A missing runs directory lists nothing.
 */
export async function listRuns(runsDir: string, now: number = Date.now()): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  try {
    for await (const entry of Deno.readDir(runsDir)) {
      if (!entry.isDirectory || !isRunName(entry.name)) continue;
      const dir = join(runsDir, entry.name);
      if (
        (await mtimeOf(join(dir, "run.json"))) === null &&
        (await mtimeOf(join(dir, RUN_CONFIG_FILE))) === null
      ) continue;
      out.push(await readRunSummary(dir, now));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The checkpoints of a run (manifest, metrics and lineage, unverified), oldest step first. */
export async function listRunCheckpoints(runDir: string): Promise<CheckpointSummary[]> {
  const entries = await listCheckpointDirs(runDir);
  const out: CheckpointSummary[] = [];
  for (const entry of entries) out.push(await summarizeCheckpoint(entry));
  return out.sort((a, b) => a.step - b.step);
}

/** One edge of the lineage graph: `child` started from a checkpoint of `parent`. */
export interface LineageEdge {
  parent: string;
  child: string;
  /** The parent's checkpoint it started from, when the child's lineage records it. */
  checkpointHash: string | null;
  checkpointStep: number | null;
}

/**
 * Where a run's initial weights came from: its newest checkpoint's `lineage.json` (`initCheckpoint`,
 * written for fine-tuning stages), else its config's `initFrom.run`; null for a run trained from scratch.
 */
export async function parentEdgeOf(run: RunSummary): Promise<LineageEdge | null> {
  const checkpoints = await listCheckpointDirs(run.dir);
  for (const entry of checkpoints) {
    const lineage = await readJsonFile(join(entry.dir, "lineage.json"));
    if (!lineage) continue;
    const init = lineage.initCheckpoint as Record<string, unknown> | null | undefined;
    if (init && typeof init.run === "string") {
      return {
        parent: init.run,
        child: run.name,
        checkpointHash: typeof init.checkpointHash === "string" ? init.checkpointHash : null,
        checkpointStep: numberOrNull(init.step),
      };
    }
    if (typeof lineage.parentRun === "string") {
      return { parent: lineage.parentRun, child: run.name, checkpointHash: null, checkpointStep: null };
    }
    break;
  }
  return run.parentRun
    ? { parent: run.parentRun, child: run.name, checkpointHash: null, checkpointStep: null }
    : null;
}
