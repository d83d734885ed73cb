/**
 * How the config builders (`RunConfig(...)`, `TrainingConfig(...)`, ...) validate without losing problems.
 *
 * A builder validates its argument. When it is valid, the result is the parsed (defaults filled, deeply
 * frozen) object; when it is not, the result is an *invalid config* placeholder that remembers the raw input
 * and the problems. Enclosing builders splice the raw input back in and validate the whole tree, so a config
 * module with mistakes in several sections reports all of them, with full paths, at once. Reading any field of
 * an invalid placeholder throws its {@link ConfigError}, so a mistake is never silently carried along.
 *
 * Every built value also remembers the raw input it came from ({@link rawConfigOf}): overrides (`--set`) are
 * applied to that raw input and validated again, so defaults derived from other fields are recomputed.
 *
 * @module
 */
import type { z } from "zod";
import { ConfigError } from "./problem.ts";
import { issuesToProblems } from "./schema_tools.ts";

const rawInputs = new WeakMap<object, unknown>();
const invalidErrors = new WeakMap<object, ConfigError>();

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * A deep, mutable copy of a config value as the user wrote it: built values and invalid placeholders are
 * replaced by their raw inputs; plain objects and arrays are copied; everything else (model classes, ...) is
 * kept by reference.
 *
 * @example
 * ```ts
 * import { rawConfigOf } from "./config_builder.ts";
 * import { TrainingConfig } from "./training_config.ts";
 * console.log(rawConfigOf(TrainingConfig({ lr: 1e-3 }))); // { lr: 0.001 }: what was written, not the defaults
 * ```
 */
export function rawConfigOf(value: unknown): unknown {
  if (value !== null && typeof value === "object" && rawInputs.has(value)) {
    return rawConfigOf(rawInputs.get(value));
  }
  if (Array.isArray(value)) return value.map(rawConfigOf);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = rawConfigOf(v);
    return out;
  }
  return value;
}

/**
 * The problems of an invalid config placeholder, or `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { invalidConfigError } from "./config_builder.ts";
 * import { TrainingConfig } from "./training_config.ts";
 * const bad = TrainingConfig({ lr: -1 });
 * console.log(invalidConfigError(bad)?.problems[0].path); // "lr"
 * ```
 */
export function invalidConfigError(value: unknown): ConfigError | undefined {
  return value !== null && typeof value === "object" ? invalidErrors.get(value) : undefined;
}

function deepFreeze<T>(value: T): T {
  if (Array.isArray(value)) {
    value.forEach(deepFreeze);
    Object.freeze(value);
  } else if (isPlainObject(value)) {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

function invalidPlaceholder(error: ConfigError): object {
  const target = Object.create(null);
  return new Proxy(target, {
    get(_t, key) {
      // Let `await`, inspection and string conversion pass; any real field read fails loudly.
      if (typeof key === "symbol" || key === "then" || key === "toJSON" || key === "constructor") {
        return undefined;
      }
      throw error;
    },
    has() {
      throw error;
    },
    ownKeys() {
      return [];
    },
    set() {
      throw error;
    },
  });
}

/**
 * Validates `input` against `schema`. Valid: returns the parsed, frozen value (remembering the raw input).
 * Invalid: returns a placeholder typed as the output (see the module docs); {@link checkBuilt} or an enclosing
 * builder reports its problems.
 */
export function buildConfig<S extends z.ZodType>(subject: string, schema: S, input: unknown): z.output<S> {
  const raw = rawConfigOf(input);
  const result = schema.safeParse(raw);
  if (result.success) {
    const value = deepFreeze(result.data) as z.output<S>;
    if (value !== null && typeof value === "object") rawInputs.set(value as object, raw);
    return value;
  }
  const error = new ConfigError(subject, issuesToProblems(result.error.issues, schema, raw));
  const placeholder = invalidPlaceholder(error);
  rawInputs.set(placeholder, raw);
  invalidErrors.set(placeholder, error);
  return placeholder as z.output<S>;
}

/** Validates `input` against `schema` and throws a {@link ConfigError} with every problem when it is invalid. */
export function parseConfig<S extends z.ZodType>(
  subject: string,
  schema: S,
  input: unknown,
): z.output<S> {
  const raw = rawConfigOf(input);
  const result = schema.safeParse(raw);
  if (!result.success) throw new ConfigError(subject, issuesToProblems(result.error.issues, schema, raw));
  const value = deepFreeze(result.data) as z.output<S>;
  if (value !== null && typeof value === "object") rawInputs.set(value as object, raw);
  return value;
}

/** Throws the {@link ConfigError} of an invalid placeholder; returns valid values unchanged. */
export function checkBuilt<T>(value: T): T {
  const error = invalidConfigError(value);
  if (error) throw error;
  return value;
}
