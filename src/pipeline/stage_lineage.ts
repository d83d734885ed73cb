/**
 * The lineage of a run started from another run's checkpoint (a fine-tuning stage): the checkpoint it was
 * initialised from, the chain of ancestors back to the first pre-training, and the union of the data every
 * ancestor consumed. It is what `runTraining` records in each checkpoint's `lineage.json` and in the
 * catalog table `run_lineage`.
 *
 * `lineage.json` of a stage checkpoint:
 * ```json
 * {
 *   "parentRun": "pretrain",            // the run it was initialised from (null for a fresh run)
 *   "parentCheckpointHash": "…",        // previous checkpoint of this chain; the init checkpoint for the first
 *   "stepsConsumed": 1200,              // optimizer steps behind these weights, summed over the lineage
 *   "stageSteps": 200,                  // steps of this run alone
 *   "initCheckpoint": { "run": "pretrain", "checkpointHash": "…", "step": 1000, "stepsConsumed": 1000 },
 *   "ancestors": [{ "run": "pretrain", "checkpointHash": "…", "step": 1000, "stepsConsumed": 1000 }],
 *   "ancestorDataHashes": { "version": 1, "entries": [...] },
 *   "pipeline": "cognitive_load_v3_full"
 * }
 * ```
 * `ancestors` is oldest first and ends with `initCheckpoint`. The checkpoint's `data_hashes/manifest.json`
 * holds the union of `ancestorDataHashes` and this run's own consumption, so every leakage check on it
 * spans all ancestors; `ancestorDataHashes` alone tells which part came from the ancestors.
 *
 * @module
 */
import type { CheckpointLineage, JsonObject, JsonValue } from "../checkpoint/checkpoint_state.ts";
import { DataLedger, type LedgerJson } from "../data/ledger.ts";

/** One checkpoint of the ancestry. */
export interface AncestorCheckpoint {
  /** Run name. */
  run: string;
  /** The checkpoint's content hash (64 hex digits). */
  checkpointHash: string;
  /** The checkpoint's step within its run. */
  step: number;
  /** Steps behind its weights, summed over its own lineage. */
  stepsConsumed: number;
}

