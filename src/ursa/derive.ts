/**
 * Building derived assets: content-addressed (`derived_asset_id` = sha256 of the canonical JSON of
 * {derivation: "<name>@<version>", params, source_recording_hash}), so rebuilding is a no-op and a change
 * of code version or parameters gives a new id. Writes are all-or-nothing per batch like imports: samples
 * first, the `derived_assets` rows last, partial samples removed on failure.
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
  type SignalChunkRow,
  SIGNALS_SCHEMA,
  SIGNALS_TABLE,
} from "./catalog_tables.ts";
import { type Derivation, derivationNamed, type SignalData } from "./derivations.ts";
import { hashJson } from "./signal_hash.ts";
import { chunkSamplesFor, readWholeSignals, signalChunkRows } from "./signal_store.ts";
import type { WorkerPool } from "./worker_pool.ts";

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

/** Which recordings {@link deriveAll} processes. */
export interface DeriveSelection {
  participants?: string[];
  sessions?: string[];
}

/** Options of {@link deriveAll}. */
export interface DeriveAllOptions {
  /** Runs derivations on worker threads (default: inline). */
  pool?: WorkerPool;
  /** Recordings per Lance commit (default 24). */
  batchSize?: number;
  onResult?: (result: DeriveResult) => void;
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
  const [result] = await deriveRecordings(catalog, derivation, [recording], {});
  return result;
}

/**
 * Builds `derivationName` for every matching recording of its modality, in batches: one signals query per
 * batch, derivations in parallel on the pool, one commit per table per batch (all-or-nothing per batch).
 * The next batch is read and computed while the current one is written.
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
  options: DeriveAllOptions = {},
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
  return await deriveRecordings(catalog, derivation, recordings, options);
}

async function deriveRecordings(
  catalog: Catalog,
  derivation: Derivation,
  recordings: RecordingRow[],
  options: DeriveAllOptions,
): Promise<DeriveResult[]> {
  const built = new Set(
    (await catalog.query(DERIVED_ASSETS_TABLE, `derivation = ${sqlString(derivation.name)}`, {
      columns: ["derived_asset_id"],
    })).map((r) => r.derived_asset_id as string),
  );
  const results: DeriveResult[] = recordings.map((recording) => {
    const derivedAssetId = derivedAssetIdOf(derivation, recording.recording_hash);
    return {
      derivedAssetId,
      recordingHash: recording.recording_hash,
      participant: recording.participant,
      session: recording.session,
      status: built.has(derivedAssetId) ? "already_built" : "built",
    };
  });
  const todo = recordings.filter((_, i) => results[i].status === "built");
  const batchSize = options.batchSize ?? 24;
  const compute = async (batch: RecordingRow[]) => {
    const inputs = await readWholeSignals(
      catalog,
      batch.map((r) => ({
        assetId: r.recording_hash,
        numChannels: r.channels.length,
        numSamples: r.num_samples,
        chunkSamples: r.chunk_samples,
      })),
    );
    return await Promise.all(batch.map((r, i) => {
      const input = { channels: r.channels, samplingRate: r.sampling_rate, samples: inputs[i] };
      return options.pool
        ? options.pool.run({ kind: "derive", derivation: derivation.name, input })
        : Promise.resolve(derivation.run(input));
    }));
  };
  let next = todo.length > 0 ? compute(todo.slice(0, batchSize)) : undefined;
  for (let start = 0; start < todo.length; start += batchSize) {
    const batch = todo.slice(start, start + batchSize);
    const outputs = await next!;
    next = start + batchSize < todo.length
      ? compute(todo.slice(start + batchSize, start + 2 * batchSize))
      : undefined;
    await writeDerived(catalog, derivation, batch, outputs);
  }
  for (const r of results) options.onResult?.(r);
  return results;
}

async function writeDerived(
  catalog: Catalog,
  derivation: Derivation,
  batch: RecordingRow[],
  outputs: SignalData[],
): Promise<void> {
  const rows: DerivedAssetRow[] = [];
  const chunks: SignalChunkRow[] = [];
  batch.forEach((recording, i) => {
    outputs[i].samples.forEach((channel, c) => {
      const bad = channel.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new Error(
          `Cannot store ${derivation.name} of recording ${recording.recording_hash.slice(0, 12)} ` +
            `(${recording.participant}/${recording.session}) as channel ${
              outputs[i].channels[c]
            } has the non-finite value ` +
            `${channel[bad]} at sample ${bad}; check the source recording`,
        );
      }
    });
    const row = derivedRow(derivation, recording, outputs[i]);
    chunks.push(...signalChunkRows(row.derived_asset_id, outputs[i].samples, row.chunk_samples));
    rows.push(row);
  });
  try {
    await catalog.ensureTable(SIGNALS_TABLE, SIGNALS_SCHEMA);
    await catalog.insert(SIGNALS_TABLE, chunks as unknown as Record<string, unknown>[]);
    await catalog.ensureTable(DERIVED_ASSETS_TABLE, DERIVED_ASSETS_SCHEMA);
    await catalog.upsert(
      DERIVED_ASSETS_TABLE,
      rows as unknown as Record<string, unknown>[],
      "derived_asset_id",
    );
  } catch (error) {
    const ids = rows.map((r) => sqlString(r.derived_asset_id)).join(", ");
    await catalog.delete(SIGNALS_TABLE, `asset_id IN (${ids})`).catch(() => {});
    throw error;
  }
}

function derivedRow(derivation: Derivation, recording: RecordingRow, output: SignalData): DerivedAssetRow {
  return {
    derived_asset_id: derivedAssetIdOf(derivation, recording.recording_hash),
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
    chunk_samples: chunkSamplesFor(output.samplingRate),
    params: JSON.stringify(derivation.params),
    created_at: new Date().toISOString(),
  };
}
