/**
 * Steady-state training throughput of Orion for a named model size, on synthetic batches with the exact
 * shapes of the data configuration (so it runs where no catalog exists, e.g. the GPU machine):
 * samples/s, CPU time to record and submit one step, and GPU time per kernel family from timestamp
 * queries (matmul, attention, norm, elementwise, optimizer, data upload).
 *
 * Usage:
 *   deno run -A scripts/bench_train.ts [--preset poyo_1_3m|seed|tiny] [--steps 50] [--warmup 10]
 *       [--batch 32] [--optimizer sparse_lamb] [--precision 32-true|16-mixed|bf16-mixed] [--json out.json]
 *       [--dump step.safetensors]
 *       [--checkpoint-every K [--checkpoint-reps 5] [--checkpoint-host reused|fresh]
 *         [--checkpoint-mode full|no-write|gpu-copy]] [--timing-kernels] [--compare-torch [--python python3]]
 *       [--autotune [--autotune-target-ms 50] [--autotune-warmup-ms 200] | --autotune-cached]
 *       [--accumulate k] [--sync-loopback [--encode-ahead on|off]]
 *
 * `ORION_EARLY_MAPS=0` makes every read-back wait for its `mapAsync` promise (`src/gpu/early_map.ts`), to
 * measure what early maps save.
 *
 * Matmul autotuning (`InfraConfig.autotune`, `src/train/step_autotune.ts`): off by default here, so the
 * numbers are those of the size heuristic whatever cache exists. `--autotune` ("tune") loads this adapter's
 * cache (`${ORION_HOME:-.orion}/autotune/`), times the first warm-up step's uncached matmul shapes right
 * after it (at least 4 warm-up steps then, so the step is captured again before the timed steps) and caches
 * the winners; `--autotune-cached` only loads the cache. The JSON's `autotune` holds the mode, what was
 * timed, and the kernel each matmul shape of the step runs (`chosen`, in every mode).
 *
 * `--checkpoint-every K` adds the checkpoint stall: passes of the same steps with and without a checkpoint
 * every K steps (the training run's snapshot → background writer path), alternating, after one warm-up
 * pass of each; the stall is the difference of the median pass times per checkpoint, also as a percentage of
 * one step. For attribution, `--checkpoint-host fresh` reads into new buffers instead of the reused shared
 * memory the training run uses, `--checkpoint-mode no-write` stops after the host copy and `gpu-copy` only
 * records GPU copies of the state's size into mappable buffers (never mapped).
 *
 * `--accumulate k` gives each optimizer step k micro-batches of `--batch` (samples/s counts all of them).
 * `--sync-loopback` syncs every step as a data-parallel rank does (backward submitted in segments, gradient
 * buckets read back as they become final, exchanged, written back) with a world-size-1 context as the
 * exchange: the cost of a synced step on this GPU without the network (`syncMsPerStep` in the JSON: wall time
 * from the GPU finishing backward until every bucket is back). `--sync-overlap off` reads every bucket after
 * backward instead (one segment); `--first-bucket-mib`/`--bucket-mib` set the bucket sizes (1, and "auto": `autoBucketBytes`),
 * `--last-bucket-kib` caps the last (512, 0: none);
 * `--bucket-align params` makes buckets of whole parameters instead of byte ranges; `--compression bf16` exchanges
 * bf16 gradients (`infra.gradientCompression`);
 * `--encode-ahead off` records each step's first segment at the step's start instead of during the step before
 * (`TrainerSettings.encodeAhead`); `--boundary-margin-ms` sets how early host work at a segment boundary stops before the segment's expected
 * end (`GradientSyncOptions.boundaryMarginMs`, 0.5); `--trace-boundaries` prints what each boundary did (median
 * over the timed steps: time allowed, host work, the map's wait, bytes still waiting for the host).
 *
 * `--dump` writes the weights and one batch in the numerics-dump layout so that
 * `scripts/reference/poyo_torch.py throughput` trains the identical model and batch in PyTorch.
 * `--compare-torch` does it in one command: after Orion's timing it runs that script (`python3`, or
 * `--python`) on the dump with the same steps, warm-up and batch, and prints samples/s side by side with
 * Orion ÷ PyTorch eager and ÷ `torch.compile` (also in the JSON as `torch` and `ratio`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Gpu } from "../src/gpu/gpu.ts";
import { type SnapshotHost, Trainer, type TrainingPrecision } from "../src/train/trainer.ts";
import { batchUploadArrays } from "../src/models/poyo.ts";
import type { PoyoBatch } from "../src/data/batch.ts";
import {
  syntheticBatch,
  type SyntheticBatchShape,
  syntheticVocabulary,
} from "../src/train/synthetic_batch.ts";
import { BENCH_PRESETS } from "../src/train/bench_presets.ts";
import type { OptimizerKind } from "../src/optim/optimizer.ts";
import { runTorchReference } from "./reference/run_reference.ts";
import { writeNumericsDump } from "../src/train/numerics_dump.ts";
import { checkpointTensors } from "../src/train/checkpoint_tensors.ts";
import { CheckpointWriter } from "../src/checkpoint/checkpoint_writer.ts";
import type { AutotuneMode } from "../src/train/step_autotune.ts";
import {
  type BoundaryEvent,
  DEFAULT_BOUNDARY_MARGIN_MS,
  gradientBuckets,
  gradientSyncFor,
} from "../src/train/gradient_sync.ts";
import { SingleRankContext } from "../src/distributed/context.ts";
import "../src/ops/mod.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string", default: "poyo_1_3m" },
    steps: { type: "string", default: "50" },
    warmup: { type: "string", default: "10" },
    batch: { type: "string", default: "32" },
    optimizer: { type: "string", default: "sparse_lamb" },
    json: { type: "string" },
    dump: { type: "string" },
    "no-timing": { type: "boolean", default: false },
    "timing-kernels": { type: "boolean", default: false },
    "compare-torch": { type: "boolean", default: false },
    python: { type: "string", default: "python3" },
    "torch-script": { type: "string", default: "scripts/reference/poyo_torch.py" },
    precision: { type: "string", default: "32-true" },
    "checkpoint-every": { type: "string", default: "0" },
    "checkpoint-reps": { type: "string", default: "5" },
    "checkpoint-submit": { type: "string", default: "next" },
    "checkpoint-host": { type: "string", default: "reused" },
    accumulate: { type: "string", default: "1" },
    "sync-loopback": { type: "boolean", default: false },
    "sync-overlap": { type: "string", default: "on" },
    "first-bucket-mib": { type: "string", default: "1" },
    "bucket-mib": { type: "string", default: "auto" },
    "last-bucket-kib": { type: "string", default: "512" },
    "boundary-margin-ms": { type: "string", default: String(DEFAULT_BOUNDARY_MARGIN_MS) },
    "trace-boundaries": { type: "boolean", default: false },
    "encode-ahead": { type: "string", default: "on" },
    "bucket-align": { type: "string", default: "bytes" },
    compression: { type: "string", default: "none" },
    "checkpoint-mode": { type: "string", default: "full" },
    autotune: { type: "boolean", default: false },
    "autotune-cached": { type: "boolean", default: false },
    "autotune-target-ms": { type: "string" },
    "autotune-warmup-ms": { type: "string" },
  },
});

const preset = BENCH_PRESETS[args.preset!];
if (!preset) {
  throw new Error(
    `Cannot bench preset "${args.preset}": choose one of ${Object.keys(BENCH_PRESETS).join(", ")}`,
  );
}
const batchSize = Number(args.batch);
const steps = Number(args.steps);
const autotuneMode: AutotuneMode = args.autotune ? "tune" : args["autotune-cached"] ? "cached" : "off";
// Tuning runs after the first warm-up step; the step is then recorded, captured and verified again.
const warmup = Math.max(Number(args.warmup), autotuneMode === "tune" ? 4 : 0);
const shape: SyntheticBatchShape = { ...preset.shape, batchSize };
const vocab = syntheticVocabulary(shape);
const gpu = await Gpu.create();
const trainer = new Trainer(gpu, preset.kwargs, vocab, {
  seed: 0,
  rank: 0,
  optimizer: {
    kind: args.optimizer as OptimizerKind,
    beta2: 0.999,
    eps: 1e-6,
    weightDecay: 1e-4,
    maxGradNorm: 1,
    emaDecay: null,
  },
  schedule: { kind: "onecycle", lr: 1e-4, totalSteps: warmup + steps + 1, warmupSteps: 0, beta1: 0.9 },
  readbackEvery: 10,
  encodeAhead: args["encode-ahead"] !== "off",
  precision: args.precision as TrainingPrecision,
  autotune: {
    mode: autotuneMode,
    options: {
      ...(args["autotune-target-ms"] ? { targetMs: Number(args["autotune-target-ms"]) } : {}),
      ...(args["autotune-warmup-ms"] ? { warmupMs: Number(args["autotune-warmup-ms"]) } : {}),
    },
    log: (line) => console.log(line),
  },
});
// --accumulate k: k micro-batches per optimizer step (one gradient sync per step with --sync-loopback).
const accumulate = Number(args.accumulate);
if (!Number.isInteger(accumulate) || accumulate < 1) {
  throw new Error(`Cannot bench with --accumulate ${args.accumulate}: it must be a positive integer`);
}
// --sync-loopback: every step is synced the way a data-parallel rank's is (gradient buckets read back into
// kept host memory, reduced, written back; the step replays as two segments around the exchange), with a
// world-size-1 context as the "network" (its mean is the identity, so training is unchanged): what a synced
// step costs on this GPU before any byte crosses a socket.
let syncMs = 0;
const syncPhases = {
  firstReadMs: 0,
  lastReadMs: 0,
  lastWriteMs: 0,
  backwardDoneMs: 0,
  segments: 0,
  copyMs: 0,
  writeMs: 0,
  boundaryWorkMs: 0,
  overruns: 0,
};
/** `--trace-boundaries`: what every segment boundary of the timed steps did. */
const boundaryEvents: BoundaryEvent[] = [];
if (args["sync-loopback"]) {
  const mib = (name: "first-bucket-mib" | "bucket-mib") => {
    const v = Number(args[name]);
    if (!(v > 0)) {
      throw new Error(`Cannot bench with --${name} ${args[name]}: it must be a positive number of MiB`);
    }
    return Math.round(v * 2 ** 20);
  };
  if (args.compression !== "none" && args.compression !== "bf16") {
    throw new Error(`Cannot bench with --compression ${args.compression}: it must be none or bf16`);
  }
  const inner = gradientSyncFor(new SingleRankContext(), gpu, {
    firstBucketBytes: mib("first-bucket-mib"),
    bucketBytes: args["bucket-mib"] === "auto" ? "auto" : mib("bucket-mib"),
    lastBucketBytes: Math.round(Number(args["last-bucket-kib"]) * 1024),
    alignToParameters: args["bucket-align"] === "params",
    boundaryMarginMs: Number(args["boundary-margin-ms"]),
    compression: args.compression as "none" | "bf16",
    onBoundary: args["trace-boundaries"] ? (e) => boundaryEvents.push(e) : undefined,
  });
  const align = args["bucket-align"];
  if (align !== "params" && align !== "bytes") {
    throw new Error(`Cannot bench with --bucket-align ${align}: it must be params or bytes`);
  }
  const overlap = args["sync-overlap"];
  if (overlap !== "on" && overlap !== "off") {
    throw new Error(`Cannot bench with --sync-overlap ${overlap}: it must be on or off`);
  }
  trainer.gradientSync = {
    worldSize: 2,
    overlapBackward: overlap === "on",
    begin(grads, elements, paramOffsets) {
      const exchange = inner.begin(grads, elements, paramOffsets);
      return {
        ...exchange,
        async finish() {
          await exchange.finish();
          const t = inner.lastTimings;
          syncMs += t.totalMs - t.backwardDoneMs;
          syncPhases.firstReadMs += t.firstReadMs;
          syncPhases.lastReadMs += t.lastReadMs;
          syncPhases.lastWriteMs += t.lastWriteMs;
          syncPhases.backwardDoneMs += t.backwardDoneMs;
          syncPhases.segments += t.segments;
          syncPhases.copyMs += t.copyMs;
          syncPhases.writeMs += t.writeMs;
          syncPhases.boundaryWorkMs += t.boundaryWorkMs;
          syncPhases.overruns += t.overruns;
        },
      };
    },
  };
}
const batches = Array.from({ length: Math.max(4, 2 * accumulate) }, (_, i) => syntheticBatch(shape, i));
// One array per step (memoized): a step is handed the next one's, as the training loop does when synced, and
// recognizes it by identity (`trainStep`'s `next`).
const stepArrays = new Map<number, PoyoBatch[]>();
const stepBatches = (i: number) => {
  let micro = stepArrays.get(i);
  if (!micro) {
    micro = Array.from({ length: accumulate }, (_, j) => batches[(i * accumulate + j) % batches.length]);
    stepArrays.set(i, micro);
  }
  stepArrays.delete(i - 2);
  return micro;
};
const stepOptions = (i: number) => args["sync-loopback"] ? { next: stepBatches(i + 1) } : {};
// As the training loader does in its prefetch pipeline: the upload arrays (modality masks, embedding-index
// inverses) are prepared off the step's critical path, so `record` below is the step's own CPU cost.
for (const b of batches) batchUploadArrays(trainer.model, b);
const dumpPath = args.dump ??
  (args["compare-torch"] ? await Deno.makeTempFile({ suffix: ".safetensors" }) : null);
