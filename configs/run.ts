/**
 * A small default POYO run on the demo catalog (`orion data demo`): 4 s windows of EEG + pupil, a 2-layer
 * 64-wide model, a few hundred steps. `deno task train configs/run.ts --dry-run` validates it.
 *
 * @module
 */
import {
  BenchCompute,
  DataConfig,
  InfraConfig,
  ModelConfig,
  POYO,
  QuerySpec,
  RunConfig,
  TrainingConfig,
} from "../mod.ts";

export default RunConfig({
  name: "demo_poyo_small",
  data: DataConfig({
    ursaQuery: QuerySpec({ participants: "*", modalities: ["eeg", "pupil"] }),
    trainWindow: 4.0,
    trainSplit: 0.8,
  }),
  model: ModelConfig({
    cls: POYO,
    kwargs: { dim: 64, depth: 2, dimHead: 16, crossHeads: 1, selfHeads: 2, numLatents: 8, patch: 32 },
  }),
  training: TrainingConfig({
    batchSize: 16,
    maxSteps: 300,
    optimizer: "adamw",
    lr: 1e-3,
    scheduler: "cosine",
    warmupSteps: 30,
    valEveryNSteps: 150,
    logEveryNSteps: 10,
    ckptEveryNSteps: 150,
    precision: "32-true",
    // The held-out benchmark on a quarter of its windows at step 150 (inline: the software adapter has no
    // spare cores for a side process; on a GPU machine use mode "async"),
    // then on every window of the last and the best checkpoint at the end.
    benchSuites: ["cognitive_load_eval@1"],
    benchEveryNSteps: 150,
    benchCompute: BenchCompute({ mode: "inline", partialSubset: 0.25 }),
  }),
  infra: InfraConfig({ accelerator: "gpu", nodes: 1, gpusPerNode: 1 }),
});
