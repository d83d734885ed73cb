/**
 * The checkpoint directory layout: directory names, and the two-way mapping between a
 * {@link CheckpointState} and the files of `ckpt-step<9 digits>/`.
 *
 * ```
 * ckpt-step000050000/
 * ├── manifest.json            written last (see checkpoint_manifest.ts)
 * ├── config.json              state.config
 * ├── code_version.json        CodeVersion
 * ├── env.lock                 deno.lock bytes
 * ├── model/weights.safetensors, model/ema.safetensors (optional)
 * ├── optimizer/state.safetensors, optimizer/state.json
 * ├── scheduler/state.json
 * ├── grad_scaler/state.json   (optional)
 * ├── distributed/rank<i>.json (optional, one per rank)
 * ├── rng/cpu.json, rng/gpu_<i>.json
 * ├── dataloader/cursor.json
 * ├── data_hashes/manifest.json
 * ├── metrics/snapshot.json
 * ├── benchmarks/<name>.json   (the directory always exists)
 * └── lineage.json
 * ```
 *
 * @module
 */
import {
  canonicalJson,
  type CheckpointLineage,
  type CheckpointState,
  CheckpointStateError,
  type CheckpointTensor,
  type JsonObject,
  type JsonValue,
  requireJsonObject,
  type TensorSet,
} from "./checkpoint_state.ts";
import type { CodeSnapshot, CodeVersion } from "./code_version.ts";
import type { CheckpointProblem } from "./checkpoint_integrity_error.ts";
import { encodeSafetensors, parseSafetensors, SafetensorsError } from "./safetensors.ts";

/** Prefix of checkpoint directory names. */
export const CHECKPOINT_DIR_PREFIX = "ckpt-step";
/** Prefix of directories a write is in progress in (renamed into place when complete). */
export const TEMP_DIR_PREFIX = ".tmp-ckpt-step";
/** Prefix of directories being deleted (renamed out of the way first, then removed). */
export const TRASH_DIR_PREFIX = ".trash-ckpt-step";

const DIR_NAME = /^ckpt-step([0-9]{9,16})$/;
const BENCHMARK_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/; // "@": suite keys such as cognitive_load_eval@1
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The directory name of the checkpoint after `step` optimizer steps (zero-padded to 9 digits).
 *
 * @example
 * ```ts
 * import { checkpointDirName } from "./checkpoint_layout.ts";
 * checkpointDirName(50000); // "ckpt-step000050000"
 * ```
 */
export function checkpointDirName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new CheckpointStateError(
      "step",
      `Cannot name a checkpoint as its step must be a non-negative integer: current value is ${step}`,
    );
  }
  return `${CHECKPOINT_DIR_PREFIX}${String(step).padStart(9, "0")}`;
}

/** The step of a checkpoint directory name, or null when `name` is not one. */
export function parseCheckpointDirName(name: string): number | null {
  const m = DIR_NAME.exec(name);
  if (m === null) return null;
  const step = Number(m[1]);
  return Number.isSafeInteger(step) && checkpointDirName(step) === name ? step : null;
}

/** True for the names of in-progress writes and in-progress deletions. */
export function isScratchDirName(name: string): boolean {
  return name.startsWith(TEMP_DIR_PREFIX) || name.startsWith(TRASH_DIR_PREFIX);
}

/** One file to write: its path relative to the checkpoint directory and its bytes. */
export interface PlannedFile {
  path: string;
  chunks: Uint8Array[];
  bytes: number;
}

/** What {@link planCheckpointFiles} produces. */
export interface CheckpointFilePlan {
  /** Every file except `manifest.json`, sorted by path. */
  files: PlannedFile[];
  /** Subdirectories to create (parents first). */
  dirs: string[];
  /** The lineage as written (parent hash resolved). */
  lineage: CheckpointLineage & { parentCheckpointHash: string | null };
}

