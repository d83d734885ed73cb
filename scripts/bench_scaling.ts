/**
 * Data-parallel scaling of Orion's training step: N ranks (one per GPU, pinned by the local launcher with
 * Mesa's device-select layer; on a machine without GPUs they share the software adapter) train the same
 * synthetic-data model as `scripts/bench_train.ts`, averaging gradients over WebSockets every step.
 * Rank 0 reports the global samples/s; scaling efficiency = samples/s(N) / (N × samples/s(1)).
 *
 * Usage:
 *   deno run -A scripts/bench_scaling.ts --preset poyo_1_3m --ranks 2 [--steps 30] [--warmup 5]
 *       [--batch 32] [--bucket-mib auto] [--first-bucket-mib 1] [--last-bucket-kib 512]
 *       [--collective-mib N] [--encode-ahead on|off] [--stage-uploads on|off] [--compression none|bf16]
 *       [--trace] [--json out.json]
 * `--batch` is per rank: the global batch is batch × ranks. `--bucket-mib` is the gradient bucket size,
 * `infra.bucketCapMb` (a number of MiB or "auto"); `--first-bucket-mib` sets the first bucket (at most the
 * others), `--last-bucket-kib` caps the last (0: none), `--collective-mib` reduces larger buckets in pieces.
 * `--compression bf16` exchanges bf16 gradients (`infra.gradientCompression`).
 * `--trace` prints each rank's mean exchange phases and per-bucket times, in ms from the step's start, and per
 * boundary its budget, host work and map wait (ms) and the share of its maps that waited for the GPU.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { launchCommand, workerCommand } from "../src/distributed/launch_cli.ts";
import type { DistributedContext } from "../src/distributed/context.ts";
import { Gpu } from "../src/gpu/gpu.ts";
import { Trainer } from "../src/train/trainer.ts";
import {
  type BoundaryEvent,
  type BucketTimings,
  DEFAULT_BUCKET_SIZES,
  evenBuckets,
  exchangeBuckets,
  type GradientCompression,
  gradientSyncFor,
  noBucketTimings,
} from "../src/train/gradient_sync.ts";
import { syntheticBatch, syntheticVocabulary } from "../src/train/synthetic_batch.ts";
import { BENCH_PRESETS } from "../src/train/bench_presets.ts";
import "../src/ops/mod.ts";

interface ScalingJob {
  preset: string;
  steps: number;
  warmup: number;
  batch: number;
  bucketMib: number | "auto";
  firstBucketMib: number | null;
  collectiveMib: number | null;
  lastBucketKib: number | null;
  encodeAhead: boolean;
  stageUploads: boolean;
  compression: GradientCompression;
  trace: boolean;
  json: string | null;
}

/** Mean over the timed steps of each rank's exchange phases (`--trace`; ms from the step's start). */
interface ExchangeTrace {
  rank: number;
  stepMs: number;
  backwardDoneMs: number;
  totalMs: number;
  copyMs: number;
  writeMs: number;
  boundaryWorkMs: number;
  segments: number;
  overruns: number;
  buckets: (BucketTimings & { elements: number })[];
  /**
   * Per boundary: mean budget, host work (of which staging the next batch) and map wait (ms), and the share
   * of maps that waited for the GPU.
   */
  boundaries: { budgetMs: number; workMs: number; spareMs: number; waitMs: number; blocked: number }[];
}

