/**
 * The data-hash ledger: which samples a run consumed. Entries are keyed by (recording_hash, derived asset
 * ids) and hold sorted, merged half-open intervals [start, end) in seconds of that recording, so a run of
 * 200k steps over the same recordings stays as small as its distinct covered time. Serializes to
 * `{"version": 1, "entries": [{"recording_hash", "derived_asset_ids", "intervals": [[s, e], ...]}]}`
 * (entries sorted by recording hash then derived ids).
 *
 * @module
 */
import type { PoyoBatch, WindowRef } from "./batch.ts";

/** Half-open interval [start, end), seconds. */
export type Interval = [number, number];

/** One ledger entry. */
export interface LedgerEntry {
  /** sha256 of the recording. */
  recording_hash: string;
  /** Derived assets read from it (sorted). */
  derived_asset_ids: string[];
  /** Sorted, merged half-open intervals [start, end), seconds. */
  intervals: Interval[];
}

/** Serialized form. */
export interface LedgerJson {
  /** Format version. */
  version: 1;
  /** Entries sorted by recording hash, then derived ids. */
  entries: LedgerEntry[];
}

/** Gaps below this (seconds) are merged, absorbing float noise of window grids. */
const EPSILON = 1e-9;

/** Inserts [start, end) into sorted disjoint intervals, merging overlaps and touching neighbours. */
export function insertInterval(intervals: Interval[], start: number, end: number): void {
  if (!(end > start)) return;
  // Binary search for the first interval whose end ≥ start.
  let lo = 0, hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (intervals[mid][1] < start - EPSILON) lo = mid + 1;
    else hi = mid;
  }
  let i = lo;
  let s = start, e = end;
  while (i < intervals.length && intervals[i][0] <= e + EPSILON) {
    s = Math.min(s, intervals[i][0]);
    e = Math.max(e, intervals[i][1]);
    i++;
  }
  intervals.splice(lo, i - lo, [s, e]);
}

/** Intersection of two sorted disjoint interval lists (positive-length parts only). */
export function intersectIntervals(a: Interval[], b: Interval[]): Interval[] {
  const out: Interval[] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const s = Math.max(a[i][0], b[j][0]);
    const e = Math.min(a[i][1], b[j][1]);
    if (e > s + EPSILON) out.push([s, e]);
    if (a[i][1] < b[j][1]) i++;
    else j++;
  }
  return out;
}

const keyOf = (recordingHash: string, derivedIds: readonly string[]) =>
  `${recordingHash}|${[...derivedIds].sort().join(",")}`;

/**
 * A set of consumed (recording, time, derived ids).
 *
 * @example
 * ```ts
 * const ledger = new DataLedger();
 * ledger.addBatch(batch);
 * const text = JSON.stringify(ledger.toJSON());
 * const overlap = intersectLedgers(DataLedger.fromJSON(JSON.parse(text)), testLedger);
 * ```
 */
export class DataLedger {
  readonly #entries = new Map<string, LedgerEntry>();

