/**
 * A training run end to end: data, model, optimizer, the step loop with asynchronous metrics, validation,
 * checkpoints written in the background, bit-exact resume, SIGINT/SIGTERM handling, and the run record
 * (`<runDir>/config.json`, `run.json`, `metrics.jsonl`, `ckpt-step*`).
 *
 * @module
 */
import { basename, join } from "node:path";
import { checkpointDirName } from "../checkpoint/checkpoint_layout.ts";
import type { RunConfig } from "../config/run_config.ts";
import { DEFAULT_EPS } from "../config/training_config.ts";
import { RUN_CONFIG_FILE } from "../config/serialize_config.ts";
import { canonicalJson } from "../config/canonical_json.ts";
import {
  type CheckpointInfo,
  CheckpointSupersededError,
  CheckpointWriter,
} from "../checkpoint/checkpoint_writer.ts";
import type { CheckpointState, JsonObject, TensorSet } from "../checkpoint/checkpoint_state.ts";
import {
  findLatestValidCheckpoint,
  type LoadedCheckpoint,
  readCheckpoint,
} from "../checkpoint/checkpoint_reader.ts";
import { MetricsLog, rewindMetrics } from "../checkpoint/metrics_log.ts";
import { codeVersionDifferences } from "../checkpoint/code_version.ts";
import { processCodeSnapshot } from "../checkpoint/checkpoint_writer.ts";
import { DataLedger } from "../data/ledger.ts";
import type { PoyoBatch } from "../data/batch.ts";
import { Gpu } from "../gpu/gpu.ts";
import { batchUploadArrays } from "../models/poyo.ts";
import type { OptimizerKind } from "../optim/optimizer.ts";
import { parseGradScalerState } from "../optim/grad_scaler.ts";
import { checkpointTensors } from "./checkpoint_tensors.ts";
import { type SnapshotHost, type StepMetrics, Trainer, type TrainerSnapshot } from "./trainer.ts";
import { openRunData, type RunData } from "./run_data.ts";
import { ProgressReporter } from "./progress.ts";
import { registerRunInCatalog, type RunRecord, type RunStatus, writeRunRecord } from "./run_record.ts";
import { BenchScheduler } from "../bench/bench_runner.ts";
import { liveBenchModel } from "./bench_model_loader.ts";
import type { DistributedContext } from "../distributed/context.ts";
import { DEFAULT_BUCKET_SIZES, gradientSyncFor } from "./gradient_sync.ts";
import { checkpointLineage, type StageLineage, stageLineageOf } from "../pipeline/stage_lineage.ts";
import { recordRunLineage } from "../pipeline/lineage_catalog.ts";
import { writeRunReport } from "../dashboard/run_report.ts";

/**
 * A distributed rank's announced silence while its first steps compile the GPU pipelines (it ends as soon as
 * a step replays, or after {@linkcode FIRST_STEPS_BUSY_STEPS} steps).
 */
const FIRST_STEPS_BUSY_MS = 10 * 60_000;
const FIRST_STEPS_BUSY_STEPS = 8;

/** Output channels (the CLI's io). */
export interface RunIO {
  out(line: string): void;
  err(line: string): void;
}

/** What to run. */
export interface RunRequest {
  config: RunConfig;
  serializedConfig: string;
  configHash: string;
  runDir: string;
  /** Resume from this checkpoint directory, or the latest valid one (null), or start fresh (undefined). */
  resumeFrom?: string | null;
  io: RunIO;
  /** Stop after this many steps in this process (tests of kill/resume); default: run to maxSteps. */
  stopAfterSteps?: number;
  /** Use this GPU instead of acquiring one (tests). */
  gpu?: Gpu;
  /**
   * The data-parallel job this process is a rank of (absent: one rank). Ranks average gradients every
   * step, shard the loader by rank, and rank 0 writes checkpoints (committed once every rank reported).
   */
  dist?: DistributedContext;
  /** Initial weights by parameter name (finetuning) and the vocabulary they were trained with. */
  init?: {
    weights: Map<string, Float32Array>;
    vocab: { channels: string[]; sessions: string[] };
    skip?: string[];
  };
  /**
   * Where `init` came from (fine-tuning stages, see `src/pipeline/stage_lineage.ts`): recorded in every
   * checkpoint's `lineage.json` and the catalog's `run_lineage`; the ancestors' data ledger is merged into
   * this run's ledger. On resume without it, the resumed checkpoint's lineage is carried on.
   */
  lineage?: StageLineage;
}

/** Result of a run. */
export interface RunResult {
  status: RunStatus;
  step: number;
  lastCheckpoint: CheckpointInfo | null;
  finalMetrics: Record<string, number>;
}

