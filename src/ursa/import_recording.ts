/**
 * Importing recordings into the catalog, all-or-nothing: files are parsed and validated completely before
 * anything is written (`prepare*`, pure, also run in workers); then a batch's samples (`signals`), labels
 * (`labels`) and finally its `recordings` rows are written, one Lance commit per table. Readers find recordings through the `recordings` row only, so a failure before that row
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
  type SignalChunkRow,
  SIGNALS_SCHEMA,
  SIGNALS_TABLE,
} from "./catalog_tables.ts";
import type { EdfAnnotation } from "./edf_format.ts";
import { parseEdf } from "./edf_reader.ts";
import { parsePupilCsv } from "./pupil_csv.ts";
import { hashJson, recordingHashOf } from "./signal_hash.ts";
import { chunkSamplesFor, signalChunkRows } from "./signal_store.ts";

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

/** A recording parsed, validated and hashed: ready to write. */
export interface PreparedRecording extends RecordingInput {
  recordingHash: string;
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
  sourcePath: string;
}

const ID_PATTERN = /^[A-Za-z0-9_.-]+$/;

function checkId(kind: string, value: string): void {
  if (!ID_PATTERN.test(value)) {
    throw new Error(
      `Cannot import with ${kind} '${value}' as ${kind} ids may use letters, digits, '_', '.' and '-' only; pass e.g. --${kind} p001`,
    );
  }
}

/** Validates ids and samples and computes the recording hash (pure; runs in workers too). */
export function prepareRecording(input: RecordingInput): PreparedRecording {
  checkId("participant", input.participant);
  checkId("session", input.session);
  checkId("modality", input.modality);
  const numSamples = input.samples[0]?.length ?? 0;
  if (input.samples.length === 0 || numSamples === 0) {
    throw new Error(`Cannot import ${input.sourcePath} as it holds no samples`);
  }
  return { ...input, recordingHash: recordingHashOf(input.channels, input.samplingRate, input.samples) };
}

/** Imports one parsed recording atomically (see the module documentation). */
export async function importRecording(catalog: Catalog, input: RecordingInput): Promise<ImportResult> {
  return (await importRecordings(catalog, [prepareRecording(input)]))[0];
}

const sessionKey = (r: { participant: string; session: string; modality: string }) =>
  `${r.participant}/${r.session} ${r.modality}`;

/**
 * Imports prepared recordings as one all-or-nothing batch: one Lance commit per table. Conflicts (the same
 * signal under another session, or a session that already has a different recording of the modality) are
 * all collected and thrown together before anything is written. Recordings already imported identically
 * are reported as "already_imported".
 */
