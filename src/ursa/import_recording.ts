/**
 * Importing recordings into the catalog, all-or-nothing: a file is parsed and validated completely before
 * anything is written; then its samples (`signals`), its labels (`labels`) and finally its `recordings` row
 * are written. Readers find recordings through the `recordings` row only, so a failure before that row
 * leaves nothing visible, and the partial rows are deleted before the error is rethrown.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import { sqlString } from "./catalog.ts";
import {
  type LabelRow,
  LABELS_SCHEMA,
  LABELS_TABLE,
  type RecordingRow,
  RECORDINGS_SCHEMA,
  RECORDINGS_TABLE,
} from "./catalog_tables.ts";
import type { EdfAnnotation } from "./edf_format.ts";
import { parseEdf } from "./edf_reader.ts";
import { parsePupilCsv } from "./pupil_csv.ts";
import { hashJson, recordingHashOf } from "./signal_hash.ts";
import { chunkSamplesFor, deleteSignal, writeSignal } from "./signal_store.ts";

/** A recording ready to import (already parsed). */
export interface RecordingInput {
  participant: string;
  session: string;
  modality: string;
  channels: string[];
  units: string[];
  samplingRate: number;
  timeOffset: number;
  samples: Float32Array[];
  sourcePath: string;
  sourceFormat: string;
  sourceMeta: Record<string, unknown>;
  labels: Omit<LabelRow, "label_id" | "participant" | "session" | "source_recording_hash">[];
}

/** What an import did. */
export interface ImportResult {
  recordingHash: string;
  participant: string;
  session: string;
  modality: string;
  /** "imported", or "already_imported" when the same signal was imported before for the same session. */
  status: "imported" | "already_imported";
  numLabels: number;
  durationS: number;
}

const ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

function checkId(kind: string, value: string): void {
  if (!ID_PATTERN.test(value)) {
    throw new Error(
      `Cannot import with ${kind} '${value}' as ${kind} ids may use letters, digits, '_', '.' and '-' only; pass e.g. --${kind} p001`,
    );
  }
}

/** Imports one parsed recording atomically (see the module documentation). */
export async function importRecording(catalog: Catalog, input: RecordingInput): Promise<ImportResult> {
  checkId("participant", input.participant);
  checkId("session", input.session);
  checkId("modality", input.modality);
  const numSamples = input.samples[0]?.length ?? 0;
  if (input.samples.length === 0 || numSamples === 0) {
    throw new Error(`Cannot import ${input.sourcePath} as it holds no samples`);
  }
  const recordingHash = recordingHashOf(input.channels, input.samplingRate, input.samples);
  const result: ImportResult = {
    recordingHash,
    participant: input.participant,
    session: input.session,
    modality: input.modality,
    status: "imported",
    numLabels: input.labels.length,
    durationS: numSamples / input.samplingRate,
  };
  const existing = (await catalog.get(RECORDINGS_TABLE, recordingHash, "recording_hash")) as
    | RecordingRow
    | undefined;
  if (existing) {
    if (
      existing.participant === input.participant && existing.session === input.session &&
      existing.modality === input.modality
    ) {
      return { ...result, status: "already_imported" };
    }
    throw new Error(
      `Cannot import ${input.sourcePath} as ${input.participant}/${input.session} ${input.modality}: the same signal ` +
        `(recording ${
          recordingHash.slice(0, 12)
        }) is already imported as ${existing.participant}/${existing.session} ` +
        `${existing.modality} from ${existing.source_path}`,
    );
  }
  const clash = await catalog.query(
    RECORDINGS_TABLE,
    `participant = ${sqlString(input.participant)} AND session = ${sqlString(input.session)} AND modality = ${
      sqlString(input.modality)
    }`,
    { columns: ["recording_hash", "source_path"] },
  );
  if (clash.length > 0) {
    throw new Error(
      `Cannot import ${input.sourcePath} as ${input.participant}/${input.session} ${input.modality}: that session already ` +
        `has a different ${input.modality} recording (${String(clash[0].recording_hash).slice(0, 12)} from ${
          clash[0].source_path
        }); ` +
        `import it under another --session`,
    );
  }
  const chunkSamples = chunkSamplesFor(input.samplingRate);
  const labelRows: LabelRow[] = input.labels.map((l) => {
    const row = {
      ...l,
      participant: input.participant,
      session: input.session,
      source_recording_hash: recordingHash,
    };
    return { label_id: hashJson(row), ...row };
  });
  const recordingRow: RecordingRow = {
    recording_hash: recordingHash,
    participant: input.participant,
    session: input.session,
    modality: input.modality,
    channels: input.channels,
    units: input.units,
    sampling_rate: input.samplingRate,
    num_samples: numSamples,
    duration_s: numSamples / input.samplingRate,
    time_offset_s: input.timeOffset,
    chunk_samples: chunkSamples,
    source_path: input.sourcePath,
    source_format: input.sourceFormat,
    imported_at: new Date().toISOString(),
    source_meta: JSON.stringify(input.sourceMeta),
  };
  try {
    await writeSignal(catalog, recordingHash, input.samples, chunkSamples);
    if (labelRows.length > 0) {
      await catalog.ensureTable(LABELS_TABLE, LABELS_SCHEMA);
      await catalog.upsert(LABELS_TABLE, labelRows as unknown as Record<string, unknown>[], "label_id");
    }
    await catalog.ensureTable(RECORDINGS_TABLE, RECORDINGS_SCHEMA);
    await catalog.upsert(
      RECORDINGS_TABLE,
      [recordingRow as unknown as Record<string, unknown>],
      "recording_hash",
    );
  } catch (error) {
    await deleteSignal(catalog, recordingHash).catch(() => {});
    await catalog.delete(LABELS_TABLE, `source_recording_hash = ${sqlString(recordingHash)}`).catch(() => {});
    throw error;
  }
  return result;
}