/** Things resume refuses to change (the run would no longer be the same run). */
const INCOMPATIBLE = [
  "model",
  "data.ursaQuery",
  "data.trainWindow",
  "data.trainSplit",
  "data.valSplit",
  "data.splitSeed",
  "training.batchSize",
  "training.optimizer",
  "training.seed",
  "training.accumulateGradBatches",
  "training.precision",
  "infra.nodes",
  "infra.gpusPerNode",
];

function pick(obj: unknown, path: string): unknown {
  let cur = obj as Record<string, unknown> | undefined;
  for (const k of path.split(".")) cur = cur?.[k] as Record<string, unknown> | undefined;
  return cur;
}

/** Differences between a checkpoint's config and the current one: the incompatible ones and the rest. */
export function configDifferences(
  saved: unknown,
  current: unknown,
): { incompatible: string[]; changed: string[] } {
  const incompatible: string[] = [];
  for (const path of INCOMPATIBLE) {
    if (JSON.stringify(pick(saved, path)) !== JSON.stringify(pick(current, path))) incompatible.push(path);
  }
  const changed: string[] = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b as object)])) {
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) changed.push(path);
  };
  walk(saved, current, "");
  return { incompatible, changed: changed.filter((c) => !incompatible.some((i) => c.startsWith(i))) };
}

function namedFrom(set: TensorSet | undefined): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(set ?? {})) out.set(name, t.data as Float32Array);
  return out;
}

/** The config object inside a serialized-config envelope (`{ config, config_version, hash, kind }`). */
function innerConfig(doc: unknown): unknown {
  return doc && typeof doc === "object" && "config_version" in doc && "config" in doc
    ? (doc as { config: unknown }).config
    : doc;
}

/** The trainer settings a config asks for. */
export function trainerSettings(config: RunConfig, rank = 0) {
  const t = config.training;
  const kind = t.optimizer as OptimizerKind;
  return {
    seed: t.seed,
    rank,
    optimizer: {
      kind,
      beta2: t.betas[1],
      eps: t.eps ?? DEFAULT_EPS[kind],
      weightDecay: t.weightDecay,
      maxGradNorm: t.gradClipNorm ?? 0,
      emaDecay: t.emaDecay,
    },
    schedule: {
      kind: t.scheduler,
      lr: t.lr,
      totalSteps: t.maxSteps,
      warmupSteps: t.warmupSteps,
      beta1: t.betas[0],
    },
    readbackEvery: Math.max(1, Math.min(t.logEveryNSteps, 100)),
    precision: t.precision,
    // Matmul autotuning (results are bitwise the same whichever kernels run; see step_autotune.ts).
    autotune: { mode: config.infra.autotune },
    gradScaler: t.gradScaler,
    // Gradual unfreezing (torch_brain): until freezeUntilStep only what was not loaded from the parent trains —
    // the embeddings (which hold the new participants' rows) and the weightOverrides (fresh initialisation).
    trainable: t.freezeUntilStep > 0
      ? (name: string, step: number) =>
        step >= t.freezeUntilStep || name.startsWith("unit_emb.") || name.startsWith("session_emb.") ||
        (config.initFrom?.weightOverrides ?? []).some((p) => name === p || name.startsWith(`${p}.`))
      : undefined,
  } as const;
}

/**
 * Trains (or resumes) a run. Returns when `maxSteps` is reached, on SIGINT/SIGTERM (after finishing the
 * current step and writing a checkpoint), or after `stopAfterSteps`.
 */
