import assert from "node:assert/strict";
import { type Catalog, openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";
import { readWholeSignal } from "../../src/ursa/signal_store.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import { splitOf } from "../../src/data/split.ts";
import { DataLedger, intersectLedgers } from "../../src/data/ledger.ts";
import { buildVocabulary } from "../../src/data/vocabulary.ts";
import { LOADER_TEST_OPTIONS } from "./loader_fixtures.ts";

const OPTIONS = LOADER_TEST_OPTIONS;

let shared: Promise<{ catalog: Catalog; dir: string }> | undefined;
function corpus() {
  shared ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_loader_" });
    const catalog = await openCatalog(`${dir}/catalog`);
    await generateDemoCorpus(catalog, { participants: 6, minutes: 1, sessions: 3, seed: 11 });
    return { catalog, dir };
  })();
  return shared;
}

Deno.test("batches follow the contract: shapes, tokens, times, latents, queries, and the stored samples", async () => {
  const { catalog } = await corpus();
  const resolved = await resolveQuery(catalog, {});
  const ds = await openWindowDataset(catalog, resolved, OPTIONS);
  assert.deepEqual(ds.modalities, ["eeg", "pupil"]);
  assert.equal(ds.numTokens, 32 * 8 + 2 * 2); // 128 Hz → 8 patches × 32 ch; 32 Hz → 2 patches × 2 ch
  assert.equal(ds.numClasses, 3);
  assert.equal(ds.numLatentTokens, 4 * 4);
  assert.deepEqual(Array.from(ds.latentTime.subarray(0, 6)), [0.125, 0.125, 0.125, 0.125, 0.375, 0.375]);
  assert.equal(ds.vocab.channels[0], "<pad>");
  assert.equal(ds.vocab.channels.length, 1 + 6 * 34);
  assert.deepEqual(ds.vocab.channels.slice(1), [...ds.vocab.channels.slice(1)].sort());
  assert.equal(ds.vocab.sessions.length, 1 + 18);

  const loader = ds.loader("train", { batchSize: 4, seed: 3 });
  const batch = await loader.next();
  const N = ds.numTokens, P = 16;
  assert.equal(batch.value.length, 4 * N * P);
  assert.deepEqual(Array.from(batch.kvLen), [N, N, N, N]);
  for (let b = 0; b < 4; b++) {
    const ref = batch.windows[b];
    const w = ds.split("train").windows.find((x) =>
      ds.sessions[x.session].key === ref.session && Math.abs(x.start - ref.start) < 1e-9
    )!;
    assert.equal(batch.label[b], w.label);
    assert.equal(batch.queryTime[b], 0.5);
    assert.equal(batch.weight[b], 1);
    assert.equal(ds.vocab.sessions[batch.querySession[b]], ref.session);
    for (let t = 0; t < N; t++) {
      const time = batch.time[b * N + t];
      assert.ok(time >= 0 && time < 1, `token time ${time}`);
      const unit = ds.vocab.channels[batch.unit[b * N + t]];
      assert.ok(unit.startsWith(ref.participant + "/"), unit);
      assert.equal(batch.modality[b * N + t], unit.includes("pupil") ? 1 : 0);
    }
    // Token 8 is channel 1 (Fp2) patch 0 of EEG: it equals the stored derived samples.
    const session = ds.sessions[w.session];
    const eeg = session.assets[0];
    const samples = await readWholeSignal(catalog, {
      assetId: eeg.derivedAssetId,
      numChannels: 32,
      numSamples: eeg.numSamples,
      chunkSamples: eeg.chunkSamples,
    });
    const i0 = Math.ceil(w.start * 128 - 1e-6);
    assert.equal(ds.vocab.channels[batch.unit[b * N + 8]], `${session.participant}/Fp2`);
    assert.deepEqual(
      Array.from(batch.value.subarray((b * N + 8) * P, (b * N + 9) * P)),
      Array.from(samples[1].subarray(i0, i0 + P)),
    );
    assert.ok(Math.abs(batch.time[b * N + 9] - (i0 + 16) / 128 + w.start) < 1e-5);
  }
});