async function rankMain(ctx: DistributedContext): Promise<void> {
  const job = ctx.config as ScalingJob;
  const preset = BENCH_PRESETS[job.preset];
  const shape = { ...preset.shape, batchSize: job.batch };
  const gpu = await Gpu.create();
  const trainer = new Trainer(gpu, preset.kwargs, syntheticVocabulary(shape), {
    seed: 0,
    rank: ctx.rank,
    optimizer: {
      kind: "sparse_lamb",
      beta2: 0.999,
      eps: 1e-6,
      weightDecay: 1e-4,
      maxGradNorm: 1,
      emaDecay: null,
    },
    schedule: { kind: "constant", lr: 1e-4, totalSteps: 1e9, warmupSteps: 0, beta1: 0.9 },
    readbackEvery: 10,
    encodeAhead: job.encodeAhead,
    stageUploads: job.stageUploads,
  });
  const sizes = {
    ...DEFAULT_BUCKET_SIZES,
    bucketBytes: job.bucketMib === "auto" ? "auto" as const : Math.round(job.bucketMib * 1024 * 1024),
    ...(job.firstBucketMib !== null ? { firstBucketBytes: Math.round(job.firstBucketMib * 2 ** 20) } : {}),
    ...(job.collectiveMib !== null ? { collectiveBytes: Math.round(job.collectiveMib * 2 ** 20) } : {}),
    ...(job.lastBucketKib !== null ? { lastBucketBytes: Math.round(job.lastBucketKib * 1024) } : {}),
    compression: job.compression,
  };
  let boundaries: BoundaryEvent[] = []; // this step's
  const sync = gradientSyncFor(ctx, gpu, {
    ...sizes,
    ...(job.trace ? { onBoundary: (e: BoundaryEvent) => boundaries.push(e) } : {}),
  });
  trainer.gradientSync = sync;
  const trace: ExchangeTrace = {
    rank: ctx.rank,
    stepMs: 0,
    backwardDoneMs: 0,
    totalMs: 0,
    copyMs: 0,
    writeMs: 0,
    boundaryWorkMs: 0,
    segments: 0,
    overruns: 0,
    buckets: [],
    boundaries: [],
  };
  // The exchange's bucket layout (what `sync` computes from the same sizes and parameter offsets).
  const exchangeLayout = exchangeBuckets(
    trainer.model.params.totalElements,
    sizes,
    trainer.model.params.slots.map((slot) => slot.offset),
  );
  const layout = job.compression === "bf16" ? evenBuckets(exchangeLayout) : exchangeLayout;
  const addTrace = (stepMs: number) => {
    const t = sync.lastTimings;
    const n = job.steps;
    trace.stepMs += stepMs / n;
    for (
      const k of [
        "backwardDoneMs",
        "totalMs",
        "copyMs",
        "writeMs",
        "boundaryWorkMs",
        "segments",
        "overruns",
      ] as const
    ) {
      trace[k] += t[k] / n;
    }
    t.buckets.forEach((b, i) => {
      const [start, end] = layout[i];
      const sum = trace.buckets[i] ??= { elements: end - start, ...noBucketTimings() };
      for (const k of Object.keys(b) as (keyof BucketTimings)[]) sum[k] += b[k] / n;
    });
    boundaries.forEach((e, i) => {
      const sum = trace.boundaries[i] ??= { budgetMs: 0, workMs: 0, spareMs: 0, waitMs: 0, blocked: 0 };
      sum.budgetMs += (Number.isFinite(e.budgetMs) ? e.budgetMs : 0) / n;
      sum.workMs += e.workMs / n;
      sum.spareMs += e.spareMs / n;
      sum.waitMs += e.waitMs / n;
      sum.blocked += (e.blocked ? 1 : 0) / n;
    });
  };
  const batches = [0, 1].map((i) => syntheticBatch(shape, 100 * ctx.rank + i));
  // Each step is handed the next one's batches (`trainStep`'s `next`), as the training loop does when synced.
  let micro = [batches[0]];
  const step = async (i: number) => {
    const next = [batches[(i + 1) % 2]];
    await trainer.trainStep(micro, { next });
    micro = next;
  };
  // The warm-up compiles every pipeline synchronously (no heartbeats meanwhile): announce it.
  await ctx.announceBusy(10 * 60_000, "compiling GPU pipelines in the warm-up steps");
  for (let i = 0; i < job.warmup; i++) await step(i);
  await ctx.announceBusy(0, "");
  await trainer.flushMetrics();
  await ctx.barrier("warm");
  const t0 = performance.now();
  const queueSubmitMs0 = gpu.counters.queueSubmitMs;
  for (let i = 0; i < job.steps; i++) {
    const s0 = performance.now();
    boundaries = [];
    await step(job.warmup + i);
    if (trainer.pendingReadbacks > 2) await trainer.awaitOldest();
    if (job.trace && ctx.worldSize > 1) addTrace(performance.now() - s0);
  }
  await trainer.flushMetrics();
  await gpu.sync();
  await ctx.barrier("done");
  const seconds = (performance.now() - t0) / 1000;
  if (job.trace && ctx.worldSize > 1) {
    const round = (x: number) => Math.round(x * 100) / 100;
    console.log(
      `exchange trace ${JSON.stringify(trace, (_, v) => typeof v === "number" ? round(v) : v)}`,
    );
  }
  const samplesPerS = (job.batch * ctx.worldSize * job.steps) / seconds;
  if (ctx.rank === 0) {
    const result = {
      preset: job.preset,
      ranks: ctx.worldSize,
      batchPerRank: job.batch,
      steps: job.steps,
      samplesPerS,
      msPerStep: (1000 * seconds) / job.steps,
      adapter: gpu.description.description,
      gradientElements: trainer.model.params.totalElements,
      compression: job.compression,
      stageUploads: job.stageUploads,
      queueSubmitMsPerStep: (gpu.counters.queueSubmitMs - queueSubmitMs0) / job.steps,
    };
    console.log(
      `orion ${job.preset} on ${ctx.worldSize} ranks (${result.adapter}): ${
        samplesPerS.toFixed(1)
      } samples/s, ` +
        `${result.msPerStep.toFixed(2)} ms/step, global batch ${job.batch * ctx.worldSize}`,
    );
    if (job.json) await Deno.writeTextFile(job.json, JSON.stringify(result, null, 1));
  }
  gpu.destroy();
}

