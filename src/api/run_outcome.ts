/**
 * What the library's `train`, `resume` and `trainPipeline` resolve to — the run, where it lives, how it
 * ended and its newest checkpoint — read back from the run record the training loop wrote (`run.json` and
 * the checkpoint's `manifest.json` and `metrics/snapshot.json`), so the library reports exactly what
 * `orion train` leaves on disk.
 *
 * @module
 */
import { join } from "node:path";
import { summarizeCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { parseCheckpointDirName } from "../checkpoint/checkpoint_layout.ts";
import { readRunRecord, type RunStatus } from "../train/run_record.ts";

/** A checkpoint a run wrote. */
export interface CheckpointRef {
  /** Absolute checkpoint directory `<runDir>/ckpt-step<9 digits>`. */
  dir: string;
  /** Optimizer steps at the checkpoint. */
  step: number;
  /** The checkpoint's content hash (manifest `checkpointHash`). */
  hash: string;
}

/** How a training run ended. */
export interface TrainOutcome {
  /** Run name (`RunConfig.name`). */
  run: string;
  /** Absolute run directory (`<runsDir>/<name>`). */
  runDir: string;
  /** `"finished"` (maxSteps reached), `"interrupted"` (SIGINT/SIGTERM) or `"failed"`. */
  status: RunStatus;
  /** Optimizer steps done. */
  step: number;
  /** The newest checkpoint written, or null. */
  checkpoint: CheckpointRef | null;
  /**
   * The metrics stored with that checkpoint: `loss`, `grad_norm`, `lr` of the last step and `val_loss`,
   * `val_accuracy` of the last validation (empty without a checkpoint).
   */
  metrics: Record<string, number>;
}

/**
 * Reads how the run in `runDir` stands from its record.
 *
 * @throws when `runDir` has no `run.json`, naming the file.
 *
 * @example
 * ```ts
 * import { readTrainOutcome } from "./run_outcome.ts";
 * const outcome = await readTrainOutcome("runs/demo");
 * console.log(outcome.status, outcome.step, outcome.checkpoint?.hash);
 * ```
 */
export async function readTrainOutcome(runDir: string): Promise<TrainOutcome> {
  const record = await readRunRecord(runDir);
  if (!record) {
    throw new Error(
      `Cannot read the outcome of run ${runDir} as ${join(runDir, "run.json")} does not exist: ` +
        "the training loop writes it when a run starts; check the run directory",
    );
  }
  let checkpoint: CheckpointRef | null = null;
  const metrics: Record<string, number> = {};
  if (record.checkpoint) {
    const name = record.checkpoint.split("/").pop() ?? "";
    const step = parseCheckpointDirName(name) ?? record.step;
    const summary = await summarizeCheckpoint({ name, dir: record.checkpoint, step });
    if (summary.manifest) {
      checkpoint = {
        dir: record.checkpoint,
        step: summary.manifest.step,
        hash: summary.manifest.checkpointHash,
      };
    }
    for (const [key, value] of Object.entries(summary.metrics ?? {})) {
      if (typeof value === "number" && key !== "step") metrics[key] = value;
    }
  }
  return { run: record.name, runDir, status: record.status, step: record.step, checkpoint, metrics };
}
