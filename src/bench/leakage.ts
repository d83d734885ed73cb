/**
 * The train/test leakage check: a suite's held-out ledger (every sample its windows read) intersected with
 * the data-hash ledger of the weights (every sample they were trained on: the checkpoint's
 * `data_hashes/manifest.json`, for pipelines the union over ancestor stages). Any overlap refuses the
 * evaluation, naming the recordings, unless overlap is explicitly allowed.
 *
 * @module
 */
import { join } from "node:path";
import { DataLedger, intersectLedgers, type LedgerOverlap } from "../data/ledger.ts";

/** Thrown when held-out data overlaps the training data. */
export class LeakageError extends Error {
  constructor(readonly suiteKey: string, readonly overlaps: LedgerOverlap[], message: string) {
    super(message);
    this.name = "LeakageError";
  }
}

/** Options of {@link checkLeakage}. */
export interface LeakageCheckOptions {
  /** Suite key for messages. */
  suiteKey: string;
  /** Checkpoint hash for messages. */
  checkpointHash: string;
  /** Evaluate anyway, returning the overlaps. */
  allowOverlap?: boolean;
  /** `participant/session` of a recording hash, for messages. */
  sessionOf?: (recordingHash: string) => string | undefined;
}

/**
 * Intersects the ledgers; returns the overlaps (empty when disjoint).
 *
 * @throws {LeakageError} on any overlap (or an unknown training ledger) unless `allowOverlap`.
 * @example
 * ```ts
 * checkLeakage(data.heldOutLedger, model.dataLedger, { suiteKey: "cognitive_load_eval@1", checkpointHash });
 * ```
 */
export function checkLeakage(
  heldOut: DataLedger,
  trained: DataLedger | null,
  options: LeakageCheckOptions,
): LedgerOverlap[] {
  if (trained === null) {
    if (options.allowOverlap) return [];
    throw new LeakageError(
      options.suiteKey,
      [],
      `Cannot evaluate ${options.suiteKey} on checkpoint ${
        options.checkpointHash.slice(0, 12)
      }… as its training data ledger is unknown, so train/test leakage cannot be ruled out: current ledger is ` +
        `null; load the checkpoint's data_hashes/manifest.json, or allow overlap (--allow-overlap) to evaluate anyway`,
    );
  }
  const overlaps = intersectLedgers(heldOut, trained);
  if (overlaps.length === 0 || options.allowOverlap) return overlaps;
  const seconds = overlaps.reduce((n, o) => n + o.seconds, 0);
  const shown = overlaps.slice(0, 10).map((o) => {
    const session = options.sessionOf?.(o.recording_hash);
    return `  - ${o.recording_hash}${session ? ` (${session})` : ""}: ${o.seconds.toFixed(3)} s in ${
      o.intervals.map(([s, e]) => `[${s}, ${e})`).slice(0, 3).join(", ")
    }${o.intervals.length > 3 ? ", …" : ""}`;
  });
  throw new LeakageError(
    options.suiteKey,
    overlaps,
    `Cannot evaluate ${options.suiteKey} on checkpoint ${
      options.checkpointHash.slice(0, 12)
    }… as its held-out data overlaps the data the checkpoint was trained on (train/test leakage): ${overlaps.length} recording(s), ${
      seconds.toFixed(3)
    } s in total:\n${shown.join("\n")}${
      overlaps.length > 10 ? `\n  - … and ${overlaps.length - 10} more` : ""
    }\nTrain without these recordings (e.g. data.ursaQuery.excludeParticipants or the split rule), or allow overlap (--allow-overlap) to evaluate anyway`,
  );
}

/**
 * The data-hash ledger of a checkpoint directory (`data_hashes/manifest.json`), merged with the ledgers of
 * `ancestors` (checkpoint directories or ledger JSON files of earlier pipeline stages).
 *
 * @throws when a file is missing or is not a ledger, naming it.
 */
export async function readCheckpointLedger(
  checkpointDir: string,
  ancestors: readonly string[] = [],
): Promise<DataLedger> {
  const read = async (path: string) => {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new Error(
          `Cannot read the data ledger ${path} as it does not exist: pass a checkpoint directory or a ledger JSON file`,
        );
      }
      throw e;
    }
    try {
      return DataLedger.fromJSON(JSON.parse(text));
    } catch (e) {
      throw new Error(`Cannot read the data ledger ${path}: ${(e as Error).message}`);
    }
  };
  const pathOf = async (p: string) => {
    try {
      return (await Deno.stat(p)).isDirectory ? join(p, "data_hashes", "manifest.json") : p;
    } catch {
      return p;
    }
  };
  const ledger = await read(join(checkpointDir, "data_hashes", "manifest.json"));
  for (const a of ancestors) ledger.merge(await read(await pathOf(a)));
  return ledger;
}
