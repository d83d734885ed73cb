/**
 * Runs a `TrainingPipeline`'s stages in order, resumably: a stage already finished with the same config is
 * skipped, an interrupted one resumes from its latest valid checkpoint, a new one starts — from fresh weights,
 * or (with `initFrom`) from the selected checkpoint of its source run: weights by name with embedding rows
 * moved by word, `weightOverrides` kept at their fresh initialisation, vocabularies extended, and the
 * lineage (ancestors, cumulative steps, the ancestors' data ledger) recorded through `RunRequest.lineage`.
 *
 * @module
 */
import type { CliIO } from "../cli/cli_io.ts";
import type { TrainingPipeline } from "../config/training_pipeline.ts";
import type { RunConfig } from "../config/run_config.ts";
import { configHash, serializeConfig } from "../config/serialize_config.ts";
import type { Gpu } from "../gpu/gpu.ts";
import { openCatalog } from "../ursa/catalog.ts";
import type { RunStatus } from "../train/run_record.ts";
import { type RunRequest, runTraining, snapshotOf, vocabOf } from "../train/train_run.ts";
import { checkpointCandidates, pickCheckpoint } from "./checkpoint_selection.ts";
import { type InitSource, initSourceOf } from "./pipeline_preflight.ts";
import { readCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { childLineage, type StageLineage } from "./stage_lineage.ts";
import { planStage, recordedInitCheckpoint } from "./stage_plan.ts";
import { configParameterShapes, describeMismatches, weightMismatches } from "./weight_compatibility.ts";

/** Options of {@link runPipeline}. */
export interface PipelineRunOptions {
  /** Directory `runsDir` resolves against. */
  cwd: string;
  io: CliIO;
  /** Use this GPU for every stage instead of acquiring one per stage (tests). */
  gpu?: Gpu;
  /** Stop a stage after this many steps in this process, by stage name (tests of interruption). */
  stopAfterSteps?: Record<string, number>;
}

/** What happened to one stage. */
export interface StageOutcome {
  name: string;
  action: "skipped" | "trained" | "resumed";
  status: RunStatus;
  step: number;
  /** Directory of the stage's last checkpoint (null when skipped). */
  checkpointDir: string | null;
  /** For stages with `initFrom`: the checkpoint loaded and why it was chosen. */
  initFrom: { run: string; checkpointHash: string; step: number; reason: string } | null;
}

/** The outcome of a pipeline run. */
export interface PipelineResult {
  /** "finished" when every stage finished; "interrupted" when a stage stopped early (rerun to resume). */
  status: "finished" | "interrupted";
  stages: StageOutcome[];
}

/**
 * The checkpoint stage `index`'s `initFrom` selects now (by manifests, metrics and benchmark results; no
 * tensors read), or null without `initFrom`.
 */
export async function pickInitCheckpoint(
  stages: readonly RunConfig[],
  index: number,
  cwd: string,
): Promise<{ source: InitSource; dir: string; hash: string; reason: string } | null> {
  const initFrom = stages[index].initFrom;
  if (!initFrom) return null;
  const source = (await initSourceOf(stages, index, cwd))!;
  const monitor = source.config
    ? { monitor: source.config.training.monitor, monitorMode: source.config.training.monitorMode }
    : null;
  const catalog = monitor?.monitor.includes("/")
    ? await openCatalog(source.config?.data.catalogDir ?? undefined)
    : undefined;
  try {
    const { candidate, reason } = await pickCheckpoint(
      await checkpointCandidates(source.runDir),
      initFrom.checkpoint,
      { run: source.run, monitor, catalog },
    );
    return { source, dir: candidate.dir, hash: candidate.manifest!.checkpointHash, reason };
  } finally {
    catalog?.close();
  }
}

/** The initial weights and lineage of stage `index` (null without `initFrom`). */
export async function stageInit(
  stages: readonly RunConfig[],
  index: number,
  cwd: string,
  pipeline: string | null,
): Promise<
  { init: NonNullable<RunRequest["init"]>; lineage: StageLineage; source: StageOutcome["initFrom"] } | null
> {
  const config = stages[index];
  const initFrom = config.initFrom;
  const picked = await pickInitCheckpoint(stages, index, cwd);
  if (!initFrom || !picked) return null;
  const { source } = picked;
  const selected = { checkpoint: await readCheckpoint(picked.dir), reason: picked.reason };
  const ckpt = selected.checkpoint;
  const vocab = vocabOf(ckpt);
  if (!vocab) {
    throw new Error(
      `Cannot start ${config.name} from ${ckpt.dir} as its model/weights.safetensors records no vocabularies (metadata vocabulary_channels/vocabulary_sessions): current metadata keys are [${
        Object.keys(ckpt.state.model.metadata ?? {}).join(", ")
      }]`,
    );
  }
  const expected = configParameterShapes(config);
  if (expected) {
    const actual = new Map(Object.entries(ckpt.state.model.weights).map(([n, t]) => [n, t.shape]));
    const mismatches = weightMismatches(expected, actual, initFrom.weightOverrides);
    if (mismatches.length > 0) {
      throw new Error(
        `Cannot load ${mismatches.length} parameter(s) of ${config.name} from ${ckpt.dir} as their shapes differ: ${
          describeMismatches(mismatches)
        }; keep model.kwargs equal to the source's, or add their prefixes to initFrom.weightOverrides`,
      );
    }
  }
  return {
    init: { weights: snapshotOf(ckpt).weights, vocab, skip: initFrom.weightOverrides },
    lineage: childLineage(
      {
        run: source.run,
        checkpointHash: ckpt.hash,
        step: ckpt.step,
        lineage: ckpt.state.lineage,
        dataHashes: ckpt.state.dataHashes,
      },
      pipeline,
    ),
    source: { run: source.run, checkpointHash: ckpt.hash, step: ckpt.step, reason: selected.reason },
  };
}

/**
 * Runs the stages of a (pre-flighted) pipeline in order; see the module documentation. Returns when every
 * stage finished or when one stopped early (interrupted: rerunning resumes it).
 *
 * @throws when a stage's directory holds another run, a source checkpoint cannot be selected or loaded, or
 * training fails.
 * @example
 * ```ts
 * import { runPipeline } from "./pipeline_runner.ts";
 * import { consoleIO } from "../cli/cli_io.ts";
 * const result = await runPipeline(pipeline, { cwd: Deno.cwd(), io: consoleIO });
 * console.log(result.status, result.stages.map((s) => `${s.name}: ${s.action}`));
 * ```
 */
export async function runPipeline(
  pipeline: TrainingPipeline,
  options: PipelineRunOptions,
): Promise<PipelineResult> {
  const { io, cwd } = options;
  const stages = pipeline.stages as RunConfig[];
  const outcomes: StageOutcome[] = [];
  for (let i = 0; i < stages.length; i++) {
    const config = stages[i];
    const head = `pipeline ${pipeline.name}: stage ${i + 1}/${stages.length} ${config.name}`;
    const plan = await planStage(config, cwd);
    if (plan.action === "conflict") {
      throw new Error(
        `Cannot run stage ${i} (${config.name}) as ${plan.detail}: rename the stage, or move the old run directory away`,
      );
    }
    if (config.initFrom && plan.action !== "run") {
      // A stage trained from another checkpoint than its source selects now is stale, not resumable.
      const recorded = await recordedInitCheckpoint(plan.runDir);
      const picked = recorded === null ? null : await pickInitCheckpoint(stages, i, cwd);
      if (recorded !== null && picked && picked.hash !== recorded) {
        throw new Error(
          `Cannot ${plan.action} stage ${i} (${config.name}) as it was initialised from checkpoint ${
            recorded.slice(0, 12)
          } of ${config.initFrom.run} but initFrom now selects ${
            picked.hash.slice(0, 12)
          } (${picked.reason}): move ${plan.runDir} away to retrain it from the new checkpoint, or select the old one by hash`,
        );
      }
    }
    if (plan.action === "skip") {
      io.out(`${head}: ${plan.detail}`);
      outcomes.push({
        name: config.name,
        action: "skipped",
        status: "finished",
        step: plan.step,
        checkpointDir: null,
        initFrom: null,
      });
      continue;
    }
    io.out(`${head}: ${plan.detail}`);
    const start = await stageInit(stages, i, cwd, pipeline.name);
    if (start) {
      io.out(
        `  initialised from ${start.source!.run} checkpoint ${start.source!.checkpointHash.slice(0, 12)} (${
          start.source!.reason
        }); fresh: ${
          start.init.skip?.length ? start.init.skip.join(", ") : "none"
        }; ${start.lineage.initCheckpoint.stepsConsumed} steps behind it`,
      );
    }
    const result = await runTraining({
      config,
      serializedConfig: serializeConfig(config),
      configHash: configHash(config),
      runDir: plan.runDir,
      resumeFrom: plan.action === "resume" ? null : undefined,
      io: { out: (l) => io.out(l), err: (l) => io.err(l) },
      gpu: options.gpu,
      stopAfterSteps: options.stopAfterSteps?.[config.name],
      init: start?.init,
      lineage: start?.lineage,
    });
    outcomes.push({
      name: config.name,
      action: plan.action === "resume" ? "resumed" : "trained",
      status: result.status,
      step: result.step,
      checkpointDir: result.lastCheckpoint?.dir ?? null,
      initFrom: start?.source ?? null,
    });
    if (result.status !== "finished") {
      io.err(
        `${head}: stopped at step ${result.step} of ${config.training.maxSteps} (${result.status}); run the pipeline again to resume it`,
      );
      return { status: "interrupted", stages: outcomes };
    }
  }
  io.out(`pipeline ${pipeline.name}: all ${stages.length} stage(s) finished`);
  return { status: "finished", stages: outcomes };
}
