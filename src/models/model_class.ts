/**
 * What a model class must expose so that `ModelConfig({ cls, kwargs })` can validate and build it.
 *
 * @module
 */
import type { z } from "zod";

/**
 * A model class usable as `ModelConfig.cls`: a stable `modelName` stored in serialized configs (e.g.
 * `"POYO"`) and `kwargsSchema`, the zod schema of `ModelConfig.kwargs` (unknown keys are errors; its input
 * type types the kwargs a config writes).
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { type ModelClass, registerModelClass } from "./model_class.ts";
 * class TinyModel {
 *   static readonly modelName = "TinyModel";
 *   static readonly kwargsSchema = z.strictObject({ width: z.number().int().positive().default(8) });
 * }
 * registerModelClass(TinyModel satisfies ModelClass);
 * ```
 */
export interface ModelClass {
  /** Stable name stored in serialized configs (e.g. `"POYO"`). */
  readonly modelName: string;
  /**
   * Schema of `ModelConfig.kwargs`; unknown keys are errors.
   *
   * @ignore
   */
  readonly kwargsSchema: z.ZodType;
}

/** The kwargs a config writes for model class `C`: the input type of its `kwargsSchema`. */
export type KwargsInputOf<C extends ModelClass> = C["kwargsSchema"] extends { _zod: { input: infer I } } ? I
  : Record<string, unknown>;

const registry = new Map<string, ModelClass>();

/**
 * Registers a model class so serialized configs can name it. Re-registering the same class is a no-op.
 *
 * @example
 * ```ts
 * import { registerModelClass } from "./model_class.ts";
 * import { POYO } from "./poyo.ts";
 * registerModelClass(POYO); // POYO registers itself on import; again is a no-op
 * ```
 */
export function registerModelClass(cls: ModelClass): void {
  const existing = registry.get(cls.modelName);
  if (existing && existing !== cls) {
    throw new Error(
      `Cannot register model class "${cls.modelName}" as that name is already taken by another class`,
    );
  }
  registry.set(cls.modelName, cls);
}

/** Looks up a registered model class by name (for configs parsed back from JSON). */
export function lookupModelClass(name: string): ModelClass | undefined {
  return registry.get(name);
}

/** Names of every registered model class, sorted. */
export function modelClassNames(): string[] {
  return [...registry.keys()].sort();
}
