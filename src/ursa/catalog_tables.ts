/**
 * Schemas and row types of the catalog tables owned by Ursa: `recordings`, `derived_assets`, `labels`
 * and `signals`. `docs/data.md` documents the same schemas for readers in other languages.
 *
 * @module
 */
import * as arrow from "apache-arrow";
import { KEY_COLUMN_METADATA } from "./catalog.ts";

/** Table names owned by Ursa. */
export const RECORDINGS_TABLE = "recordings";
export const DERIVED_ASSETS_TABLE = "derived_assets";
export const LABELS_TABLE = "labels";
export const SIGNALS_TABLE = "signals";

const utf8 = (name: string, nullable = false) => new arrow.Field(name, new arrow.Utf8(), nullable);
const f64 = (name: string, nullable = false) => new arrow.Field(name, new arrow.Float64(), nullable);
const i32 = (name: string) => new arrow.Field(name, new arrow.Int32(), false);
const utf8List = (name: string) =>
  new arrow.Field(name, new arrow.List(new arrow.Field("item", new arrow.Utf8(), true)), false);
const keyed = (key: string, extra: Record<string, string> = {}) =>
  new Map([[KEY_COLUMN_METADATA, key], ...Object.entries(extra)]);

/** One imported recording (a raw signal asset). */
export interface RecordingRow {
  /** sha256 of the canonical signal bytes (see `signal_hash.ts`). Also the signals' `asset_id`. */
  recording_hash: string;
  participant: string;
  session: string;
  modality: string;
  channels: string[];
  /** Physical unit per channel, e.g. "uV", "mm". */
  units: string[];
  sampling_rate: number;
  num_samples: number;
  duration_s: number;
  /** Time of sample 0 on the session clock, seconds. */
  time_offset_s: number;
  /** Samples per channel in each `signals` chunk row. */
  chunk_samples: number;
  source_path: string;
  /** "edf", "edf+", "bdf", "bdf+" or "pupil_csv". */
  source_format: string;
  /** ISO-8601 import time. */
  imported_at: string;
  /** JSON text of format-specific header fields. */
  source_meta: string;
}

export const RECORDINGS_SCHEMA = new arrow.Schema([
  utf8("recording_hash"),
  utf8("participant"),
  utf8("session"),
  utf8("modality"),
  utf8List("channels"),
  utf8List("units"),
  f64("sampling_rate"),
  i32("num_samples"),
  f64("duration_s"),
  f64("time_offset_s"),
  i32("chunk_samples"),
  utf8("source_path"),
  utf8("source_format"),
  utf8("imported_at"),
  utf8("source_meta"),
], keyed("recording_hash"));

/** One derived signal built from one recording. */
export interface DerivedAssetRow {
  /** sha256 of {derivation@implementation version, params, source recording hash}. Also the signals' `asset_id`. */
  derived_asset_id: string;
  /** e.g. "standard_v2026q2.eeg_clean". */
  derivation: string;
  /** Implementation version of the derivation code. */
  derivation_version: number;
  source_recording_hash: string;
  participant: string;
  session: string;
  modality: string;
  channels: string[];
  units: string[];
  sampling_rate: number;
  num_samples: number;
  time_offset_s: number;
  chunk_samples: number;
  /** JSON text of the parameters. */
  params: string;
  created_at: string;
}

export const DERIVED_ASSETS_SCHEMA = new arrow.Schema([
  utf8("derived_asset_id"),
  utf8("derivation"),
  i32("derivation_version"),
  utf8("source_recording_hash"),
  utf8("participant"),
  utf8("session"),
  utf8("modality"),
  utf8List("channels"),
  utf8List("units"),
  f64("sampling_rate"),
  i32("num_samples"),
  f64("time_offset_s"),
  i32("chunk_samples"),
  utf8("params"),
  utf8("created_at"),
], keyed("derived_asset_id"));

/** One labelled interval on a session's clock. */
export interface LabelRow {
  /** sha256 of (participant, session, track, start, end, class, value, text). */
  label_id: string;
  participant: string;
  session: string;
  /** Label track, e.g. "cognitive_load". */
  track: string;
  start_s: number;
  end_s: number;
  /** Class index, or -1 when the label is a value or free text. */
  class_index: number;
  /** Numeric value (regression target), or null. */
  value: number | null;
  /** Original annotation text. */
  text: string;
  /** Recording whose file carried the annotation. */
  source_recording_hash: string;
}

export const LABELS_SCHEMA = new arrow.Schema([
  utf8("label_id"),
  utf8("participant"),
  utf8("session"),
  utf8("track"),
  f64("start_s"),
  f64("end_s"),
  i32("class_index"),
  f64("value", true),
  utf8("text"),
  utf8("source_recording_hash"),
], keyed("label_id"));

/** One chunk of one asset's samples: all channels, `num_samples` consecutive samples. */
export interface SignalChunkRow {
  /** recording_hash (raw) or derived_asset_id (derived). */
  asset_id: string;
  chunk_index: number;
  start_sample: number;
  num_samples: number;
  num_channels: number;
  /** float32 little-endian, channel-major: [num_channels][num_samples]. */
  samples: Uint8Array;
}

export const SIGNALS_SCHEMA = new arrow.Schema([
  utf8("asset_id"),
  i32("chunk_index"),
  i32("start_sample"),
  i32("num_samples"),
  i32("num_channels"),
  new arrow.Field("samples", new arrow.Binary(), false),
]);