if (dumpPath) {
  await writeNumericsDump(dumpPath, trainer.model, batches[0]);
  console.log(`wrote ${dumpPath}`);
}

// Warm-up (pipeline compilation, pool growth), then the timed steps.
for (let i = 0; i < warmup; i++) await trainer.trainStep(stepBatches(i), stepOptions(i));
await trainer.flushMetrics();
await gpu.sync();
syncMs = 0;
for (const key of Object.keys(syncPhases) as (keyof typeof syncPhases)[]) syncPhases[key] = 0;
boundaryEvents.length = 0;
let hostMs = 0;
let recordMs = 0;
let uploadMs = 0; // host uploads (queue.writeBuffer of the batch) inside the record, CPU ms
let uploadBytes = 0;
let submitMs = 0;
let dispatchesPerStep = 0;
const queueSubmitMs0 = gpu.counters.queueSubmitMs;
let encodedAheadSteps = 0;
let uploadedAheadSteps = 0;
const t0 = performance.now();
for (let i = 0; i < steps; i++) {
  const h0 = performance.now();
  await trainer.trainStep(stepBatches(warmup + i), stepOptions(warmup + i));
  hostMs += performance.now() - h0;
  if (trainer.lastStepEncodedAhead) encodedAheadSteps++;
  if (trainer.lastStepUploadedAhead) uploadedAheadSteps++;
  recordMs += trainer.lastRecordMs;
  uploadMs += gpu.counters.uploadMsLastReplay;
  uploadBytes = gpu.counters.uploadBytesLastReplay;
  submitMs += trainer.lastSubmitMs;
  dispatchesPerStep = gpu.counters.dispatchesLastSubmit;
  if (trainer.pendingReadbacks > 2) await trainer.awaitOldest();
}
const metrics = await trainer.flushMetrics();
await gpu.sync();
const wallS = (performance.now() - t0) / 1000;
const samplesPerS = (batchSize * accumulate * steps) / wallS;
const syncMsPerStep = syncMs / steps;
const queueSubmitMsPerStep = (gpu.counters.queueSubmitMs - queueSubmitMs0) / steps;

