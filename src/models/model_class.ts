/**
 * What a model class must expose so that `ModelConfig({ cls, kwargs })` can validate and build it.
 *
 * @module
 */
import type { z } from "zod";

/** A model class usable as `ModelConfig.cls`: a stable name and the zod schema of its kwargs. */
export interface ModelClass {
  /** Stable name stored in serialized configs (e.g. `"POYO"`). */
  readonly modelName: string;
  /** Schema of `ModelConfig.kwargs`; unknown keys are errors. */
  readonly kwargsSchema: z.ZodType;
}

const registry = new Map<string, ModelClass>();

/** Registers a model class so serialized configs can name it. Re-registering the same class is a no-op. */
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
