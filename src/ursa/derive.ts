/**
 * Building derived assets: content-addressed (`derived_asset_id` = sha256 of the canonical JSON of
 * {derivation: "<name>@<version>", params, source_recording_hash}), so rebuilding is a no-op and a change
 * of code version or parameters gives a new id. Writes are all-or-nothing like imports: samples first, the
 * `derived_assets` row last, partial samples removed on failure.
 *
 * @module
 */
import type { Catalog } from "./catalog.ts";
import { sqlString } from "./catalog.ts";
import {
  DERIVED_ASSETS_SCHEMA,
  DERIVED_ASSETS_TABLE,
  type DerivedAssetRow,
  type RecordingRow,
  RECORDINGS_TABLE,
} from "./catalog_tables.ts";
import { type Derivation, derivationNamed } from "./derivations.ts";
import { hashJson } from "./signal_hash.ts";
import { chunkSamplesFor, deleteSignal, readWholeSignal, writeSignal } from "./signal_store.ts";

/** The content address of `derivation` applied to `recordingHash`. */
export function derivedAssetIdOf(derivation: Derivation, recordingHash: string): string {
  return hashJson({
    derivation: `${derivation.name}@${derivation.version}`,
    params: derivation.params,
    source_recording_hash: recordingHash,
  });
}

/** What a derivation did for one recording. */
export interface DeriveResult {
  derivedAssetId: string;
  recordingHash: string;
  participant: string;
  session: string;
  status: "built" | "already_built";
}

/** Builds one derived asset from a recording row (no-op when it exists). */
export async function deriveAsset(
  catalog: Catalog,
  derivation: Derivation,
  recording: RecordingRow,
): Promise<DeriveResult> {
  if (recording.modality !== derivation.modality) {
    throw new Error(
      `Cannot derive ${derivation.name} from recording ${recording.recording_hash.slice(0, 12)} as it is ` +
        `${recording.modality}, not ${derivation.modality}`,
    );
  }
  const derivedAssetId = derivedAssetIdOf(derivation, recording.recording_hash);
  const result: DeriveResult = {
    derivedAssetId,
    recordingHash: recording.recording_hash,
    participant: recording.participant,
    session: recording.session,
    status: "built",
  };
  if (await catalog.get(DERIVED_ASSETS_TABLE, derivedAssetId, "derived_asset_id")) {
    return { ...result, status: "already_built" };
  }
  const samples = await readWholeSignal(catalog, {
    assetId: recording.recording_hash,
    numChannels: recording.channels.length,
    numSamples: recording.num_samples,
    chunkSamples: recording.chunk_samples,
  });
  const output = derivation.run({
    channels: recording.channels,
    samplingRate: recording.sampling_rate,
    samples,
  });
  const chunkSamples = chunkSamplesFor(output.samplingRate);
  const row: DerivedAssetRow = {
    derived_asset_id: derivedAssetId,
    derivation: derivation.name,
    derivation_version: derivation.version,
    source_recording_hash: recording.recording_hash,
    participant: recording.participant,
    session: recording.session,
    modality: recording.modality,
    channels: output.channels,
    units: output.channels.map(() => derivation.unit),
    sampling_rate: output.samplingRate,
    num_samples: output.samples[0].length,
    time_offset_s: recording.time_offset_s,
    chunk_samples: chunkSamples,
    params: JSON.stringify(derivation.params),
    created_at: new Date().toISOString(),
  };
  try {
    await writeSignal(catalog, derivedAssetId, output.samples, chunkSamples);
    await catalog.ensureTable(DERIVED_ASSETS_TABLE, DERIVED_ASSETS_SCHEMA);
    await catalog.upsert(
      DERIVED_ASSETS_TABLE,
      [row as unknown as Record<string, unknown>],
      "derived_asset_id",
    );
  } catch (error) {
    await deleteSignal(catalog, derivedAssetId).catch(() => {});
    throw error;
  }
  return result;
}

/** Which recordings {@link deriveAll} processes. */
export interface DeriveSelection {
  participants?: string[];
  sessions?: string[];
}

/**
 * Builds `derivationName` for every matching recording of its modality.
 *
 * @example
 * ```ts
 * const results = await deriveAll(catalog, "standard_v2026q2.eeg_clean", { participants: ["p001"] });
 * ```
 */
export async function deriveAll(
  catalog: Catalog,
  derivationName: string,
  selection: DeriveSelection = {},
  onResult?: (result: DeriveResult) => void,
): Promise<DeriveResult[]> {
  const derivation = derivationNamed(derivationName);
  const clauses = [`modality = ${sqlString(derivation.modality)}`];
  if (selection.participants?.length) {
    clauses.push(`participant IN (${selection.participants.map(sqlString).join(", ")})`);
  }
  if (selection.sessions?.length) {
    clauses.push(`session IN (${selection.sessions.map(sqlString).join(", ")})`);
  }
  const recordings =
    (await catalog.query(RECORDINGS_TABLE, clauses.join(" AND "))) as unknown as RecordingRow[];
  recordings.sort((a, b) => (a.participant + "/" + a.session).localeCompare(b.participant + "/" + b.session));
  const results: DeriveResult[] = [];
  for (const recording of recordings) {
    const result = await deriveAsset(catalog, derivation, recording);
    onResult?.(result);
    results.push(result);
  }
  return results;
}
