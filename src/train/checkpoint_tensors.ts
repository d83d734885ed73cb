/**
 * The tensor parts of a checkpoint built from a {@linkcode TrainerSnapshot}: model weights, EMA and the
 * optimizer moments (`exp_avg.<name>`, `exp_avg_sq.<name>`), as views into the snapshot's host buffers (no
 * copy: a 1.3 M-parameter model's four flat arrays would otherwise cost ~20 MB of copying on the training
 * thread at every checkpoint).
 *
 * @module
 */
import type { TensorSet } from "../checkpoint/checkpoint_state.ts";
import type { TrainerSnapshot } from "./trainer.ts";

/** Checkpoint tensor sets of a snapshot. */
export interface CheckpointTensors {
  weights: TensorSet;
  ema: TensorSet | undefined;
  optimizer: TensorSet;
}

/**
 * The checkpoint tensor sets of a trainer snapshot; `shapes` maps each parameter name to its shape.
 *
 * @example
 * ```ts ignore
 * const parts = checkpointTensors(await trainer.snapshot(), shapes);
 * state.model = { weights: parts.weights, ema: parts.ema };
 * ```
 */
export function checkpointTensors(snap: TrainerSnapshot, shapes: Map<string, number[]>): CheckpointTensors {
  return {
    weights: tensorSet(snap.weights, shapes),
    ema: snap.optimizer.ema ? tensorSet(snap.optimizer.ema, shapes) : undefined,
    optimizer: {
      ...tensorSet(snap.optimizer.expAvg, shapes, "exp_avg."),
      ...tensorSet(snap.optimizer.expAvgSq, shapes, "exp_avg_sq."),
    },
  };
}

function tensorSet(named: Map<string, Float32Array>, shapes: Map<string, number[]>, prefix = ""): TensorSet {
  const out: TensorSet = {};
  for (const [name, data] of named) out[prefix + name] = { dtype: "F32", shape: shapes.get(name)!, data };
  return out;
}
