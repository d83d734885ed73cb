/**
 * Pre-flight of a whole pipeline before stage 1 starts. It runs `preflightTrainingPipeline` (every stage's
 * config, data, memory, disk, and that each `initFrom` names an earlier stage or an existing run) through a
 * context that knows which stage directories are this pipeline's own earlier attempts, then adds what only a
 * pipeline can check:
 *
 * - per stage, the plan (run / skip / resume / conflict, see `stage_plan.ts`): a finished or interrupted
 *   attempt of the same stage is not a "name taken" error, a directory holding another run is;
 * - per fine-tuning stage, that `initFrom.weightOverrides` prefixes match real parameter names, every other
 *   parameter loads with a matching shape from the source's model (mismatches listed, e.g. after a changed
 *   `dim`), and the checkpoint selector can be satisfied (`"best"` needs a recorded monitor, a step needs a
 *   checkpoint written at that step, a hash needs the source on disk).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { rawConfigOf } from "../config/config_builder.ts";
import {
  formatPipelinePreflightReport,
  type PipelinePreflightReport,
  type PreflightCheck,
  type PreflightContext,
  type PreflightReport,
  preflightTrainingPipeline,
} from "../config/preflight.ts";
import { errorsOf, type Problem, problem } from "../config/problem.ts";
import { type RunConfig, RunConfigSchema } from "../config/run_config.ts";
import { parseSerializedRunConfig, RUN_CONFIG_FILE } from "../config/serialize_config.ts";
import { checkpointCandidates, pickCheckpoint } from "./checkpoint_selection.ts";
import { planStage, recordedInitCheckpoint, type StagePlan } from "./stage_plan.ts";
import {
  configParameterShapes,
  describeMismatches,
  droppedParameters,
  kwargDifferences,
  parameterPrefixes,
  prefixesCovering,
  unknownOverrides,
  weightMismatches,
} from "./weight_compatibility.ts";

/** A pipeline pre-flight report with the plan of each stage (null where the stage's config is invalid). */
export interface PipelinePreflight extends PipelinePreflightReport {
  plans: (StagePlan | null)[];
}

/** Where a fine-tuning stage's weights come from. */
export interface InitSource {
  /** Index of the source stage in this pipeline, or null for a run outside it. */
  stage: number | null;
  /** Source run name. */
  run: string;
  /** Its run directory. */
  runDir: string;
  /** Its resolved config (null when an outside run's config.json cannot be read). */
  config: RunConfig | null;
}

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : {};
}

/** The resolved config of each raw stage (null where invalid). */
export function stageConfigs(input: unknown): (RunConfig | null)[] {
  const stages = obj(rawConfigOf(input)).stages;
  return (Array.isArray(stages) ? stages : []).map((s) => {
    const parsed = RunConfigSchema.safeParse(rawConfigOf(s));
    return parsed.success ? parsed.data as RunConfig : null;
  });
}

/**
 * The source of stage `index`'s `initFrom`: an earlier stage (its own run directory, whatever
 * `initFrom.runsDir` says) or a run outside the pipeline (`initFrom.runsDir`, resolved against `cwd`).
 */
export async function initSourceOf(
  configs: readonly (RunConfig | null)[],
  index: number,
  cwd: string,
): Promise<InitSource | null> {
  const config = configs[index];
  if (!config?.initFrom) return null;
  const run = config.initFrom.run;
  const stage = configs.findIndex((c, j) => j < index && c?.name === run);
  if (stage >= 0) {
    const source = configs[stage]!;
    return { stage, run, runDir: resolve(cwd, source.runsDir, run), config: source };
  }
  const runDir = resolve(cwd, config.initFrom.runsDir ?? config.runsDir, run);
  let sourceConfig: RunConfig | null = null;
  try {
    sourceConfig = parseSerializedRunConfig(
      await Deno.readTextFile(join(runDir, RUN_CONFIG_FILE)),
      join(runDir, RUN_CONFIG_FILE),
    );
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
  }
  return { stage: null, run, runDir, config: sourceConfig };
}

