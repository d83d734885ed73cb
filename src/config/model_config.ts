/**
 * `ModelConfig`: which model class a run trains and its hyper-parameters (kwargs), validated by the class's own
 * `kwargsSchema`.
 *
 * @module
 */
import { z } from "zod";
import {
  type KwargsInputOf,
  lookupModelClass,
  type ModelClass,
  modelClassNames,
} from "../models/model_class.ts";
import { buildConfig } from "./config_builder.ts";
import type { DeepUnbranded, SameShape } from "./config_shape.ts";
import { closestMatch, knownKeys, withDynamicSchema } from "./schema_tools.ts";

/** True when `v` looks like a model class: a `modelName` string and a zod `kwargsSchema`. */
export function isModelClass(v: unknown): v is ModelClass {
  if (v === null || (typeof v !== "function" && typeof v !== "object")) return false;
  const c = v as { modelName?: unknown; kwargsSchema?: { safeParse?: unknown } };
  return typeof c.modelName === "string" && typeof c.kwargsSchema?.safeParse === "function";
}

/** Resolves `cls` as written (a class or a registered name) to a class, or `undefined`. */
export function resolveModelClass(cls: unknown): ModelClass | undefined {
  if (typeof cls === "string") return lookupModelClass(cls);
  return isModelClass(cls) ? cls : undefined;
}

function registeredText(): string {
  const names = modelClassNames();
  return names.length ? names.join(", ") : "none (import the model's module, e.g. src/models/poyo.ts)";
}

const ModelClassField = z.custom<ModelClass | string>(
  (v) => typeof v === "string" || isModelClass(v),
  { error: "Cannot use model.cls as it must be a model class (e.g. POYO) or the name of a registered one" },
).describe("model class, e.g. POYO (serialized by its registered modelName)");

const KwargsField = withDynamicSchema(
  z.record(z.string(), z.unknown()).default({}).describe("hyper-parameters, validated by cls.kwargsSchema"),
  (parent) => resolveModelClass((parent as { cls?: unknown } | undefined)?.cls)?.kwargsSchema,
);

/** The zod schema of {@link ModelConfig}: `cls` (class or registered name) and `kwargs` (checked by the class). */
export const ModelConfigSchema = z.strictObject({ cls: ModelClassField, kwargs: KwargsField })
  .transform((v, ctx) => {
    const cls = resolveModelClass(v.cls);
    if (!cls) {
      const guess = typeof v.cls === "string" ? closestMatch(v.cls, modelClassNames()) : undefined;
      ctx.issues.push({
        code: "custom",
        path: ["cls"],
        input: v.cls,
        message: `Cannot resolve model class ${
          JSON.stringify(v.cls)
        } as no class of that name is registered: registered classes are ${registeredText()}`,
        params: {
          fix: (guess ? `did you mean "${guess}"? ` : "") +
            'import the model class in the config (e.g. `import { POYO } from "orion"`) and pass it as cls',
        },
      });
      return z.NEVER;
    }
    const registered = lookupModelClass(cls.modelName);
    if (registered && registered !== cls) {
      ctx.issues.push({
        code: "custom",
        path: ["cls"],
        input: v.cls,
        message:
          `Cannot use model class "${cls.modelName}" as another class is registered under that name: current value is a different class`,
        params: { fix: "give the class a unique static modelName" },
      });
      return z.NEVER;
    }
    const parsed = cls.kwargsSchema.safeParse(v.kwargs);
    if (!parsed.success) {
      const known = knownKeys(cls.kwargsSchema);
      for (const issue of parsed.error.issues) {
        if (issue.code === "unrecognized_keys") {
          for (const key of issue.keys) {
            const guess = closestMatch(key, known);
            ctx.issues.push({
              code: "custom",
              path: ["kwargs", ...issue.path, key],
              input: undefined,
              message:
                `Cannot accept model.kwargs.${key} as ${cls.modelName} has no hyper-parameter "${key}": current value is ${
                  JSON.stringify(v.kwargs[key]) ?? "missing"
                }`,
              params: {
                fix: (guess ? `did you mean "${guess}"? ` : "") +
                  `remove "${key}"; ${cls.modelName} accepts ${known.join(", ")}`,
              },
            });
          }
        } else {
          ctx.issues.push({ ...issue, path: ["kwargs", ...issue.path] } as z.core.$ZodRawIssue);
        }
      }
      return z.NEVER;
    }
    return { cls, kwargs: parsed.data as Record<string, unknown> };
  }).brand<"ModelConfig">();

/** A model config as a user writes it, typed by the class's kwargs. */
export interface ModelConfigInput<C extends ModelClass = ModelClass> {
  /** The model class (e.g. `POYO`), or its registered name. */
  cls: C | string;
  /** Hyper-parameters; unknown keys are errors. */
  kwargs?: KwargsInputOf<C>;
}

/** A validated model config: the class and its kwargs with every schema default filled in. */
export interface ModelConfig {
  /** The model class (a registered name is resolved to its class). */
  cls: ModelClass;
  /** Hyper-parameters as the class's `kwargsSchema` returned them (defaults filled in). */
  kwargs: Record<string, unknown>;
}

const _modelConfigMatchesSchema: SameShape<DeepUnbranded<z.output<typeof ModelConfigSchema>>, ModelConfig> =
  true;

/**
 * Validates a model config through the class's `kwargsSchema`.
 *
 * @example
 * ```ts
 * import { ModelConfig } from "./model_config.ts";
 * import { POYO } from "../models/poyo.ts";
 * const m = ModelConfig({ cls: POYO, kwargs: { dim: 512, depth: 6, numLatents: 64 } });
 * console.log(m.kwargs.dimHead); // 64
 * ```
 */
export function ModelConfig<C extends ModelClass>(input: ModelConfigInput<C>): ModelConfig {
  return buildConfig("ModelConfig", ModelConfigSchema, input);
}
