/**
 * `CheckpointState`: everything a checkpoint holds, as plain host-memory data (tensors as typed arrays,
 * everything else as JSON). The trainer builds one from a snapshot of its state; `readCheckpoint` returns
 * one. How each field maps to a file is in `checkpoint_layout.ts` and `docs/checkpoints.md`.
 *
 * @module
 */
import type { SafetensorsDtype, SafetensorsDtypeArray } from "./safetensors.ts";

/** A JSON value that round-trips exactly: finite numbers only, no `undefined`, no class instances. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** One tensor: little-endian, row-major, `data` holds exactly `product(shape)` elements of `dtype`. */
export interface CheckpointTensor<D extends SafetensorsDtype = SafetensorsDtype> {
  dtype: D;
  shape: readonly number[];
  /** The typed array of `dtype` (F16/BF16 as `Uint16Array` bits), or raw `Uint8Array` bytes. */
  data: SafetensorsDtypeArray[D] | Uint8Array;
}

/** Named tensors, written as one safetensors file. */
export type TensorSet = Record<string, CheckpointTensor>;

/** Where a checkpoint came from. Written to `lineage.json`; extra fields are kept as given. */
export interface CheckpointLineage {
  [extra: string]: JsonValue | undefined;
  /** Name of the run this one was forked/finetuned from, or null. */
  parentRun: string | null;
  /**
   * Hash of the previous checkpoint in this chain (the one resumed from or written before), or null
   * for the first. Leave it `undefined` to let the writer fill it in (`WriteCheckpointOptions.parentHash`,
   * which `CheckpointWriter` sets to the hash of the checkpoint it wrote last).
   */
  parentCheckpointHash?: string | null;
  /** Optimizer steps this checkpoint's weights have been trained for, summed over the lineage. */
  stepsConsumed: number;
}

/** Everything a checkpoint holds. Optional parts are simply absent from the directory when omitted. */
export interface CheckpointState {
  /** Full resolved run config → `config.json`. */
  config: JsonObject;
  /**
   * → `model/weights.safetensors`, `model/ema.safetensors` (when an EMA is kept). `metadata` goes into both
   * files' safetensors `__metadata__` (e.g. the model's vocabularies, which loading re-orders by word).
   */
  model: { weights: TensorSet; ema?: TensorSet; metadata?: Record<string, string> };
  /**
   * Optimizer moments → `optimizer/state.safetensors`; param-group settings, step counts and anything
   * else JSON → `optimizer/state.json`.
   */
  optimizer: { tensors: TensorSet; state: JsonObject };
  /** → `scheduler/state.json`. */
  scheduler: JsonObject;
  /** → `grad_scaler/state.json` (omit when no loss scaling is used). */
  gradScaler?: JsonObject;
  /** Per-rank state (loader cursor, RNG counters), index = rank → `distributed/rank<i>.json`. */
  distributed?: JsonObject[];
  /** Counter-based generator keys/counters → `rng/cpu.json`, `rng/gpu_<i>.json`. */
  rng: { cpu: JsonObject; gpu: JsonObject[] };
  /** Epoch, position, shard layout → `dataloader/cursor.json`. */
  dataloader: JsonObject;
  /** Every recording hash + time windows + derived asset ids consumed so far → `data_hashes/manifest.json`. */
  dataHashes: JsonObject;
  /** → `metrics/snapshot.json`; retention's "best k" reads its metric from here. */
  metrics: JsonObject;
  /** Results of periodic bench callbacks, by name → `benchmarks/<name>.json`. */
  benchmarks?: Record<string, JsonValue>;
  /** → `lineage.json`. */
  lineage: CheckpointLineage;
}

/** Thrown when a `CheckpointState` cannot be written as given. */
export class CheckpointStateError extends Error {
  /** @param field the dotted path of the offending field. */
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = "CheckpointStateError";
  }
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || value === undefined || typeof value === "function") return String(value);
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      return `an instance of ${proto?.constructor?.name ?? "?"}`;
    }
  }
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Serializes a JSON value canonically (object keys sorted, `indent` spaces (0: one line), trailing
 * newline), refusing
 * anything that would not round-trip: NaN/±Infinity, `undefined` inside arrays, bigints, functions,
 * symbols, class instances (typed arrays, Dates, Maps), and cycles. `undefined` object fields are dropped.
 *
 * @param field the dotted name used in error messages (e.g. `scheduler`).
 * @throws {CheckpointStateError} naming the exact path of the offending value.
 * @example
 * ```ts
 * import { canonicalJson } from "./checkpoint_state.ts";
 * canonicalJson({ b: 1, a: [true, null] }, "scheduler"); // '{\n  "a": [...'
 * ```
 */
export function canonicalJson(value: unknown, field: string, indent = 2): string {
  const seen = new Set<object>();
  const normalize = (v: unknown, path: string): JsonValue => {
    if (v === null || typeof v === "boolean" || typeof v === "string") return v;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) {
        throw new CheckpointStateError(
          path,
          `Cannot write checkpoint field ${path} as JSON cannot hold non-finite numbers: current value is ${v} (store it as a string or null)`,
        );
      }
      return v;
    }
    if (typeof v === "object") {
      if (seen.has(v)) {
        throw new CheckpointStateError(
          path,
          `Cannot write checkpoint field ${path} as it refers back to itself (a cycle)`,
        );
      }
      if (Array.isArray(v)) {
        seen.add(v);
        const out = v.map((item, i) => {
          if (item === undefined) {
            throw new CheckpointStateError(
              `${path}[${i}]`,
              `Cannot write checkpoint field ${path}[${i}] as JSON arrays cannot hold undefined: current value is undefined`,
            );
          }
          return normalize(item, `${path}[${i}]`);
        });
        seen.delete(v);
        return out;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto === Object.prototype || proto === null) {
        seen.add(v);
        const out: JsonObject = {};
        for (const key of Object.keys(v).sort()) {
          const item = (v as Record<string, unknown>)[key];
          if (item === undefined) continue;
          Object.defineProperty(out, key, {
            value: normalize(item, `${path}.${key}`),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        seen.delete(v);
        return out;
      }
    }
    throw new CheckpointStateError(
      path,
      `Cannot write checkpoint field ${path} as it is not plain JSON: current value is ${describe(v)}${
        typeof v === "bigint" ? " (store 64-bit counters as decimal strings)" : ""
      }`,
    );
  };
  return JSON.stringify(normalize(value, field), null, indent) + "\n";
}

/** Returns `value` if it is a plain JSON object, else throws naming `field`. */
export function requireJsonObject(value: unknown, field: string): JsonObject {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CheckpointStateError(
      field,
      `Cannot write checkpoint field ${field} as it must be a JSON object: current value is ${
        describe(value)
      }`,
    );
  }
  return value as JsonObject;
}