export async function runTraining(req: RunRequest): Promise<RunResult> {
  const { config, runDir, io } = req;
  const t = config.training;
  await Deno.mkdir(runDir, { recursive: true });
  await Deno.writeTextFile(join(runDir, RUN_CONFIG_FILE), req.serializedConfig);

  // Resume plan: which checkpoint, what differs, what stays exact.
  let resumed: LoadedCheckpoint | null = null;
  if (req.resumeFrom !== undefined) {
    if (req.resumeFrom) resumed = await readCheckpoint(req.resumeFrom);
    else {
      const found = await findLatestValidCheckpoint(runDir, { onWarning: (w) => io.err(`warning: ${w}`) });
      resumed = found?.checkpoint ?? null;
    }
  }
  const data: RunData = await openRunData(config, {
    print: io.out,
    baseVocab: resumed ? vocabOf(resumed) ?? undefined : req.init?.vocab,
  });
  const gpu = req.gpu ?? await Gpu.create();
  const stageLineage = req.lineage ?? (resumed ? stageLineageOf(resumed.state.lineage) : null);
  if (resumed) {
    const diff = configDifferences(
      innerConfig(resumed.state.config),
      innerConfig(JSON.parse(req.serializedConfig)),
    );
    const code = codeVersionDifferences(resumed.codeVersion, (await processCodeSnapshot()).version);
    const savedAdapter = (resumed.state.rng.gpu[0]?.adapter as { description?: string } | undefined)
      ?.description;
    io.out(
      `resume plan: run ${config.name} from ${resumed.name} (step ${resumed.step}, checkpoint ${
        resumed.hash.slice(0, 12)
      })`,
    );
    io.out(`  config changes: ${diff.changed.length ? diff.changed.join(", ") : "none"}`);
    io.out(`  code changes: ${code.length ? code.join("; ") : "none"}`);
    io.out(
      `  adapter: ${
        savedAdapter === gpu.description.description
          ? "same"
          : `${savedAdapter ?? "?"} → ${gpu.description.description}`
      }` +
        (savedAdapter === gpu.description.description
          ? ""
          : " (results stay deterministic but are not bit-identical across adapters)"),
    );
    if (diff.incompatible.length) {
      throw new Error(
        `Cannot resume ${config.name} from ${resumed.dir} as these settings changed: ${
          diff.incompatible.join(", ")
        }; ` +
          "start a new run (or a finetuning stage with initFrom) instead",
      );
    }
  }
  if (resumed && resumed.step >= t.maxSteps) {
    // Resumed from the final checkpoint (killed after writing it): the run is complete. Going on would log
    // the last validation twice and write a second checkpoint at the same step, which the writer refuses.
    const info = checkpointInfoOf(resumed);
    const finalMetrics = numericEntries(resumed.state.metrics);
    await rewindMetrics(runDir, resumed.step);
    await writeRunRecord(runDir, {
      name: config.name,
      status: "finished",
      step: resumed.step,
      configHash: req.configHash,
      checkpoint: info,
    });
    await registerRunInCatalog(data.catalog, config, req.configHash, runDir, "finished", resumed.step, info, {
      ...resumed.state.metrics,
    });
    if (!req.gpu) gpu.destroy();
    io.out(`${config.name} already finished at step ${resumed.step} — checkpoint ${resumed.dir}`);
    return { status: "finished", step: resumed.step, lastCheckpoint: info, finalMetrics };
  }

  const dist = req.dist && req.dist.worldSize > 1 ? req.dist : null;
  const rank = dist?.rank ?? 0;
  const worldSize = dist?.worldSize ?? 1;
  const isWriter = rank === 0;
  // Autotune lines go through the progress reporter once it exists (it owns the terminal line).
  let note = (line: string) => io.out(line);
  const settings = trainerSettings(config, rank);
  const trainer = new Trainer(gpu, data.kwargs, data.vocab, {
    ...settings,
    autotune: { ...settings.autotune, log: (line) => note(line) },
  });
  if (dist) {
    const cap = config.infra.bucketCapMb;
    trainer.gradientSync = gradientSyncFor(dist, gpu, {
      ...DEFAULT_BUCKET_SIZES,
      bucketBytes: cap === "auto" ? "auto" : Math.round(cap * 2 ** 20),
      compression: config.infra.gradientCompression,
    });
  }
  // At startup: this adapter's cached matmul tuning table (unless infra.autotune is "off").
  await trainer.loadAutotuneCache();
  // run.json, with what autotuning did when it did something.
  const recordRun = (record: RunRecord) => {
    const { chosen: _chosen, ...autotune } = trainer.autotuneReport;
    const used = autotune.loadedShapes > 0 || autotune.tunedAfterStep !== null;
    return writeRunRecord(runDir, used ? { ...record, autotune } : record);
  };
  const shapes = new Map(trainer.model.params.slots.map((s) => [s.name, s.shape]));
  const ledger = new DataLedger();
  if (stageLineage) ledger.merge(DataLedger.fromJSON(stageLineage.ancestorDataHashes));
  if (stageLineage && isWriter) await recordRunLineage(data.catalog, config.name, stageLineage);
  // Resuming with no valid checkpoint starts over: drop what the killed attempt logged.
  if (!resumed && req.resumeFrom !== undefined) await rewindMetrics(runDir, 0);
  let cursor: unknown = undefined;
  if (resumed) {
    trainer.restore(snapshotOf(resumed));
    cursor = resumed.state.dataloader.cursor;
    const saved = DataLedger.fromJSON(resumed.state.dataHashes);
    ledger.merge(saved);
    await rewindMetrics(runDir, resumed.step);
  } else if (req.init) {
    const skip = req.init.skip ?? [];
    const weights = new Map(
      [...req.init.weights].filter(([name]) => !skip.some((p) => name === p || name.startsWith(`${p}.`))),
    );
    const fresh = await trainer.model.params.readValues();
    trainer.model.params.writeValues(
      new Map([
        ...fresh, // parameters not loaded (weightOverrides, new ones) keep their fresh initialisation
        ...remapVocabularyRows(weights, req.init.vocab, data.vocab, fresh, trainer.model.params.slots),
      ]),
    );
  }
  const loader = data.dataset.loader("train", {
    batchSize: t.batchSize,
    seed: t.seed,
    rank,
    worldSize,
    cursor: cursor as never,
    prepare: (b) => batchUploadArrays(trainer.model, b),
    // Batch memory is reused once a step has issued its uploads (released below): no allocation per batch.
    reuseBuffers: true,
  });
  /** The loader's resume point after the batches trained so far (the loop may hold the next step's). */
  let trainedCursor = loader.cursor();
  const valBatches = t.valEveryNSteps === null
    ? []
    : await collect(data.dataset.evalBatches("val", { batchSize: t.batchSize }));

  const metricsLog = await MetricsLog.open(isWriter ? runDir : join(runDir, `rank${rank}`));
  const progress = new ProgressReporter(
    io,
    t.maxSteps,
    t.batchSize * t.accumulateGradBatches,
    t.logEveryNSteps,
  );
  note = (line) => progress.note(line);
  // Checkpoints benchmarks still have to read, which retention keeps: a periodic one until each suite has a
  // result or a failure, and (for the final evaluation) the best one so far.
  const benchPins = new Map<string, Set<string>>();
  const releaseBenchPin = (checkpointDir: string, suites: readonly string[]) => {
    const name = basename(checkpointDir);
    const waiting = benchPins.get(name);
    for (const s of suites) waiting?.delete(s);
    if (waiting?.size === 0) benchPins.delete(name);
  };
  const writer = new CheckpointWriter(runDir, {
    transfer: true, // the snapshot is a fresh host copy nobody reads after submit
    initialParentHash: resumed?.hash ?? stageLineage?.initCheckpoint.checkpointHash ?? null,
    retention: {
      policy: {
        keepLast: Math.max(1, t.keepLastK),
        keepBest: t.keepBestK > 0 && t.monitor
          ? {
            k: t.keepBestK,
            metric: t.monitor,
            mode: t.monitorMode ?? (t.monitor.includes("loss") ? "min" : "max"),
          }
          : undefined,
        keepEvery: t.keepEveryNSteps ?? undefined,
      },
      pins: () => {
        const best = bench && t.benchCompute.fullAtEnd
          ? bestCheckpoint(written, t.monitor, t.monitorMode)
          : null;
        return [...benchPins.keys(), ...(best ? [best.name] : [])];
      },
    },
  });
  const bench = t.benchSuites.length === 0 ? null : new BenchScheduler({
    mode: t.benchCompute.mode,
    suites: t.benchSuites,
    partialSubset: t.benchCompute.partialSubset,
    partialSeed: t.seed,
    catalog: data.catalog,
    catalogDir: config.data.catalogDir ?? undefined,
    run: config.name,
    inlineModel: (snap) =>
      liveBenchModel(trainer, config, snap.checkpointHash, DataLedger.fromJSON(ledger.toJSON())),
    onResult: (result, snapshot) => {
      releaseBenchPin(snapshot.checkpointDir, [result.suite_key]);
      const scores = Object.entries(result.metrics).filter(([k, v]) => !k.includes("/") && v.value !== null)
        .map(([k, v]) => `${k} ${v.value!.toFixed(3)} [${v.ci_low?.toFixed(3)}, ${v.ci_high?.toFixed(3)}]`)
        .join(", ");
      progress.note(
        `benchmark ${result.suite_key} at step ${
          result.step ?? "?"
        } (${result.windows_used}/${result.windows_total} windows): ${scores}`,
      );
    },
    onFailure: (f) => {
      releaseBenchPin(f.checkpointDir, f.suites);
      io.err(`warning: benchmark failed: ${f.message}`);
    },
  });
  const written: { info: CheckpointInfo; metrics: JsonObject }[] = [];
  let lastCheckpoint: CheckpointInfo | null = null;
  const latest: Record<string, number> = {};
  let lastVal: Record<string, number> = {};
  if (resumed) {
    // Metrics snapshots go on as if never interrupted (retention's best-k and the monitor read them).
    for (const [k, v] of Object.entries(numericEntries(resumed.state.metrics))) {
      if (k !== "step") (k.startsWith("val_") ? lastVal : latest)[k] = v;
    }
  }
  let draining = false;
  // Training metrics by step: a checkpoint's snapshot takes its own step's, not whatever step the loop has
  // logged meanwhile (checkpoints are built while the loop goes on).
  const stepMetrics = new Map<number, Record<string, number>>();
  const logMetrics = async (m: StepMetrics[]) => {
    for (const x of m) {
      // 16-mixed: the loss scale and skipped-step count. A step skipped by the grad scaler has a non-finite
      // gradient norm: metrics.jsonl shows null; checkpoints (JSON of finite numbers only) leave it out.
      const scaling: Record<string, number> = x.lossScale !== undefined
        ? { loss_scale: x.lossScale, skipped_steps: x.skippedSteps! }
        : {};
      const entry = {
        step: x.step + 1,
        loss: x.loss,
        grad_norm: x.gradNorm,
        lr: x.lr,
        ...scaling,
        time: Date.now() / 1000,
      };
      latest.loss = x.loss;
      latest.lr = x.lr;
      if (Number.isFinite(x.gradNorm)) latest.grad_norm = x.gradNorm;
      else delete latest.grad_norm;
      Object.assign(latest, scaling);
      stepMetrics.set(entry.step, {
        loss: x.loss,
        ...(Number.isFinite(x.gradNorm) ? { grad_norm: x.gradNorm } : {}),
        lr: x.lr,
        ...scaling,
      });
      if (stepMetrics.size > 4096) stepMetrics.delete(stepMetrics.keys().next().value!);
      await metricsLog.append(entry);
      progress.step(x.step + 1, x.loss, x.lr);
      loggedThrough = entry.step;
      for (let i = logWaiters.length - 1; i >= 0; i--) {
        if (logWaiters[i].step <= loggedThrough) logWaiters.splice(i, 1)[0].resolve();
      }
    }
  };
  // Steps whose training metrics are logged, and checkpoints waiting for theirs (see `checkpoint`).
  let loggedThrough = trainer.step;
  const logWaiters: { step: number; resolve: () => void }[] = [];
  const untilLogged = (step: number): Promise<void> => {
    if (loggedThrough >= step) return Promise.resolve();
    return new Promise((resolve) => logWaiters.push({ step, resolve }));
  };
  const drainReady = async () => {
    if (!draining) await logMetrics(trainer.takeReadyMetrics());
  };

  let stop: string | null = null;
  const onSignal = (name: string) => () => {
    if (!stop) io.err(`\n${name}: finishing step ${trainer.step + 1}, writing a checkpoint, then exiting`);
    stop = name;
  };
  const sigint = onSignal("SIGINT");
  const sigterm = onSignal("SIGTERM");
  let signals = false;
  try {
    Deno.addSignalListener("SIGINT", sigint);
    Deno.addSignalListener("SIGTERM", sigterm);
    signals = true;
  } catch { /* signals unsupported here (tests on restricted runtimes) */ }

  const snapshotHosts: SnapshotHost[] = []; // free host memory for checkpoint snapshots
  const checkpoint = async (status: RunStatus) => {
    const step = trainer.step;
    if (!isWriter) {
      // Every rank's state is derivable from the shared checkpoint (same weights, same global cursor);
      // rank 0 writes distributed/rank<i>.json for all. This rank only takes part in the commit.
      await logMetrics(await trainer.flushMetrics());
      await dist!.reportCheckpointPart(step);
      await dist!.waitCheckpointCommitted(step);
      return;
    }
    // A checkpoint taken while training goes on adds no submit of its own (an extra submit makes this thread
    // wait for the GPU): its copies and the metrics read-back ride in the next step's command buffer.
    const submit = status !== "running";
    // The state lands in reused shared memory (no page faults on the training thread, read in place by the
    // writer thread), free again once the writer has settled this checkpoint.
    const host = snapshotHosts.pop() ?? trainer.createSnapshotHost();
    const snapshot = trainer.snapshot({ submit, into: host });
    try {
      await checkpointFrom(status, step, snapshot, submit);
    } finally {
      await snapshot.catch(() => {}); // never hand out memory a read-back may still write
      snapshotHosts.push(host);
    }
  };
  const checkpointFrom = async (
    status: RunStatus,
    step: number,
    snapshot: Promise<TrainerSnapshot>,
    submit: boolean,
  ) => {
    const cursorNow = trainedCursor;
    const ledgerNow = ledger.toJSON();
    const valNow = { ...lastVal };
    if (status === "running") {
      // The step's metrics arrive with the loop's regular read-back: an extra read-back here would make a
      // later submit wait for the GPU queue to drain and leave the GPU idle while the next step is recorded
      // (measured on an H200: 2.5 ms per checkpoint vs 1.1 ms; docs/checkpoints.md).
      await untilLogged(step);
    } else {
      draining = true;
      try {
        await logMetrics(await trainer.flushMetrics({ submit }));
      } finally {
        draining = false;
      }
    }
    const snap = await snapshot;
    const tensors = checkpointTensors(snap, shapes);
    const metrics: JsonObject = { step, ...(stepMetrics.get(step) ?? latest), ...valNow };
    const state: CheckpointState = {
      config: JSON.parse(req.serializedConfig),
      model: {
        weights: tensors.weights,
        ema: tensors.ema,
        metadata: {
          vocabulary_channels: JSON.stringify(data.vocab.channels),
          vocabulary_sessions: JSON.stringify(data.vocab.sessions),
          modalities: JSON.stringify(data.vocab.modalities),
          kwargs: canonicalJson(data.kwargs), // key order differs between a TS config and config.json
        },
      },
      optimizer: {
        tensors: tensors.optimizer,
        state: {
          step: snap.optimizer.step,
          kind: trainer.optimizer.settings.kind,
          groups: [
            { name: "sparse", params: ["unit_emb.weight", "session_emb.weight"] },
            {
              name: "dense",
              params: trainer.model.params.slots.map((s) => s.name).filter((n) => !n.includes("_emb.")),
            },
          ],
          settings: { ...trainer.optimizer.settings, emaDecay: trainer.optimizer.settings.emaDecay ?? null },
        },
      },
      scheduler: { kind: t.scheduler, step, lr: t.lr, totalSteps: t.maxSteps, warmupSteps: t.warmupSteps },
      ...(snap.gradScaler
        ? { gradScaler: { ...snap.gradScaler, ...trainer.gradScaler!.settings } as unknown as JsonObject }
        : {}),
      rng: {
        cpu: {
          generator: "philox4x32-10",
          key: [t.seed],
          counter: step,
          note: "dropout masks are keyed by (seed, step, rank, site)",
        },
        gpu: [{
          generator: "philox4x32-10",
          seed: t.seed,
          step,
          rank,
          adapter: gpu.description as unknown as JsonObject,
        }],
      },
      dataloader: {
        cursor: cursorNow as unknown as JsonObject,
        batchSize: t.batchSize,
        worldSize,
        split: "train",
      },
      distributed: worldSize > 1
        ? Array.from({ length: worldSize }, (_, r) => ({
          rank: r,
          worldSize,
          cursor: cursorNow as unknown as JsonObject,
          dropout: { generator: "philox4x32-10", seed: t.seed, step, rank: r },
        }))
        : undefined,
      dataHashes: ledgerNow as unknown as JsonObject,
      metrics,
      benchmarks: bench?.takeCheckpointBenchmarks(),
      lineage: checkpointLineage(config.initFrom?.run ?? null, step, stageLineage),
    };
    if (bench && t.benchEveryNSteps !== null && step % t.benchEveryNSteps === 0 && status === "running") {
      benchPins.set(checkpointDirName(step), new Set(t.benchSuites)); // pinned before retention can run
    }
    try {
      const info = await writer.submit(step, state);
      if (dist) {
        await dist.reportCheckpointPart(step);
        await dist.waitCheckpointCommitted(step);
      }
      lastCheckpoint = info;
      written.push({ info, metrics });
      if (bench && t.benchEveryNSteps !== null && step % t.benchEveryNSteps === 0 && status === "running") {
        bench.submit({ step, checkpointDir: info.dir, checkpointHash: info.hash });
      }
      await recordRun({
        name: config.name,
        status,
        step,
        configHash: req.configHash,
        checkpoint: info,
      });
      await registerRunInCatalog(data.catalog, config, req.configHash, runDir, status, step, info, metrics);
    } catch (e) {
      if (!(e instanceof CheckpointSupersededError)) throw e;
    }
  };

  const validate = async () => {
    if (valBatches.length === 0) return;
    const r = await trainer.evaluate(valBatches.map((b) => b.batch));
    lastVal = { val_loss: r.loss, val_accuracy: r.accuracy };
    await metricsLog.append({
      step: trainer.step,
      val_loss: r.loss,
      val_accuracy: r.accuracy,
      time: Date.now() / 1000,
    });
    progress.note(
      `step ${trainer.step}: val_loss ${r.loss.toFixed(4)}, val_accuracy ${(100 * r.accuracy).toFixed(1)}%`,
    );
  };

  if (isWriter) {
    await recordRun({
      name: config.name,
      status: "running",
      step: trainer.step,
      configHash: req.configHash,
      checkpoint: null,
    });
  }
  let status: RunStatus = "running";
  const startStep = trainer.step;
  progress.start(startStep);
  const pendingCheckpoints: Promise<void>[] = [];
  // The first steps compile every GPU pipeline synchronously (seconds on an H200 for the seed size), so this
  // rank sends no heartbeat meanwhile: announce it, and end the announcement once the step replays.
  let busy = dist !== null;
  // A synced step is handed the next step's batches too, to upload them while its backward ends
  // (`Trainer.trainStep`'s `next`). Those are taken from the loader a step early, so a checkpoint records the
  // cursor after the batches trained so far (`trainedCursor`), and the ledger counts a batch when trained.
  const lookAhead = dist !== null;
  const takeStepBatches = async () => {
    const batches: PoyoBatch[] = [];
    for (let i = 0; i < t.accumulateGradBatches; i++) batches.push(await loader.next());
    return { batches, cursor: loader.cursor() };
  };
  /** Whether the loop runs step `step` (unless stopped). */
  const runsStep = (step: number) =>
    step < t.maxSteps && (req.stopAfterSteps === undefined || step - startStep < req.stopAfterSteps);
  let upcoming: Awaited<ReturnType<typeof takeStepBatches>> | null = null;
  try {
    if (dist) await dist.announceBusy(FIRST_STEPS_BUSY_MS, "compiling GPU pipelines in the first steps");
    while (runsStep(trainer.step)) {
      if (stop) break;
      const current = upcoming ?? await takeStepBatches();
      upcoming = null;
      for (const b of current.batches) ledger.addBatch(b);
      if (lookAhead && runsStep(trainer.step + 1)) upcoming = await takeStepBatches();
      await trainer.trainStep(current.batches, upcoming ? { next: upcoming.batches } : {});
      trainedCursor = current.cursor;
      // Uploaded (queue.writeBuffer copies): the slots are free.
      for (const b of current.batches) loader.release(b);
      if (busy && (trainer.lastStepReplayed || trainer.step - startStep >= FIRST_STEPS_BUSY_STEPS)) {
        busy = false;
        await dist!.announceBusy(0, "");
      }
      if (trainer.pendingReadbacks > 2) await logMetrics(await trainer.awaitOldest());
      await drainReady();
      const step = trainer.step;
      if (t.valEveryNSteps !== null && step % t.valEveryNSteps === 0) await validate();
      const benchDue = bench !== null && t.benchEveryNSteps !== null && step % t.benchEveryNSteps === 0;
      if ((step % t.ckptEveryNSteps === 0 || benchDue) && step < t.maxSteps) {
        pendingCheckpoints.push(checkpoint("running"));
      }
    }
    // Taken ahead for a step that will not run (the loop stopped): not trained, not in the cursor.
    for (const b of upcoming?.batches ?? []) loader.release(b);
    if (trainer.step >= t.maxSteps) {
      if (t.valEveryNSteps !== null && trainer.step % t.valEveryNSteps !== 0) await validate();
      status = "finished";
    } else status = "interrupted";
    // The copies of a checkpoint no step followed (the loop stopped right after it), and the metrics that
    // checkpoints still wait for.
    await logMetrics(await trainer.flushMetrics());
    await Promise.all(pendingCheckpoints);
    const last = lastCheckpoint as CheckpointInfo | null;
    if (last && last.step === trainer.step) {
      // The step's checkpoint is already written (a cadence step): record the final status only.
      if (isWriter) {
        await recordRun({
          name: config.name,
          status,
          step: trainer.step,
          configHash: req.configHash,
          checkpoint: last,
        });
        await registerRunInCatalog(
          data.catalog,
          config,
          req.configHash,
          runDir,
          status,
          trainer.step,
          last,
          written.at(-1)!.metrics,
        );
      }
    } else await checkpoint(status);
    await writer.flush();
    if (bench) {
      if (status === "finished" && lastCheckpoint && t.benchCompute.fullAtEnd) {
        const last = lastCheckpoint as CheckpointInfo;
        const best = bestCheckpoint(written, t.monitor, t.monitorMode);
        progress.note(
          `final evaluation of ${last.name}${
            best && best.hash !== last.hash ? ` and the best checkpoint ${best.name}` : ""
          }`,
        );
        await bench.submitFinal(
          { step: last.step, checkpointDir: last.dir, checkpointHash: last.hash, final: true },
          best && best.hash !== last.hash
            ? { step: best.step, checkpointDir: best.dir, checkpointHash: best.hash, final: true }
            : null,
        );
      }
      await bench.drain();
      await bench.close();
    }
  } catch (e) {
    status = "failed";
    if (isWriter) {
      await recordRun({
        name: config.name,
        status,
        step: trainer.step,
        configHash: req.configHash,
        checkpoint: lastCheckpoint,
      }).catch(() => {});
    }
    throw e;
  } finally {
    if (signals) {
      Deno.removeSignalListener("SIGINT", sigint);
      Deno.removeSignalListener("SIGTERM", sigterm);
    }
    await metricsLog.close();
    progress.done();
    if (!req.gpu) gpu.destroy();
  }
  if (isWriter) await writeRunReport(runDir).catch((e) => io.err(`warning: report.html not written: ${e}`));
  io.out(
    `${status === "finished" ? "finished" : "stopped"} ${config.name} at step ${trainer.step}` +
      (lastCheckpoint ? ` — checkpoint ${(lastCheckpoint as CheckpointInfo).dir}` : "") +
      (lastVal.val_accuracy !== undefined
        ? `, val_accuracy ${(100 * lastVal.val_accuracy).toFixed(1)}%`
        : ""),
  );
  return { status, step: trainer.step, lastCheckpoint, finalMetrics: { ...latest, ...lastVal } };
}