Deno.test("vocabularies extend for finetuning: known words keep their index, new ones are appended", async () => {
  const { catalog } = await corpus();
  const small = await openWindowDataset(
    catalog,
    await resolveQuery(catalog, { participants: ["p002", "p004"] }),
    OPTIONS,
  );
  const full = await openWindowDataset(catalog, await resolveQuery(catalog, {}), {
    ...OPTIONS,
    vocab: small.vocab,
  });
  assert.deepEqual(full.vocab.channels.slice(0, small.vocab.channels.length), small.vocab.channels);
  assert.deepEqual(full.vocab.sessions.slice(0, small.vocab.sessions.length), small.vocab.sessions);
  const added = full.vocab.channels.slice(small.vocab.channels.length);
  assert.ok(added.every((w) => !w.startsWith("p002/") && !w.startsWith("p004/")));
  assert.deepEqual(added, [...added].sort());
  assert.deepEqual(buildVocabulary(["b", "a"], ["<pad>", "c"]), ["<pad>", "c", "a", "b"]);
  assert.throws(() => buildVocabulary(["a"], ["a"]), /index 0 is not '<pad>'/);
});

Deno.test("splits are by session, disjoint, and stable when sessions are added", async () => {
  const { catalog } = await corpus();
  const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), OPTIONS);
  const train = new Set(ds.split("train").sessions), test = new Set(ds.split("test").sessions);
  assert.equal(train.size + test.size, 18);
  for (const k of train) assert.ok(!test.has(k));
  assert.ok(train.size > 0 && test.size > 0);
  for (const w of ds.split("test").windows) assert.ok(test.has(ds.sessions[w.session].key));
  // Stable: a dataset over fewer participants assigns the same split to the shared sessions.
  const fewer = await openWindowDataset(
    catalog,
    await resolveQuery(catalog, { participants: ["p001", "p003"] }),
    OPTIONS,
  );
  for (const k of fewer.split("train").sessions) assert.ok(train.has(k));
  for (const k of fewer.split("test").sessions) assert.ok(test.has(k));
  const keys = Array.from({ length: 1000 }, (_, i) => `p${i}/s1`);
  const fraction = keys.filter((k) => splitOf(k, { trainSplit: 0.8 }) === "train").length / keys.length;
  assert.ok(Math.abs(fraction - 0.8) < 0.05, `train fraction ${fraction}`);
  const three = keys.map((k) => splitOf(k, { trainSplit: 0.6, valSplit: 0.2 }));
  assert.ok(three.includes("val") && three.includes("test"));
});

Deno.test("cursor resume: the resumed stream equals the uninterrupted one; an epoch visits every window once", async () => {
  const { catalog } = await corpus();
  const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), OPTIONS);
  const n = ds.split("train").numWindows;
  const id = (b: { windows: { session: string; start: number }[] }) =>
    b.windows.map((w) => `${w.session}@${w.start.toFixed(6)}`);
  const B = 7;
  const steps = Math.ceil((2 * n) / B) + 1; // more than two epochs
  const straight = ds.loader("train", { batchSize: B, seed: 5, prefetch: 3 });
  const all: string[] = [];
  for (let s = 0; s < steps; s++) all.push(...id(await straight.next()));
  const first = ds.loader("train", { batchSize: B, seed: 5 });
  const resumedIds: string[] = [];
  for (let s = 0; s < 9; s++) resumedIds.push(...id(await first.next()));
  const saved = JSON.stringify(first.cursor());
  assert.deepEqual(JSON.parse(saved), { epoch: Math.floor((9 * B) / n), position: (9 * B) % n });
  const second = ds.loader("train", { batchSize: B, seed: 5, cursor: saved });
  for (let s = 9; s < steps; s++) resumedIds.push(...id(await second.next()));
  assert.deepEqual(resumedIds, all);
  const epoch0 = all.slice(0, n), epoch1 = all.slice(n, 2 * n);
  assert.equal(new Set(epoch0).size, n, "no window twice in an epoch");
  assert.deepEqual([...epoch0].sort(), [...epoch1].sort(), "none skipped");
  assert.notDeepEqual(epoch0, epoch1, "each epoch has its own order");
  const other = ds.loader("train", { batchSize: B, seed: 6 });
  assert.notDeepEqual(id(await other.next()), all.slice(0, B));
  assert.throws(
    () => ds.loader("train", { batchSize: B, seed: 5, cursor: { epoch: 0, position: n + 3 } }),
    /split has \d+ windows/,
  );
});

