/**
 * Serializing resolved configs into the run record and reading them back.
 *
 * The document is canonical JSON (keys sorted, 2-space indent):
 * `{ "config": {...}, "config_version": 1, "hash": "sha256:…", "kind": "run" | "pipeline" }`.
 * `model.cls` is written as the class's registered `modelName`. `hash` is the sha256 of the canonical compact
 * JSON of the document without `hash`, so identical resolved configs hash identically everywhere.
 *
 * @module
 */
import { lookupModelClass } from "../models/model_class.ts";
import { canonicalJson, sha256OfCanonicalJson } from "./canonical_json.ts";
import { CURRENT_CONFIG_VERSION, migrateConfigDocument } from "./config_migrations.ts";
import { ConfigError, problem } from "./problem.ts";
import { parseRunConfig, type RunConfig } from "./run_config.ts";
import { parseTrainingPipeline, type TrainingPipeline } from "./training_pipeline.ts";

/**
 * The file name of the serialized config inside a run directory: `<runsDir>/<name>/config.json`.
 *
 * @example
 * ```ts
 * import { RUN_CONFIG_FILE } from "./serialize_config.ts";
 * console.log(`runs/demo/${RUN_CONFIG_FILE}`); // "runs/demo/config.json"
 * ```
 */
export const RUN_CONFIG_FILE = "config.json";

/** What kind of config a document holds. */
export type ConfigKind = "run" | "pipeline";

/** True when `config` is a pipeline (has `stages`) rather than a single run. */
export function isPipelineConfig(config: RunConfig | TrainingPipeline): config is TrainingPipeline {
  return Array.isArray((config as { stages?: unknown }).stages);
}

function runToJson(run: RunConfig): Record<string, unknown> {
  const cls = run.model.cls;
  if (lookupModelClass(cls.modelName) !== cls) {
    throw new ConfigError("RunConfig", [problem(
      "model.cls",
      cls,
      `Cannot serialize model class "${cls.modelName}" as it is not the class registered under that name, so it could not be read back`,
      "register the class with registerModelClass(cls) in the module that defines it",
    )]);
  }
  return { ...run, model: { cls: cls.modelName, kwargs: run.model.kwargs } };
}

/** The config as plain JSON data (model classes replaced by their registered names). */
export function configToJson(config: RunConfig | TrainingPipeline): Record<string, unknown> {
  return isPipelineConfig(config)
    ? { name: config.name, stages: config.stages.map((s) => runToJson(s as RunConfig)) }
    : runToJson(config);
}

function documentOf(config: RunConfig | TrainingPipeline): Record<string, unknown> {
  return {
    config_version: CURRENT_CONFIG_VERSION,
    kind: isPipelineConfig(config) ? "pipeline" : "run",
    config: configToJson(config),
  };
}

/**
 * The content hash of a resolved config (`sha256:<hex>`): equal configs hash equally on every machine.
 *
 * @example
 * ```ts
 * import { configHash } from "./serialize_config.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * console.log(configHash(RunConfig({ name: "demo", model: { cls: POYO } })));
 * ```
 */
export function configHash(config: RunConfig | TrainingPipeline): string {
  return sha256OfCanonicalJson(documentOf(config));
}

/**
 * Serializes a resolved config into canonical JSON text with `config_version` and the content `hash`.
 *
 * @example
 * ```ts
 * import { parseSerializedConfig, serializeConfig } from "./serialize_config.ts";
 * import { RunConfig } from "./run_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const text = serializeConfig(RunConfig({ name: "demo", model: { cls: POYO } }));
 * const back = parseSerializedConfig(text); // deep-equal to the original, cls = POYO again
 * ```
 */
export function serializeConfig(config: RunConfig | TrainingPipeline): string {
  const doc = documentOf(config);
  return canonicalJson({ ...doc, hash: sha256OfCanonicalJson(doc) }, 2) + "\n";
}

function readDocument(input: string | Record<string, unknown>, source: string): Record<string, unknown> {
  if (typeof input !== "string") return input;
  let doc: unknown;
  try {
    doc = JSON.parse(input);
  } catch (e) {
    throw new ConfigError(source, [problem(
      "",
      input.slice(0, 40),
      `Cannot read ${source} as it is not JSON: ${(e as Error).message}`,
      "restore the file from the run record or re-serialize the config",
    )]);
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(source, [problem(
      "",
      doc,
      `Cannot read ${source} as it is not a JSON object: current value is ${typeof doc}`,
      "restore the file from the run record",
    )]);
  }
  return doc as Record<string, unknown>;
}

/**
 * Reads a serialized config (text or parsed JSON) of any supported `config_version`: checks the hash when
 * present, migrates older versions, and validates it back into a resolved config. `model.cls` names are looked
 * up in the model-class registry (import the model's module first; `mod.ts` imports POYO).
 * Throws a `ConfigError` (unknown version: the message names the version needed).
 *
 * @example
 * ```ts
 * import { parseSerializedConfig } from "./serialize_config.ts";
 * const config = parseSerializedConfig(await Deno.readTextFile("runs/demo/config.json"));
 * console.log("stages" in config ? "pipeline" : "run");
 * ```
 */
export function parseSerializedConfig(
  input: string | Record<string, unknown>,
  source = "serialized config",
): RunConfig | TrainingPipeline {
  const doc = readDocument(input, source);
  if (typeof doc.hash === "string") {
    const { hash, ...rest } = doc;
    const actual = sha256OfCanonicalJson(rest);
    if (actual !== hash) {
      throw new ConfigError(source, [problem(
        "hash",
        hash,
        `Cannot trust ${source} as its content hashes to ${actual}, not to the recorded hash: the file was edited after it was written`,
        'undo the edit, or delete the "hash" field to accept the edited content',
      )]);
    }
  }
  const current = migrateConfigDocument(doc);
  if (current.kind === "pipeline") return parseTrainingPipeline(current.config);
  if (current.kind !== "run") {
    throw new ConfigError(source, [problem(
      "kind",
      current.kind,
      `Cannot read ${source} as its kind must be "run" or "pipeline": current value is ${
        JSON.stringify(current.kind)
      }`,
      'set "kind" to "run" or "pipeline"',
    )]);
  }
  return parseRunConfig(current.config);
}

/**
 * Like {@link parseSerializedConfig} but requires a single run config.
 *
 * @example
 * ```ts
 * import { parseSerializedRunConfig } from "./serialize_config.ts";
 * const run = parseSerializedRunConfig(await Deno.readTextFile("runs/demo/config.json"), "runs/demo/config.json");
 * console.log(run.name, run.training.maxSteps);
 * ```
 */
export function parseSerializedRunConfig(
  input: string | Record<string, unknown>,
  source = "serialized config",
): RunConfig {
  const config = parseSerializedConfig(input, source);
  if (isPipelineConfig(config)) {
    throw new ConfigError(source, [problem(
      "kind",
      "pipeline",
      `Cannot read ${source} as a run config as it holds a pipeline`,
      "read it with parseSerializedConfig, or pass one stage's config",
    )]);
  }
  return config;
}
