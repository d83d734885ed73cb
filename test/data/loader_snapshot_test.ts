import assert from "node:assert/strict";
import { openCatalog } from "../../src/ursa/catalog.ts";
import { generateDemoCorpus } from "../../src/ursa/demo_corpus.ts";
import { resolveQuery } from "../../src/ursa/resolve_query.ts";
import { openWindowDataset } from "../../src/data/window_dataset.ts";
import type { PoyoBatch } from "../../src/data/batch.ts";
import { assertSameBatch, LOADER_TEST_OPTIONS } from "./loader_fixtures.ts";
import {
  decodeLoaderSnapshot,
  encodeLoaderSnapshot,
  openSnapshotDataset,
  readLoaderSnapshot,
  writeLoaderSnapshot,
} from "../../src/data/loader_snapshot.ts";

const OPTIONS = LOADER_TEST_OPTIONS;

Deno.test({
  name: "loader snapshot: export → read → the same training batches as the catalog, bit for bit; refusals",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "orion_loader_snapshot_" });
    const catalog = await openCatalog(`${dir}/catalog`);
    try {
      await generateDemoCorpus(catalog, { participants: 3, minutes: 1, sessions: 2, seed: 7 });
      const resolved = await resolveQuery(catalog, {});
      const ds = await openWindowDataset(catalog, resolved, { ...OPTIONS, loaderWorkers: 0 });
      const file = `${dir}/loader.snapshot`;
      const size = await writeLoaderSnapshot(file, ds);
      assert.equal((await Deno.stat(file)).size, size);
      // Encoding is deterministic.
      assert.deepEqual(await encodeLoaderSnapshot(ds), await Deno.readFile(file));

      const snapshot = await readLoaderSnapshot(file);
      assert.deepEqual(snapshot.resolved, resolved);
      assert.equal(snapshot.split, "train");
      assert.ok(snapshot.source.size > 0);
      const fromSnapshot = await openSnapshotDataset(snapshot, { loaderWorkers: 0 });
      try {
        assert.deepEqual(fromSnapshot.vocab, ds.vocab);
        assert.deepEqual(fromSnapshot.options, ds.options);
        assert.equal(fromSnapshot.numTokens, ds.numTokens);
        assert.deepEqual(fromSnapshot.split("train").windows, ds.split("train").windows);
        const B = 5;
        const batches = Math.ceil(ds.split("train").numWindows / B) + 2; // into the second epoch
        const reference = ds.loader("train", { batchSize: B, seed: 3, uploadIndex: true });
        const want: PoyoBatch[] = [];
        for (let i = 0; i < batches; i++) want.push(await reference.next());
        for (const workers of [0, 2]) {
          const loader = fromSnapshot.loader("train", { batchSize: B, seed: 3, workers, uploadIndex: true });
          for (let i = 0; i < batches; i++) {
            assertSameBatch(await loader.next(), want[i], `snapshot, ${workers} workers, batch ${i}`);
          }
        }
        assert.ok(fromSnapshot.reader.queries > 0); // chunks came from the snapshot source
        // Windows of another split were not exported: a clear error, not wrong samples.
        const other = (["val", "test"] as const).find((s) => fromSnapshot.split(s).numWindows > 0)!;
        await assert.rejects(
          () => fromSnapshot.makeBatch(fromSnapshot.split(other).windows.slice(0, 4)),
          /Cannot read chunk \d+ of asset \w+ from .* as it holds only the chunks of the training windows/,
        );
      } finally {
        fromSnapshot.close();
        ds.close();
      }

      // Refusals: truncated at any point, a flipped data byte, another file.
      const bytes = await Deno.readFile(file);
      const cases: [Uint8Array, RegExp][] = [
        [
          bytes.subarray(0, bytes.length - 7),
          /as its data section should hold \d+ bytes \(truncated\): current value is \d+ bytes/,
        ],
        [
          bytes.subarray(0, 40),
          /as its \d+-byte header runs past the end of the file \(truncated\): current value is 40 bytes/,
        ],
        [bytes.subarray(0, 9), /as it is shorter than the 16-byte prefix .*: current value is 9 bytes/],
        [
          new TextEncoder().encode('{"not": "a snapshot"}'),
          /as it does not start with "ORIONLSS" .*: current value is/,
        ],
      ];
      const flipped = bytes.slice();
      flipped[flipped.length - 100] ^= 1;
      cases.push([
        flipped,
        /as its data does not match the header's sha256 [0-9a-f]{64} \(corrupt\): current value is [0-9a-f]{64}/,
      ]);
      for (const [data, pattern] of cases) {
        assert.throws(() => decodeLoaderSnapshot(data, "x.bin"), (e: Error) => {
          assert.match(e.message, /^Cannot read loader snapshot x\.bin as /);
          assert.match(e.message, pattern);
          return true;
        });
      }
      await Deno.writeFile(`${dir}/truncated.snapshot`, bytes.subarray(0, bytes.length >> 1));
      await assert.rejects(
        () => readLoaderSnapshot(`${dir}/truncated.snapshot`),
        /Cannot read loader snapshot .*truncated\.snapshot as its data section should hold \d+ bytes \(truncated\): current value is \d+ bytes/,
      );
    } finally {
      catalog.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
