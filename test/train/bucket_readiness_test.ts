/** BucketReadiness: buckets are released in index order once every overlapping parameter is final. */
import assert from "node:assert/strict";
import { BucketReadiness } from "../../src/train/bucket_readiness.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

Deno.test("BucketReadiness: in-order release, a parameter spanning buckets, and the rest", () => {
  const leaf = (name: string) => ({ name }) as unknown as Tensor;
  const [a, b, c, d] = ["a", "b", "c", "d"].map(leaf);
  // Flat layout: a [0, 4), b [4, 12), c [12, 14), d [14, 16); buckets cut from the end as the sync does.
  const params = [
    { slot: { offset: 0, size: 4 }, value: a },
    { slot: { offset: 4, size: 8 }, value: b },
    { slot: { offset: 12, size: 2 }, value: c },
    { slot: { offset: 14, size: 2 }, value: d },
  ];
  const buckets: [number, number][] = [[12, 16], [8, 12], [4, 8], [0, 4]];
  const r = new BucketReadiness(params, buckets);
  assert.deepEqual(r.leafReady(c), [], "bucket 0 still waits for d");
  assert.deepEqual(r.leafReady(leaf("not a parameter")), []);
  assert.deepEqual(r.leafReady(d), [0]);
  assert.deepEqual(r.leafReady(b), [1, 2], "b spans buckets 1 and 2: both final at once");
  assert.deepEqual(r.rest(), [3], "a was never reported: its bucket goes last");
  assert.deepEqual(r.rest(), []);

  const early = new BucketReadiness(params, buckets);
  assert.deepEqual(early.leafReady(a), [], "bucket 3 is final, but buckets 0–2 must go first");
  assert.deepEqual(early.leafReady(b), []);
  assert.deepEqual(early.leafReady(c), []);
  assert.deepEqual(early.leafReady(d), [0, 1, 2, 3]);
});