/** Where a run's initial weights came from; recorded by `runTraining` (`RunRequest.lineage`). */
export interface StageLineage {
  /** The run whose checkpoint initialised this one. */
  parentRun: string;
  /** The checkpoint it was initialised from. */
  initCheckpoint: AncestorCheckpoint;
  /** Every checkpoint along the chain, oldest (the first pre-training) first, ending with `initCheckpoint`. */
  ancestors: AncestorCheckpoint[];
  /** Union of the data-hash ledgers of every ancestor (serialized {@link DataLedger}). */
  ancestorDataHashes: LedgerJson;
  /** The pipeline that ran this stage, if any. */
  pipeline: string | null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function ancestorOf(v: unknown, field: string): AncestorCheckpoint {
  if (
    !isObject(v) || typeof v.run !== "string" || typeof v.checkpointHash !== "string" ||
    typeof v.step !== "number" || typeof v.stepsConsumed !== "number"
  ) {
    throw new Error(
      `Cannot read lineage field ${field} as it must be {run, checkpointHash, step, stepsConsumed}: current value is ${
        JSON.stringify(v)
      }`,
    );
  }
  return { run: v.run, checkpointHash: v.checkpointHash, step: v.step, stepsConsumed: v.stepsConsumed };
}

/**
 * The stage lineage stored in a checkpoint's `lineage.json`, or null when the checkpoint's run started from
 * fresh weights (no `initCheckpoint`).
 *
 * @throws when the fields are present but malformed, naming the field.
 * @example
 * ```ts
 * import { stageLineageOf } from "./stage_lineage.ts";
 * const stage = stageLineageOf({ parentRun: null, stepsConsumed: 10 }); // null: a fresh run
 * ```
 */
export function stageLineageOf(lineage: CheckpointLineage | JsonObject): StageLineage | null {
  if (lineage.initCheckpoint === undefined || lineage.initCheckpoint === null) return null;
  const initCheckpoint = ancestorOf(lineage.initCheckpoint, "initCheckpoint");
  const rawAncestors = lineage.ancestors;
  if (!Array.isArray(rawAncestors)) {
    throw new Error(
      `Cannot read lineage field ancestors as it must be a list: current value is ${
        JSON.stringify(rawAncestors)
      }`,
    );
  }
  const ledger = DataLedger.fromJSON(lineage.ancestorDataHashes ?? { version: 1, entries: [] }).toJSON();
  return {
    parentRun: typeof lineage.parentRun === "string" ? lineage.parentRun : initCheckpoint.run,
    initCheckpoint,
    ancestors: rawAncestors.map((a, i) => ancestorOf(a, `ancestors[${i}]`)),
    ancestorDataHashes: ledger,
    pipeline: typeof lineage.pipeline === "string" ? lineage.pipeline : null,
  };
}

/**
 * The `lineage.json` contents of a checkpoint at `step` of a run (see the module documentation); a run
 * without a stage lineage records `{parentRun, stepsConsumed: step}`.
 *
 * @example
 * ```ts
 * import { checkpointLineage } from "./stage_lineage.ts";
 * checkpointLineage(null, 100, null); // { parentRun: null, stepsConsumed: 100 }
 * ```
 */
export function checkpointLineage(
  parentRun: string | null,
  step: number,
  stage: StageLineage | null,
): CheckpointLineage {
  if (!stage) return { parentRun, stepsConsumed: step };
  const json = (a: AncestorCheckpoint): JsonObject => ({ ...a });
  return {
    parentRun: stage.parentRun,
    stepsConsumed: stage.initCheckpoint.stepsConsumed + step,
    stageSteps: step,
    initCheckpoint: json(stage.initCheckpoint),
    ancestors: stage.ancestors.map(json),
    ancestorDataHashes: stage.ancestorDataHashes as unknown as JsonValue,
    pipeline: stage.pipeline,
  };
}

/**
 * The lineage of a run initialised from `parent` (a loaded checkpoint's run name, hash, step and
 * `lineage.json`, plus its `data_hashes/manifest.json`): the parent's ancestors plus the parent, and the
 * union of the parent's ledger with the parent's own ancestors' ledger.
 *
 * @example
 * ```ts
 * import { childLineage } from "./stage_lineage.ts";
 * const stage = childLineage({
 *   run: "pretrain", checkpointHash: "ab".repeat(32), step: 100,
 *   lineage: { parentRun: null, stepsConsumed: 100 }, dataHashes: { version: 1, entries: [] },
 * }, "pre_then_ft");
 * console.log(stage.ancestors.length); // 1
 * ```
 */
export function childLineage(
  parent: {
    run: string;
    checkpointHash: string;
    step: number;
    lineage: CheckpointLineage | JsonObject;
    dataHashes: JsonObject | LedgerJson;
  },
  pipeline: string | null,
): StageLineage {
  const grand = stageLineageOf(parent.lineage);
  const stepsConsumed = typeof parent.lineage.stepsConsumed === "number"
    ? parent.lineage.stepsConsumed
    : parent.step;
  const initCheckpoint: AncestorCheckpoint = {
    run: parent.run,
    checkpointHash: parent.checkpointHash,
    step: parent.step,
    stepsConsumed,
  };
  const ledger = DataLedger.fromJSON(parent.dataHashes);
  if (grand) ledger.merge(DataLedger.fromJSON(grand.ancestorDataHashes));
  return {
    parentRun: parent.run,
    initCheckpoint,
    ancestors: [...(grand?.ancestors ?? []), initCheckpoint],
    ancestorDataHashes: ledger.toJSON(),
    pipeline,
  };
}
