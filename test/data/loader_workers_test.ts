import assert from "node:assert/strict";
import { type Catalog, openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import type { PoyoBatch } from "../../src/data/batch.ts";
import { assertSameBatch, BATCH_ARRAYS, LOADER_TEST_OPTIONS } from "./loader_fixtures.ts";
import { allocateBatch, tokenizeRows, type TokenRow } from "../../src/data/tokenizer.ts";
import { ChunkMirror } from "../../src/data/chunk_mirror.ts";
import { LoaderWorkerPool } from "../../src/data/loader_worker_pool.ts";
import type { LoaderWorkerSetup } from "../../src/data/loader_worker_protocol.ts";
import { gatherIndex } from "../../src/ops/embedding.ts";
import { batchUploadArrays, type POYO } from "../../src/models/poyo.ts";
import { DataConfig, DataConfigSchema } from "../../src/config/data_config.ts";

const OPTIONS = LOADER_TEST_OPTIONS;

let shared: Promise<{ catalog: Catalog; dir: string }> | undefined;
function corpus() {
  shared ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_loader_workers_" });
    const catalog = await openCatalog(`${dir}/catalog`);
    await generateDemoCorpus(catalog, { participants: 3, minutes: 1, sessions: 1, seed: 5 });
    return { catalog, dir };
  })();
  return shared;
}

Deno.test({
  name: "loader workers: 0, 1 and 2 workers give byte-identical batches across an epoch boundary",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { catalog } = await corpus();
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 0 });
    // A second dataset whose cache holds a few batches only: chunks are evicted, dropped by the workers
    // and sent again while the loader runs.
    const small = await openWindowDataset(catalog, resolved, { ...OPTIONS, cacheBytes: 1 << 20 });
    try {
      const B = 7;
      const numWindows = ds.split("train").numWindows;
      const batches = Math.ceil(numWindows / B) + 3; // into the second epoch
      const reference = ds.loader("train", { batchSize: B, seed: 9, uploadIndex: true });
      assert.equal(reference.workers, 0);
      const want: PoyoBatch[] = [];
      for (let i = 0; i < batches; i++) want.push(await reference.next());
      for (const [dataset, workers] of [[ds, 1], [ds, 2], [small, 2]] as const) {
        const loader = dataset.loader("train", { batchSize: B, seed: 9, workers, uploadIndex: true });
        for (let i = 0; i < batches; i++) {
          assertSameBatch(await loader.next(), want[i], `${workers} workers, batch ${i}`);
        }
        assert.deepEqual(loader.cursor(), reference.cursor());
      }
      assert.ok(small.reader.cachedBytes <= 1 << 20);
    } finally {
      ds.close();
      small.close();
    }
  },
});

/** A deep copy of a batch's arrays (a reusing loader overwrites released batches). */
function snapshot(batch: PoyoBatch): PoyoBatch {
  const copy = { ...batch };
  for (const f of BATCH_ARRAYS) (copy as Record<string, unknown>)[f] = batch[f].slice();
  if (batch.uploadIndex) {
    copy.uploadIndex = {
      ...batch.uploadIndex,
      modalityMasks: batch.uploadIndex.modalityMasks.map((m) => m.slice()),
      unitInverse: batch.uploadIndex.unitInverse.slice(),
      sessionInverse: batch.uploadIndex.sessionInverse.slice(),
    };
  }
  return copy;
}

Deno.test({
  name: "reused batch memory: released slots give the same batches (0 and 2 workers), and stay few",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { catalog } = await corpus();
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 0 });
    try {
      const B = 6;
      const batches = Math.ceil(ds.split("train").numWindows / B) + 2; // into the second epoch
      const reference = ds.loader("train", { batchSize: B, seed: 5, uploadIndex: true });
      const want: PoyoBatch[] = [];
      for (let i = 0; i < batches; i++) want.push(await reference.next());
      for (const workers of [0, 2]) {
        const loader = ds.loader("train", {
          batchSize: B,
          seed: 5,
          workers,
          uploadIndex: true,
          reuseBuffers: true,
          prefetch: 3,
        });
        const seen = new Set<ArrayBufferLike>();
        for (let i = 0; i < batches; i++) {
          const batch = await loader.next();
          assert.ok(batch.value.buffer instanceof SharedArrayBuffer);
          seen.add(batch.value.buffer);
          assertSameBatch(snapshot(batch), want[i], `reuse, ${workers} workers, batch ${i}`);
          loader.release(batch);
          loader.release(batch); // a second release is ignored
        }
        assert.ok(loader.slotsAllocated <= 3 + 2, `${loader.slotsAllocated} slots`);
        assert.equal(seen.size, loader.slotsAllocated, "batches are views of the pool's slots");
      }
    } finally {
      ds.close();
    }
  },
});