/** Validates a `CheckpointState` and lays it out as files. Tensor data is referenced, not copied. */
export function planCheckpointFiles(
  state: CheckpointState,
  code: CodeSnapshot,
  parentHash: string | null,
): CheckpointFilePlan {
  const files: PlannedFile[] = [];
  const text = new TextEncoder();
  const json = (path: string, value: unknown, field: string) => {
    const bytes = text.encode(canonicalJson(requireJsonObject(value, field), field));
    files.push({ path, chunks: [bytes], bytes: bytes.byteLength });
  };
  const tensors = (path: string, set: unknown, field: string, metadata?: Record<string, string>) => {
    const obj = requireJsonObjectLike(set, field);
    let enc;
    try {
      enc = encodeSafetensors(obj as TensorSet, metadata);
    } catch (e) {
      if (e instanceof SafetensorsError) {
        throw new CheckpointStateError(field, `Cannot write checkpoint field ${field}: ${e.message}`);
      }
      throw e;
    }
    files.push({ path, chunks: [enc.header, ...enc.chunks], bytes: enc.byteLength });
  };
  const dirs = [
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "dataloader",
    "data_hashes",
    "metrics",
    "benchmarks",
  ];

  json("config.json", state.config, "config");
  json("code_version.json", code.version, "codeVersion");
  files.push({ path: "env.lock", chunks: [code.envLock], bytes: code.envLock.byteLength });
  requireJsonObjectLike(state.model, "model");
  tensors("model/weights.safetensors", state.model.weights, "model.weights", state.model.metadata);
  if (state.model.ema !== undefined) {
    tensors("model/ema.safetensors", state.model.ema, "model.ema", state.model.metadata);
  }
  requireJsonObjectLike(state.optimizer, "optimizer");
  tensors("optimizer/state.safetensors", state.optimizer.tensors, "optimizer.tensors");
  json("optimizer/state.json", state.optimizer.state, "optimizer.state");
  json("scheduler/state.json", state.scheduler, "scheduler");
  if (state.gradScaler !== undefined) {
    dirs.push("grad_scaler");
    json("grad_scaler/state.json", state.gradScaler, "gradScaler");
  }
  if (state.distributed !== undefined) {
    if (!Array.isArray(state.distributed) || state.distributed.length === 0) {
      throw new CheckpointStateError(
        "distributed",
        `Cannot write checkpoint field distributed as it must be a non-empty array (one object per rank) or omitted: current value has ${
          Array.isArray(state.distributed) ? 0 : "no"
        } entries`,
      );
    }
    dirs.push("distributed");
    state.distributed.forEach((rank, i) => json(`distributed/rank${i}.json`, rank, `distributed[${i}]`));
  }
  requireJsonObjectLike(state.rng, "rng");
  json("rng/cpu.json", state.rng.cpu, "rng.cpu");
  if (!Array.isArray(state.rng.gpu)) {
    throw new CheckpointStateError(
      "rng.gpu",
      "Cannot write checkpoint field rng.gpu as it must be an array (one object per GPU, may be empty)",
    );
  }
  state.rng.gpu.forEach((gpu, i) => json(`rng/gpu_${i}.json`, gpu, `rng.gpu[${i}]`));
  json("dataloader/cursor.json", state.dataloader, "dataloader");
  json("data_hashes/manifest.json", state.dataHashes, "dataHashes");
  json("metrics/snapshot.json", state.metrics, "metrics");
  for (const [name, result] of Object.entries(requireJsonObjectLike(state.benchmarks ?? {}, "benchmarks"))) {
    if (!BENCHMARK_NAME.test(name)) {
      throw new CheckpointStateError(
        `benchmarks.${name}`,
        `Cannot write checkpoint benchmark ${
          JSON.stringify(name)
        } as names must match ${BENCHMARK_NAME}: rename it`,
      );
    }
    const bytes = text.encode(canonicalJson(result as JsonValue, `benchmarks.${name}`));
    files.push({ path: `benchmarks/${name}.json`, chunks: [bytes], bytes: bytes.byteLength });
  }
  const lineage = resolveLineage(state.lineage, parentHash);
  json("lineage.json", lineage, "lineage");
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, dirs, lineage };
}

function requireJsonObjectLike(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CheckpointStateError(
      field,
      `Cannot write checkpoint field ${field} as it must be an object: current value is ${
        Array.isArray(value) ? "an array" : String(value)
      }`,
    );
  }
  return value as Record<string, unknown>;
}

