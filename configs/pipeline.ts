/**
 * Pre-train → fine-tune on the demo catalog (`orion data demo`, p001…p060): pre-train POYO on every
 * participant except p042, then fine-tune on p042 alone from the pre-training's best checkpoint (by
 * val_loss), with a freshly initialised readout and p042's channels/sessions added to the vocabularies;
 * for the first 20 fine-tuning steps only the embeddings train. Small enough for the software adapter.
 *
 * Run: `deno task orion pipeline configs/pipeline.ts` (again after an interruption to resume);
 * validate: `deno task orion pipeline configs/pipeline.ts --dry-run`; lineage:
 * `deno task orion lineage demo_pipeline_finetune_p042`.
 *
 * @module
 */
import {
  DataConfig,
  FinetuneFrom,
  InfraConfig,
  ModelConfig,
  POYO,
  QuerySpec,
  RunConfig,
  TrainingConfig,
  TrainingPipeline,
} from "../mod.ts";

const model = ModelConfig({
  cls: POYO,
  kwargs: { dim: 32, depth: 1, dimHead: 8, crossHeads: 1, selfHeads: 2, numLatents: 8 },
});
const infra = InfraConfig({ accelerator: "cpu-software", nodes: 1, gpusPerNode: 1 });

const pretrain = RunConfig({
  name: "demo_pipeline_pretrain",
  data: DataConfig({
    ursaQuery: QuerySpec({ participants: "*", excludeParticipants: ["p042"], modalities: ["eeg", "pupil"] }),
    trainWindow: 2.0,
    trainSplit: 0.8,
  }),
  model,
  training: TrainingConfig({
    batchSize: 16,
    maxSteps: 120,
    optimizer: "adamw",
    lr: 2e-3,
    scheduler: "cosine",
    warmupSteps: 10,
    valEveryNSteps: 60,
    logEveryNSteps: 10,
    ckptEveryNSteps: 60,
    monitor: "val_loss",
  }),
  infra,
});

const finetuneP042 = RunConfig({
  name: "demo_pipeline_finetune_p042",
  data: DataConfig({
    ursaQuery: QuerySpec({ participants: ["p042"], modalities: ["eeg", "pupil"] }),
    trainWindow: 2.0,
    trainSplit: 0.8,
  }),
  model,
  initFrom: FinetuneFrom({
    run: pretrain,
    checkpoint: "best",
    weightOverrides: ["readout"],
    freezeUntilStep: 20,
  }),
  training: TrainingConfig({
    batchSize: 8,
    maxSteps: 60,
    optimizer: "adamw",
    lr: 1e-3,
    scheduler: "cosine",
    warmupSteps: 5,
    valEveryNSteps: 20,
    logEveryNSteps: 10,
    ckptEveryNSteps: 20,
    monitor: "val_loss",
  }),
  infra,
});

export default TrainingPipeline({ name: "demo_pipeline", stages: [pretrain, finetuneP042] });
