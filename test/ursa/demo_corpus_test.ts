import assert from "node:assert/strict";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { demoBlocks, ensureDemoCatalog, generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { parseEdf } from "../../src/ursa/edf_reader.ts";

async function buildTiny(seed: number) {
  const dir = await Deno.makeTempDir({ prefix: "orion_demo_" });
  const catalog = await openCatalog(`${dir}/catalog`);
  try {
    const summary = await generateDemoCorpus(catalog, { seed, participants: 2, minutes: 0.5, sessions: 1 });
    const derived = await catalog.query("derived_assets", undefined, {
      columns: ["derived_asset_id", "derivation"],
    });
    const labels = await catalog.count("labels", "track = 'cognitive_load'");
    const edf = parseEdf(await Deno.readFile(summary.files[0]), summary.files[0]);
    return { summary, derived, labels, edf };
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("demo corpus: same seed gives the same recording hashes; another seed does not", async () => {
  const a = await buildTiny(7);
  const b = await buildTiny(7);
  const c = await buildTiny(8);
  assert.equal(a.summary.recordingHashes.length, 4); // 2 participants × 1 session × (EEG + pupil)
  assert.deepEqual(a.summary.recordingHashes, b.summary.recordingHashes);
  assert.deepEqual(
    a.derived.map((d) => d.derived_asset_id).sort(),
    b.derived.map((d) => d.derived_asset_id).sort(),
  );
  assert.equal(a.derived.length, 4);
  for (const hash of c.summary.recordingHashes) assert.ok(!a.summary.recordingHashes.includes(hash));
  assert.deepEqual(a.summary.participants, ["p001", "p002"]);
  assert.equal(a.labels, 12); // 6 n-back blocks per session
  assert.equal(a.edf.signals.length, 32);
  assert.equal(a.edf.signals[0].samplingRate, 256);
  assert.deepEqual(
    a.edf.annotations.map((x) => x.text).sort(),
    [
      "cognitive_load=0",
      "cognitive_load=0",
      "cognitive_load=1",
      "cognitive_load=1",
      "cognitive_load=2",
      "cognitive_load=2",
    ],
  );
});

Deno.test("demo blocks: rest then six labelled blocks covering each level twice", () => {
  const blocks = demoBlocks(2026, "p042", "s1", 100);
  assert.equal(blocks.length, 6);
  assert.equal(blocks[0].start, 4);
  assert.equal(blocks[5].end, 100);
  assert.deepEqual(blocks.map((b) => b.level).sort(), [0, 0, 1, 1, 2, 2]);
});

Deno.test("ensureDemoCatalog builds only when the catalog is empty and says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_demo_ensure_" });
  const catalog = await openCatalog(`${dir}/catalog`);
  try {
    const lines: string[] = [];
    const options = { participants: 1, minutes: 0.5, sessions: 1, print: (l: string) => lines.push(l) };
    assert.equal(await ensureDemoCatalog(catalog, options), true);
    assert.match(lines[0], /is empty: building the synthetic demo corpus \(1 participants/);
    assert.equal(await catalog.count("recordings"), 2);
    assert.equal(await ensureDemoCatalog(catalog, options), false);
    assert.equal(await catalog.count("recordings"), 2);
  } finally {
    catalog.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureDemoCatalog: processes sharing a catalog take turns; the one that waited finds it built", async () => {
  const dir = await Deno.makeTempDir({ prefix: "orion_demo_race_" });
  // Two handles, as two ranks of `orion launch` have (the lock file is taken through separate opens).
  const first = await openCatalog(`${dir}/catalog`);
  const second = await openCatalog(`${dir}/catalog`);
  try {
    const options = { participants: 1, minutes: 0.5, sessions: 1, print: () => {} };
    const built = await Promise.all([ensureDemoCatalog(first, options), ensureDemoCatalog(second, options)]);
    assert.deepEqual(built.toSorted(), [false, true], "exactly one built the corpus");
    // The one that waited saw the finished corpus, derived assets included (none was half built).
    for (const catalog of [first, second]) {
      assert.equal(await catalog.count("recordings"), 2);
      const names = await catalog.tableNames();
      assert.ok(names.length > 2, `tables: ${names.join(", ")}`);
    }
  } finally {
    first.close();
    second.close();
    await Deno.remove(dir, { recursive: true });
  }
});
