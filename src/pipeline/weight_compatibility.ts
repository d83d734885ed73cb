/**
 * Whether a fine-tuning stage can load its source's weights: parameter names and shapes of both models
 * (computed from their kwargs, without building a model), the `weightOverrides` prefixes checked against real
 * parameter names, and every parameter that would not load (shape differs, or absent from the source) unless
 * an override covers it.
 *
 * Embedding tables (`unit_emb.weight`, `session_emb.weight`) are compared by row width only: their rows are
 * moved by word when loading, and new words get fresh rows.
 *
 * @module
 */
import { poyoParameterSpecs } from "../models/poyo.ts";
import type { ResolvedPoyoKwargs } from "../models/poyo_kwargs.ts";
import type { RunConfig } from "../config/run_config.ts";

/** Parameter name → shape; `-1` marks a dimension not known before the data is read (`numClasses`). */
export type ParameterShapes = Map<string, readonly number[]>;

/** Tables whose rows are re-ordered by word on load. */
export const VOCABULARY_TABLES: readonly string[] = ["unit_emb.weight", "session_emb.weight"];

/** Kwargs that change parameter shapes, in the order they are reported. */
const SHAPE_KWARGS = [
  "dim",
  "depth",
  "dimHead",
  "crossHeads",
  "selfHeads",
  "numLatents",
  "patch",
  "numClasses",
];

/**
 * Parameter names and shapes of a POYO model with these kwargs and modalities. Vocabulary sizes do not
 * matter (embedding rows are listed as 1); a `numClasses` left to the data is `-1`.
 *
 * @example
 * ```ts
 * import { poyoParameterShapes } from "./weight_compatibility.ts";
 * const shapes = poyoParameterShapes({ dim: 32, depth: 1, dimHead: 8, numLatents: 4, numClasses: 3 }, ["eeg"]);
 * console.log(shapes.get("readout.weight")); // [3, 32]
 * ```
 */
export function poyoParameterShapes(
  kwargs: Record<string, unknown>,
  modalities: readonly string[],
): ParameterShapes {
  const k = {
    crossHeads: 1,
    selfHeads: 8,
    patch: 16,
    ...kwargs,
    numClasses: typeof kwargs.numClasses === "number" ? kwargs.numClasses : -1,
  } as unknown as ResolvedPoyoKwargs;
  const specs = poyoParameterSpecs(k, {
    channels: ["<pad>"],
    sessions: ["<pad>"],
    modalities: [...new Set(modalities)].sort(),
  });
  return new Map(specs.map((s) => [s.name, s.shape]));
}

/** Parameter shapes of a run config's model, or null for a model class other than POYO. */
export function configParameterShapes(config: RunConfig): ParameterShapes | null {
  if (config.model.cls.modelName !== "POYO") return null;
  return poyoParameterShapes(
    config.model.kwargs as Record<string, unknown>,
    config.data.ursaQuery.modalities,
  );
}

/** Whether `name` falls under a `weightOverrides` prefix (the name itself, or a dotted descendant). */
export function coveredBy(name: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => name === p || name.startsWith(`${p}.`));
}

/** Top-level parameter prefixes (`unit_emb`, `proc`, `readout`, ...) in model order. */
export function parameterPrefixes(names: Iterable<string>): string[] {
  return [...new Set([...names].map((n) => n.split(".")[0]))];
}

/** A `weightOverrides` entry that matches no parameter. */
export interface UnknownOverride {
  index: number;
  prefix: string;
  /** Parameter names sharing the prefix as a string (e.g. `readou` → `readout.weight`), for the fix. */
  nearest: string[];
}

/**
 * The overrides that match no parameter name.
 *
 * @example
 * ```ts
 * unknownOverrides(["readout.weight", "readout.bias"], ["readout", "head"]); // [{ index: 1, prefix: "head", ... }]
 * ```
 */
export function unknownOverrides(names: Iterable<string>, overrides: readonly string[]): UnknownOverride[] {
  const all = [...names];
  const out: UnknownOverride[] = [];
  overrides.forEach((prefix, index) => {
    if (all.some((n) => coveredBy(n, [prefix]))) return;
    out.push({ index, prefix, nearest: all.filter((n) => n.startsWith(prefix)).slice(0, 3) });
  });
  return out;
}

/** A parameter that would not load from the source. */
export interface WeightMismatch {
  name: string;
  /** Shape in this stage. */
  shape: readonly number[];
  /** Shape in the source; null when the source has no such parameter. */
  sourceShape: readonly number[] | null;
}

function sameShape(name: string, a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  const from = VOCABULARY_TABLES.includes(name) ? 1 : 0; // rows follow the vocabulary
  for (let i = from; i < a.length; i++) if (a[i] !== b[i] && a[i] !== -1 && b[i] !== -1) return false;
  return true;
}

/**
 * Parameters of this stage that would not load from the source (absent there, or shaped differently), in
 * model order, leaving out those covered by `overrides`.
 *
 * @example
 * ```ts
 * const child = poyoParameterShapes({ dim: 64, depth: 1, dimHead: 8, numLatents: 4 }, ["eeg"]);
 * const parent = poyoParameterShapes({ dim: 32, depth: 1, dimHead: 8, numLatents: 4 }, ["eeg"]);
 * weightMismatches(child, parent, []).length; // every parameter: dim changed
 * ```
 */
export function weightMismatches(
  child: ParameterShapes,
  source: ParameterShapes,
  overrides: readonly string[],
): WeightMismatch[] {
  const out: WeightMismatch[] = [];
  for (const [name, shape] of child) {
    if (coveredBy(name, overrides)) continue;
    const sourceShape = source.get(name) ?? null;
    if (sourceShape === null || !sameShape(name, shape, sourceShape)) out.push({ name, shape, sourceShape });
  }
  return out;
}

/** Source parameters this stage does not have (they are not loaded). */
export function droppedParameters(child: ParameterShapes, source: ParameterShapes): string[] {
  return [...source.keys()].filter((n) => !child.has(n));
}

/** The shape-changing kwargs that differ, as `dim 64 → 32` (source → this stage). */
export function kwargDifferences(source: Record<string, unknown>, child: Record<string, unknown>): string[] {
  return SHAPE_KWARGS.filter((k) =>
    source[k] !== undefined && child[k] !== undefined &&
    JSON.stringify(source[k]) !== JSON.stringify(child[k])
  ).map((k) => `${k} ${JSON.stringify(source[k])} → ${JSON.stringify(child[k])}`);
}

const fmt = (s: readonly number[] | null) =>
  s === null ? "absent" : `[${s.map((d) => d < 0 ? "?" : d).join(", ")}]`;

/**
 * One line per mismatch (at most `limit`, then a count), e.g. `proc.0.ffn.w1.weight [512, 64] in the
 * source, [256, 32] here`.
 */
export function describeMismatches(mismatches: readonly WeightMismatch[], limit = 6): string {
  const shown = mismatches.slice(0, limit).map((m) =>
    `${m.name} ${fmt(m.sourceShape)} in the source, ${fmt(m.shape)} here`
  );
  return shown.join("; ") + (mismatches.length > limit ? `; and ${mismatches.length - limit} more` : "");
}

/**
 * The smallest set of top-level prefixes covering `mismatches`, to suggest as `weightOverrides`.
 */
export function prefixesCovering(mismatches: readonly WeightMismatch[]): string[] {
  return parameterPrefixes(mismatches.map((m) => m.name));
}