Deno.test("ranks partition each global batch; the cursor is rank-independent", async () => {
  const { catalog } = await corpus();
  const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), OPTIONS);
  const n = ds.split("train").numWindows;
  const single = ds.loader("train", { batchSize: 8, seed: 9 });
  const r0 = ds.loader("train", { batchSize: 4, seed: 9, rank: 0, worldSize: 2 });
  const r1 = ds.loader("train", { batchSize: 4, seed: 9, rank: 1, worldSize: 2 });
  for (let s = 0; s < 3; s++) {
    const whole = (await single.next()).windows.map((w) => `${w.session}@${w.start}`);
    const a = (await r0.next()).windows.map((w) => `${w.session}@${w.start}`);
    const b = (await r1.next()).windows.map((w) => `${w.session}@${w.start}`);
    assert.deepEqual([...a, ...b], whole);
  }
  assert.deepEqual(r0.cursor(), r1.cursor());
  assert.deepEqual(r0.cursor(), { epoch: 0, position: 24 % n });
});

Deno.test("evaluation windows: 50 % overlap, grouped per labelled interval, padded last batch", async () => {
  const { catalog } = await corpus();
  const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), OPTIONS);
  const groups = ds.evalWindows("test");
  const testSessions = new Set(ds.split("test").sessions);
  let total = 0;
  for (const g of groups) {
    assert.ok(testSessions.has(g.session));
    const interval = ds.sessions.find((s) => s.key === g.session)!.labels[Number(g.id.split("#")[1])];
    assert.equal(g.windows.length, Math.floor((interval.end - interval.start - 1) / 0.5 + 1e-9) + 1);
    for (const [i, w] of g.windows.entries()) {
      assert.equal(w.label, g.label);
      assert.ok(Math.abs(w.start - (interval.start + 0.5 * i)) < 1e-9);
    }
    total += g.windows.length;
  }
  let rows = 0, last;
  for await (const e of ds.evalBatches("test", { batchSize: 16 })) {
    rows += e.validRows;
    last = e;
  }
  assert.equal(rows, total);
  assert.ok(last);
  for (let b = last.validRows; b < 16; b++) {
    assert.equal(last.batch.weight[b], 0);
    assert.equal(last.groupIndex[b], -1);
  }
});

Deno.test("ledger of a run: train ∩ test is empty, train ∩ train is train, JSON round trip", async () => {
  const { catalog, dir } = await corpus();
  const ds = await openWindowDataset(catalog, await resolveQuery(catalog, {}), OPTIONS);
  const trainLedger = new DataLedger();
  const loader = ds.loader("train", { batchSize: 16, seed: 1 });
  for (let s = 0; s < Math.ceil(ds.split("train").numWindows / 16); s++) {
    trainLedger.addBatch(await loader.next());
  }
  const testLedger = new DataLedger();
  for await (const e of ds.evalBatches("test", { batchSize: 16 })) testLedger.addBatch(e.batch);
  assert.deepEqual(intersectLedgers(trainLedger, testLedger), []);
  const self = intersectLedgers(trainLedger, DataLedger.fromJSON(JSON.stringify(trainLedger)));
  assert.equal(self.length, trainLedger.entries().length);
  // Contiguous windows merge: each training session's ledger entry holds one interval per labelled block.
  const entry = trainLedger.entries()[0];
  assert.ok(entry.intervals.length <= 6, `intervals ${JSON.stringify(entry.intervals)}`);
  const again = ds.loader("train", { batchSize: 16, seed: 1 });
  for (let s = 0; s < 200; s++) trainLedger.addBatch(await again.next());
  assert.ok(JSON.stringify(trainLedger).length < 40000, "a long run's ledger stays small");
  catalog.close();
  await Deno.remove(dir, { recursive: true });
  shared = undefined;
});
