import assert from "node:assert/strict";
import {
  allReduceBuckets,
  type BucketReducer,
  BucketReductions,
} from "../../src/distributed/bucket_overlap.ts";

/** A reducer whose bucket i completes after `delays[i]` ms (out of order on purpose), logging events. */
function fakeReducer(delays: number[], log: string[], fail?: number): BucketReducer {
  return {
    startBucket(index, data) {
      log.push(`start ${index}`);
      return new Promise((resolve, reject) =>
        setTimeout(() => {
          if (index === fail) return reject(new Error(`bucket ${index} failed`));
          data.fill(index + 0.5);
          log.push(`done ${index}`);
          resolve();
        }, delays[index])
      );
    },
    flush() {
      log.push("flush");
      return Promise.resolve();
    },
  };
}

Deno.test("allReduceBuckets: each bucket starts as soon as it is produced; results come back in fixed order", async () => {
  const log: string[] = [];
  const delays = [30, 5, 5, 1];
  async function* produce() {
    for (let i = 0; i < delays.length; i++) {
      await new Promise((r) => setTimeout(r, 10)); // "backward" producing the next bucket
      log.push(`produced ${i}`);
      yield new Float32Array(3);
    }
  }
  const seen: number[] = [];
  for await (const { index, data } of allReduceBuckets(fakeReducer(delays, log), produce())) {
    seen.push(index);
    assert.deepEqual([...data], [index + 0.5, index + 0.5, index + 0.5]);
    log.push(`yield ${index}`);
  }
  assert.deepEqual(seen, [0, 1, 2, 3]);
  // Overlap: bucket 0 is still reducing when bucket 1 is produced and started.
  assert.ok(log.indexOf("start 1") < log.indexOf("done 0"), log.join(", "));
  // Each start follows its production immediately (no waiting for earlier reductions).
  for (let i = 0; i < delays.length; i++) {
    assert.equal(log.indexOf(`start ${i}`), log.indexOf(`produced ${i}`) + 1);
  }
  // Fixed order: bucket 1 finished before bucket 0 but is yielded after it; flush comes last.
  assert.ok(log.indexOf("done 1") < log.indexOf("done 0"));
  assert.ok(log.indexOf("yield 0") < log.indexOf("yield 1"));
  assert.equal(log.at(-1), "flush");
});

Deno.test("allReduceBuckets: a failed reduction and a failing producer surface from the iteration", async () => {
  const log: string[] = [];
  const got: number[] = [];
  await assert.rejects(async () => {
    for await (
      const { index } of allReduceBuckets(
        fakeReducer([1, 1, 1], log, 1),
        [1, 2, 3].map((n) => new Float32Array(n)),
      )
    ) {
      got.push(index);
    }
  }, /bucket 1 failed/);
  assert.deepEqual(got, [0]);
  async function* broken() {
    yield new Float32Array(2);
    throw new Error("readback failed");
  }
  await assert.rejects(async () => {
    for await (const _ of allReduceBuckets(fakeReducer([1, 1], []), broken())) { /* drain */ }
  }, /readback failed/);
});

Deno.test("BucketReductions: start begins the reduction before it returns; close ends the iteration", async () => {
  const log: string[] = [];
  const reductions = new BucketReductions(fakeReducer([20, 1, 1], log));
  const seen: number[] = [];
  const consumed = (async () => {
    for await (const { index } of reductions) seen.push(index);
  })();
  reductions.start(new Float32Array(2));
  assert.deepEqual(log, ["start 0"]); // no microtask turn needed
  reductions.start(new Float32Array(2));
  assert.deepEqual(log, ["start 0", "start 1"]);
  reductions.close();
  assert.throws(() => reductions.start(new Float32Array(1)), /Cannot start a bucket's all-reduce after/);
  await consumed;
  assert.deepEqual(seen, [0, 1]);
  assert.equal(log.at(-1), "flush");

  // A producer's error: the started buckets come back first, then the error.
  const failing = new BucketReductions(fakeReducer([1, 1], []));
  failing.start(new Float32Array(1));
  failing.close(new Error("copy failed"));
  const got: number[] = [];
  await assert.rejects(async () => {
    for await (const { index } of failing) got.push(index);
  }, /copy failed/);
  assert.deepEqual(got, [0]);
});
