/**
 * Orion: a training runtime for neural-signal models on Deno + WebGPU.
 *
 * Public API re-exports; run as the main module it is the `orion` command line
 * (`deno task orion <command> ...`, `deno task train <config.ts>`).
 *
 * @example
 * ```ts
 * import { BenchCompute, DataConfig, InfraConfig, ModelConfig, POYO, QuerySpec, RunConfig, TrainingConfig } from "./mod.ts";
 * export default RunConfig({
 *   name: "demo",
 *   data: DataConfig({ ursaQuery: QuerySpec({ participants: ["p001"] }), trainWindow: 4 }),
 *   model: ModelConfig({ cls: POYO, kwargs: { dim: 64, depth: 2 } }),
 *   training: TrainingConfig({ batchSize: 16, maxSteps: 300, benchCompute: BenchCompute() }),
 *   infra: InfraConfig({ accelerator: "cpu-software" }),
 * });
 * ```
 *
 * @module
 */
export * from "./src/config/mod.ts";
export * from "./src/cli/mod.ts";
export {
  lookupModelClass,
  type ModelClass,
  modelClassNames,
  registerModelClass,
} from "./src/models/model_class.ts";
export { POYO } from "./src/models/poyo.ts";
export {
  POYO_PRESETS,
  type PoyoKwargs,
  type PoyoKwargsInput,
  PoyoKwargsSchema,
  type PoyoPresetName,
} from "./src/models/poyo_kwargs.ts";
export { QuerySpec, type QuerySpecInput, QuerySpecSchema } from "./src/ursa/query_spec.ts";

import { main } from "./src/cli/main.ts";

// No top-level await here: config modules import this file, and awaiting in it would deadlock their import.
if (import.meta.main) main(Deno.args).then((code) => Deno.exit(code));