// A separate timed pass with per-family GPU timestamps (passes split per family, so slightly slower).
let families: Record<string, number> = {};
if (!args["no-timing"] && gpu.features.timestampQuery) {
  const timedSteps = 5;
  gpu.setTiming(true);
  for (let i = 0; i < timedSteps; i++) await trainer.trainStep([batches[i % batches.length]]);
  await trainer.flushMetrics();
  await gpu.sync();
  const t = await gpu.takeTimings();
  gpu.setTiming(false);
  // Per step, not per submit: a synced step is several submits (its backward segments).
  families = Object.fromEntries(Object.entries(t.ns).map(([k, v]) => [k, v / timedSteps / 1e6]));
}
// --timing-kernels: the same per `family:kernel` (a pass per kernel change; for finding what to speed up).
let kernels: Record<string, number> = {};
if (args["timing-kernels"] && gpu.features.timestampQuery) {
  gpu.setTiming("kernel");
  for (let i = 0; i < 5; i++) await trainer.trainStep([batches[i % batches.length]]);
  await trainer.flushMetrics();
  await gpu.sync();
  const t = await gpu.takeTimings();
  gpu.setTiming(false);
  kernels = Object.fromEntries(
    Object.entries(t.ns).map(([k, v]) => [k, v / Math.max(1, t.submits) / 1e6] as const).sort((a, b) =>
      b[1] - a[1]
    ),
  );
}

