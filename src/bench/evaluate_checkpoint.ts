/**
 * Evaluating suites on a checkpoint directory: read its manifest (hash, step), load it into a `BenchModel`
 * through the registered loader, take its data ledger (plus ancestors'), evaluate each suite.
 *
 * The loader is a hook: whoever knows how to turn a checkpoint into a model (the trainer) registers it with
 * {@link setBenchModelLoader} at import of its module. It should be cheap to call (read the config and
 * vocabularies) and defer weight uploads to the first `predict`, since cached results never call `predict`.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { listCheckpointDirs, summarizeCheckpoint } from "../checkpoint/checkpoint_reader.ts";
import { MANIFEST_FILE, parseCheckpointManifest } from "../checkpoint/checkpoint_manifest.ts";
import { DataLedger } from "../data/ledger.ts";
import { type Catalog, openCatalog } from "../ursa/catalog.ts";
import type { BenchModel } from "./bench_model.ts";
import { evaluateBenchmark, type EvaluateOptions, type EvaluateOutcome } from "./evaluate.ts";
import { readCheckpointLedger } from "./leakage.ts";
import { pathExists } from "../checkpoint/durable_fs.ts";

/** What a loader learns about the checkpoint besides its directory. */
export interface CheckpointIdentity {
  /** The manifest's checkpoint hash; the model's `checkpointHash` must equal it. */
  checkpointHash: string;
  step: number;
}

/** Turns a checkpoint directory into a model. */
export type BenchModelLoader = (checkpointDir: string, identity: CheckpointIdentity) => Promise<BenchModel>;

let registeredLoader: BenchModelLoader | null = null;

/**
 * Registers (or with null, removes) the loader `orion eval`, inline benchmarks and side processes use.
 *
 * @example
 * ```ts
 * setBenchModelLoader(async (dir, { checkpointHash }) => {
 *   const ckpt = await readCheckpoint(dir);
 *   const trainer = ...; // build from ckpt.state.config, upload ckpt.state.model.weights
 *   return { checkpointHash, dataLedger: DataLedger.fromJSON(ckpt.state.dataHashes), input, predict: ... };
 * });
 * ```
 */
export function setBenchModelLoader(loader: BenchModelLoader | null): void {
  registeredLoader = loader;
}

/** The registered loader. @throws when none is registered. */
export function getBenchModelLoader(): BenchModelLoader {
  if (!registeredLoader) {
    throw new Error(
      "Cannot load a checkpoint for benchmarking as no model loader is registered: current loader is none; " +
        "import the module that calls setBenchModelLoader (the trainer's) before evaluating",
    );
  }
  return registeredLoader;
}

/** Options of {@link evaluateCheckpoint}. */
export interface CheckpointEvalOptions extends Omit<EvaluateOptions, "data" | "run" | "step" | "catalog"> {
  /** Catalog to use (default: opened at `catalogDir`, or the default catalog). */
  catalog?: Catalog;
  catalogDir?: string;
  /** Ledgers of ancestor stages (checkpoint directories or ledger JSON files), unioned into the model's. */
  ledgers?: readonly string[];
  /** Loader to use instead of the registered one. */
  loader?: BenchModelLoader;
}

/** One suite that could not be evaluated. */
export interface SuiteFailure {
  suite: string;
  message: string;
  error: unknown;
}

/** What {@link evaluateCheckpoint} returns. */
export interface CheckpointEvalOutcome {
  checkpointDir: string;
  checkpointHash: string;
  step: number;
  run: string;
  outcomes: EvaluateOutcome[];
  failures: SuiteFailure[];
}

/** What {@link evaluateModel} returns. */
export interface ModelEvalOutcome {
  outcomes: EvaluateOutcome[];
  failures: SuiteFailure[];
}

/**
 * Evaluates `suites` on `model` one after the other; a suite that fails (leakage, data, model errors) is
 * reported in `failures` without stopping the others.
 *
 * @example
 * ```ts
 * const out = await evaluateModel(liveModel, ["cognitive_load_eval@1"], { catalog, step, run, partialSubset: 0.1 });
 * ```
 */