/** The numeric entries of a metrics snapshot. */
function numericEntries(metrics: JsonObject): Record<string, number> {
  return Object.fromEntries(
    Object.entries(metrics).filter((e): e is [string, number] => typeof e[1] === "number"),
  );
}

/** A loaded checkpoint described as the writer describes what it wrote. */
function checkpointInfoOf(c: LoadedCheckpoint): CheckpointInfo {
  return {
    dir: c.dir,
    name: c.name,
    step: c.step,
    hash: c.hash,
    parentHash: c.manifest.parentHash,
    bytes: c.manifest.files.reduce((n, f) => n + f.bytes, 0),
    files: c.manifest.files.length + 1,
    durationMs: 0,
    alreadyExisted: true,
  };
}

/** The checkpoint with the best monitored metric (null when no checkpoint has it). */
function bestCheckpoint(
  written: { info: CheckpointInfo; metrics: JsonObject }[],
  monitor: string | null,
  mode: "min" | "max" | null,
): CheckpointInfo | null {
  if (!monitor) return null;
  const key = monitor.replace(/^val_/, "val_");
  const dir = mode ?? (key.includes("loss") ? "min" : "max");
  let best: { info: CheckpointInfo; v: number } | null = null;
  for (const w of written) {
    const v = w.metrics[key];
    if (typeof v !== "number") continue;
    if (!best || (dir === "min" ? v < best.v : v > best.v)) best = { info: w.info, v };
  }
  return best?.info ?? null;
}