/** Checkpoint steps a run with these settings writes (cadence multiples, and the final step). */
function writtenSteps(t: RunConfig["training"]): number[] {
  const steps: number[] = [];
  for (let s = t.ckptEveryNSteps; s < t.maxSteps; s += t.ckptEveryNSteps) steps.push(s);
  steps.push(t.maxSteps);
  return steps;
}

/** Problems of stage `index`'s `initFrom` (weights and checkpoint selector), and a one-line summary. */
export async function initFromProblems(
  configs: readonly (RunConfig | null)[],
  plans: readonly (StagePlan | null)[],
  index: number,
  cwd: string,
): Promise<{ problems: Problem[]; detail: string } | null> {
  const config = configs[index];
  const initFrom = config?.initFrom;
  if (!config || !initFrom) return null;
  const source = await initSourceOf(configs, index, cwd);
  if (!source) return null;
  const at = (field: string) => `stages.${index}.initFrom${field ? `.${field}` : ""}`;
  const problems: Problem[] = [];
  const details: string[] = [
    source.stage !== null ? `source stage ${source.stage} (${source.run})` : `source run ${source.run}`,
  ];
  const sourceName = source.stage !== null ? `stage ${source.stage} (${source.run})` : `run ${source.run}`;

  // Weights: override prefixes and shapes.
  const child = configParameterShapes(config);
  const parent = source.config ? configParameterShapes(source.config) : null;
  if (!child) details.push(`weights not checked (${config.model.cls.modelName} has no parameter listing)`);
  else {
    for (const u of unknownOverrides(child.keys(), initFrom.weightOverrides)) {
      problems.push(problem(
        at(`weightOverrides.${u.index}`),
        u.prefix,
        `Cannot re-initialise weights under ${
          JSON.stringify(u.prefix)
        } in stage ${index} (${config.name}) as no parameter is named so: current value is ${
          JSON.stringify(u.prefix)
        }`,
        `use parameter-name prefixes such as ${parameterPrefixes(child.keys()).join(", ")}${
          u.nearest.length ? ` (names starting with it: ${u.nearest.join(", ")})` : ""
        }`,
      ));
    }
    if (!parent) {
      details.push(
        source.config
          ? "source weights not checked (not POYO)"
          : "source config unreadable: shapes not checked",
      );
    } else {
      const mismatches = weightMismatches(child, parent, initFrom.weightOverrides);
      if (mismatches.length > 0) {
        const kw = kwargDifferences(
          source.config!.model.kwargs as Record<string, unknown>,
          config.model.kwargs as Record<string, unknown>,
        );
        problems.push(problem(
          at("weightOverrides"),
          initFrom.weightOverrides,
          `Cannot load ${mismatches.length} parameter(s) of stage ${index} (${config.name}) from ${sourceName} as their shapes differ${
            kw.length ? ` (model.kwargs ${kw.join(", ")})` : ""
          }: ${describeMismatches(mismatches)}`,
          `keep model.kwargs and modalities equal to the source's, or add ${
            prefixesCovering(mismatches).map((p) => JSON.stringify(p)).join(", ")
          } to initFrom.weightOverrides to initialise them fresh`,
        ));
      }
      const dropped = droppedParameters(child, parent);
      if (dropped.length > 0) {
        problems.push(problem(
          at("run"),
          initFrom.run,
          `Cannot use ${dropped.length} parameter(s) of ${sourceName} in stage ${index} (${config.name}) as it has no such parameters: ${
            dropped.slice(0, 6).join(", ")
          }${dropped.length > 6 ? `, and ${dropped.length - 6} more` : ""}`,
          "nothing to do when intended (e.g. fewer layers or modalities): they are not loaded",
          "warning",
        ));
      }
      const loaded = [...child.keys()].filter((n) =>
        !initFrom.weightOverrides.some((p) =>
          n === p || n.startsWith(`${p}.`)
        )
      )
        .length;
      details.push(`${loaded}/${child.size} parameters load, ${child.size - loaded} fresh`);
    }
  }

  // Checkpoint selector.
  const selector = initFrom.checkpoint;
  const src = source.config;
  const sourcePlan = source.stage !== null ? plans[source.stage] : null;
  const onDisk = source.stage === null || sourcePlan?.action === "skip";
  const childPlan = plans[index];
  const recorded = childPlan && (childPlan.action === "skip" || childPlan.action === "resume")
    ? await recordedInitCheckpoint(childPlan.runDir)
    : null;
  if (recorded !== null && !onDisk) {
    problems.push(problem(
      at("run"),
      initFrom.run,
      `Cannot continue stage ${index} (${config.name}) from its checkpoints as ${sourceName} will train again (${sourcePlan?.detail}), so the checkpoint it started from (${
        recorded.slice(0, 12)
      }) is not the source's any more`,
      `move ${childPlan!.runDir} away so that it retrains from the new source`,
    ));
  }
  const monitor = src ? { monitor: src.training.monitor, monitorMode: src.training.monitorMode } : null;
  if (onDisk && !(selector === "best" && monitor?.monitor.includes("/"))) {
    const candidates = await checkpointCandidates(source.runDir);
    if (candidates.length > 0 || source.stage !== null) {
      try {
        const { candidate, reason } = await pickCheckpoint(candidates, selector, {
          run: source.run,
          monitor,
        });
        details.push(`checkpoint: ${reason}`);
        const picked = candidate.manifest!.checkpointHash;
        if (recorded !== null && recorded !== picked) {
          problems.push(problem(
            at("checkpoint"),
            selector,
            `Cannot continue stage ${index} (${config.name}) as it was initialised from checkpoint ${
              recorded.slice(0, 12)
            } of ${sourceName} but initFrom now selects ${picked.slice(0, 12)} (${reason})`,
            `move ${
              plans[index]!.runDir
            } away to retrain it from the new checkpoint, or select the old one by hash`,
          ));
        }
      } catch (e) {
        problems.push(problem(
          at("checkpoint"),
          selector,
          (e as Error).message,
          'select "best", "last", or one of the steps/hashes listed',
        ));
      }
    }
  } else if (src) {
    const t = src.training;
    if (selector === "best") {
      if (t.monitor === "val_loss" && t.valEveryNSteps === null) {
        problems.push(problem(
          at("checkpoint"),
          selector,
          `Cannot select the best checkpoint of ${sourceName} by val_loss as it never validates: its training.valEveryNSteps is null`,
          `set training.valEveryNSteps on ${source.run}, or select "last"`,
        ));
      } else if (t.keepBestK === 0) {
        problems.push(problem(
          at("checkpoint"),
          selector,
          `Cannot guarantee the best checkpoint of ${sourceName} by ${t.monitor} survives as its training.keepBestK is 0: the best among the retained ones is used`,
          `set training.keepBestK ≥ 1 on ${source.run}`,
          "warning",
        ));
      }
      details.push(`checkpoint: best by ${t.monitor}`);
    } else if (selector === "last") details.push("checkpoint: last");
    else if (typeof selector === "number") {
      const steps = writtenSteps(t);
      if (!steps.includes(selector)) {
        problems.push(problem(
          at("checkpoint"),
          selector,
          `Cannot start from step ${selector} of ${sourceName} as it writes no checkpoint at that step: it writes checkpoints every ${t.ckptEveryNSteps} steps up to maxSteps ${t.maxSteps}`,
          `select a multiple of ${t.ckptEveryNSteps} up to ${t.maxSteps}, "best" or "last"`,
        ));
      } else {
        const kept = selector === t.maxSteps || steps.slice(-t.keepLastK).includes(selector) ||
          (t.keepEveryNSteps !== null && selector % t.keepEveryNSteps === 0);
        if (!kept) {
          problems.push(problem(
            at("checkpoint"),
            selector,
            `Cannot guarantee the checkpoint at step ${selector} of ${sourceName} survives as retention keeps only the last ${t.keepLastK} (and the best ${t.keepBestK})`,
            `set training.keepEveryNSteps on ${source.run} to a divisor of ${selector}`,
            "warning",
          ));
        }
        details.push(`checkpoint: step ${selector}`);
      }
    } else {
      problems.push(problem(
        at("checkpoint"),
        selector,
        `Cannot select checkpoint ${selector} of ${sourceName} before that stage has run: no checkpoint hash is known yet`,
        'select "best", "last" or a step number (hashes name checkpoints of finished runs)',
      ));
    }
  }
  return { problems, detail: details.join("; ") };
}