export async function evaluateModel(
  model: BenchModel,
  suites: readonly string[],
  options: EvaluateOptions,
): Promise<ModelEvalOutcome> {
  const outcomes: EvaluateOutcome[] = [];
  const failures: SuiteFailure[] = [];
  for (const suite of suites) {
    try {
      outcomes.push(await evaluateBenchmark(suite, model, options));
    } catch (error) {
      failures.push({ suite, message: error instanceof Error ? error.message : String(error), error });
    }
  }
  return { outcomes, failures };
}

/** Reads a checkpoint's manifest: its hash and step. */
export async function readCheckpointIdentity(checkpointDir: string): Promise<CheckpointIdentity> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(join(checkpointDir, MANIFEST_FILE));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot evaluate ${checkpointDir} as it has no ${MANIFEST_FILE}: pass a complete checkpoint directory ` +
          `(ckpt-step<N>/) or a run directory`,
      );
    }
    throw e;
  }
  try {
    const manifest = parseCheckpointManifest(bytes);
    return { checkpointHash: manifest.checkpointHash, step: manifest.step };
  } catch (e) {
    throw new Error(
      `Cannot evaluate ${checkpointDir} as its ${MANIFEST_FILE} is invalid: ${(e as Error).message}`,
    );
  }
}

/**
 * The checkpoint directory of `runDir` whose manifest has `checkpointHash` (e.g. the best result's), or
 * undefined (deleted by retention, or another run's).
 */
export async function checkpointDirOfHash(
  runDir: string,
  checkpointHash: string,
): Promise<string | undefined> {
  for (const entry of await listCheckpointDirs(runDir)) {
    if ((await summarizeCheckpoint(entry)).manifest?.checkpointHash === checkpointHash) return entry.dir;
  }
  return undefined;
}

/**
 * Evaluates `suites` on the checkpoint in `checkpointDir`; a suite that fails is reported in `failures`
 * without stopping the others.
 *
 * @example
 * ```ts
 * const out = await evaluateCheckpoint("runs/demo/ckpt-step000000300", ["cognitive_load_eval@1"], { partialSubset: 0.1 });
 * for (const o of out.outcomes) console.log(o.result.metrics.accuracy);
 * ```
 */
export async function evaluateCheckpoint(
  checkpointDir: string,
  suites: readonly string[],
  options: CheckpointEvalOptions = {},
): Promise<CheckpointEvalOutcome> {
  const identity = await readCheckpointIdentity(checkpointDir);
  const loader = options.loader ?? getBenchModelLoader();
  const loaded = await loader(checkpointDir, identity);
  let ownCatalog: Catalog | null = null;
  try {
    if (loaded.checkpointHash !== identity.checkpointHash) {
      throw new Error(
        `Cannot evaluate ${checkpointDir} as the model loader returned checkpointHash ${loaded.checkpointHash}, ` +
          `not the manifest's ${identity.checkpointHash}: the loader must pass the hash through`,
      );
    }
    let ledger = loaded.dataLedger;
    const ownLedger = join(checkpointDir, "data_hashes", "manifest.json");
    if (ledger === null && await pathExists(ownLedger)) ledger = await readCheckpointLedger(checkpointDir);
    if (options.ledgers && options.ledgers.length > 0) {
      const ancestors = await readCheckpointLedger(checkpointDir, options.ledgers);
      ledger = ledger === null ? ancestors : new DataLedger().merge(ledger).merge(ancestors);
    }
    const model: BenchModel = {
      checkpointHash: loaded.checkpointHash,
      dataLedger: ledger,
      input: loaded.input,
      batchSize: loaded.batchSize,
      predict: (batches) => loaded.predict(batches),
    };
    if (!options.catalog) ownCatalog = await openCatalog(options.catalogDir);
    const catalog = options.catalog ?? ownCatalog!;
    const run = basename(dirname(checkpointDir.replace(/\/+$/, "")));
    const { outcomes, failures } = await evaluateModel(model, suites, {
      ...options,
      catalog,
      run,
      step: identity.step,
    });
    return { checkpointDir, ...identity, run, outcomes, failures };
  } finally {
    await loaded.dispose?.();
    ownCatalog?.close();
  }
}
