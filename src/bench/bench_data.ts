/**
 * `BenchData`: a suite's held-out data as evaluation windows grouped by labelled block, with its content
 * hash, its data-hash ledger (for the leakage check) and a way to turn windows into model batches.
 *
 * {@link openBenchData} builds it from the catalog: the suite's query (participants, sessions, label track)
 * with the model's modalities and derived versions, the sessions the suite holds out, and the evaluation grid
 * of `src/data/window_dataset.ts` (windows of the model's length S inside each labelled interval, stride S/2
 * unless the model says otherwise), one group per labelled interval of a session.
 *
 * The dataset hash is sha256 of the canonical JSON of {format, label track, window, stride, and per
 * held-out session (sorted by key): its recordings (recording hash, derived asset id, modality) and its
 * labelled intervals [start, end, class]}: the exact samples and labels the windows come from.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { PoyoBatch, WindowRef } from "../data/batch.ts";
import { DataLedger } from "../data/ledger.ts";
import { type DatasetWindow, openWindowDataset } from "../data/window_dataset.ts";
import { canonicalJson } from "../config/canonical_json.ts";
import type { Catalog } from "../ursa/catalog.ts";
import { QuerySpec, type QuerySpecInput } from "../ursa/query_spec.ts";
import { resolveQuery } from "../ursa/resolve_query.ts";
import type { BenchModelInput } from "./bench_model.ts";

/** One evaluation window. */
export interface BenchWindow {
  /** Index of its group in `BenchData.groups`. */
  group: number;
  /** Position inside the group. */
  index: number;
  /** The window's first recording (recordings sorted by modality): the partial-subset key. */
  recordingHash: string;
  /** Start/end in seconds on that recording's own clock. */
  start: number;
  /** End of the window, seconds on that recording's clock. */
  end: number;
}

/** The windows of one labelled block of one session: the unit that carries one label. */
export interface BenchGroup {
  /** `participant/session#interval`. */
  id: string;
  /** Participant id, e.g. `p042`. */
  participant: string;
  /** Session key `participant/session`: the bootstrap unit. */
  session: string;
  /** Class index of the block's label. */
  label: number;
  /** Recordings of the session (one per modality). */
  recordingHashes: string[];
  /** The block's evaluation windows, in time order. */
  windows: BenchWindow[];
}

/** Held-out data ready for evaluation. */
export interface BenchData {
  /** Content hash of the held-out samples and labels (see the module documentation). */
  datasetHash: string;
  /** Number of classes of the label track (labels lie in [0, numClasses)). */
  numClasses: number;
  /** Groups sorted by session then start. */
  groups: BenchGroup[];
  /** Every sample the evaluation windows read. */
  heldOutLedger: DataLedger;
  /** `participant/session` of each held-out recording hash (for error messages). */
  recordingSessions: Map<string, string>;
  /** Reads and tokenizes `windows` into one batch, one row each, in order. */
  makeBatch(windows: readonly BenchWindow[]): Promise<PoyoBatch>;
}

/** A session a suite may hold out. */
export interface HeldOutCandidate {
  /** Participant id. */
  participant: string;
  /** Session id within the participant. */
  session: string;
  /** `participant/session`. */
  key: string;
  /** Recordings of the session (one per modality). */
  recordingHashes: string[];
}

/** What a suite says about its held-out data. */
export interface HeldOutSelection {
  /** Participants, sessions and label track (modalities and derived versions come from the model). */
  query: QuerySpecInput;
  /** Which resolved sessions are held out (default: all). */
  isHeldOut?: (session: HeldOutCandidate) => boolean;
}