Deno.test("tokenizing into a used batch overwrites everything, padding tokens included", () => {
  const shape = { window: 1, patch: 4, numTokens: 6, numQueries: 2, latentTime: new Float32Array(2) };
  const mirror = new ChunkMirror();
  mirror.put("a#0", Float32Array.from({ length: 16 }, (_, i) => i + 1));
  const rows: TokenRow[] = [0, 0.5].map((start) => ({
    start,
    sources: [{
      modalityIndex: 0,
      units: Int32Array.of(3),
      samplingRate: 8,
      timeOffset: 0,
      patchesPerChannel: 2,
      layout: { assetId: "a", numChannels: 1, numSamples: 16, chunkSamples: 16 },
    }],
    sessionIndex: 1,
    label: 2,
    weight: 1,
  }));
  const fresh = tokenizeRows(rows, shape, mirror);
  assert.deepEqual(Array.from(fresh.kvLen), [2, 2]); // 4 padding tokens per row
  const used = allocateBatch(2, shape);
  for (const f of BATCH_ARRAYS) if (f !== "latentTime") used[f].fill(7);
  assertSameBatch(tokenizeRows(rows, shape, mirror, used), fresh, "used batch");
});

Deno.test({
  name: "upload index arrays: the same as the ones batchUploadArrays builds itself; used when sizes match",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { catalog } = await corpus();
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 1 });
    try {
      const loader = ds.loader("train", { batchSize: 6, seed: 2, prepare: () => {} }); // index on by default
      const batch = await loader.next();
      assert.ok(batch.uploadIndex, "a loader with a prepare hook computes the upload index");
      // batchUploadArrays reads only the model's kwargs and vocabularies: a stand-in model needs no GPU.
      const model = (vocab: POYO["vocab"]) => ({ kwargs: { numLatents: OPTIONS.numLatents }, vocab }) as POYO;
      const vocab = { channels: ds.vocab.channels, sessions: ds.vocab.sessions, modalities: ds.modalities };
      const withIndex = batchUploadArrays(model(vocab), batch);
      const computed = batchUploadArrays(model(vocab), { ...batch, uploadIndex: undefined });
      assert.deepEqual(withIndex, computed);
      assert.equal(
        withIndex[0],
        batch.uploadIndex.modalityMasks[0],
        "the loader's arrays are used as they are",
      );
      // Other vocabulary sizes (e.g. a model extended for finetuning): computed, not taken from the batch.
      const bigger = { ...vocab, sessions: [...vocab.sessions, "extra/session"] };
      const other = batchUploadArrays(model(bigger), batch);
      assert.notEqual(other[0], batch.uploadIndex.modalityMasks[0]);
      assert.deepEqual(other[0], batch.uploadIndex.modalityMasks[0]);
      const plain = await ds.loader("train", { batchSize: 6, seed: 2 }).next();
      assert.equal(plain.uploadIndex, undefined, "no prepare hook, no index");
    } finally {
      ds.close();
    }
  },
});

Deno.test({
  name: "loader workers: a resumed loader continues the uninterrupted stream (no window twice, none skipped)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { catalog } = await corpus();
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 2 });
    try {
      const B = 5;
      const numWindows = ds.split("train").numWindows;
      const total = Math.ceil((2 * numWindows) / B); // two epochs
      const uninterrupted = ds.loader("train", { batchSize: B, seed: 4, workers: 0 });
      const want: PoyoBatch[] = [];
      for (let i = 0; i < total; i++) want.push(await uninterrupted.next());
      const cut = Math.floor(total / 2);
      const first = ds.loader("train", { batchSize: B, seed: 4 });
      assert.equal(first.workers, 2);
      const got: PoyoBatch[] = [];
      for (let i = 0; i < cut; i++) got.push(await first.next());
      const saved = JSON.stringify(first.cursor());
      const resumed = ds.loader("train", { batchSize: B, seed: 4, cursor: saved, workers: 1 });
      for (let i = cut; i < total; i++) got.push(await resumed.next());
      got.forEach((b, i) => assertSameBatch(b, want[i], `batch ${i}`));
      // The first epoch visits every window once.
      const seen = got.flatMap((b) => b.windows).slice(0, numWindows).map((w) => `${w.session}@${w.start}`);
      assert.equal(new Set(seen).size, numWindows);
    } finally {
      ds.close();
    }
  },
});

