/**
 * What a pipeline does with each stage, decided from its run directory: `run` (new), `skip` (its
 * `run.json` says finished with the same config hash), `resume` (same config hash, not finished: resumes from
 * the latest valid checkpoint, or restarts when none was written), or `conflict` (the directory holds a
 * different run, which a pipeline never overwrites).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { readRunRecord } from "../train/run_record.ts";
import type { RunConfig } from "../config/run_config.ts";
import { configHash, RUN_CONFIG_FILE } from "../config/serialize_config.ts";
import { checkpointCandidates } from "./checkpoint_selection.ts";
import { pathExists } from "../checkpoint/durable_fs.ts";

/** The decision for one stage. */
export interface StagePlan {
  name: string;
  runDir: string;
  configHash: string;
  action: "run" | "skip" | "resume" | "conflict";
  /** For `skip`/`resume`: the step of the run record (the resume point is the latest valid checkpoint). */
  step: number;
  /** Why, in words (shown by pre-flight and the runner). */
  detail: string;
}

async function recordedConfigHash(runDir: string): Promise<string | null> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(join(runDir, RUN_CONFIG_FILE)));
    return typeof doc?.hash === "string" ? doc.hash : null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
    throw e;
  }
}

/**
 * Decides what to do with a stage (`cwd` resolves its `runsDir`).
 *
 * @example
 * ```ts
 * import { planStage } from "./stage_plan.ts";
 * const plan = await planStage(stageConfig, Deno.cwd());
 * console.log(plan.action, plan.detail);
 * ```
 */
export async function planStage(config: RunConfig, cwd: string): Promise<StagePlan> {
  const runDir = resolve(cwd, config.runsDir, config.name);
  const hash = configHash(config);
  const base = { name: config.name, runDir, configHash: hash, step: 0 };
  if (!(await pathExists(runDir))) return { ...base, action: "run", detail: "new run" };
  const record = await readRunRecord(runDir);
  const recordedHash = record?.configHash ?? await recordedConfigHash(runDir);
  if (recordedHash === null) {
    const empty = (await Array.fromAsync(Deno.readDir(runDir))).length === 0;
    return empty ? { ...base, action: "run", detail: "new run (empty directory)" } : {
      ...base,
      action: "conflict",
      detail: `${runDir} exists but holds no run record (run.json/config.json)`,
    };
  }
  if (recordedHash !== hash) {
    return {
      ...base,
      action: "conflict",
      detail: `${runDir} holds a run with another config (hash ${recordedHash.slice(0, 19)}…, this stage ${
        hash.slice(0, 19)
      }…)`,
    };
  }
  const step = record?.step ?? 0;
  if (record?.status === "finished") {
    return {
      ...base,
      step,
      action: "skip",
      detail: `finished at step ${step} with the same config: skipped`,
    };
  }
  const checkpoints = (await checkpointCandidates(runDir)).filter((c) => c.manifest !== null);
  return {
    ...base,
    step,
    action: "resume",
    detail: checkpoints.length > 0
      ? `${
        record?.status ?? "started"
      } at step ${step} with the same config: resumes from its latest valid checkpoint (step ${
        checkpoints[0].step
      })`
      : `${record?.status ?? "started"} with the same config but no checkpoint: restarts from step 0`,
  };
}

/**
 * The checkpoint hash a run was initialised from, by its newest complete checkpoint's `lineage.json`
 * (`initCheckpoint.checkpointHash`); null when it has no checkpoint or started from fresh weights.
 */
export async function recordedInitCheckpoint(runDir: string): Promise<string | null> {
  const newest = (await checkpointCandidates(runDir)).find((c) => c.manifest !== null);
  const init = newest?.lineage?.initCheckpoint;
  if (init === null || typeof init !== "object" || Array.isArray(init)) return null;
  return typeof init.checkpointHash === "string" ? init.checkpointHash : null;
}
