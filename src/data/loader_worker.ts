/**
 * Worker entry of the training loader's batch assembly (`LoaderWorkerPool`): tokenizes whole batches from
 * the chunks the main thread shares with it and hands the batch arrays back as transferred buffers. The
 * output is exactly what the main thread's `tokenizeRows` would produce (same function, same inputs).
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import { ChunkMirror } from "./chunk_mirror.ts";
import { batchUploadIndex } from "./upload_index.ts";
import { batchSlotLayout, batchSlotViews } from "./batch_slots.ts";
import { tokenizeRows, type TokenRow } from "./tokenizer.ts";
import {
  BATCH_ARRAY_FIELDS,
  type LoaderWorkerReply,
  type LoaderWorkerRequest,
  type LoaderWorkerSetup,
} from "./loader_worker_protocol.ts";

const port = parentPort!;
const mirror = new ChunkMirror();
let setup: LoaderWorkerSetup | null = null;

function reply(message: LoaderWorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

port.on("message", (request: LoaderWorkerRequest) => {
  if (request.type === "init") {
    setup = request.setup;
    reply({ type: "ready" });
    return;
  }
  try {
    for (const key of request.drop) mirror.drop(key);
    for (const [key, buffer] of request.chunks) mirror.put(key, new Float32Array(buffer));
    if (!setup) throw new Error("Cannot assemble a batch before the worker's init message");
    const { sources, sessionIndex, shape, uploadIndexSizes } = setup;
    const rows: TokenRow[] = request.rows.map((r) => ({
      start: r.start,
      sources: sources[r.session],
      sessionIndex: sessionIndex[r.session],
      label: r.label,
      weight: 1,
    }));
    if (request.slot) {
      const layout = batchSlotLayout(rows.length, shape, request.uploadIndex ? uploadIndexSizes : null);
      const views = batchSlotViews(request.slot, layout);
      const batch = tokenizeRows(rows, shape, mirror, {
        batchSize: rows.length,
        numTokens: shape.numTokens,
        patch: shape.patch,
        numQueries: shape.numQueries,
        latentTime: shape.latentTime,
        windows: [],
        ...views.arrays,
      });
      if (views.uploadIndex) batchUploadIndex(batch, uploadIndexSizes, views.uploadIndex);
      reply({ type: "batch", id: request.id, buffers: [] });
      return;
    }
    const batch = tokenizeRows(rows, shape, mirror);
    const buffers = BATCH_ARRAY_FIELDS.map((f) => batch[f].buffer as ArrayBuffer);
    if (request.uploadIndex) {
      const index = batchUploadIndex(batch, uploadIndexSizes);
      for (const a of [...index.modalityMasks, index.unitInverse, index.sessionInverse]) {
        buffers.push(a.buffer as ArrayBuffer);
      }
    }
    reply({ type: "batch", id: request.id, buffers }, buffers);
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    reply({ type: "error", id: request.id, message: error.message, stack: error.stack });
  }
});