Deno.test({
  name: "loader workers: a failing batch and a dying worker surface as errors, not hangs",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { catalog } = await corpus();
    const resolved = await resolveQuery(catalog, {});
    const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 0 });
    const setup: LoaderWorkerSetup = {
      shape: ds.shape,
      sources: [[{
        modalityIndex: 0,
        units: Int32Array.of(1),
        samplingRate: 16,
        timeOffset: 0,
        patchesPerChannel: 1,
        layout: { assetId: "missing", numChannels: 1, numSamples: 64, chunkSamples: 32 },
      }]],
      sessionIndex: Int32Array.of(1),
      uploadIndexSizes: { numModalities: 1, numChannels: 2, numSessions: 2 },
    };
    // A chunk the worker was never sent: that batch fails with the worker's reason, the pool goes on.
    const pool = new LoaderWorkerPool(setup, { workers: 1 });
    try {
      await assert.rejects(
        pool.assemble([{ session: 0, start: 0, label: 0 }], new Map()),
        /Cannot assemble a batch in loader worker 0: Cannot read samples of asset missing .*chunk 0 was not sent/,
      );
      const chunk = new Float32Array(new SharedArrayBuffer(32 * 4)).fill(2.5);
      const { arrays, uploadIndex } = await pool.assemble(
        [{ session: 0, start: 0, label: 1 }],
        new Map([["missing#0", chunk]]),
        { uploadIndex: true },
      );
      assert.deepEqual(Array.from(arrays.value.subarray(0, 16)), new Array(16).fill(2.5));
      assert.equal(arrays.label[0], 1);
      assert.deepEqual(uploadIndex!.unitInverse, gatherIndex(arrays.unit, 2));
      assert.deepEqual(uploadIndex!.sessionInverse, gatherIndex(arrays.querySession, 2));
      assert.deepEqual(uploadIndex!.modalityMasks[0].subarray(0, 2), Float32Array.of(1, 0));
    } finally {
      pool.close();
    }
    // A worker that dies (here: its module throws on load) fails pending and later batches clearly.
    const dir = await Deno.makeTempDir({ prefix: "orion_loader_worker_error_" });
    try {
      const bad = `${dir}/bad_worker.ts`;
      await Deno.writeTextFile(bad, `throw new Error("worker module exploded");\n`);
      const broken = new LoaderWorkerPool(setup, { workers: 2, moduleUrl: new URL(`file://${bad}`).href });
      try {
        await assert.rejects(
          broken.assemble([{ session: 0, start: 0, label: 0 }], new Map()),
          /Cannot assemble batches as loader worker \d failed: .*worker module exploded.*loaderWorkers to 0/,
        );
        await assert.rejects(broken.assemble([], new Map()), /loader worker \d failed/);
      } finally {
        broken.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    // Invalid counts are refused with the field named.
    assert.throws(
      () => ds.loader("train", { batchSize: 2, seed: 0, workers: -1 }),
      /Cannot start loader workers as workers is -1/,
    );
    await assert.rejects(
      openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 1.5 }),
      /Cannot start loader workers as loaderWorkers is 1.5/,
    );
    assert.equal(DataConfigSchema.safeParse({ loaderWorkers: -1 }).success, false);
    assert.equal(DataConfigSchema.safeParse({ loaderWorkers: 2.5 }).success, false);
    assert.equal(DataConfig({ loaderWorkers: 3 }).loaderWorkers, 3);
    ds.close();
  },
});

Deno.test({
  name: "loader workers: cleanup of the shared corpus",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (!shared) return;
    const { catalog, dir } = await shared;
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  },
});