// Checkpoint stall: the same steps with and without checkpoints every `--checkpoint-every` steps, through the
// training run's path (trainer.snapshot() records staging copies into the step's stream, the host copies
// become checkpoint tensors without copying, and the CheckpointWriter's thread hashes, writes and fsyncs
// them). Passes alternate (plain, checkpointing, ...); stall per checkpoint = the extra wall time ÷ count.
let checkpointStall: Record<string, unknown> | undefined;
const checkpointEvery = Number(args["checkpoint-every"]);
if (checkpointEvery > 0) {
  const dir = await Deno.makeTempDir({ prefix: "orion_bench_ckpt_" });
  const shapes = new Map(trainer.model.params.slots.map((s) => [s.name, s.shape]));
  const writer = new CheckpointWriter(dir, {
    transfer: true,
    retention: { policy: { keepLast: 2 } },
  });
  // Where a checkpoint's time goes on the training thread: the snapshot() call, snapshot → host copies
  // (read-back latency, not thread time), and building the state + handing it to the writer thread; and the
  // wall time of each step of a checkpointing pass (step index within the pass).
  const diagnostics = {
    snapshotCallMs: [] as number[],
    readbackMs: [] as number[],
    handOffMs: [] as number[],
    stepMs: [] as number[],
  };
  const inflight: Promise<unknown>[] = [];
  // As the training run does: snapshots land in reused shared host memory (--checkpoint-host reused), free
  // again once the writer settled; `fresh` reads into new buffers (the path before 2026-11-29's change).
  const hostMode = args["checkpoint-host"];
  if (hostMode !== "reused" && hostMode !== "fresh") {
    throw new Error(`Cannot bench checkpoints with --checkpoint-host ${hostMode}: use reused or fresh`);
  }
  const hosts: SnapshotHost[] = [];
  // --checkpoint-mode: `full` (snapshot, host copy, write), `no-write` (snapshot and host copy only) or
  // `gpu-copy` (only the GPU copies of the state's size into mappable buffers: what the copies alone cost).
  const mode = args["checkpoint-mode"];
  if (!["full", "no-write", "gpu-copy"].includes(mode!)) {
    throw new Error(
      `Cannot bench checkpoints with --checkpoint-mode ${mode}: use full, no-write or gpu-copy`,
    );
  }
  const stateBytes = trainer.model.params.totalElements * 4;
  const stateCopies = trainer.optimizer.settings.emaDecay != null ? 4 : 3;
  // Mappable like the snapshot's staging buffers (the copy crosses PCIe), never mapped here.
  const copyTargets = mode === "gpu-copy"
    ? Array.from({ length: stateCopies }, (_, i) => ({
      id: -1 - i, // not a pool buffer
      size: stateBytes,
      buffer: gpu.device.createBuffer({
        size: stateBytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "bench.checkpoint_copy",
      }),
    }))
    : [];
  const pass = async (withCheckpoints: boolean) => {
    let submitted = 0;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const s0 = performance.now();
      await trainer.trainStep([batches[i % batches.length]]);
      if (withCheckpoints) diagnostics.stepMs[i] = performance.now() - s0;
      if (trainer.pendingReadbacks > 2) await trainer.awaitOldest();
      // Never at a pass's last step: that snapshot would wait (up to the map deadline) for an ordinary
      // read-back after the pass, leaving the GPU idle and its clocks low for the next pass.
      if (withCheckpoints && (i + 1) % checkpointEvery === 0 && i + 1 < steps) {
        const step = trainer.step;
        submitted++;
        const c0 = performance.now();
        if (mode === "gpu-copy") {
          for (const target of copyTargets) gpu.copy(trainer.model.params.values, target, stateBytes);
          diagnostics.snapshotCallMs.push(performance.now() - c0);
          continue;
        }
        const submit = args["checkpoint-submit"] === "now";
        const host = hostMode === "reused" ? hosts.pop() ?? trainer.createSnapshotHost() : undefined;
        const snapshot = trainer.snapshot({ submit, into: host });
        // As the training run does: a running checkpoint's metrics arrive with the loop's regular
        // read-back (no read-back of its own); with --checkpoint-submit now they are flushed at once.
        if (submit) inflight.push(trainer.flushMetrics({ submit }));
        diagnostics.snapshotCallMs.push(performance.now() - c0);
        inflight.push(
          snapshot.then((snap) => {
            const c1 = performance.now();
            diagnostics.readbackMs.push(c1 - c0);
            if (mode === "no-write") return;
            const tensors = checkpointTensors(snap, shapes);
            const done = writer.submit(step, {
              config: { bench: "bench_train", preset: args.preset! },
              model: { weights: tensors.weights, ema: tensors.ema },
              optimizer: { tensors: tensors.optimizer, state: { step: snap.optimizer.step } },
              scheduler: { step },
              rng: { cpu: { counter: step }, gpu: [{ counter: step }] },
              dataloader: { position: step },
              dataHashes: { recordings: [] },
              metrics: { step },
              lineage: { parentRun: null, parentCheckpoint: null, stepsConsumed: step },
            });
            diagnostics.handOffMs.push(performance.now() - c1);
            return done;
          }).catch(() => {}) // a superseded snapshot is fine here
            .finally(() => {
              if (host) hosts.push(host);
            }),
        );
      }
    }
    await trainer.flushMetrics();
    await gpu.sync();
    return { ms: performance.now() - t0, submitted };
  };
  // Warm-up: one pass of each kind (the first checkpoints grow the staging-buffer pool and start the writer
  // thread — once per run in training).
  await pass(false);
  await pass(true);
  await Promise.all(inflight.splice(0));
  for (const list of Object.values(diagnostics)) list.length = 0;
  const plain: number[] = [];
  const withCkpt: number[] = [];
  let submitted = 0;
  // Untimed steps before each timed pass: the GPU lowers its clocks while idle (waiting for the writer
  // between passes), which would charge the clock ramp to whichever pass comes next.
  const reheat = async () => {
    for (let i = 0; i < 5; i++) await trainer.trainStep([batches[i % batches.length]]);
    await trainer.flushMetrics();
    await gpu.sync();
  };
  for (let r = 0; r < Number(args["checkpoint-reps"]); r++) {
    await reheat();
    plain.push((await pass(false)).ms);
    await reheat();
    const p = await pass(true);
    withCkpt.push(p.ms);
    submitted += p.submitted;
    // Outside the timed passes: the next plain pass starts with an idle writer (whose thread stays up, as
    // in a training run, where it idles 60 s before stopping).
    await Promise.all(inflight.splice(0));
  }
  // Medians: a pass now and then runs several % slower for reasons outside the checkpoint (seen on the H200
  // in plain passes too), which a mean would charge to whichever kind of pass it hit.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const stepMs = median(plain) / steps;
  const perPass = submitted / withCkpt.length;
  const stallMs = (median(withCkpt) - median(plain)) / perPass;
  // Paired: each checkpointing pass against the plain pass just before it (the GPU's clocks drift over a
  // run; a pair shares the drift), median over pairs.
  const pairedStallMs = median(withCkpt.map((w, i) => w - plain[i])) / perPass;
  checkpointStall = {
    every: checkpointEvery,
    checkpoints: submitted,
    checkpointMiB: (4 * trainer.model.params.count * (trainer.optimizer.settings.emaDecay ? 4 : 3)) / 2 ** 20,
    writeMs: writer.lastWritten?.durationMs,
    plainPassMs: plain,
    checkpointPassMs: withCkpt,
    stepMs,
    stallPerCheckpointMs: stallMs,
    stallPercentOfStep: (100 * stallMs) / stepMs,
    pairedStallPerCheckpointMs: pairedStallMs,
    pairedStallPercentOfStep: (100 * pairedStallMs) / stepMs,
    submit: args["checkpoint-submit"],
    host: hostMode,
    mode,
    diagnostics: {
      ...diagnostics,
      stepMs: diagnostics.stepMs.map((x) => Math.round(x * 100) / 100),
    },
  };
  await writer.close();
  await Deno.remove(dir, { recursive: true });
}