  /** Records one interval of one recording read through `derivedAssetIds`. */
  add(recordingHash: string, derivedAssetIds: readonly string[], start: number, end: number): void {
    const key = keyOf(recordingHash, derivedAssetIds);
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = {
        recording_hash: recordingHash,
        derived_asset_ids: [...derivedAssetIds].sort(),
        intervals: [],
      };
      this.#entries.set(key, entry);
    }
    insertInterval(entry.intervals, start, end);
  }

  /** Records a window: each of its recordings with its own derived asset and time. */
  addWindow(ref: WindowRef): void {
    if (ref.recordings && ref.recordings.length > 0) {
      for (const r of ref.recordings) this.add(r.recordingHash, [r.derivedAssetId], r.start, r.end);
    } else this.add(ref.recordingHash, ref.derivedAssetIds, ref.start, ref.end);
  }

  /** Records every row of a batch whose queries carry weight (padding rows are skipped). */
  addBatch(batch: PoyoBatch): void {
    batch.windows.forEach((ref, b) => {
      let weight = 0;
      for (let q = 0; q < batch.numQueries; q++) weight += batch.weight[b * batch.numQueries + q];
      if (weight > 0) this.addWindow(ref);
    });
  }

  /** Entries sorted by recording hash, then derived ids. */
  entries(): LedgerEntry[] {
    return [...this.#entries.values()]
      .map((e) => ({ ...e, intervals: e.intervals.map(([s, t]) => [s, t] as Interval) }))
      .sort((
        a,
        b,
      ) => (keyOf(a.recording_hash, a.derived_asset_ids) < keyOf(b.recording_hash, b.derived_asset_ids)
        ? -1
        : 1)
      );
  }

  /** Total covered seconds (over all entries). */
  totalSeconds(): number {
    let total = 0;
    for (const e of this.#entries.values()) for (const [s, t] of e.intervals) total += t - s;
    return total;
  }

  /** Merges another ledger into this one (set union). */
  merge(other: DataLedger): this {
    for (const e of other.entries()) {
      for (const [s, t] of e.intervals) this.add(e.recording_hash, e.derived_asset_ids, s, t);
    }
    return this;
  }

  /** The serialized form (`{version: 1, entries}`). */
  toJSON(): LedgerJson {
    return { version: 1, entries: this.entries() };
  }

  /** Parses the JSON form (object or text), validating it. */
  static fromJSON(value: unknown): DataLedger {
    const v = typeof value === "string" ? JSON.parse(value) : value;
    if (
      !v || typeof v !== "object" || (v as LedgerJson).version !== 1 ||
      !Array.isArray((v as LedgerJson).entries)
    ) {
      throw new Error('Cannot parse a data ledger: expected {"version": 1, "entries": [...]}');
    }
    const ledger = new DataLedger();
    (v as LedgerJson).entries.forEach((e, i) => {
      if (
        typeof e.recording_hash !== "string" || !Array.isArray(e.derived_asset_ids) ||
        !Array.isArray(e.intervals)
      ) {
        throw new Error(
          `Cannot parse data ledger entry ${i}: it needs recording_hash, derived_asset_ids and intervals`,
        );
      }
      for (const iv of e.intervals) {
        if (!Array.isArray(iv) || iv.length !== 2 || !(iv[1] >= iv[0])) {
          throw new Error(
            `Cannot parse data ledger entry ${i}: interval ${JSON.stringify(iv)} is not [start, end]`,
          );
        }
        ledger.add(e.recording_hash, e.derived_asset_ids, iv[0], iv[1]);
      }
    });
    return ledger;
  }
}

/** Union of ledgers. */
export function unionLedgers(...ledgers: DataLedger[]): DataLedger {
  const out = new DataLedger();
  for (const l of ledgers) out.merge(l);
  return out;
}

/** One recording's overlap between two ledgers. */
export interface LedgerOverlap {
  recording_hash: string;
  intervals: Interval[];
  seconds: number;
}

/**
 * Train/test overlap: for every recording in both ledgers, the intersection of the time covered in each
 * (derived asset ids are ignored: the same raw samples through another derivation still overlap). Empty
 * when the ledgers are disjoint.
 */
export function intersectLedgers(a: DataLedger, b: DataLedger): LedgerOverlap[] {
  const byRecording = (l: DataLedger) => {
    const map = new Map<string, Interval[]>();
    for (const e of l.entries()) {
      const list = map.get(e.recording_hash) ?? [];
      for (const [s, t] of e.intervals) insertInterval(list, s, t);
      map.set(e.recording_hash, list);
    }
    return map;
  };
  const left = byRecording(a), right = byRecording(b);
  const out: LedgerOverlap[] = [];
  for (const hash of [...left.keys()].sort()) {
    const other = right.get(hash);
    if (!other) continue;
    const intervals = intersectIntervals(left.get(hash)!, other);
    if (intervals.length > 0) {
      out.push({ recording_hash: hash, intervals, seconds: intervals.reduce((n, [s, t]) => n + t - s, 0) });
    }
  }
  return out;
}
