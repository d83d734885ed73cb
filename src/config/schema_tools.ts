/**
 * Helpers over zod schemas used by every config section: cross-field checks that run even when other fields
 * are invalid (so every problem is collected in one pass), walking a schema by field path (for defaults,
 * descriptions and known keys in fixes), and turning zod issues into {@link Problem}s.
 *
 * @module
 */
import { z } from "zod";
import { formatValue, type Problem, problem } from "./problem.ts";

/** Context handed to an {@link alwaysCheck} function: report problems relative to the checked value. */
export interface CheckReporter {
  /** Reports an error at `path` (relative to the checked value). Warnings are not schema issues: see preflight. */
  report(path: readonly (string | number)[], message: string, fix: string): void;
}

/**
 * A cross-field check that runs even when some fields already failed (zod skips ordinary refinements then),
 * so one parse reports every problem. The function sees the raw, possibly-invalid value: guard every read.
 */
export function alwaysCheck<S extends z.ZodType>(
  schema: S,
  // deno-lint-ignore no-explicit-any
  fn: (value: any, reporter: CheckReporter) => void,
): S {
  const check = z.superRefine((value: unknown, ctx) => {
    fn(value, {
      report(path, message, fix) {
        ctx.addIssue({ code: "custom", path: [...path], message, params: { fix }, input: undefined });
      },
    });
  });
  // zod runs a check after failed fields only when its `when` says so.
  (check._zod.def as { when?: () => boolean }).when = () => true;
  return schema.check(check) as S;
}

/** Schemas whose children are only known from the data beside them (model kwargs: the class decides). */
const dynamicChildren = new WeakMap<z.ZodType, (parentRaw: unknown) => z.ZodType | undefined>();

/** Marks `schema` (at some key of its parent) as validated by a schema chosen from the parent's raw value. */
export function withDynamicSchema<S extends z.ZodType>(
  schema: S,
  choose: (parentRaw: unknown) => z.ZodType | undefined,
): S {
  dynamicChildren.set(schema, choose);
  return schema;
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  options?: z.ZodType[];
  items?: z.ZodType[];
  valueType?: z.ZodType;
  defaultValue?: unknown;
  getter?: () => z.ZodType;
}

function defOf(schema: z.ZodType): Def {
  return schema._zod.def as unknown as Def;
}

const WRAPPERS = new Set(["optional", "nullable", "default", "prefault", "readonly", "catch", "nonoptional"]);

/** Strips optional/nullable/default/pipe wrappers down to the schema that owns the fields. */
export function unwrapSchema(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 32; i++) {
    const def = defOf(s);
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else if (def.type === "lazy" && def.getter) s = def.getter();
    else break;
  }
  return s;
}

/** The schema of field `key` inside `schema` (through wrappers, unions, arrays), if it can be found. */
export function childSchema(
  schema: z.ZodType,
  key: string | number,
  parentRaw?: unknown,
): z.ZodType | undefined {
  const s = unwrapSchema(schema);
  const def = defOf(s);
  let child: z.ZodType | undefined;
  if (def.type === "object" && def.shape) child = Object.hasOwn(def.shape, key) ? def.shape[key] : undefined;
  else if (def.type === "array" && def.element) child = def.element;
  else if (def.type === "tuple" && def.items) child = def.items[Number(key)];
  else if (def.type === "record" && def.valueType) child = def.valueType;
  else if (def.type === "union" && def.options) {
    for (const option of def.options) {
      child = childSchema(option, key, parentRaw);
      if (child) break;
    }
  }
  if (child && dynamicChildren.has(child)) {
    const raw = isRecord(parentRaw) ? parentRaw : undefined;
    return dynamicChildren.get(child)!(raw) ?? child;
  }
  return child;
}

/** The value at `path` inside `root` (undefined when any step is missing). */
export function valueAtPath(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[key as string];
  }
  return v;
}

/** The schema at `path` from `root`, resolving dynamic children (model kwargs) against `raw`. */
export function schemaAtPath(
  root: z.ZodType,
  path: readonly (string | number)[],
  raw: unknown,
): z.ZodType | undefined {
  let s: z.ZodType | undefined = root;
  for (let i = 0; i < path.length && s; i++) s = childSchema(s, path[i], valueAtPath(raw, path.slice(0, i)));
  return s;
}

/** The field names an object schema accepts (through wrappers), or `[]`. */
export function knownKeys(schema: z.ZodType | undefined): string[] {
  if (!schema) return [];
  const s = unwrapSchema(schema);
  const def = defOf(s);
  if (def.type === "object" && def.shape) return Object.keys(def.shape);
  if (def.type === "union" && def.options) return [...new Set(def.options.flatMap((o) => knownKeys(o)))];
  return [];
}

/** The documented default of a field schema, if it has one. */
export function defaultOf(schema: z.ZodType | undefined): { has: boolean; value?: unknown } {
  let s = schema;
  for (let i = 0; s && i < 16; i++) {
    const def = defOf(s);
    if (def.type === "default" || def.type === "prefault") {
      const value = typeof def.defaultValue === "function"
        ? (def.defaultValue as () => unknown)()
        : def.defaultValue;
      return { has: true, value };
    }
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else break;
  }
  return { has: false };
}