const result = {
  preset: args.preset,
  precision: args.precision,
  adapter: gpu.description.description,
  /** Read-backs taken when `mapAsync` returned (`Gpu.earlyMaps`; `ORION_EARLY_MAPS=0` turns them off). */
  earlyMaps: { enabled: gpu.earlyMaps, early: gpu.counters.earlyMaps, awaited: gpu.counters.awaitedMaps },
  batchSize,
  accumulate,
  syncLoopback: args["sync-loopback"],
  /** Timed steps that submitted a first segment recorded during the step before. */
  encodedAheadSteps,
  /** Timed steps whose batches were uploaded during the step before. */
  uploadedAheadSteps,
  syncMsPerStep: args["sync-loopback"] ? syncMsPerStep : null,
  syncFirstReadMsPerStep: args["sync-loopback"] ? syncPhases.firstReadMs / steps : null,
  syncLastReadMsPerStep: args["sync-loopback"] ? syncPhases.lastReadMs / steps : null,
  syncLastWriteMsPerStep: args["sync-loopback"] ? syncPhases.lastWriteMs / steps : null,
  syncBackwardDoneMsPerStep: args["sync-loopback"] ? syncPhases.backwardDoneMs / steps : null,
  syncSegmentsPerStep: args["sync-loopback"] ? syncPhases.segments / steps : null,
  syncCopyMsPerStep: args["sync-loopback"] ? syncPhases.copyMs / steps : null,
  syncWriteMsPerStep: args["sync-loopback"] ? syncPhases.writeMs / steps : null,
  syncBoundaryWorkMsPerStep: args["sync-loopback"] ? syncPhases.boundaryWorkMs / steps : null,
  syncOverrunsPerStep: args["sync-loopback"] ? syncPhases.overruns / steps : null,
  syncOverlap: args["sync-loopback"] ? args["sync-overlap"] : null,
  syncBucketAlign: args["sync-loopback"] ? args["bucket-align"] : null,
  syncCompression: args["sync-loopback"] ? args.compression : null,
  syncBucketMib: args["sync-loopback"]
    ? [
      Number(args["first-bucket-mib"]),
      gradientBuckets(trainer.model.params.totalElements, {
        firstBucketBytes: Number(args["first-bucket-mib"]) * 2 ** 20,
        bucketBytes: args["bucket-mib"] === "auto" ? "auto" : Number(args["bucket-mib"]) * 2 ** 20,
      }).slice(1).reduce((m, [a, b]) => Math.max(m, ((b - a) * 4) / 2 ** 20), 0),
    ]
    : null,
  params: trainer.model.params.count,
  tokensPerWindow: batches[0].numTokens,
  latents: batches[0].latentTime.length,
  steps,
  samplesPerS,
  msPerStep: (wallS * 1000) / steps,
  hostMsPerStep: hostMs / steps,
  recordMsPerStep: recordMs / steps,
  uploadMsPerStep: uploadMs / steps,
  uploadBytesPerStep: uploadBytes,
  submitMsPerStep: submitMs / steps,
  queueSubmitMsPerStep,
  dispatchesPerStep,
  gpuMsPerStepByFamily: families,
  ...(Object.keys(kernels).length ? { gpuMsPerStepByKernel: kernels } : {}),
  lastLoss: metrics.at(-1)?.loss,
  checkpointStall,
  // What autotuning did and the kernel per matmul shape (config name or "general").
  autotune: trainer.autotuneReport,
};
// --compare-torch: the same model, batch and optimizer in PyTorch fp32 (eager and torch.compile).
type TorchThroughput = { results: Record<string, { samples_per_s: number; ms_per_step: number }> };
let torch: TorchThroughput | null = null;
if (args["compare-torch"] && dumpPath) {
  torch = await runTorchReference(args.python!, args["torch-script"]!, [
    "throughput",
    dumpPath,
    "--steps",
    String(steps),
    "--warmup",
    String(warmup),
    "--batch",
    String(batchSize),
    "--optimizer",
    args.optimizer!,
  ]) as TorchThroughput;
}
const ratio = torch
  ? Object.fromEntries(
    Object.entries(torch.results).map(([mode, r]) => [mode, samplesPerS / r.samples_per_s]),
  )
  : null;
