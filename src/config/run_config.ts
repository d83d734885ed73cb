/**
 * `RunConfig`: one training run, everything needed to reproduce it. Building one validates every field and
 * resolves every default, including those that depend on other sections (e.g. POYO `latentStep` from
 * `data.trainWindow`), so a valid `RunConfig` is the fully resolved config that is serialized into the run.
 *
 * @module
 */
import { z } from "zod";
import { buildConfig, parseConfig } from "./config_builder.ts";
import { type DataConfig, type DataConfigInput, DataConfigSchema } from "./data_config.ts";
import { type FinetuneFrom, type FinetuneFromInput, FinetuneFromSchema } from "./finetune_from.ts";
import { type InfraConfig, type InfraConfigInput, InfraConfigSchema } from "./infra_config.ts";
import {
  type ModelConfig,
  type ModelConfigInput,
  ModelConfigSchema,
  resolveModelClass,
} from "./model_config.ts";
import { modelConfigHooks } from "./model_config_hooks.ts";
import { RunNameSchema } from "./run_name.ts";
import { alwaysCheck } from "./schema_tools.ts";
import { type TrainingConfig, type TrainingConfigInput, TrainingConfigSchema } from "./training_config.ts";
import type { DeepUnbranded, SameShape } from "./config_shape.ts";
import type { ModelClass } from "../models/model_class.ts";

const RunConfigObject = z.strictObject({
  name: RunNameSchema.describe("run name: the directory <runsDir>/<name> holding the run record"),
  runsDir: z.string().min(1).default("runs").describe(
    "directory of run records (relative to the working directory)",
  ),
  data: DataConfigSchema.prefault({}).describe("data selection, windows and splits (see DataConfig)"),
  model: ModelConfigSchema.describe("model class and kwargs (see ModelConfig)"),
  training: TrainingConfigSchema.prefault({}).describe("optimisation and cadences (see TrainingConfig)"),
  infra: InfraConfigSchema.prefault({}).describe("where and on how many GPUs (see InfraConfig)"),
  initFrom: FinetuneFromSchema.nullable().default(null).describe(
    "start from another run's checkpoint (see FinetuneFrom); null = fresh initialization",
  ),
});

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : undefined;
}

const RunConfigChecked = alwaysCheck(RunConfigObject, (v, r) => {
  const run = obj(v);
  if (!run) return;
  const data = obj(run.data);
  const model = obj(run.model);
  const training = obj(run.training);
  const initFrom = obj(run.initFrom);
  const trainWindow = data?.trainWindow === undefined ? 10 : data.trainWindow;
  const cls = resolveModelClass(model?.cls);
  const kwargs = obj(model?.kwargs) ?? {};
  if (cls && typeof trainWindow === "number" && trainWindow > 0) {
    for (const p of modelConfigHooks(cls.modelName).windowProblems?.(kwargs, { trainWindow }) ?? []) {
      r.report(["model", "kwargs", ...p.path], p.message, p.fix);
    }
  }
  const trainingFreeze = training?.freezeUntilStep;
  const initFreeze = initFrom?.freezeUntilStep;
  if (!initFrom && typeof trainingFreeze === "number" && trainingFreeze > 0) {
    r.report(
      ["training", "freezeUntilStep"],
      `Cannot freeze loaded weights until step ${trainingFreeze} as the run has no initFrom, so nothing is loaded: current value is ${trainingFreeze}`,
      "set initFrom: FinetuneFrom({ run, checkpoint }) or training.freezeUntilStep to 0",
    );
  }
  if (
    typeof initFreeze === "number" && typeof trainingFreeze === "number" && trainingFreeze > 0 &&
    initFreeze !== trainingFreeze
  ) {
    r.report(
      ["initFrom", "freezeUntilStep"],
      `Cannot freeze until both step ${initFreeze} (initFrom.freezeUntilStep) and step ${trainingFreeze} (training.freezeUntilStep): current values disagree`,
      "set only one of initFrom.freezeUntilStep and training.freezeUntilStep",
    );
  }
  const source = typeof initFrom?.run === "string" ? initFrom.run : obj(initFrom?.run)?.name;
  if (source !== undefined && source === run.name) {
    r.report(
      ["initFrom", "run"],
      `Cannot fine-tune run ${JSON.stringify(run.name)} from itself: current value is ${
        JSON.stringify(source)
      }`,
      "name the source run, or use `orion resume` to continue this run",
    );
  }
});