function setCheck(
  report: PreflightReport,
  name: PreflightCheck["name"],
  status: PreflightCheck["status"],
  detail: string,
) {
  const existing = report.checks.find((c) => c.name === name);
  if (existing) Object.assign(existing, { status, detail });
  else report.checks.push({ name, status, detail });
}

/**
 * Pre-flight of a pipeline (see the module documentation). `context` is the usual pre-flight context
 * (`defaultPreflightContext()` for the real environment).
 *
 * @example
 * ```ts
 * import { preflightPipeline } from "./pipeline_preflight.ts";
 * import { defaultPreflightContext } from "../config/preflight_environment.ts";
 * const report = await preflightPipeline(pipeline, defaultPreflightContext({ cwd: Deno.cwd() }));
 * if (!report.ok) console.error(formatPipelinePreflight(report));
 * ```
 */
export async function preflightPipeline(
  input: unknown,
  context: PreflightContext = {},
): Promise<PipelinePreflight> {
  const cwd = context.cwd ?? Deno.cwd();
  const configs = stageConfigs(input);
  const plans = await Promise.all(configs.map((c) => c ? planStage(c, cwd) : null));
  const own = (name: string, runsDir: string) => {
    const dir = resolve(runsDir, name);
    return plans.find((p) => p !== null && p.action !== "run" && p.runDir === dir);
  };
  const baseRunExists = context.runExists;
  const report = await preflightTrainingPipeline(input, {
    ...context,
    runExists: baseRunExists &&
      (async (name, runsDir) => own(name, runsDir) ? false : await baseRunExists(name, runsDir)),
  });
  for (let i = 0; i < report.stages.length; i++) {
    const stage = report.stages[i];
    const plan = plans[i];
    if (plan && plan.action !== "run") {
      if (plan.action === "conflict") {
        stage.problems.push(problem(
          `stages.${i}.name`,
          plan.name,
          `Cannot run stage ${i} (${plan.name}) as ${plan.detail}: a pipeline never overwrites another run`,
          "rename the stage (a new run), move the old run directory away, or restore the stage's config to the one it ran with",
        ));
      }
      setCheck(stage, "run-name", plan.action === "conflict" ? "failed" : "ok", plan.detail);
    }
    const init = await initFromProblems(configs, plans, i, cwd);
    if (init) {
      stage.problems.push(...init.problems);
      const failed = errorsOf(init.problems).length > 0;
      const prior = stage.checks.find((c) => c.name === "init-from");
      setCheck(
        stage,
        "init-from",
        failed || prior?.status === "failed" ? "failed" : init.problems.length ? "warning" : "ok",
        [prior?.status === "failed" ? prior.detail : "", init.detail].filter((s) => s).join("; "),
      );
    }
    stage.problems = [...errorsOf(stage.problems), ...stage.problems.filter((p) => p.severity !== "error")];
    stage.ok = errorsOf(stage.problems).length === 0;
  }
  report.ok = errorsOf(report.problems).length === 0 && report.stages.every((s) => s.ok);
  return { ...report, plans };
}

/** Formats a pipeline pre-flight: the stage reports, then what each stage will do. */
export function formatPipelinePreflight(report: PipelinePreflight): string {
  const lines = [formatPipelinePreflightReport(report), "  plan:"];
  const width = Math.max(0, ...report.plans.map((p) => p?.name.length ?? 0));
  report.plans.forEach((p, i) => {
    lines.push(
      `    ${i}. ${p ? `${p.name.padEnd(width)}  ${p.action.padEnd(8)} ${p.detail}` : "(invalid config)"}`,
    );
  });
  return lines.join("\n");
}