Object.assign(result, torch ? { torch, ratio } : {});
console.log(
  `adapter: ${result.adapter}; early maps ${
    gpu.earlyMaps ? "on" : "off"
  } (${gpu.counters.earlyMaps} early, ` +
    `${gpu.counters.awaitedMaps} awaited)`,
);
console.log(
  `orion ${args.preset} (${args.precision}): ${samplesPerS.toFixed(1)} samples/s, ${
    result.msPerStep.toFixed(2)
  } ms/step ` +
    `(batch ${batchSize}${
      accumulate > 1 ? ` × ${accumulate} micro-batches` : ""
    }, ${result.params} params, ` +
    `N=${result.tokensPerWindow} tokens, L=${result.latents} latents), ` +
    (args["sync-loopback"]
      ? `synced (loopback, overlap ${
        args["sync-overlap"]
      }, first segment recorded ahead in ${encodedAheadSteps} and batches uploaded ahead in ${uploadedAheadSteps} of ${steps} steps, ${
        (syncPhases.segments / steps).toFixed(1)
      } backward segments): ${
        syncMsPerStep.toFixed(2)
      } ms per step after backward (from the step's start: first bucket out at ${
        (syncPhases.firstReadMs / steps).toFixed(2)
      } ms, backward done ${(syncPhases.backwardDoneMs / steps).toFixed(2)} ms, last bucket out ${
        (syncPhases.lastReadMs / steps).toFixed(2)
      } ms, last write-back ${(syncPhases.lastWriteMs / steps).toFixed(2)} ms; copying out ${
        (syncPhases.copyMs / steps).toFixed(2)
      } ms, writing back ${(syncPhases.writeMs / steps).toFixed(2)} ms; host work at boundaries ${
        (syncPhases.boundaryWorkMs / steps).toFixed(2)
      } ms, overrunning ${(syncPhases.overruns / steps).toFixed(2)} segments), `
      : "") +
    `host: record ${result.recordMsPerStep.toFixed(2)} ms (of it data upload ${
      result.uploadMsPerStep.toFixed(2)
    } ms for ${(result.uploadBytesPerStep / 2 ** 20).toFixed(1)} MiB) + submit ${
      result.submitMsPerStep.toFixed(2)
    } ms per step ` +
    `(CPU time; submit blocks while the GPU is behind; inside queue.submit ${
      result.queueSubmitMsPerStep.toFixed(2)
    } ms), ${result.dispatchesPerStep} dispatches/step`,
);
{
  const a = trainer.autotuneReport;
  console.log(
    `autotune: ${a.mode}` +
      (a.mode === "off" ? "" : `, ${a.loadedShapes} cached shapes loaded`) +
      (a.tunedAfterStep !== null
        ? `, ${a.timedShapes} shapes timed in ${(a.tuneMs / 1000).toFixed(1)} s`
        : "") +
      `; ${a.stepShapes ?? 0} matmul shapes per step`,
  );
}
if (Object.keys(families).length) {
  console.log(
    "GPU ms/step by family: " + Object.entries(families).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", "),
  );
}
if (torch && ratio) {
  for (const [mode, r] of Object.entries(torch.results)) {
    console.log(
      `pytorch fp32 ${mode} (TF32 off): ${r.samples_per_s.toFixed(1)} samples/s → Orion ÷ PyTorch ${mode}: ${
        ratio[mode].toFixed(2)
      }×`,
    );
  }
}
if (Object.keys(kernels).length) {
  console.log("GPU ms/step by kernel (top 30):");
  for (const [k, v] of Object.entries(kernels).slice(0, 30)) {
    console.log(`  ${v.toFixed(3).padStart(8)}  ${k}`);
  }
}
if (checkpointStall) {
  const c = checkpointStall as {
    stallPerCheckpointMs: number;
    stallPercentOfStep: number;
    pairedStallPerCheckpointMs: number;
    pairedStallPercentOfStep: number;
    stepMs: number;
  };
  console.log(
    `checkpoint stall: ${c.stallPerCheckpointMs.toFixed(2)} ms per checkpoint = ` +
      `${c.stallPercentOfStep.toFixed(1)}% of a ${c.stepMs.toFixed(2)} ms step; paired ` +
      `${c.pairedStallPerCheckpointMs.toFixed(2)} ms = ${c.pairedStallPercentOfStep.toFixed(1)}% ` +
      `(${JSON.stringify(checkpointStall)})`,
  );
}
if (boundaryEvents.length) {
  // Median per boundary index over the timed steps (the per-family timing pass adds a few steps).
  const byIndex = new Map<number, BoundaryEvent[]>();
  for (const e of boundaryEvents) byIndex.set(e.index, [...(byIndex.get(e.index) ?? []), e]);
  const median = (xs: BoundaryEvent[], f: (e: BoundaryEvent) => number) => {
    const v = xs.map(f).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const rows = [...byIndex.entries()].sort(([a], [b]) => a - b).map(([index, xs]) => ({
    index,
    budgetMs: median(xs, (e) => e.budgetMs),
    workMs: median(xs, (e) => e.workMs),
    waitMs: median(xs, (e) => e.waitMs),
    pendingCopyMiB: median(xs, (e) => e.pendingCopyBytes) / 2 ** 20,
    pendingWriteMiB: median(xs, (e) => e.pendingWriteBytes) / 2 ** 20,
  }));
  Object.assign(result, { boundaries: rows });
  console.log("boundary  budget ms  work ms  wait ms  copy left MiB  writes left MiB");
  for (const r of rows) {
    console.log(
      `${String(r.index).padStart(8)} ${r.budgetMs.toFixed(2).padStart(10)} ${
        r.workMs.toFixed(2).padStart(8)
      } ` +
        `${r.waitMs.toFixed(2).padStart(8)} ${r.pendingCopyMiB.toFixed(1).padStart(14)} ${
          r.pendingWriteMiB.toFixed(1).padStart(16)
        }`,
    );
  }
}
if (args.json) await Deno.writeTextFile(args.json, JSON.stringify(result, null, 1));
gpu.destroy();
