import assert from "node:assert/strict";
import { openCatalog } from "../../src/ursa/catalog.ts";

Deno.test("generic table API: upsert, query, get, count, delete round trip with inferred schema", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_catalog_" });
  try {
    const catalog = await openCatalog(dir);
    await catalog.upsert("runs", [
      { run_id: "r1", status: "running", step: 3, tags: ["a", "b"], config: { lr: 0.1 } },
      { run_id: "r2", status: "done", step: 10, tags: null, config: { lr: 0.2 } },
    ], "run_id");
    await catalog.upsert("runs", [{
      run_id: "r1",
      status: "done",
      step: 7,
      tags: ["c"],
      config: { lr: 0.3 },
    }], "run_id");
    assert.equal(await catalog.count("runs"), 2);
    const r1 = await catalog.get("runs", "r1");
    assert.deepEqual(r1, { run_id: "r1", status: "done", step: 7, tags: ["c"], config: { lr: 0.3 } });
    const done = await catalog.query("runs", "status = 'done'");
    assert.deepEqual(done.map((r) => r.run_id).sort(), ["r1", "r2"]);
    assert.equal(await catalog.get("runs", "nope"), undefined);
    await catalog.delete("runs", "run_id = 'r2'");
    assert.equal(await catalog.count("runs"), 1);
    assert.deepEqual(await catalog.query("missing_table"), []);
    await assert.rejects(
      () => catalog.upsert("runs", [{ run_id: "r3", unknown_column: 1 }], "run_id"),
      /column 'unknown_column' is not in its schema/,
    );
    await assert.rejects(
      () => catalog.upsert("runs", [{ run_id: "r3" }, { run_id: "r3" }], "run_id"),
      /appears twice/,
    );
    assert.deepEqual(await catalog.tableNames(), ["runs"]);
    catalog.close();
    // Reopening finds the key column in the schema metadata.
    const again = await openCatalog(dir);
    assert.equal((await again.get("runs", "r1"))?.step, 7);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("signal store: a window read returns exactly the stored samples and touches only its chunks", async () => {
  const { writeSignal, SignalReader } = await import("../../src/ursa/signal_store.ts");
  const dir = await Deno.makeTempDir({ prefix: "orion_signals_" });
  try {
    const catalog = await openCatalog(dir);
    const channels = [0, 1, 2].map((c) => Float32Array.from({ length: 1000 }, (_, i) => c * 10000 + i));
    await writeSignal(catalog, "asset_a", channels, 128);
    await writeSignal(catalog, "asset_b", [new Float32Array(500).fill(7)], 128);
    const layout = { assetId: "asset_a", numChannels: 3, numSamples: 1000, chunkSamples: 128 };
    const reader = new SignalReader(catalog, { cacheBytes: 1 << 20 });
    const got = await reader.read({ layout, start: 250, length: 300 });
    assert.equal(got.length, 3);
    for (let c = 0; c < 3; c++) assert.deepEqual(Array.from(got[c]), Array.from(channels[c].slice(250, 550)));
    // Chunks 1..4 of asset_a: 4 chunks × 3 channels × 128 samples × 4 bytes.
    assert.equal(reader.cachedBytes, 4 * 3 * 128 * 4);
    const tail = await reader.read({ layout, start: 990, length: 20 });
    assert.deepEqual(Array.from(tail[1].subarray(0, 10)), Array.from(channels[1].subarray(990, 1000)));
    assert.ok(Number.isNaN(tail[1][10]), "samples past the end read as NaN");
    assert.equal(reader.queries, 2);
    await reader.read({ layout, start: 260, length: 100 });
    assert.equal(reader.queries, 2, "a cached range issues no query");
    catalog.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