function resolveLineage(
  lineage: CheckpointLineage,
  parentHash: string | null,
): CheckpointLineage & { parentCheckpointHash: string | null } {
  requireJsonObject(lineage, "lineage");
  if (lineage.parentRun !== null && typeof lineage.parentRun !== "string") {
    throw new CheckpointStateError(
      "lineage.parentRun",
      `Cannot write checkpoint field lineage.parentRun as it must be a run name or null: current value is ${lineage.parentRun}`,
    );
  }
  if (!Number.isSafeInteger(lineage.stepsConsumed) || lineage.stepsConsumed < 0) {
    throw new CheckpointStateError(
      "lineage.stepsConsumed",
      `Cannot write checkpoint field lineage.stepsConsumed as it must be a non-negative integer: current value is ${lineage.stepsConsumed}`,
    );
  }
  const parent = lineage.parentCheckpointHash === undefined ? parentHash : lineage.parentCheckpointHash;
  if (parent !== null && !(typeof parent === "string" && SHA256_HEX.test(parent))) {
    throw new CheckpointStateError(
      "lineage.parentCheckpointHash",
      `Cannot write checkpoint field lineage.parentCheckpointHash as it must be a checkpoint hash (64 hex digits) or null: current value is ${parent}`,
    );
  }
  return { ...lineage, parentCheckpointHash: parent };
}

/** What {@link decodeCheckpointFiles} recovers from a verified file set. */
export interface DecodedCheckpoint {
  state: CheckpointState & { lineage: CheckpointLineage & { parentCheckpointHash: string | null } };
  codeVersion: CodeVersion;
  envLock: Uint8Array;
}

/**
 * Rebuilds a `CheckpointState` from a checkpoint's files (already hash-verified). Unknown files, missing
 * required files, gaps in `rank<i>`/`gpu_<i>` numbering and malformed content become problems.
 *
 * @returns the decoded checkpoint, or the problems (each naming its file).
 */
