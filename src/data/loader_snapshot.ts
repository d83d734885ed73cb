/**
 * Loader snapshots: one binary file holding a dataset's resolved query, its options and vocabularies, and
 * every decoded chunk that one split's training windows touch, so that the same dataset can be opened and
 * loaded without the catalog (no LanceDB: its native module does not travel to every machine). A dataset
 * opened from a snapshot gives the same batches, bit for bit, as the catalog-backed one for that split
 * (tested); other windows' chunks are not in the file and reading them fails clearly.
 *
 * Layout (integers little-endian; samples float32 little-endian, channel-major, as in the `signals` table):
 *
 *   8 bytes  magic "ORIONLSS"
 *   u32      format version (1)
 *   u32      H: header length in bytes
 *   H bytes  header, UTF-8 JSON: {resolved, options, vocab, split, chunks: [[assetId, chunkIndex, floats]…],
 *            dataBytes, sha256 (hex of the data section)}
 *   0–3      zero bytes up to a multiple of 4
 *   data     the chunks' samples, concatenated in header order
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ResolvedQuery } from "../ursa/resolve_query.ts";
import type { SignalChunk, SignalChunkSource } from "../ursa/signal_store.ts";
import type { SplitName } from "./split.ts";
import { openWindowDataset, type WindowDataset, type WindowDatasetOptions } from "./window_dataset.ts";

/** The first 8 bytes of every loader snapshot. */
export const LOADER_SNAPSHOT_MAGIC = "ORIONLSS";
/** The format version this module writes and reads. */
export const LOADER_SNAPSHOT_VERSION = 1;

const PREFIX_BYTES = 16;

/** The dataset options a snapshot records (those of `WindowDataset.options`). */
export type LoaderSnapshotOptions = WindowDataset["options"];

/** The JSON header of a snapshot. */
interface SnapshotHeader {
  resolved: ResolvedQuery;
  options: LoaderSnapshotOptions;
  vocab: { channels: string[]; sessions: string[] };
  split: SplitName;
  /** [assetId, chunkIndex, float32 count] per chunk, in data order. */
  chunks: [string, number, number][];
  dataBytes: number;
  sha256: string;
}

/** A snapshot read back: what to open the dataset with, and the chunk source over its samples. */
export interface LoaderSnapshot {
  resolved: ResolvedQuery;
  options: LoaderSnapshotOptions;
  vocab: { channels: string[]; sessions: string[] };
  /** The split whose training windows' chunks the snapshot holds. */
  split: SplitName;
  source: LoaderSnapshotSource;
  /** Size of the file in bytes. */
  bytes: number;
}

/** Serves a snapshot's chunks to a `SignalReader` (views of the file's bytes, no copy). */
export class LoaderSnapshotSource implements SignalChunkSource {
  readonly #chunks: Map<string, Uint8Array>;
  readonly #what: string;

  constructor(chunks: Map<string, Uint8Array>, what: string) {
    this.#chunks = chunks;
    this.#what = what;
  }

  /** Number of chunks held. */
  get size(): number {
    return this.#chunks.size;
  }

  /** See {@link SignalChunkSource.readChunks}; a chunk the snapshot does not hold is an error. */
  readChunks(wanted: Map<string, number[]>): Promise<SignalChunk[]> {
    const out: SignalChunk[] = [];
    for (const [assetId, indices] of wanted) {
      for (const chunkIndex of indices) {
        const samples = this.#chunks.get(`${assetId}#${chunkIndex}`);
        if (!samples) {
          return Promise.reject(
            new Error(
              `Cannot read chunk ${chunkIndex} of asset ${assetId} from ${this.#what} as it holds only the chunks ` +
                `of the training windows it was exported for; load that split with the snapshot's options, or ` +
                `export the snapshot again`,
            ),
          );
        }
        out.push({ assetId, chunkIndex, samples });
      }
    }
    return Promise.resolve(out);
  }
}