async function collect<T>(it: AsyncIterable<T> | Iterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The vocabularies stored in a checkpoint's weights metadata. */
export function vocabOf(ckpt: LoadedCheckpoint): { channels: string[]; sessions: string[] } | null {
  const meta = ckpt.state.model.metadata;
  if (!meta?.vocabulary_channels || !meta.vocabulary_sessions) return null;
  return { channels: JSON.parse(meta.vocabulary_channels), sessions: JSON.parse(meta.vocabulary_sessions) };
}

/** The trainer snapshot held by a checkpoint. */
export function snapshotOf(ckpt: LoadedCheckpoint): TrainerSnapshot {
  const s = ckpt.state;
  const moments = namedFrom(s.optimizer.tensors);
  const expAvg = new Map<string, Float32Array>();
  const expAvgSq = new Map<string, Float32Array>();
  for (const [k, v] of moments) {
    if (k.startsWith("exp_avg_sq.")) expAvgSq.set(k.slice("exp_avg_sq.".length), v);
    else if (k.startsWith("exp_avg.")) expAvg.set(k.slice("exp_avg.".length), v);
  }
  return {
    step: ckpt.step,
    weights: namedFrom(s.model.weights),
    optimizer: {
      step: Number(s.optimizer.state.step),
      expAvg,
      expAvgSq,
      ema: s.model.ema ? namedFrom(s.model.ema) : null,
    },
    ...(s.gradScaler
      ? { gradScaler: parseGradScalerState(s.gradScaler, `${ckpt.dir}/grad_scaler/state.json`) }
      : {}),
  };
}

/**
 * Loads parent weights into a model whose vocabularies may differ: embedding rows move by word (a row
 * trained for word w goes to w's index in the new vocabulary; words new to this run keep their fresh
 * initialisation). Every other parameter is taken as is.
 */
export function remapVocabularyRows(
  weights: Map<string, Float32Array>,
  from: { channels: string[]; sessions: string[] },
  to: { channels: string[]; sessions: string[] },
  fresh: Map<string, Float32Array>,
  slots: readonly { name: string; rowWidth: number }[],
): Map<string, Float32Array> {
  const out = new Map(weights);
  const remap = (name: string, oldWords: string[], newWords: string[]) => {
    const w = weights.get(name);
    const init = fresh.get(name);
    const slot = slots.find((s) => s.name === name);
    if (!w || !init || !slot) return;
    const width = slot.rowWidth;
    const table = Float32Array.from(init);
    const index = new Map(newWords.map((word, i) => [word, i]));
    oldWords.forEach((word, i) => {
      const j = index.get(word);
      if (j !== undefined && (i + 1) * width <= w.length) {
        table.set(w.subarray(i * width, (i + 1) * width), j * width);
      }
    });
    out.set(name, table);
  };
  remap("unit_emb.weight", from.channels, to.channels);
  remap("session_emb.weight", from.sessions, to.sessions);
  return out;
}
