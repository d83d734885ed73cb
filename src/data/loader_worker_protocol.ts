/**
 * Messages between the training loader (main thread, `LoaderWorkerPool`) and its batch-assembly workers
 * (`loader_worker.ts`). The worker gets the dataset's tokenization constants once (`init`), then one
 * `assemble` request per batch: the rows, the chunks it has not been sent yet (shared memory, no copy) and
 * the chunks the main thread's cache evicted. It answers with the batch's arrays, transferred (no copy), or
 * with the error that stopped it.
 *
 * @module
 */
import type { PoyoBatch } from "./batch.ts";
import type { TokenShape, TokenSource } from "./tokenizer.ts";
import type { UploadIndexSizes } from "./upload_index.ts";

/** The dataset constants a worker tokenizes with. */
export interface LoaderWorkerSetup {
  shape: TokenShape;
  /** Token sources of each session (index = session). */
  sources: TokenSource[][];
  /** Session vocabulary index of each session. */
  sessionIndex: Int32Array;
  /** Vocabulary sizes of the upload index arrays (computed for requests that ask for them). */
  uploadIndexSizes: UploadIndexSizes;
}

/** One row of a batch: session index, session-clock start (seconds), class label. */
export interface WorkerRow {
  session: number;
  start: number;
  label: number;
}

/** Main thread → worker. */
export type LoaderWorkerRequest =
  | { type: "init"; setup: LoaderWorkerSetup }
  | {
    type: "assemble";
    id: number;
    rows: WorkerRow[];
    /**
     * Chunks new to this worker: `assetId#chunk` → the SharedArrayBuffer of its channel-major float32 samples
     * (the whole buffer; buffers rather than typed arrays because Deno's `node:worker_threads` walks every
     * enumerable property of a message, which for a typed array is every element).
     */
    chunks: [string, SharedArrayBuffer][];
    /** Chunks to forget (evicted by the main thread's cache); applied before `chunks`. */
    drop: string[];
    /** Also compute the batch's upload index arrays (`upload_index.ts`). */
    uploadIndex: boolean;
    /**
     * Write the batch into this slot (`batch_slots.ts` layout for these rows and `uploadIndex`) instead of
     * fresh buffers; the reply then carries no buffers.
     */
    slot?: SharedArrayBuffer;
  };

/** The typed arrays of an assembled batch (everything of a `PoyoBatch` that a worker fills). */
export type BatchArrays = Pick<
  PoyoBatch,
  "value" | "unit" | "modality" | "time" | "kvLen" | "querySession" | "queryTime" | "label" | "weight"
>;

/** Names of {@link BatchArrays}' fields, in a fixed order. */
export const BATCH_ARRAY_FIELDS = [
  "value",
  "unit",
  "modality",
  "time",
  "kvLen",
  "querySession",
  "queryTime",
  "label",
  "weight",
] as const;

/** Worker → main thread. */
export type LoaderWorkerReply =
  /** The worker holds its setup and takes requests. */
  | { type: "ready" }
  /**
   * The batch's buffers in {@link BATCH_ARRAY_FIELDS} order, then (when asked) the upload index arrays:
   * M modality masks, the unit inverse, the session inverse. Transferred; typed arrays over whole buffers.
   * Empty when the request named a slot (the batch is in the slot).
   */
  | { type: "batch"; id: number; buffers: ArrayBuffer[] }
  | { type: "error"; id: number; message: string; stack?: string };
