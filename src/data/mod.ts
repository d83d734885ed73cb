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
export { allocateBatch, firstSampleAt, type TokenShape } from "./tokenizer.ts";
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
  DataLedger,
  intersectLedgers,
  type Interval,
  type LedgerEntry,
  type LedgerJson,
  type LedgerOverlap,
  unionLedgers,
} from "./ledger.ts";