const hooks = {
  rankMain,
  // The "config" is the job description itself, passed as JSON text in place of a file path.
  loadConfig: (text: string) => {
    const job = JSON.parse(text) as ScalingJob & { ranks: number };
    return Promise.resolve({
      config: job,
      nodes: 1,
      gpusPerNode: job.ranks,
      jobName: `scaling-${job.preset}`,
    });
  },
};

if (import.meta.main) {
  if (Deno.args[0] === "worker") {
    Deno.exit(await workerCommand(Deno.args.slice(1), hooks));
  }
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      preset: { type: "string", default: "poyo_1_3m" },
      ranks: { type: "string", default: "2" },
      steps: { type: "string", default: "30" },
      warmup: { type: "string", default: "5" },
      batch: { type: "string", default: "32" },
      "bucket-mib": { type: "string", default: "auto" },
      "first-bucket-mib": { type: "string" },
      "collective-mib": { type: "string" },
      "last-bucket-kib": { type: "string" },
      "encode-ahead": { type: "string", default: "on" },
      "stage-uploads": { type: "string", default: "on" },
      compression: { type: "string", default: "none" },
      trace: { type: "boolean", default: false },
      json: { type: "string" },
    },
  });
  if (!BENCH_PRESETS[values.preset!]) {
    throw new Error(
      `Cannot bench preset "${values.preset}": choose one of ${Object.keys(BENCH_PRESETS).join(", ")}`,
    );
  }
  const job = {
    preset: values.preset!,
    ranks: Number(values.ranks),
    steps: Number(values.steps),
    warmup: Number(values.warmup),
    batch: Number(values.batch),
    bucketMib: values["bucket-mib"] === "auto" ? "auto" as const : Number(values["bucket-mib"]),
    collectiveMib: values["collective-mib"] === undefined ? null : Number(values["collective-mib"]),
    firstBucketMib: values["first-bucket-mib"] === undefined ? null : Number(values["first-bucket-mib"]),
    lastBucketKib: values["last-bucket-kib"] === undefined ? null : Number(values["last-bucket-kib"]),
    encodeAhead: values["encode-ahead"] !== "off",
    stageUploads: values["stage-uploads"] !== "off",
    compression: compressionArg(values.compression!),
    trace: values.trace!,
    json: values.json ?? null,
  };
  // Pipeline compilation blocks a rank's event loop for seconds on first use: allow long heartbeat gaps.
  Deno.exit(
    await launchCommand(
      [JSON.stringify(job), "--backend", "local", "--max-restarts", "0", "--heartbeat-timeout-ms", "120000"],
      hooks,
    ),
  );
}

function compressionArg(value: string): GradientCompression {
  if (value !== "none" && value !== "bf16") {
    throw new Error(`Cannot bench with --compression ${value}: it must be none or bf16`);
  }
  return value;
}
