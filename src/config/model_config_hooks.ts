/**
 * Per-model hooks the config layer uses for what a kwargs schema alone cannot know: defaults and coherence
 * rules that depend on the data config (the training window). POYO's hooks are registered here; other model
 * classes register theirs with {@link registerModelConfigHooks}.
 *
 * @module
 */
import { poyoWindowProblems, resolvePoyoKwargs } from "../models/poyo_kwargs.ts";

/** A kwargs problem relative to `model.kwargs`. */
export interface KwargsProblem {
  path: string[];
  message: string;
  fix: string;
}

/** What a model class can contribute to resolving its kwargs against the rest of a run config. */
export interface ModelConfigHooks {
  /** Fills kwargs defaults that depend on the data config (e.g. POYO `latentStep = trainWindow / 8`). */
  resolveKwargs?(kwargs: Record<string, unknown>, window: { trainWindow: number }): Record<string, unknown>;
  /** Problems of kwargs against the data config (read defensively: kwargs may be partly invalid). */
  windowProblems?(kwargs: Record<string, unknown>, window: { trainWindow: number }): KwargsProblem[];
}

const hooksByModel = new Map<string, ModelConfigHooks>();

/** Registers the config hooks of a model class, by its `modelName`. */
export function registerModelConfigHooks(modelName: string, hooks: ModelConfigHooks): void {
  hooksByModel.set(modelName, hooks);
}

/** The config hooks of a model class (empty when none are registered). */
export function modelConfigHooks(modelName: string): ModelConfigHooks {
  return hooksByModel.get(modelName) ?? {};
}

registerModelConfigHooks("POYO", {
  resolveKwargs: (kwargs, { trainWindow }) => resolvePoyoKwargs(kwargs, trainWindow),
  windowProblems: (kwargs, { trainWindow }) => poyoWindowProblems(kwargs, trainWindow),
});