/**
 * Encodes the snapshot of `dataset`'s split `split` (default "train"): reads every chunk its windows touch
 * (through the dataset's reader, so from the catalog when they are not cached) and returns the file's bytes.
 */
export async function encodeLoaderSnapshot(
  dataset: WindowDataset,
  split: SplitName = "train",
): Promise<Uint8Array> {
  const windows = dataset.split(split).windows;
  const chunks = new Map<string, { assetId: string; chunkIndex: number; data: Float32Array }>();
  // Batches of windows, so that a small chunk cache still holds each batch's chunks while they are copied.
  for (let i = 0; i < windows.length; i += 32) {
    const ranges = dataset.sampleRanges(windows.slice(i, i + 32));
    await dataset.reader.prefetch(ranges);
    for (const range of ranges) {
      const all = dataset.reader.visitCachedChunks(range, (key, data) => {
        if (chunks.has(key)) return;
        const chunkIndex = Number(key.slice(key.lastIndexOf("#") + 1));
        chunks.set(key, { assetId: range.layout.assetId, chunkIndex, data: data.slice() });
      });
      if (!all) {
        throw new Error(
          `Cannot export a loader snapshot as the chunk cache (${dataset.reader.cachedBytes} bytes) cannot ` +
            `hold one batch's chunks; raise cacheBytes`,
        );
      }
    }
  }
  const list = [...chunks.values()].sort((a, b) =>
    a.assetId < b.assetId ? -1 : a.assetId > b.assetId ? 1 : a.chunkIndex - b.chunkIndex
  );
  const dataBytes = list.reduce((n, c) => n + c.data.byteLength, 0);
  const data = new Uint8Array(dataBytes);
  let offset = 0;
  for (const c of list) {
    data.set(new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength), offset);
    offset += c.data.byteLength;
  }
  const header: SnapshotHeader = {
    resolved: dataset.resolved,
    options: dataset.options,
    vocab: dataset.vocab,
    split,
    chunks: list.map((c) => [c.assetId, c.chunkIndex, c.data.length]),
    dataBytes,
    sha256: createHash("sha256").update(data).digest("hex"),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataAt = alignUp(PREFIX_BYTES + json.byteLength, 4);
  const out = new Uint8Array(dataAt + dataBytes);
  out.set(new TextEncoder().encode(LOADER_SNAPSHOT_MAGIC), 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, LOADER_SNAPSHOT_VERSION, true);
  view.setUint32(12, json.byteLength, true);
  out.set(json, PREFIX_BYTES);
  out.set(data, dataAt);
  return out;
}

