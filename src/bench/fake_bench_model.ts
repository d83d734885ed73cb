/**
 * Test doubles of the benchmark framework: synthetic held-out data (no catalog, no signals) and a fake model
 * whose logits are a deterministic function of each window, so tests of suites, schedulers and training
 * callbacks run without a GPU or a corpus.
 *
 * @module
 */
import type { PoyoBatch, WindowRef } from "../data/batch.ts";
import { DataLedger } from "../data/ledger.ts";
import { uniformAt } from "../ursa/counter_random.ts";
import type { BenchModel } from "./bench_model.ts";
import { type BenchData, type BenchGroup, type BenchWindow, sha256Json } from "./bench_data.ts";

/** One synthetic session: labelled blocks laid back to back from time 0. */
export interface SyntheticSession {
  participant: string;
  /** Session id (the key is `participant/session`). */
  session: string;
  blocks: { label: number; seconds: number }[];
}

/** Options of {@link syntheticBenchData}. */
export interface SyntheticBenchOptions {
  sessions: SyntheticSession[];
  /** Window length, s (default 2). */
  window?: number;
  /** Grid stride, s (default window / 2). */
  stride?: number;
  /** Classes (default: max label + 1). */
  numClasses?: number;
}

/** The recording hash a synthetic session uses. */
export function syntheticRecordingHash(key: string): string {
  return sha256Json({ synthetic_recording: key });
}

/**
 * Held-out data made of `sessions`, one recording each (hash {@link syntheticRecordingHash}); batches carry
 * labels and provenance but no signal tokens.
 *
 * @example
 * ```ts
 * const data = syntheticBenchData({ sessions: [{ participant: "p001", session: "s1", blocks: [{ label: 0, seconds: 8 }] }] });
 * ```
 */
export function syntheticBenchData(options: SyntheticBenchOptions): BenchData {
  const window = options.window ?? 2;
  const stride = options.stride ?? window / 2;
  const groups: BenchGroup[] = [];
  const refs: WindowRef[][] = [];
  const ledger = new DataLedger();
  const recordingSessions = new Map<string, string>();
  let maxLabel = -1;
  for (const s of options.sessions) {
    const key = `${s.participant}/${s.session}`;
    const hash = syntheticRecordingHash(key);
    recordingSessions.set(hash, key);
    let t = 0;
    s.blocks.forEach((block, interval) => {
      maxLabel = Math.max(maxLabel, block.label);
      const g = groups.length;
      const windows: BenchWindow[] = [];
      const groupRefs: WindowRef[] = [];
      for (let k = 0;; k++) {
        const start = t + k * stride;
        if (start + window > t + block.seconds + 1e-9) break;
        windows.push({ group: g, index: k, recordingHash: hash, start, end: start + window });
        groupRefs.push({
          recordingHash: hash,
          start,
          end: start + window,
          derivedAssetIds: ["synthetic"],
          participant: s.participant,
          session: key,
          recordings: [{
            recordingHash: hash,
            derivedAssetId: "synthetic",
            modality: "eeg",
            start,
            end: start + window,
          }],
        });
        ledger.add(hash, ["synthetic"], start, start + window);
      }
      if (windows.length > 0) {
        groups.push({
          id: `${key}#${interval}`,
          participant: s.participant,
          session: key,
          label: block.label,
          recordingHashes: [hash],
          windows,
        });
        refs.push(groupRefs);
      }
      t += block.seconds;
    });
  }
  const labelOf = (w: BenchWindow) => groups[w.group].label;
  return {
    datasetHash: sha256Json({ synthetic: options.sessions, window, stride }),
    numClasses: options.numClasses ?? maxLabel + 1,
    groups,
    heldOutLedger: ledger,
    recordingSessions,
    makeBatch: (windows) => {
      const b = windows.length;
      return Promise.resolve({
        batchSize: b,
        numTokens: 1,
        patch: 1,
        numQueries: 1,
        value: new Float32Array(b),
        unit: new Int32Array(b),
        modality: new Int32Array(b),
        time: new Float32Array(b),
        kvLen: new Int32Array(b),
        latentTime: new Float32Array(1),
        querySession: new Int32Array(b),
        queryTime: Float32Array.from({ length: b }, () => window / 2),
        label: Int32Array.from(windows, labelOf),
        weight: new Float32Array(b).fill(1),
        windows: windows.map((w) => refs[w.group][w.index]),
      });
    },
  };
}

/** Options of {@link FakeBenchModel}. */
export interface FakeBenchModelOptions {
  checkpointHash: string;
  /** Default: an empty ledger (trained on nothing). */
  dataLedger?: DataLedger | null;
  numClasses?: number;
  batchSize?: number;
  /** Probability that a window's logits favour its label (decided per window by `seed`); default 1. */
  accuracy?: number;
  seed?: number;
  /** Milliseconds each `predict` call waits (simulated compute). */
  delayMs?: number;
  /** Custom logits of one window (overrides `accuracy`). */
  logits?: (ref: WindowRef, label: number) => Float32Array;
}

/**
 * A model whose logits favour each window's label with probability `accuracy` (a deterministic per-window
 * draw), `+2` on the favoured class and 0 elsewhere; a wrong window favours `(label + 1) mod C`.
 */
export class FakeBenchModel implements BenchModel {
  readonly checkpointHash: string;
  readonly dataLedger: DataLedger | null;
  readonly batchSize: number;
  readonly numClasses: number;
  /** Number of `predict` calls and of rows predicted (padding included). */
  predictCalls = 0;
  rowsPredicted = 0;
  disposed = false;
  readonly #options: FakeBenchModelOptions;

  constructor(options: FakeBenchModelOptions) {
    this.#options = options;
    this.checkpointHash = options.checkpointHash;
    this.dataLedger = options.dataLedger === undefined ? new DataLedger() : options.dataLedger;
    this.batchSize = options.batchSize ?? 8;
    this.numClasses = options.numClasses ?? 3;
  }

  /** The logits of one window. */
  windowLogits(ref: WindowRef, label: number): Float32Array {
    if (this.#options.logits) return this.#options.logits(ref, label);
    const z = new Float32Array(this.numClasses);
    const right = uniformAt(this.#options.seed ?? 0, "fake", ref.recordingHash, Math.round(ref.start * 1e6)) <
      (this.#options.accuracy ?? 1);
    z[right ? label : (label + 1) % this.numClasses] = 2;
    return z;
  }

  async predict(batches: readonly PoyoBatch[]): Promise<Float32Array[]> {
    this.predictCalls++;
    if (this.#options.delayMs) await new Promise((r) => setTimeout(r, this.#options.delayMs));
    const out: Float32Array[] = [];
    for (const batch of batches) {
      for (let b = 0; b < batch.batchSize; b++) {
        this.rowsPredicted++;
        for (let q = 0; q < batch.numQueries; q++) {
          out.push(this.windowLogits(batch.windows[b], batch.label[b * batch.numQueries + q]));
        }
      }
    }
    return out;
  }

  dispose(): void {
    this.disposed = true;
  }
}
