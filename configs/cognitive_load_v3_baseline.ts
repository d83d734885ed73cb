/**
 * The seed's baseline: POYO (D = 512, depth 6, 64 latents) on every participant's EEG + pupil, 10 s windows,
 * SparseLamb with a one-cycle schedule in bf16-mixed on 8 GPUs, checkpoints every 2 000 steps and the
 * cognitive-load benchmark every 10 000 (async, on a 10% subset).
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
  name: "cognitive_load_v3_baseline",
  data: DataConfig({
    ursaQuery: QuerySpec({ participants: "*", modalities: ["eeg", "pupil"] }),
    trainWindow: 10.0,
    trainSplit: 0.85,
  }),
  model: ModelConfig({ cls: POYO, kwargs: { dim: 512, depth: 6, numLatents: 64 } }),
  training: TrainingConfig({
    batchSize: 32,
    maxSteps: 200_000,
    optimizer: "sparse_lamb",
    lr: 3e-4,
    scheduler: "onecycle",
    ckptEveryNSteps: 2_000,
    precision: "bf16-mixed",
    benchEveryNSteps: 10_000,
    benchSuites: ["cognitive_load_eval@1"],
    benchCompute: BenchCompute({ mode: "async", partialSubset: 0.1 }),
  }),
  infra: InfraConfig({ accelerator: "gpu", nodes: 1, gpusPerNode: 8 }),
});