/**
 * Turns EDF+ annotations into label rows. `track=value` annotations become labels of `track`: an integer
 * value is a class index (and a value), any other number a value; other annotations go to the track
 * `annotation` with their text. An annotation without a duration is an instant (end = start).
 */
export function labelsFromAnnotations(annotations: EdfAnnotation[]): RecordingInput["labels"] {
  return annotations.map((a) => {
    const match = /^\s*([A-Za-z0-9_.-]+)\s*=\s*(.+?)\s*$/.exec(a.text);
    const end = a.onset + (a.duration ?? 0);
    if (match) {
      const number = Number(match[2]);
      const isNumber = match[2] !== "" && Number.isFinite(number);
      return {
        track: match[1],
        start_s: a.onset,
        end_s: end,
        class_index: isNumber && Number.isInteger(number) && number >= 0 ? number : -1,
        value: isNumber ? number : null,
        text: a.text,
      };
    }
    return { track: "annotation", start_s: a.onset, end_s: end, class_index: -1, value: null, text: a.text };
  });
}

/** Options of {@link importEdfFile}. */
export interface ImportEdfOptions {
  participant: string;
  /** Default: the file name without extension. */
  session?: string;
  /** Default "eeg". */
  modality?: string;
  /** Import only these signal labels (default: every ordinary signal). */
  channels?: string[];
}

/**
 * Reads and imports one EDF/EDF+/BDF/BDF+ file. All imported signals must share one sampling rate.
 *
 * @example
 * ```ts
 * const result = await importEdfFile(catalog, "data/p001_s1.edf", { participant: "p001", session: "s1" });
 * console.log(result.recordingHash, result.status);
 * ```
 */
export async function importEdfFile(
  catalog: Catalog,
  path: string,
  options: ImportEdfOptions,
): Promise<ImportResult> {
  const edf = parseEdf(await Deno.readFile(path), path);
  let signals = edf.signals;
  if (options.channels) {
    const wanted = new Set(options.channels);
    const missing = options.channels.filter((c) => !signals.some((s) => s.header.label === c));
    if (missing.length > 0) {
      throw new Error(
        `Cannot import ${path} as channels ${missing.join(", ")} are not in it: current signals are ${
          signals.map((s) => s.header.label).join(", ")
        }`,
      );
    }
    signals = signals.filter((s) => wanted.has(s.header.label));
  }
  if (signals.length === 0) throw new Error(`Cannot import ${path} as it has no ordinary signals`);
  const rates = [...new Set(signals.map((s) => s.samplingRate))];
  if (rates.length > 1) {
    throw new Error(
      `Cannot import ${path} as one recording because its signals have different sampling rates (` +
        signals.map((s) => `${s.header.label} ${s.samplingRate} Hz`).join(", ") +
        `); select same-rate signals with --channels`,
    );
  }
  const labels = new Set<string>();
  for (const s of signals) {
    if (labels.has(s.header.label)) {
      throw new Error(`Cannot import ${path} as the signal label '${s.header.label}' appears twice`);
    }
    labels.add(s.header.label);
  }
  const session = options.session ?? path.split("/").pop()!.replace(/\.[^.]+$/, "");
  return await importRecording(catalog, {
    participant: options.participant,
    session,
    modality: options.modality ?? "eeg",
    channels: signals.map((s) => s.header.label),
    units: signals.map((s) => s.header.physicalDimension),
    samplingRate: rates[0],
    timeOffset: 0,
    samples: signals.map((s) => s.physical),
    sourcePath: path,
    sourceFormat: edf.header.format,
    sourceMeta: {
      patient_id: edf.header.patientId,
      recording_id: edf.header.recordingId,
      start_date: edf.header.startDate,
      start_time: edf.header.startTime,
      record_duration: edf.header.recordDuration,
      num_records: edf.header.numRecords,
      signals: signals.map((s) => s.header),
    },
    labels: labelsFromAnnotations(edf.annotations),
  });
}

/** Options of {@link importPupilCsvFile}. */
export interface ImportPupilOptions {
  participant: string;
  session?: string;
  /** Default "pupil". */
  modality?: string;
  /** Sampling rate in Hz (default: the median timestamp step). */
  samplingRate?: number;
}

/** Reads and imports one pupil CSV file (see `pupil_csv.ts` for the accepted columns). */
export async function importPupilCsvFile(
  catalog: Catalog,
  path: string,
  options: ImportPupilOptions,
): Promise<ImportResult> {
  const pupil = parsePupilCsv(await Deno.readTextFile(path), path, { samplingRate: options.samplingRate });
  const session = options.session ?? path.split("/").pop()!.replace(/\.[^.]+$/, "");
  return await importRecording(catalog, {
    participant: options.participant,
    session,
    modality: options.modality ?? "pupil",
    channels: pupil.channels,
    units: pupil.channels.map(() => "mm"),
    samplingRate: pupil.samplingRate,
    timeOffset: pupil.timeOffset,
    samples: pupil.samples,
    sourcePath: path,
    sourceFormat: "pupil_csv",
    sourceMeta: { time_offset_s: pupil.timeOffset },
    labels: [],
  });
}
