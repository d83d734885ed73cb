/**
 * The contract's training batch: what the loader produces and the model consumes.
 *
 * Shapes use B = batch size, N = tokens per window (padded to a fixed maximum for the config),
 * P = patch, Q = queries per window, L = latents. All typed arrays are row-major and dense.
 *
 * @module
 */
import type { BatchUploadIndex } from "./upload_index.ts";

/** Where one batch row came from: enough to rebuild the data-hash ledger. */
export interface WindowRef {
  /** sha256 of the source recording's canonical signal bytes. */
  recordingHash: string;
  /** Window start/end in seconds from the start of the recording. */
  start: number;
  /** Window end, seconds from the start of the recording. */
  end: number;
  /** Derived assets whose samples were read for this window. */
  derivedAssetIds: string[];
  /** Participant id, e.g. `p042`. */
  participant: string;
  /** Session vocabulary word, `participant/session`. */
  session: string;
  /**
   * Every recording read for this window (one per modality, sorted by modality), with the window in that
   * recording's own time (seconds from its first sample). `recordingHash`/`start`/`end` above repeat the
   * first entry.
   */
  recordings: RecordingWindow[];
}

/** One recording's part of a window. */
export interface RecordingWindow {
  /** sha256 of the recording's canonical signal bytes. */
  recordingHash: string;
  /** The derived asset read for it. */
  derivedAssetId: string;
  /** Its modality, e.g. `eeg`. */
  modality: string;
  /** Seconds from the recording's first sample. */
  start: number;
  /** Window end, seconds from the recording's first sample. */
  end: number;
}

/** One batch in the exact layout of the model contract (`../shared/spec/poyo.md`). */
export interface PoyoBatch {
  /** B: rows. */
  batchSize: number; // B
  /** N: tokens per row (padded). */
  numTokens: number; // N
  /** P: samples per token. */
  patch: number; // P
  /** Q: queries per row. */
  numQueries: number; // Q
  /** [B, N, P] value patches (cleaned, derived signal). Padding tokens are zero. */
  value: Float32Array;
  /** [B, N] channel vocabulary index (0 = padding). */
  unit: Int32Array;
  /** [B, N] index into the sorted modality names. */
  modality: Int32Array;
  /** [B, N] seconds since the window start of the patch's first sample. */
  time: Float32Array;
  /** [B] number of real tokens of each row (padding is at the end). */
  kvLen: Int32Array;
  /** [L] latent times, time-major: `(floor(j / M) + 0.5) * latentStep`. */
  latentTime: Float32Array;
  /** [B, Q] session vocabulary index. */
  querySession: Int32Array;
  /** [B, Q] query times in seconds since the window start. */
  queryTime: Float32Array;
  /** [B, Q] integer class labels. */
  label: Int32Array;
  /** [B, Q] loss weights (0 for padded or unlabelled queries). */
  weight: Float32Array;
  /** Provenance of each of the B rows. */
  windows: WindowRef[];
  /**
   * The step's upload index arrays (token masks, embedding-index inverses), when the loader computed them
   * with the batch (loaders with a `prepare` hook do); `batchUploadArrays` uses them when the sizes match.
   */
  uploadIndex?: BatchUploadIndex;
}
