/**
 * Command-line overrides: `--set training.lr=1e-4 --set model.kwargs.depth=4`. The value is parsed as JSON when
 * it parses (numbers, booleans, null, arrays, objects, quoted strings), else taken as a string. Overrides are
 * applied to the raw config (what the user wrote) and the result is validated exactly like the file itself.
 *
 * @module
 */
import { rawConfigOf } from "./config_builder.ts";
import { ConfigError, formatValue, type Problem, problem } from "./problem.ts";

/** One parsed `--set path=value`. */
export interface ConfigOverride {
  /** The argument as given, e.g. `training.lr=1e-4`. */
  text: string;
  /** Path segments, e.g. `["training", "lr"]`. */
  path: string[];
  /** The parsed value. */
  value: unknown;
}

const FORBIDDEN_KEYS = new Set(["__proto__", "prototype", "constructor"]);

function parseOne(text: string): ConfigOverride | Problem {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    return problem(
      "--set",
      text,
      `Cannot apply override ${JSON.stringify(text)} as it must read path=value: current value has ${
        eq === 0 ? "no path" : "no '='"
      }`,
      "write e.g. --set training.lr=1e-4",
    );
  }
  const pathText = text.slice(0, eq).trim();
  const valueText = text.slice(eq + 1);
  const path = pathText.split(".");
  const bad = path.find((s) => s === "" || FORBIDDEN_KEYS.has(s));
  if (bad !== undefined) {
    return problem(
      pathText,
      valueText,
      `Cannot apply override ${JSON.stringify(text)} as its path ${JSON.stringify(pathText)} has ${
        bad === "" ? "an empty segment" : `the reserved segment "${bad}"`
      }`,
      "name the field with dot-separated keys, e.g. model.kwargs.depth",
    );
  }
  let value: unknown = valueText;
  try {
    value = JSON.parse(valueText);
  } catch {
    // Not JSON: keep the text as a string value.
  }
  return { text, path, value };
}

/**
 * Parses `path=value` arguments; throws a `ConfigError` listing every malformed one.
 *
 * @example
 * ```ts
 * import { parseOverrides } from "./config_overrides.ts";
 * const overrides = parseOverrides(["training.lr=1e-4", "name=my_run"]);
 * console.log(overrides[0].path, overrides[0].value); // ["training", "lr"] 0.0001
 * ```
 */
export function parseOverrides(texts: readonly string[]): ConfigOverride[] {
  const results = texts.map(parseOne);
  const problems = results.filter((r): r is Problem => "fix" in r);
  if (problems.length) throw new ConfigError("--set overrides", problems);
  return results as ConfigOverride[];
}

function isContainer(v: unknown): v is Record<string, unknown> | unknown[] {
  return v !== null && typeof v === "object";
}

/**
 * Applies overrides to a copy of the raw config (built values are first turned back into what the user wrote).
 * Missing intermediate objects are created; unknown fields are left for validation to report by path.
 * Throws a `ConfigError` listing every override that cannot be applied (e.g. through a number).
 *
 * @example
 * ```ts
 * import { applyOverrides, parseOverrides } from "./config_overrides.ts";
 * const raw = applyOverrides({ training: { lr: 1e-3 } }, parseOverrides(["training.lr=1e-4", "name=demo"]));
 * console.log(raw); // { training: { lr: 0.0001 }, name: "demo" }
 * ```
 */
export function applyOverrides(config: unknown, overrides: readonly ConfigOverride[]): unknown {
  const root = rawConfigOf(config);
  if (!isContainer(root)) {
    throw new ConfigError("--set overrides", [problem(
      "",
      root,
      `Cannot apply overrides to the config as it is not an object: current value is ${formatValue(root)}`,
      "make the config module's default export a RunConfig or TrainingPipeline",
    )]);
  }
  const problems: Problem[] = [];
  for (const o of overrides) {
    let node: Record<string, unknown> | unknown[] = root;
    let failed = false;
    for (let i = 0; i < o.path.length - 1 && !failed; i++) {
      const key = o.path[i];
      if (Array.isArray(node) && !/^(0|[1-9][0-9]*)$/.test(key)) {
        failed = true;
        problems.push(problem(
          o.path.join("."),
          o.value,
          `Cannot apply --set ${o.text} as ${
            o.path.slice(0, i).join(".")
          } is a list, so "${key}" must be an index`,
          `use a number, e.g. ${o.path.slice(0, i).join(".")}.0`,
        ));
        break;
      }
      const next: unknown = (node as Record<string, unknown>)[key];
      if (next === undefined || next === null) {
        const created = {};
        (node as Record<string, unknown>)[key] = created;
        node = created;
      } else if (
        isContainer(next) && (Array.isArray(next) || Object.getPrototypeOf(next) === Object.prototype)
      ) {
        node = next;
      } else {
        failed = true;
        const at = o.path.slice(0, i + 1).join(".");
        problems.push(problem(
          o.path.join("."),
          o.value,
          `Cannot apply --set ${o.text} as ${at} is not an object: current value is ${formatValue(next)}`,
          `set ${at} itself, e.g. --set ${at}=<value>`,
        ));
      }
    }
    if (failed) continue;
    const last = o.path[o.path.length - 1];
    if (Array.isArray(node)) {
      const index = /^(0|[1-9][0-9]*)$/.test(last) ? Number(last) : NaN;
      if (!(index <= node.length)) {
        const at = o.path.slice(0, -1).join(".");
        problems.push(problem(
          o.path.join("."),
          o.value,
          `Cannot apply --set ${o.text} as ${at} is a list of ${node.length} item(s): index ${
            JSON.stringify(last)
          } is not an index or beyond its end`,
          `use an index from 0 to ${node.length} (= append), or set the whole list: --set ${at}='[...]'`,
        ));
        continue;
      }
      node[index] = o.value;
    } else {
      node[last] = o.value;
    }
  }
  if (problems.length) throw new ConfigError("--set overrides", problems);
  return root;
}
