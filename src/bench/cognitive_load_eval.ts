/**
 * The built-in suite `cognitive_load_eval@1`: n-back cognitive-load classification (label track
 * `cognitive_load`, classes 0/1/2) on held-out recording sessions of the catalog (the demo corpus by default).
 *
 * Held-out data: every session (`participant/session`, the loader's split unit: the EEG and pupil recordings
 * made together) whose split under the default run split is not "train": `splitOf(key, { trainSplit: 0.8,
 * valSplit: 0.2, salt: "0" })` of `src/data/split.ts`, the salt being `String(data.splitSeed)` as
 * `src/train/run_data.ts` derives it, i.e. `splitUniform(key, "0") ≥ 0.8`. A run trained with the default
 * split (DataConfig trainSplit 0.8, splitSeed 0, e.g. `configs/run.ts`) never saw these sessions — they are
 * its validation side; a run with another split that touched them is refused by the leakage check. On the
 * demo corpus (p001…p060, 3 sessions each) that is 31 sessions of 22 participants, none of whom has all three
 * sessions held out: the suite measures generalization to unseen recording sessions (new days, new
 * electrode placement) of known participants. Unseen participants would need a suite holding out whole
 * participants, which runs must then exclude from training (`data.ursaQuery.excludeParticipants`).
 *
 * Procedure: every window of the model's length S on a stride-S/2 grid inside each labelled n-back block
 * (50 % overlap), logits averaged over the windows of each block (the unit that carries one label), argmax,
 * then accuracy, balanced accuracy, macro-F1 and per-participant accuracy, each with a 95 % bootstrap
 * interval over sessions (1000 replicates, seed 0; see `metrics.ts`).
 *
 * @module
 */
import { splitOf } from "../data/split.ts";
import type { QuerySpecInput } from "../ursa/query_spec.ts";
import type { BenchModel } from "./bench_model.ts";
import type { BenchData, HeldOutCandidate } from "./bench_data.ts";
import type { BenchmarkMeasurement, BenchmarkSuite, BenchRunOptions } from "./bench_suite.ts";
import { ACCURACY, BALANCED_ACCURACY, MACRO_F1, type Metric, PER_PARTICIPANT_ACCURACY } from "./metrics.ts";
import { benchmark } from "./registry.ts";
import { runWindowAveragedClassification } from "./window_averaged_classification.ts";

/**
 * `cognitive_load_eval@1` (registered at import).
 *
 * @example
 * ```ts
 * import "./cognitive_load_eval.ts";
 * const { result } = await evaluateBenchmark("cognitive_load_eval@1", model, { catalog });
 * ```
 */
@benchmark({
  name: "cognitive_load_eval",
  version: 1,
  description:
    "n-back load (0/1/2) on held-out sessions (default split's non-train side); block-averaged logits; accuracy, balanced accuracy, macro-F1, per-participant accuracy with 95% session-bootstrap CIs",
})
export class CognitiveLoadEvalV1 implements BenchmarkSuite {
  /** Every participant, the `cognitive_load` label track. */
  heldOutData(): QuerySpecInput {
    return { participants: "*", labels: "cognitive_load" };
  }

  /** Sessions on the non-train side of the default run split (trainSplit 0.8, valSplit 0.2, splitSeed 0 → salt "0"). */
  isHeldOut(session: HeldOutCandidate): boolean {
    return splitOf(session.key, { trainSplit: 0.8, valSplit: 0.2, salt: "0" }) !== "train";
  }

  metrics(): Metric[] {
    return [ACCURACY, BALANCED_ACCURACY, MACRO_F1, PER_PARTICIPANT_ACCURACY];
  }

  run(model: BenchModel, data: BenchData, options: BenchRunOptions): Promise<BenchmarkMeasurement> {
    return runWindowAveragedClassification(model, data, {
      ...options,
      metrics: this.metrics(),
      bootstrap: { replicates: 1000, seed: 0, confidence: 0.95 },
    });
  }
}