export function decodeCheckpointFiles(
  files: ReadonlyMap<string, Uint8Array>,
  dir: string,
): { ok: true; value: DecodedCheckpoint } | { ok: false; problems: CheckpointProblem[] } {
  const problems: CheckpointProblem[] = [];
  const used = new Set<string>();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const json = (path: string, required = true): JsonObject | undefined => {
    const bytes = files.get(path);
    if (bytes === undefined) {
      if (required) problems.push({ file: path, reason: "required file is missing from the manifest" });
      return undefined;
    }
    used.add(path);
    try {
      const value = JSON.parse(decoder.decode(bytes));
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        problems.push({ file: path, reason: "must hold a JSON object" });
        return undefined;
      }
      return value as JsonObject;
    } catch (e) {
      problems.push({
        file: path,
        reason: `is not valid UTF-8 JSON (${e instanceof Error ? e.message : e})`,
      });
      return undefined;
    }
  };
  const metadataOf = new Map<string, Record<string, string>>();
  const tensors = (path: string, required = true): TensorSet | undefined => {
    const bytes = files.get(path);
    if (bytes === undefined) {
      if (required) problems.push({ file: path, reason: "required file is missing from the manifest" });
      return undefined;
    }
    used.add(path);
    try {
      const parsed = parseSafetensors(bytes, { source: `${dir}/${path}` });
      if (Object.keys(parsed.metadata).length) metadataOf.set(path, parsed.metadata);
      const out: TensorSet = {};
      for (const [name, t] of Object.entries(parsed.tensors)) {
        const tensor: CheckpointTensor = { dtype: t.dtype, shape: t.shape, data: t.data };
        Object.defineProperty(out, name, {
          value: tensor,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    } catch (e) {
      if (e instanceof SafetensorsError) {
        problems.push({ file: path, reason: e.message });
        return undefined;
      }
      throw e;
    }
  };
  const numbered = (prefix: string, suffix: string): JsonObject[] => {
    const indices: number[] = [];
    for (const path of files.keys()) {
      if (!path.startsWith(prefix) || !path.endsWith(suffix)) continue;
      const digits = path.slice(prefix.length, path.length - suffix.length);
      if (/^(0|[1-9][0-9]{0,5})$/.test(digits)) indices.push(Number(digits));
    }
    indices.sort((a, b) => a - b);
    const out: JsonObject[] = [];
    indices.forEach((index, position) => {
      const path = `${prefix}${index}${suffix}`;
      if (index !== position) {
        problems.push({ file: path, reason: `numbering has a gap: expected ${prefix}${position}${suffix}` });
      }
      const value = json(path);
      if (value !== undefined) out.push(value);
    });
    return out;
  };

  const config = json("config.json");
  const codeVersion = json("code_version.json") as CodeVersion | undefined;
  const envLock = files.get("env.lock");
  if (envLock === undefined) {
    problems.push({ file: "env.lock", reason: "required file is missing from the manifest" });
  } else used.add("env.lock");
  const weights = tensors("model/weights.safetensors");
  const ema = tensors("model/ema.safetensors", false);
  const optimizerTensors = tensors("optimizer/state.safetensors");
  const optimizerState = json("optimizer/state.json");
  const scheduler = json("scheduler/state.json");
  const gradScaler = json("grad_scaler/state.json", false);
  const distributed = numbered("distributed/rank", ".json");
  const cpu = json("rng/cpu.json");
  const gpu = numbered("rng/gpu_", ".json");
  const dataloader = json("dataloader/cursor.json");
  const dataHashes = json("data_hashes/manifest.json");
  const metrics = json("metrics/snapshot.json");
  const benchmarks: Record<string, JsonValue> = {};
  for (const [path, bytes] of files) {
    const m = /^benchmarks\/(.+)\.json$/.exec(path);
    if (m === null || !BENCHMARK_NAME.test(m[1])) continue;
    used.add(path);
    try {
      benchmarks[m[1]] = JSON.parse(decoder.decode(bytes));
    } catch (e) {
      problems.push({
        file: path,
        reason: `is not valid UTF-8 JSON (${e instanceof Error ? e.message : e})`,
      });
    }
  }
  const lineageRaw = json("lineage.json");
  let lineage: DecodedCheckpoint["state"]["lineage"] | undefined;
  if (lineageRaw !== undefined) {
    const { parentRun, parentCheckpointHash, stepsConsumed } = lineageRaw;
    if (parentRun !== null && typeof parentRun !== "string") {
      problems.push({ file: "lineage.json", reason: "field parentRun must be a string or null" });
    } else if (
      parentCheckpointHash !== null &&
      !(typeof parentCheckpointHash === "string" && SHA256_HEX.test(parentCheckpointHash))
    ) {
      problems.push({
        file: "lineage.json",
        reason: "field parentCheckpointHash must be a checkpoint hash or null",
      });
    } else if (
      typeof stepsConsumed !== "number" || !Number.isSafeInteger(stepsConsumed) || stepsConsumed < 0
    ) {
      problems.push({ file: "lineage.json", reason: "field stepsConsumed must be a non-negative integer" });
    } else {
      lineage = { ...lineageRaw, parentRun, parentCheckpointHash, stepsConsumed };
    }
  }
  for (const path of files.keys()) {
    if (!used.has(path)) problems.push({ file: path, reason: "is not part of the checkpoint layout" });
  }
  if (problems.length > 0) return { ok: false, problems };
  const state: DecodedCheckpoint["state"] = {
    config: config!,
    model: {
      weights: weights!,
      ...(ema === undefined ? {} : { ema }),
      ...(metadataOf.has("model/weights.safetensors")
        ? { metadata: metadataOf.get("model/weights.safetensors") }
        : {}),
    },
    optimizer: { tensors: optimizerTensors!, state: optimizerState! },
    scheduler: scheduler!,
    rng: { cpu: cpu!, gpu },
    dataloader: dataloader!,
    dataHashes: dataHashes!,
    metrics: metrics!,
    benchmarks,
    lineage: lineage!,
  };
  if (gradScaler !== undefined) state.gradScaler = gradScaler;
  if (distributed.length > 0) state.distributed = distributed;
  return { ok: true, value: { state, codeVersion: codeVersion!, envLock: envLock! } };
}
