/**
 * How benchmarks see POYO: a checkpoint loaded into a {@linkcode Trainer} on this process's GPU and
 * wrapped as a `BenchModel` (registered as the bench framework's model loader, so `orion eval`, inline
 * benchmarks and async side processes all evaluate the same way).
 *
 * @module
 */
import type { BenchModel, BenchModelInput } from "../bench/bench_model.ts";
import { setBenchModelLoader } from "../bench/evaluate_checkpoint.ts";
import { readCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { parseSerializedRunConfig } from "../config/serialize_config.ts";
import type { RunConfig } from "../config/run_config.ts";
import { DataLedger } from "../data/ledger.ts";
import { Gpu } from "../gpu/gpu.ts";
import type { PoyoVocabulary } from "../models/poyo.ts";
import type { ResolvedPoyoKwargs } from "../models/poyo_kwargs.ts";
import { Trainer } from "./trainer.ts";
import { snapshotOf, trainerSettings } from "./train_run.ts";

/** The data-reading side of a model, for the benchmark's held-out data. */
export function benchModelInput(
  config: RunConfig,
  kwargs: ResolvedPoyoKwargs,
  vocab: PoyoVocabulary,
): BenchModelInput {
  return {
    modalities: config.data.ursaQuery.modalities,
    derived: config.data.ursaQuery.derived,
    trainWindow: config.data.trainWindow,
    evalStride: config.data.evalWindowStride ?? undefined,
    patch: kwargs.patch,
    latentStep: kwargs.latentStep,
    numLatents: kwargs.numLatents,
    vocab: { channels: vocab.channels, sessions: vocab.sessions },
  };
}

/** A `BenchModel` over a live trainer (inline benchmarks during training). */
export function liveBenchModel(
  trainer: Trainer,
  config: RunConfig,
  checkpointHash: string,
  ledger: DataLedger,
): BenchModel {
  return {
    checkpointHash,
    dataLedger: ledger,
    input: benchModelInput(config, trainer.model.kwargs, trainer.model.vocab),
    batchSize: config.training.batchSize,
    predict: async (batches) => (await trainer.evaluate(batches)).logits,
  };
}

let sharedGpu: Promise<Gpu> | null = null;

setBenchModelLoader(async (dir, identity) => {
  const ckpt = await readCheckpoint(dir);
  const config = parseSerializedRunConfig(JSON.stringify(ckpt.state.config));
  const meta = ckpt.state.model.metadata ?? {};
  if (!meta.kwargs || !meta.vocabulary_channels || !meta.vocabulary_sessions || !meta.modalities) {
    throw new Error(
      `Cannot benchmark ${dir} as its model/weights.safetensors has no vocabulary/kwargs metadata`,
    );
  }
  const kwargs = JSON.parse(meta.kwargs) as ResolvedPoyoKwargs;
  const vocab: PoyoVocabulary = {
    channels: JSON.parse(meta.vocabulary_channels),
    sessions: JSON.parse(meta.vocabulary_sessions),
    modalities: JSON.parse(meta.modalities),
  };
  let trainer: Trainer | null = null;
  const live = async () => {
    if (!trainer) {
      sharedGpu ??= Gpu.create();
      trainer = new Trainer(await sharedGpu, kwargs, vocab, trainerSettings(config));
      trainer.restore(snapshotOf(ckpt));
    }
    return trainer;
  };
  return {
    checkpointHash: identity.checkpointHash ?? ckpt.hash,
    dataLedger: DataLedger.fromJSON(ckpt.state.dataHashes),
    input: benchModelInput(config, kwargs, vocab),
    batchSize: config.training.batchSize,
    predict: async (batches) => (await (await live()).evaluate(batches)).logits,
  };
});
