/**
 * The benchmark registry: suites keyed by `name@version`.
 *
 * Registering uses TC39 standard decorators (`@benchmark({ name, version })` on a class implementing
 * `BenchmarkSuite`; no `experimentalDecorators`) or the function form {@link registerBenchmark}. A suite's
 * code hash is the sha256 of its source text (`cls.toString()` for a class; the members' sources for the
 * function form). Registering a key again with the same code (a module loaded twice) is a no-op; with
 * different code it is an error naming both registrations — changed code needs a new version, since results
 * are keyed by `name@version`. The hash covers the class body only, not code it imports or inherits.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { BENCH_SUITE_KEY } from "../config/training_config.ts";
import type { BenchmarkSuite } from "./bench_suite.ts";

/** What `@benchmark` and `registerBenchmark` take. */
export interface BenchmarkOptions {
  /** Suite name: letters, digits, `_`, `.`, `-` (e.g. `cognitive_load_eval`). */
  name: string;
  /** Positive integer; bump it whenever the suite's data, metrics or procedure change. */
  version: number;
  /** One line for `orion bench ls`. */
  description?: string;
}

/** A class whose instances are suites (constructed with no arguments). */
export type BenchmarkClass = new () => BenchmarkSuite;

/** The function form: options plus the suite's members. */
export type BenchmarkDefinition = BenchmarkOptions & BenchmarkSuite;

/** One registered suite. */
export interface RegisteredBenchmark {
  /** `name@version`. */
  key: string;
  /** Suite name. */
  name: string;
  /** Suite version. */
  version: number;
  /** One line for `orion bench ls`. */
  description: string;
  /** sha256 of the suite's source text. */
  codeHash: string;
  /** `class <Name>` or `registerBenchmark(<key>)`: where the registration came from. */
  origin: string;
  /** The suite (one instance per registration, created on first use). */
  suite(): BenchmarkSuite;
}

const registry = new Map<string, RegisteredBenchmark>();

/** Splits `name@version`, refusing malformed keys. */
export function parseSuiteKey(key: string): { name: string; version: number } {
  if (typeof key !== "string" || !BENCH_SUITE_KEY.test(key)) {
    throw new Error(
      `Cannot use bench suite key ${JSON.stringify(key)} as it must read "<suite>@<version>", ` +
        `e.g. "cognitive_load_eval@1"`,
    );
  }
  const at = key.lastIndexOf("@");
  return { name: key.slice(0, at), version: Number(key.slice(at + 1)) };
}

function keyOf(options: BenchmarkOptions, origin: string): string {
  const { name, version } = options ?? {};
  if (typeof name !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new Error(
      `Cannot register benchmark ${origin} as its name must use letters, digits, '_', '.', '-': current value is ${
        JSON.stringify(name)
      }`,
    );
  }
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new Error(
      `Cannot register benchmark ${name} (${origin}) as its version must be a positive integer: current value is ${
        JSON.stringify(version)
      }`,
    );
  }
  return `${name}@${version}`;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function add(entry: RegisteredBenchmark): RegisteredBenchmark {
  const existing = registry.get(entry.key);
  if (existing) {
    if (existing.codeHash === entry.codeHash) return existing;
    throw new Error(
      `Cannot register benchmark ${entry.key} from ${entry.origin} as ${existing.origin} already registered ` +
        `${entry.key} with different code (code sha256 ${existing.codeHash.slice(0, 12)}… vs ${
          entry.codeHash.slice(0, 12)
        }…): give the changed suite a new version (e.g. ${entry.name}@${entry.version + 1})`,
    );
  }
  registry.set(entry.key, entry);
  return entry;
}

function lazy(make: () => BenchmarkSuite): () => BenchmarkSuite {
  let instance: BenchmarkSuite | undefined;
  return () => (instance ??= make());
}

/**
 * Class decorator registering a suite under `name@version`.
 *
 * @example
 * ```ts
 * @benchmark({ name: "my_eval", version: 1 })
 * class MyEvalV1 implements BenchmarkSuite { ... }
 * getBenchmark("my_eval@1").suite();
 * ```
 */
export function benchmark(
  options: BenchmarkOptions,
): <C extends BenchmarkClass>(cls: C, context: ClassDecoratorContext<C>) => void {
  return (cls, context) => {
    if (context?.kind !== "class") {
      throw new Error(
        `Cannot use @benchmark on a ${context?.kind ?? "non-decorator call"}: decorate a class`,
      );
    }
    const origin = `class ${String(context.name ?? cls.name ?? "<anonymous>")}`;
    const key = keyOf(options, origin);
    add({
      key,
      name: options.name,
      version: options.version,
      description: options.description ?? "",
      codeHash: sha256(cls.toString()),
      origin,
      suite: lazy(() => new cls()),
    });
  };
}

/**
 * Registers a suite without decorators.
 *
 * @example
 * ```ts
 * registerBenchmark({
 *   name: "my_eval", version: 1,
 *   heldOutData: () => ({ participants: ["p001"] }),
 *   metrics: () => [ACCURACY],
 *   run: (model, data, options) => runWindowAveragedClassification(model, data, { ...options, metrics: [ACCURACY] }),
 * });
 * ```
 */
export function registerBenchmark(definition: BenchmarkDefinition): RegisteredBenchmark {
  const origin = `registerBenchmark(${definition?.name}@${definition?.version})`;
  const key = keyOf(definition, origin);
  for (const member of ["heldOutData", "metrics", "run"] as const) {
    if (typeof definition[member] !== "function") {
      throw new Error(
        `Cannot register benchmark ${key} as member ${member} must be a function: current value is ${typeof definition[
          member
        ]}`,
      );
    }
  }
  const source = ["heldOutData", "isHeldOut", "metrics", "run"].map((m) => {
    const f = (definition as unknown as Record<string, unknown>)[m];
    return `${m}:${typeof f === "function" ? f.toString() : "-"}`;
  }).join("\n");
  const { name: _n, version: _v, description: _d, ...members } = definition;
  const suite: BenchmarkSuite = { ...members };
  return add({
    key,
    name: definition.name,
    version: definition.version,
    description: definition.description ?? "",
    codeHash: sha256(source),
    origin,
    suite: () => suite,
  });
}

/**
 * The suite registered under `key` (`name@version`).
 *
 * @throws when nothing is registered under `key`, listing what is.
 */
export function getBenchmark(key: string): RegisteredBenchmark {
  parseSuiteKey(key);
  const entry = registry.get(key);
  if (!entry) {
    const known = [...registry.keys()].sort();
    throw new Error(
      `Cannot find benchmark suite ${key} as no suite is registered under that name and version: registered suites ` +
        `are [${known.join(", ")}]; run \`orion bench ls\``,
    );
  }
  return entry;
}

/**
 * Every registered suite, sorted by key.
 *
 * @example
 * ```ts
 * import { listBenchmarks } from "./registry.ts";
 * for (const b of listBenchmarks()) console.log(b.key, b.description);
 * ```
 */
export function listBenchmarks(): RegisteredBenchmark[] {
  return [...registry.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Whether `key` is registered (for the config pre-flight). */
export function benchSuiteExists(key: string): boolean {
  return registry.has(key);
}