/** The `.describe()` text of a field schema (searching through wrappers). */
export function descriptionOf(schema: z.ZodType | undefined): string | undefined {
  let s = schema;
  for (let i = 0; s && i < 16; i++) {
    if (s.description) return s.description;
    const def = defOf(s);
    if (WRAPPERS.has(def.type) && def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else break;
  }
  return undefined;
}

/** Edit distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return prev[b.length];
}

/** The closest candidate to `word` (case-insensitive, also snake_case vs camelCase), if it is close enough. */
export function closestMatch(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replaceAll("_", "").replaceAll("-", "");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(norm(word), norm(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** Joins a zod path into the dotted form used by problems and `--set` overrides. */
export function joinPath(path: readonly PropertyKey[]): string {
  return path.map(String).join(".");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function fieldHint(schema: z.ZodType | undefined): string {
  const description = descriptionOf(schema);
  const d = defaultOf(schema);
  const parts: string[] = [];
  if (d.has) parts.push(`default ${formatValue(d.value)}`);
  if (description) parts.push(description);
  return parts.length ? ` (${parts.join(": ")})` : "";
}

function article(word: string): string {
  return /^[aeiou]/i.test(word) ? `an ${word}` : `a ${word}`;
}

function expectedText(expected: string): string {
  switch (expected) {
    case "int":
      return "an integer";
    case "object":
      return "an object { ... }";
    case "array":
      return "an array [ ... ]";
    case "custom":
      return "a valid value";
    default:
      return article(expected);
  }
}

function bound(issue: { origin?: string; inclusive?: boolean }, op: "min" | "max", n: unknown): string {
  const origin = issue.origin ?? "number";
  if (origin === "array" || origin === "set") return `${op === "min" ? "at least" : "at most"} ${n} item(s)`;
  if (origin === "string") return `${op === "min" ? "at least" : "at most"} ${n} character(s)`;
  const sign = op === "min"
    ? (issue.inclusive === false ? ">" : "≥")
    : (issue.inclusive === false ? "<" : "≤");
  return `${sign} ${n}`;
}

/**
 * Converts zod issues into problems with full dotted paths, the value found, a house-style message and a fix
 * (using the field's documented default/description and "did you mean" for unknown keys and options).
 */
export function issuesToProblems(
  issues: readonly z.core.$ZodIssue[],
  root: z.ZodType,
  raw: unknown,
  prefix: readonly (string | number)[] = [],
): Problem[] {
  const out: Problem[] = [];
  for (const issue of issues) {
    const rel = issue.path as (string | number)[];
    const full = [...prefix, ...rel];
    const path = joinPath(full);
    const value = valueAtPath(raw, rel);
    const fieldSchema = schemaAtPath(root, rel, raw);
    const name = path || "the config";
    const params = (issue as { params?: { fix?: string } }).params;
    const custom = issue.message.startsWith("Cannot ");
    switch (issue.code) {
      case "unrecognized_keys": {
        const known = knownKeys(fieldSchema);
        for (const key of issue.keys) {
          const keyPath = joinPath([...full, key]);
          const guess = closestMatch(key, known);
          out.push(problem(
            keyPath,
            valueAtPath(raw, [...rel, key]),
            `Cannot accept ${keyPath} as ${path || "the config"} has no field "${key}": current value is ${
              formatValue(valueAtPath(raw, [...rel, key]))
            }`,
            (guess ? `did you mean "${guess}"? ` : "") +
              `remove "${key}"${known.length ? `; known fields: ${known.join(", ")}` : ""}`,
          ));
        }
        break;
      }
      case "invalid_type": {
        const expected = String(issue.expected);
        const hint = fieldHint(fieldSchema);
        if (value === undefined) {
          out.push(problem(
            path,
            value,
            custom
              ? issue.message
              : `Cannot build ${name} as it is required: it must be ${expectedText(expected)}`,
            params?.fix ?? `set ${name} to ${expectedText(expected)}${hint}`,
          ));
        } else {
          out.push(problem(
            path,
            value,
            custom
              ? issue.message
              : `Cannot accept ${name} as it must be ${expectedText(expected)}: current value is ${
                formatValue(value)
              }${typeof value === "number" && expected === "int" ? "" : ` (${typeof value})`}`,
            params?.fix ?? `set ${name} to ${expectedText(expected)}${hint}`,
          ));
        }
        break;
      }
      case "invalid_value": {
        const options = issue.values.map((v) => formatValue(v));
        const guess = typeof value === "string"
          ? closestMatch(value, issue.values.filter((v): v is string => typeof v === "string"))
          : undefined;
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as it must be one of ${options.join(", ")}: current value is ${
              formatValue(value)
            }`,
          params?.fix ?? ((guess ? `did you mean "${guess}"? ` : "") + `use one of ${options.join(", ")}`),
        ));
        break;
      }
      case "too_small":
      case "too_big": {
        const op = issue.code === "too_small" ? "min" : "max";
        const limit = issue.code === "too_small" ? issue.minimum : issue.maximum;
        const want = bound(issue, op, limit);
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as it must be ${want}: current value is ${formatValue(value)}`,
          params?.fix ?? `set ${name} to a value ${want}${fieldHint(fieldSchema)}`,
        ));
        break;
      }
      case "not_multiple_of":
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as it must be a multiple of ${issue.divisor}: current value is ${
              formatValue(value)
            }`,
          params?.fix ?? `set ${name} to a multiple of ${issue.divisor}`,
        ));
        break;
      case "invalid_format":
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as it must match ${
              (issue as { pattern?: string }).pattern ?? issue.format
            }: current value is ${formatValue(value)}`,
          params?.fix ?? `set ${name} to a value of the right form${fieldHint(fieldSchema)}`,
        ));
        break;
      case "custom":
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as ${issue.message}: current value is ${formatValue(value)}`,
          params?.fix ?? `correct ${name}${fieldHint(fieldSchema)}`,
        ));
        break;
      default:
        out.push(problem(
          path,
          value,
          custom
            ? issue.message
            : `Cannot accept ${name} as it is invalid (${issue.message}): current value is ${
              formatValue(value)
            }`,
          params?.fix ?? `correct ${name}${fieldHint(fieldSchema)}`,
        ));
    }
  }
  return out;
}