export async function importRecordings(
  catalog: Catalog,
  batch: PreparedRecording[],
): Promise<ImportResult[]> {
  const results: ImportResult[] = batch.map((input) => ({
    recordingHash: input.recordingHash,
    participant: input.participant,
    session: input.session,
    modality: input.modality,
    status: "imported",
    numLabels: input.labels.length,
    durationS: input.samples[0].length / input.samplingRate,
    sourcePath: input.sourcePath,
  }));
  if (batch.length === 0) return results;
  const participants = [...new Set(batch.map((b) => b.participant))];
  const known =
    (await catalog.query(RECORDINGS_TABLE, `participant IN (${participants.map(sqlString).join(", ")})`, {
      columns: ["recording_hash", "participant", "session", "modality", "source_path"],
    })) as unknown as RecordingRow[];
  const sameHash = new Map<string, RecordingRow>();
  for (const hash of new Set(batch.map((b) => b.recordingHash))) {
    const row = (await catalog.get(RECORDINGS_TABLE, hash, "recording_hash")) as RecordingRow | undefined;
    if (row) sameHash.set(hash, row);
  }
  const bySession = new Map(known.map((r) => [sessionKey(r), r]));
  const problems: string[] = [];
  const fresh: PreparedRecording[] = [];
  batch.forEach((input, i) => {
    const existing = sameHash.get(input.recordingHash);
    const what = `${input.sourcePath} as ${sessionKey(input)}`;
    if (existing) {
      if (sessionKey(existing) === sessionKey(input)) {
        results[i].status = "already_imported";
        return;
      }
      problems.push(
        `Cannot import ${what}: the same signal (recording ${
          input.recordingHash.slice(0, 12)
        }) is already imported as ` +
          `${sessionKey(existing)} from ${existing.source_path}`,
      );
      return;
    }
    const clash = bySession.get(sessionKey(input));
    if (clash) {
      problems.push(
        `Cannot import ${what}: that session already has a different ${input.modality} recording ` +
          `(${
            clash.recording_hash.slice(0, 12)
          } from ${clash.source_path}); import it under another --session`,
      );
      return;
    }
    bySession.set(
      sessionKey(input),
      { recording_hash: input.recordingHash, source_path: input.sourcePath } as RecordingRow,
    );
    sameHash.set(input.recordingHash, {
      participant: input.participant,
      session: input.session,
      modality: input.modality,
      source_path: input.sourcePath,
    } as RecordingRow);
    fresh.push(input);
  });
  if (problems.length > 0) throw new Error(problems.join("\n"));
  if (fresh.length === 0) return results;

  const labelRows: LabelRow[] = [];
  const recordingRows: RecordingRow[] = [];
  const signalRows: SignalChunkRow[] = [];
  for (const input of fresh) {
    const numSamples = input.samples[0].length;
    const chunkSamples = chunkSamplesFor(input.samplingRate);
    signalRows.push(...signalChunkRows(input.recordingHash, input.samples, chunkSamples));
    for (const l of input.labels) {
      const row = {
        ...l,
        participant: input.participant,
        session: input.session,
        source_recording_hash: input.recordingHash,
      };
      labelRows.push({ label_id: hashJson(row), ...row });
    }
    recordingRows.push({
      recording_hash: input.recordingHash,
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
    });
  }
  const uniqueLabels = [...new Map(labelRows.map((l) => [l.label_id, l])).values()];
  try {
    await catalog.ensureTable(SIGNALS_TABLE, SIGNALS_SCHEMA);
    await catalog.insert(SIGNALS_TABLE, signalRows as unknown as Record<string, unknown>[]);
    if (uniqueLabels.length > 0) {
      await catalog.ensureTable(LABELS_TABLE, LABELS_SCHEMA);
      await catalog.upsert(LABELS_TABLE, uniqueLabels as unknown as Record<string, unknown>[], "label_id");
    }
    await catalog.ensureTable(RECORDINGS_TABLE, RECORDINGS_SCHEMA);
    await catalog.upsert(
      RECORDINGS_TABLE,
      recordingRows as unknown as Record<string, unknown>[],
      "recording_hash",
    );
  } catch (error) {
    const ids = fresh.map((f) => sqlString(f.recordingHash)).join(", ");
    await catalog.delete(SIGNALS_TABLE, `asset_id IN (${ids})`).catch(() => {});
    await catalog.delete(LABELS_TABLE, `source_recording_hash IN (${ids})`).catch(() => {});
    throw error;
  }
  return results;
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
  const prepared = prepareEdfRecording(await Deno.readFile(path), path, options);
  return (await importRecordings(catalog, [prepared]))[0];
}

/** Parses, validates and hashes an EDF/BDF file's bytes (pure; runs in workers too). */
export function prepareEdfRecording(
  bytes: Uint8Array,
  path: string,
  options: ImportEdfOptions,
): PreparedRecording {
  const edf = parseEdf(bytes, path);
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
  return prepareRecording({
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
  const prepared = preparePupilRecording(await Deno.readTextFile(path), path, options);
  return (await importRecordings(catalog, [prepared]))[0];
}

/** Parses, validates and hashes pupil CSV text (pure; runs in workers too). */
export function preparePupilRecording(
  text: string,
  path: string,
  options: ImportPupilOptions,
): PreparedRecording {
  const pupil = parsePupilCsv(text, path, { samplingRate: options.samplingRate });
  const session = options.session ?? path.split("/").pop()!.replace(/\.[^.]+$/, "");
  return prepareRecording({
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