/** sha256 (hex) of canonical JSON. */
export function sha256Json(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

/**
 * Opens a suite's held-out data from the catalog, cut and tokenized the way `input` says.
 *
 * @example
 * ```ts
 * const data = await openBenchData(catalog, { query: { participants: "*" } }, model.input!);
 * console.log(data.groups.length, data.datasetHash);
 * ```
 */
export async function openBenchData(
  catalog: Catalog,
  selection: HeldOutSelection,
  input: BenchModelInput,
): Promise<BenchData> {
  const spec = QuerySpec({ ...selection.query, modalities: input.modalities, derived: input.derived });
  const resolved = await resolveQuery(catalog, spec);
  const sessions = resolved.sessions.filter((s) =>
    selection.isHeldOut?.({
      participant: s.participant,
      session: s.session,
      key: s.key,
      recordingHashes: s.assets.map((a) => a.recordingHash),
    }) ?? true
  );
  if (sessions.length === 0) {
    throw new Error(
      `Cannot open the held-out data as none of the ${resolved.sessions.length} sessions the query resolves to ` +
        `is held out by the suite: current sessions are ${
          resolved.sessions.slice(0, 5).map((s) => s.key).join(", ")
        }${resolved.sessions.length > 5 ? ", …" : ""}; import more data or choose another suite`,
    );
  }
  const stride = input.evalStride ?? input.trainWindow / 2;
  const dataset = await openWindowDataset(catalog, { ...resolved, sessions }, {
    trainWindow: input.trainWindow,
    trainSplit: 1, // every selected session is evaluated
    patch: input.patch,
    latentStep: input.latentStep,
    numLatents: input.numLatents,
    numQueries: input.numQueries,
    vocab: input.vocab,
  });
  for (const kind of ["channels", "sessions"] as const) {
    const known = input.vocab?.[kind];
    if (known && dataset.vocab[kind].length > known.length) {
      const added = dataset.vocab[kind].slice(known.length);
      throw new Error(
        `Cannot evaluate the held-out data with this model as its ${kind} vocabulary lacks ${added.length} word(s) ` +
          `the held-out data uses: current missing words are ${added.slice(0, 5).join(", ")}${
            added.length > 5 ? ", …" : ""
          }; evaluate a model whose vocabulary covers these sessions (build it over the held-out participants too)`,
      );
    }
  }
  const evalGroups = dataset.evalWindows("train", { stride });
  const sources: DatasetWindow[][] = [];
  const ledger = new DataLedger();
  const groups: BenchGroup[] = evalGroups.map((g, gi) => {
    sources.push(g.windows);
    return {
      id: g.id,
      participant: g.participant,
      session: g.session,
      label: g.label,
      recordingHashes: g.recordingHashes,
      windows: g.windows.map((w, index) => {
        const ref: WindowRef = dataset.windowRef(w);
        ledger.addWindow(ref);
        return { group: gi, index, recordingHash: ref.recordingHash, start: ref.start, end: ref.end };
      }),
    };
  });
  if (groups.length === 0) {
    throw new Error(
      `Cannot evaluate on the held-out data as its ${sessions.length} sessions have no labelled interval of at ` +
        `least ${input.trainWindow} s on label track '${spec.labels}'`,
    );
  }
  const recordingSessions = new Map<string, string>();
  for (const s of sessions) for (const a of s.assets) recordingSessions.set(a.recordingHash, s.key);
  const datasetHash = sha256Json({
    format: "orion.bench_data.v1",
    labels: spec.labels,
    window: input.trainWindow,
    stride,
    sessions: [...sessions].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((s) => ({
      key: s.key,
      recordings: s.assets.map((a) => ({
        recording_hash: a.recordingHash,
        derived_asset_id: a.derivedAssetId,
        modality: a.modality,
      })),
      labels: s.labels.filter((l) => l.classIndex >= 0).map((l) => [l.start, l.end, l.classIndex]),
    })),
  });
  return {
    datasetHash,
    numClasses: dataset.numClasses,
    groups,
    heldOutLedger: ledger,
    recordingSessions,
    makeBatch: (windows) => dataset.makeBatch(windows.map((w) => sources[w.group][w.index])),
  };
}
