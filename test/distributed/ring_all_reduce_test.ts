import assert from "node:assert/strict";
import { decodeFrame } from "../../src/distributed/frames.ts";
import {
  type DataFrame,
  referenceRingMean,
  RingAllReduce,
  RingOrderError,
  ringSegmentBounds,
} from "../../src/distributed/ring_all_reduce.ts";
import {
  jsReductionKernel,
  type ReductionKernel,
  WasmReductionKernel,
} from "../../src/distributed/simd_add.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

/** n in-process rings joined by queues; messages are delivered asynchronously in order, interleaved. */
function inMemoryRing(n: number, kernel: () => ReductionKernel, chunkElements: number) {
  const queues: ArrayBuffer[][] = Array.from({ length: n }, () => []);
  const rings: RingAllReduce[] = [];
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    // Round-robin one message per link per tick, so collectives interleave like real sockets.
    let moved = true;
    while (moved) {
      moved = false;
      for (let r = 0; r < n; r++) {
        const message = queues[r].shift();
        if (!message) continue;
        moved = true;
        // Copy like a socket would: the sender may reuse its buffer.
        rings[(r + 1) % n].receive(decodeFrame(message.slice(0)) as DataFrame);
      }
    }
  };
  for (let r = 0; r < n; r++) {
    rings.push(
      new RingAllReduce({
        rank: r,
        worldSize: n,
        generation: 0,
        chunkElements,
        kernel: kernel(),
        sendRight(message) {
          queues[r].push(message);
          if (!scheduled) {
            scheduled = true;
            setTimeout(pump, 0);
          }
        },
      }),
    );
  }
  return rings;
}

for (const kernelName of ["wasm-simd", "js"] as const) {
  const makeKernel = () => kernelName === "js" ? jsReductionKernel : new WasmReductionKernel();
  Deno.test(`ring all-reduce (${kernelName}) equals the documented reference bitwise, on every rank`, async () => {
    for (const n of [2, 3, 5]) {
      for (const length of [1, 7, 64, 1001, 40_000]) {
        const inputs = Array.from({ length: n }, (_, r) => seededGradients(11, 0, r, 0, length));
        const expected = referenceRingMean(inputs);
        const buffers = inputs.map((x) => x.slice());
        const rings = inMemoryRing(n, makeKernel, 1024);
        await Promise.all(rings.map((ring, r) => ring.start(0, buffers[r])));
        for (let r = 0; r < n; r++) {
          assert.deepEqual(
            new Uint32Array(buffers[r].buffer),
            new Uint32Array(expected.buffer),
            `n=${n} length=${length} rank=${r}`,
          );
        }
      }
    }
  });
}

Deno.test("ring all-reduce: each bucket's last collective is timed (start ≤ first chunk ≤ end)", async () => {
  const n = 3;
  const rings = inMemoryRing(n, () => new WasmReductionKernel(), 256);
  const buffers = Array.from({ length: n }, (_, r) => seededGradients(3, 0, r, 0, 2000));
  assert.equal(rings[0].bucketTimes.size, 0, "nothing timed before a collective");
  const before = performance.now();
  // Rank 2 starts 30 ms late: the others' first chunks from their left neighbour wait for it or come early.
  const started = rings.map((ring, r) =>
    r === 2
      ? new Promise<void>((resolve) => setTimeout(() => resolve(ring.start(4, buffers[r])), 30))
      : ring.start(4, buffers[r])
  );
  await Promise.all(started);
  const after = performance.now();
  for (const [r, ring] of rings.entries()) {
    const times = ring.bucketTimes.get(4);
    assert.ok(times, `rank ${r} timed bucket 4`);
    assert.ok(
      before <= times.startMs && times.startMs <= times.firstChunkMs!,
      `rank ${r} ${JSON.stringify(times)}`,
    );
    assert.ok(
      times.firstChunkMs! <= times.endMs && times.endMs <= after,
      `rank ${r} ${JSON.stringify(times)}`,
    );
    assert.deepEqual([...ring.bucketTimes.keys()], [4]);
  }
  // Rank 0's first chunk comes from rank 2 (its left neighbour), which started 30 ms late.
  const rank0 = rings[0].bucketTimes.get(4)!;
  assert.ok(rank0.firstChunkMs! - rank0.startMs >= 25, `rank 0 waited for rank 2: ${JSON.stringify(rank0)}`);
});