/** The zod schema of {@link RunConfig}: every section, cross-section rules, and resolution of derived defaults. */
export const RunConfigSchema = RunConfigChecked.transform((v) => {
  const hooks = modelConfigHooks(v.model.cls.modelName);
  const kwargs = hooks.resolveKwargs?.(v.model.kwargs, { trainWindow: v.data.trainWindow }) ?? v.model.kwargs;
  const freezeUntilStep = v.initFrom?.freezeUntilStep ?? v.training.freezeUntilStep;
  return {
    ...v,
    model: { ...v.model, kwargs },
    training: { ...v.training, freezeUntilStep },
    initFrom: v.initFrom && { ...v.initFrom, runsDir: v.initFrom.runsDir ?? v.runsDir, freezeUntilStep },
  };
}).brand<"RunConfig">();

/** A run config as a user writes it (sections may be builder results or plain objects). */
export interface RunConfigInput {
  /** Run name: the directory <runsDir>/<name> holding the run record. */
  name: string;
  /** Directory of run records (relative to the working directory; default "runs"). */
  runsDir?: string;
  /** Data selection, windows and splits (see DataConfig). */
  data?: DataConfigInput;
  /** Model class and kwargs (see ModelConfig). */
  model: ModelConfigInput<ModelClass>;
  /** Optimisation and cadences (see TrainingConfig). */
  training?: TrainingConfigInput;
  /** Where and on how many GPUs (see InfraConfig). */
  infra?: InfraConfigInput;
  /** Start from another run's checkpoint (see FinetuneFrom); null = fresh initialization. */
  initFrom?: FinetuneFromInput | null;
}

/** A validated, fully resolved run config: every default filled in, model kwargs resolved by the class. */
export interface RunConfig {
  /** Run name: the directory <runsDir>/<name> holding the run record. */
  name: string;
  /** Directory of run records (relative to the working directory). */
  runsDir: string;
  /** Data selection, windows and splits. */
  data: DataConfig;
  /** Model class and resolved kwargs. */
  model: ModelConfig;
  /** Optimisation and cadences (`freezeUntilStep` resolved from initFrom). */
  training: TrainingConfig;
  /** Where and on how many GPUs. */
  infra: InfraConfig;
  /** The fine-tuning source with its runs directory and freeze step resolved, or null. */
  initFrom: (FinetuneFrom & { runsDir: string; freezeUntilStep: number }) | null;
}

const _runConfigMatchesSchema: [
  SameShape<DeepUnbranded<z.output<typeof RunConfigSchema>>, RunConfig>,
  SameShape<Omit<z.input<typeof RunConfigSchema>, "model">, Omit<RunConfigInput, "model">>,
] = [true, true];
/** Same as {@link RunConfig}: a valid run config is always fully resolved. */
export type ResolvedRunConfig = RunConfig;

/**
 * Validates a run config. When it is invalid, the result is a placeholder that reports every problem at once
 * when read or handed to {@link parseRunConfig} (so a config module with several mistakes shows all of them).
 *
 * @example
 * ```ts
 * import { RunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const run = RunConfig({ name: "demo", model: { cls: POYO, kwargs: { dim: 64, depth: 2 } } });
 * console.log(run.model.kwargs.latentStep); // 1.25 (= data.trainWindow 10 s / 8)
 * ```
 */
export function RunConfig(input: RunConfigInput): RunConfig {
  return buildConfig("RunConfig", RunConfigSchema, input);
}

/**
 * Parses anything that describes a run config — a `RunConfig(...)` result (valid or not), a plain object, or
 * the output of `parseSerializedConfig` — into a fully resolved {@link RunConfig}. Throws a `ConfigError`
 * listing every problem.
 *
 * @example
 * ```ts
 * import { parseRunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const run = parseRunConfig({ name: "demo", model: { cls: POYO }, training: { lr: 1e-3 } });
 * console.log(run.training.optimizer); // "adamw"
 * ```
 */
export function parseRunConfig(input: unknown): RunConfig {
  return parseConfig("RunConfig", RunConfigSchema, input);
}
