/**
 * The run record: `<runDir>/run.json` (status, step, last checkpoint) written atomically, and the
 * catalog's `runs` and `checkpoints` tables that make runs and checkpoints queryable.
 *
 * @module
 */
import { join } from "node:path";
import type { RunConfig } from "../config/run_config.ts";
import type { CheckpointInfo } from "../checkpoint/checkpoint_writer.ts";
import type { JsonObject } from "../checkpoint/checkpoint_state.ts";
import type { Catalog } from "../ursa/catalog.ts";
import type { StepAutotuneReport } from "./step_autotune.ts";

/** Lifecycle of a run. */
export type RunStatus = "running" | "interrupted" | "finished" | "failed";

/** Contents of `run.json`. */
export interface RunRecord {
  name: string;
  status: RunStatus;
  step: number;
  configHash: string;
  checkpoint: CheckpointInfo | null;
  /**
   * Matmul autotuning of this process (`infra.autotune`), present when a tuning table was loaded or the
   * first step was tuned: the per-shape choices are in the cache file named here.
   */
  autotune?: Omit<StepAutotuneReport, "chosen">;
}

/** Catalog table of runs (key `run_name`). */
export const RUNS_TABLE = "runs";
/** Catalog table of checkpoints (key `checkpoint_hash`). */
export const CHECKPOINTS_TABLE = "checkpoints";

/** Writes `run.json` atomically (temp file + rename). */
export async function writeRunRecord(runDir: string, record: RunRecord): Promise<void> {
  const path = join(runDir, "run.json");
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(
    tmp,
    JSON.stringify(
      { ...record, checkpoint: record.checkpoint?.dir ?? null, updatedAt: new Date().toISOString() },
      null,
      1,
    ),
  );
  await Deno.rename(tmp, path);
}

/** Reads `run.json`, or null when the run has none. */
export async function readRunRecord(
  runDir: string,
): Promise<(Omit<RunRecord, "checkpoint"> & { checkpoint: string | null; updatedAt: string }) | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(runDir, "run.json")));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

let registrations: Promise<void> = Promise.resolve();

/**
 * Registers (upserts) the run and a checkpoint in the catalog. Registrations are serialised: overlapping
 * upserts of the same key could otherwise both land (LanceDB merge-inserts are not atomic across calls).
 */
export function registerRunInCatalog(
  ...args: Parameters<typeof registerNow>
): Promise<void> {
  const next = registrations.then(() => registerNow(...args));
  registrations = next.catch(() => {});
  return next;
}

async function registerNow(
  catalog: Catalog,
  config: RunConfig,
  configHash: string,
  runDir: string,
  status: RunStatus,
  step: number,
  ckpt: CheckpointInfo,
  metrics: JsonObject,
): Promise<void> {
  const now = new Date().toISOString();
  await catalog.upsert(RUNS_TABLE, [{
    run_name: config.name,
    config_hash: configHash,
    status,
    steps: step,
    max_steps: config.training.maxSteps,
    run_dir: runDir,
    last_checkpoint_hash: ckpt.hash,
    parent_run: config.initFrom?.run ?? "",
    metrics: JSON.stringify(metrics),
    updated_at: now,
  }], "run_name");
  await catalog.upsert(CHECKPOINTS_TABLE, [{
    checkpoint_hash: ckpt.hash,
    run_name: config.name,
    step: ckpt.step,
    path: ckpt.dir,
    parent_hash: ckpt.parentHash ?? "",
    metrics: JSON.stringify(metrics),
    created_at: now,
  }], "checkpoint_hash");
}