Deno.test("ring all-reduce: overlapping buckets, chunk size does not change the bits", async () => {
  const n = 3;
  const lengths = [5000, 123, 70_000];
  const inputs = lengths.map((len, b) =>
    Array.from({ length: n }, (_, r) => seededGradients(5, 1, r, b, len))
  );
  const results: Float32Array[][] = [];
  for (const chunk of [4, 1000, 65536]) {
    const rings = inMemoryRing(n, () => new WasmReductionKernel(), chunk);
    const buffers = inputs.map((perRank) => perRank.map((x) => x.slice()));
    await Promise.all(rings.flatMap((ring, r) => lengths.map((_, b) => ring.start(b, buffers[b][r]))));
    results.push(buffers.map((perRank) => perRank[0]));
    for (let b = 0; b < lengths.length; b++) {
      const expected = referenceRingMean(inputs[b]);
      for (let r = 0; r < n; r++) {
        assert.deepEqual(new Uint32Array(buffers[b][r].buffer), new Uint32Array(expected.buffer));
      }
    }
  }
  for (const other of results.slice(1)) {
    for (let b = 0; b < lengths.length; b++) assert.deepEqual(other[b], results[0][b]);
  }
});

Deno.test("ring all-reduce: summation order is observable and matches the documented ring order", () => {
  // 1e8 + 1 - 1e8 differs with the order of additions; with n = 3 and one element per segment the
  // reference must start at rank s for segment s.
  const inputs = [
    new Float32Array([1e8, 1e8, 1e8]),
    new Float32Array([1, 1, 1]),
    new Float32Array([-1e8, -1e8, -1e8]),
  ];
  const bounds = ringSegmentBounds(3, 3);
  assert.deepEqual(bounds, [{ start: 0, end: 3 }, { start: 3, end: 3 }, { start: 3, end: 3 }]);
  const mean = referenceRingMean(inputs);
  // segment 0 holds everything: ((1e8 + 1) + -1e8) / 3 = 0 in binary32 (1e8 + 1 rounds to 1e8).
  assert.deepEqual([...mean], [0, 0, 0]);
  const longer = [
    new Float32Array(12).fill(1e8),
    new Float32Array(12).fill(1),
    new Float32Array(12).fill(-1e8),
  ];
  const m2 = referenceRingMean(longer);
  // segment 0 (rank 0 first): 0; segment 1 (rank 1 first): (1 + -1e8) + 1e8 = 0; segment 2: (-1e8 + 1e8) + 1 = 1/3.
  assert.equal(m2[0], 0);
  assert.equal(m2[4], 0);
  assert.equal(m2[8], Math.fround(1 / 3));
});

Deno.test("ring all-reduce: ranks that start buckets in different orders get a RingOrderError", async () => {
  const rings = inMemoryRing(2, () => jsReductionKernel, 64);
  const a0 = new Float32Array(100), a1 = new Float32Array(100);
  const errors: unknown[] = [];
  for (const ring of rings) {
    const originalReceive = ring.receive.bind(ring);
    ring.receive = (frame) => {
      try {
        originalReceive(frame);
      } catch (error) {
        errors.push(error);
      }
    };
  }
  const p0 = rings[0].start(0, a0).catch((e) => e);
  const p1 = rings[1].start(1, a1).catch((e) => e);
  const results = await Promise.race([
    Promise.all([p0, p1]),
    new Promise((r) => setTimeout(() => r("timeout"), 500)),
  ]);
  assert.ok(errors.length > 0 && errors[0] instanceof RingOrderError, String(errors[0]));
  assert.match((errors[0] as Error).message, /same buckets in the same fixed order/);
  assert.ok(Array.isArray(results), "both collectives must fail instead of hanging");
  assert.ok(results.every((r) => r instanceof RingOrderError));
});