/** Writes the snapshot of `dataset`'s split (see {@link encodeLoaderSnapshot}); returns its size in bytes. */
export async function writeLoaderSnapshot(
  path: string,
  dataset: WindowDataset,
  split: SplitName = "train",
): Promise<number> {
  const bytes = await encodeLoaderSnapshot(dataset, split);
  const tmp = `${path}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
  return bytes.byteLength;
}

/**
 * Decodes a snapshot's bytes (`what` names them in errors). Refuses a truncated or corrupt file:
 * "Cannot read loader snapshot X as …: current value is …".
 */
export function decodeLoaderSnapshot(bytes: Uint8Array, what: string): LoaderSnapshot {
  const refuse = (why: string, current: string) =>
    new Error(`Cannot read loader snapshot ${what} as ${why}: current value is ${current}`);
  if (bytes.byteLength < PREFIX_BYTES) {
    throw refuse(
      `it is shorter than the ${PREFIX_BYTES}-byte prefix (truncated, or not a loader snapshot)`,
      `${bytes.byteLength} bytes`,
    );
  }
  const magic = new TextDecoder("latin1").decode(bytes.subarray(0, 8));
  if (magic !== LOADER_SNAPSHOT_MAGIC) {
    throw refuse(
      `it does not start with "${LOADER_SNAPSHOT_MAGIC}" (not a loader snapshot)`,
      JSON.stringify(magic),
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== LOADER_SNAPSHOT_VERSION) {
    throw refuse(`its format version is not ${LOADER_SNAPSHOT_VERSION}; export it again`, String(version));
  }
  const headerBytes = view.getUint32(12, true);
  if (PREFIX_BYTES + headerBytes > bytes.byteLength) {
    throw refuse(
      `its ${headerBytes}-byte header runs past the end of the file (truncated)`,
      `${bytes.byteLength} bytes`,
    );
  }
  let header: SnapshotHeader;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes),
    ));
  } catch (e) {
    throw refuse(
      `its header is not UTF-8 JSON (corrupt: ${(e as Error).message})`,
      `${headerBytes} header bytes`,
    );
  }
  if (
    typeof header !== "object" || header === null || !Array.isArray(header.chunks) ||
    typeof header.resolved !== "object" || typeof header.options !== "object" ||
    typeof header.vocab !== "object" || !Number.isInteger(header.dataBytes) ||
    typeof header.sha256 !== "string"
  ) {
    throw refuse(
      "its header lacks resolved, options, vocab, chunks, dataBytes or sha256 (corrupt)",
      JSON.stringify(Object.keys(header ?? {})),
    );
  }
  const dataAt = alignUp(PREFIX_BYTES + headerBytes, 4);
  const present = bytes.byteLength - dataAt;
  if (present !== header.dataBytes) {
    throw refuse(
      `its data section should hold ${header.dataBytes} bytes (${
        present < header.dataBytes ? "truncated" : "extra bytes"
      })`,
      `${present} bytes`,
    );
  }
  const data = bytes.subarray(dataAt);
  const sha256 = createHash("sha256").update(data).digest("hex");
  if (sha256 !== header.sha256) {
    throw refuse(`its data does not match the header's sha256 ${header.sha256} (corrupt)`, sha256);
  }
  const chunks = new Map<string, Uint8Array>();
  let offset = 0;
  for (const entry of header.chunks) {
    const [assetId, chunkIndex, floats] = entry;
    if (
      typeof assetId !== "string" || !Number.isInteger(chunkIndex) || !Number.isInteger(floats) ||
      floats < 0 ||
      offset + 4 * floats > data.byteLength
    ) {
      throw refuse(
        "a chunk entry of its header is malformed or runs past the data (corrupt)",
        JSON.stringify(entry),
      );
    }
    chunks.set(`${assetId}#${chunkIndex}`, data.subarray(offset, offset + 4 * floats));
    offset += 4 * floats;
  }
  if (offset !== data.byteLength) {
    throw refuse(
      `its chunk entries cover ${offset} of ${data.byteLength} data bytes (corrupt)`,
      `${offset} bytes`,
    );
  }
  return {
    resolved: header.resolved,
    options: header.options,
    vocab: header.vocab,
    split: header.split,
    source: new LoaderSnapshotSource(chunks, what),
    bytes: bytes.byteLength,
  };
}

/** Reads a snapshot file (see {@link decodeLoaderSnapshot}). */
export async function readLoaderSnapshot(path: string): Promise<LoaderSnapshot> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`Cannot read loader snapshot ${path} as the file cannot be read: current value is ${e}`, {
      cause: e,
    });
  }
  return decodeLoaderSnapshot(bytes, path);
}

/**
 * Opens the dataset a snapshot was exported from, reading samples from the snapshot (an empty chunk cache:
 * the first pass decodes from the snapshot's bytes, later ones hit the cache). Nothing here loads LanceDB.
 */
export function openSnapshotDataset(
  snapshot: LoaderSnapshot,
  options: Pick<WindowDatasetOptions, "cacheBytes" | "loaderWorkers"> = {},
): Promise<WindowDataset> {
  return openWindowDataset(snapshot.source, snapshot.resolved, {
    ...snapshot.options,
    vocab: snapshot.vocab,
    ...options,
  });
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
