/**
 * Ursa: the embedded catalog (LanceDB), file import, derived signals, query resolution and the demo corpus.
 *
 * @module
 */
export { QuerySpec, type QuerySpecInput, QuerySpecSchema } from "./query_spec.ts";
export {
  Catalog,
  type CatalogQueryOptions,
  type CatalogRow,
  defaultCatalogDir,
  inferSchema,
  openCatalog,
  sqlString,
} from "./catalog.ts";
export * from "./catalog_tables.ts";
export {
  chunkSamplesFor,
  ensureSignalIndex,
  readWholeSignal,
  readWholeSignals,
  type SampleRange,
  type SignalLayout,
  SignalReader,
  writeSignal,
} from "./signal_store.ts";
export type {
  EdfAnnotation,
  EdfFile,
  EdfFormat,
  EdfHeader,
  EdfSignal,
  EdfSignalHeader,
} from "./edf_format.ts";
export { EdfFormatError, parseEdf, parseEdfHeader } from "./edf_reader.ts";
export { type EdfWriterInput, writeEdf } from "./edf_writer.ts";
export { parsePupilCsv, PupilCsvError, type PupilRecording } from "./pupil_csv.ts";
export {
  importEdfFile,
  type ImportEdfOptions,
  importPupilCsvFile,
  type ImportPupilOptions,
  importRecording,
  importRecordings,
  type ImportResult,
  labelsFromAnnotations,
  type PreparedRecording,
  prepareEdfRecording,
  preparePupilRecording,
  type RecordingInput,
} from "./import_recording.ts";
export { type ImportFailure, importFiles, type ImportFilesReport, type ImportJob } from "./import_files.ts";
export { canonicalJson, hashJson, recordingHashOf } from "./signal_hash.ts";
export {
  butterworthSos,
  cascade,
  notchSos,
  type Sos,
  sosFilter,
  sosFiltfilt,
  sosMagnitude,
} from "./iir_filter.ts";
export { firLowpass, firMagnitude, kaiserWindow, resamplePoly, resampleRatio } from "./resample.ts";
export {
  type Derivation,
  derivationNamed,
  DERIVATIONS,
  EEG_CLEAN,
  PUPIL_DILATION,
  type SignalData,
} from "./derivations.ts";
export {
  deriveAll,
  type DeriveAllOptions,
  deriveAsset,
  derivedAssetIdOf,
  type DeriveResult,
} from "./derive.ts";
export {
  DEMO_EEG_CHANNELS,
  type DemoOptions,
  demoParticipantId,
  type DemoSummary,
  ensureDemoCatalog,
  generateDemoCorpus,
} from "./demo_corpus.ts";
export {
  QueryResolutionError,
  type ResolvedAsset,
  type ResolvedLabel,
  type ResolvedQuery,
  type ResolvedSession,
  resolveQuery,
} from "./resolve_query.ts";
export { WorkerPool } from "./worker_pool.ts";
export { hashKeys, RandomStream, uniformAt } from "./counter_random.ts";
export { dataCommand } from "./data_cli.ts";
