/**
 * Reusable batch memory for loaders whose consumer hands batches back (`WindowLoader.release`). A slot is
 * one `SharedArrayBuffer` holding every array of a batch (and, when asked, its upload index arrays) at
 * fixed offsets; a batch is a set of views on it. The main thread and the loader workers write the same
 * slot without copies or transfers, and a steady training run allocates no batch memory at all: no page
 * faults on fresh buffers, and no external-memory growth that would make V8 collect the main thread's heap
 * every few batches.
 *
 * @module
 */
import type { BatchArrays } from "./loader_worker_protocol.ts";
import type { TokenShape } from "./tokenizer.ts";
import type { BatchUploadIndex, UploadIndexSizes } from "./upload_index.ts";

/** Where a batch of `rows` rows lies in a slot (element counts; every element is 4 bytes). */
export interface BatchSlotLayout {
  rows: number;
  shape: TokenShape;
  /** Vocabulary sizes of the upload index arrays, or null when the slot holds none. */
  uploadIndex: UploadIndexSizes | null;
  /** Bytes of one slot. */
  bytes: number;
}

type Part = ["f32" | "i32", number];

function parts(layout: Omit<BatchSlotLayout, "bytes">): Part[] {
  const { rows: b, shape, uploadIndex } = layout;
  const bn = b * shape.numTokens, bq = b * shape.numQueries;
  const out: Part[] = [
    ["f32", bn * shape.patch], // value
    ["i32", bn], // unit
    ["i32", bn], // modality
    ["f32", bn], // time
    ["i32", b], // kvLen
    ["i32", bq], // querySession
    ["f32", bq], // queryTime
    ["i32", bq], // label
    ["f32", bq], // weight
  ];
  if (uploadIndex) {
    for (let m = 0; m < uploadIndex.numModalities; m++) out.push(["f32", bn]);
    out.push(["i32", uploadIndex.numChannels + 1 + bn], ["i32", uploadIndex.numSessions + 1 + bq]);
  }
  return out;
}

/**
 * The slot layout of batches of `rows` rows of `shape`, with upload index arrays for `uploadIndex` sizes
 * (null: without).
 *
 * @example
 * ```ts
 * const layout = batchSlotLayout(32, { window: 10, patch: 16, numTokens: 2600, numQueries: 1, latentTime: new Float32Array(128) }, null);
 * console.log(layout.bytes); // 32 · 2600 · (16 + 3) · 4 + 32 · 5 · 4
 * ```
 */
export function batchSlotLayout(
  rows: number,
  shape: TokenShape,
  uploadIndex: UploadIndexSizes | null,
): BatchSlotLayout {
  const bytes = parts({ rows, shape, uploadIndex }).reduce((n, [, count]) => n + 4 * count, 0);
  return { rows, shape, uploadIndex, bytes };
}

/** Typed-array views of a slot's batch arrays (and upload index arrays when the layout has them). */
export function batchSlotViews(
  slot: SharedArrayBuffer,
  layout: BatchSlotLayout,
): { arrays: BatchArrays; uploadIndex?: BatchUploadIndex } {
  if (slot.byteLength !== layout.bytes) {
    throw new Error(
      `Cannot view a batch slot of ${slot.byteLength} bytes as the layout needs ${layout.bytes}; ` +
        "slots belong to one loader (batch size, shape and vocabulary)",
    );
  }
  let offset = 0;
  const views = parts(layout).map(([type, count]) => {
    const view = type === "f32" ? new Float32Array(slot, offset, count) : new Int32Array(slot, offset, count);
    offset += 4 * count;
    return view;
  });
  const [value, unit, modality, time, kvLen, querySession, queryTime, label, weight] = views;
  const arrays = {
    value,
    unit,
    modality,
    time,
    kvLen,
    querySession,
    queryTime,
    label,
    weight,
  } as unknown as BatchArrays;
  if (!layout.uploadIndex) return { arrays };
  const m = layout.uploadIndex.numModalities;
  return {
    arrays,
    uploadIndex: {
      ...layout.uploadIndex,
      modalityMasks: views.slice(9, 9 + m) as Float32Array[],
      unitInverse: views[9 + m] as Int32Array,
      sessionInverse: views[10 + m] as Int32Array,
    },
  };
}

/**
 * Free slots of one layout: `acquire` hands out a free slot or a new one, `release` takes one back.
 *
 * @example
 * ```ts ignore
 * const pool = new BatchSlotPool(layout);
 * const slot = pool.acquire();
 * pool.release(slot); // the next acquire() returns it
 * ```
 */
export class BatchSlotPool {
  readonly layout: BatchSlotLayout;
  readonly #free: SharedArrayBuffer[] = [];
  /** Slots allocated so far. */
  allocated = 0;

  constructor(layout: BatchSlotLayout) {
    this.layout = layout;
  }

  /** A free slot (the most recently released), or a new one. */
  acquire(): SharedArrayBuffer {
    const slot = this.#free.pop();
    if (slot) return slot;
    this.allocated++;
    return new SharedArrayBuffer(this.layout.bytes);
  }

  /** Takes a slot back; its batch's arrays will be overwritten by a later batch. */
  release(slot: SharedArrayBuffer): void {
    this.#free.push(slot);
  }
}
