/**
 * Data loading: windows over the catalog, tokenization into the POYO batch, deterministic resumable order,
 * and the data-hash ledger.
 *
 * @module
 */
export type { PoyoBatch, RecordingWindow, WindowRef } from "./batch.ts";
export { buildVocabulary, PAD_WORD, vocabularyIndex } from "./vocabulary.ts";
export { type SplitName, splitOf, type SplitRule, splitUniform } from "./split.ts";
export { advanceCursor, batchAt, epochPermutation, type LoaderCursor, parseCursor } from "./window_order.ts";
export {
  allocateBatch,
  type CachedSamples,
  firstSampleAt,
  tokenizeRows,
  type TokenShape,
} from "./tokenizer.ts";
export {
  type DatasetSplit,
  type DatasetWindow,
  type EvalBatch,
  type EvalGroup,
  openWindowDataset,
  WindowDataset,
  type WindowDatasetOptions,
} from "./window_dataset.ts";
export { WindowLoader, type WindowLoaderOptions } from "./window_loader.ts";
export {
  type AssembledBatch,
  defaultLoaderWorkers,
  loaderWorkerModuleUrl,
  LoaderWorkerPool,
  type LoaderWorkerPoolOptions,
} from "./loader_worker_pool.ts";
export type { BatchArrays, LoaderWorkerSetup, WorkerRow } from "./loader_worker_protocol.ts";
export { ChunkMirror } from "./chunk_mirror.ts";
export { type BatchSlotLayout, batchSlotLayout, BatchSlotPool, batchSlotViews } from "./batch_slots.ts";
export {
  type BatchUploadIndex,
  batchUploadIndex,
  indexInverse,
  modalityMasks,
  type UploadIndexSizes,
} from "./upload_index.ts";
export {
  DataLedger,
  intersectLedgers,
  type Interval,
  type LedgerEntry,
  type LedgerJson,
  type LedgerOverlap,
  unionLedgers,
} from "./ledger.ts";
