import assert from "node:assert/strict";
import { decodeFrame, RingPhase, writeDataHeader } from "../../src/distributed/frames.ts";
import {
  MESH_MAX_RANKS,
  MeshAllReduce,
  meshConnects,
  meshMaxBytes,
} from "../../src/distributed/mesh_all_reduce.ts";
import { type DataFrame, referenceRingMean, RingOrderError } from "../../src/distributed/ring_all_reduce.ts";
import {
  jsReductionKernel,
  type ReductionKernel,
  WasmReductionKernel,
} from "../../src/distributed/simd_add.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

/** A small counter-free PRNG for delivery orders (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * n in-process meshes joined by one in-order queue per ordered pair of ranks; each tick delivers the head
 * of a randomly chosen non-empty queue, so links interleave in every order a real host could produce.
 */
function inMemoryMesh(n: number, kernel: () => ReductionKernel, chunkElements: number, seed: number) {
  const queues = new Map<string, Array<{ message: ArrayBuffer; written?: () => void }>>();
  const meshes: MeshAllReduce[] = [];
  const random = prng(seed);
  let scheduled = false;
  const errors: Error[] = [];
  const pump = () => {
    scheduled = false;
    for (;;) {
      const live = [...queues.entries()].filter(([, q]) => q.length > 0);
      if (live.length === 0) return;
      const [key, queue] = live[Math.floor(random() * live.length)];
      const [from, to] = key.split(">").map(Number);
      const { message, written } = queue.shift()!;
      // Copy like a socket: the sender may reuse (or recycle) its buffer once written.
      const copy = message.slice(0);
      written?.();
      try {
        meshes[to].receive(from, decodeFrame(copy) as DataFrame);
      } catch (error) {
        errors.push(error as Error);
      }
    }
  };
  for (let r = 0; r < n; r++) {
    meshes.push(
      new MeshAllReduce({
        rank: r,
        worldSize: n,
        generation: 0,
        chunkElements,
        kernel: kernel(),
        send(to, message, written) {
          assert.notEqual(to, r, "a rank never sends to itself");
          const key = `${r}>${to}`;
          if (!queues.has(key)) queues.set(key, []);
          queues.get(key)!.push({ message, written });
          if (!scheduled) {
            scheduled = true;
            setTimeout(pump, 0);
          }
        },
      }),
    );
  }
  return { meshes, errors };
}

function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

for (const kernelName of ["wasm-simd", "js"] as const) {
  const makeKernel = () => kernelName === "js" ? jsReductionKernel : new WasmReductionKernel();
  Deno.test(`mesh all-reduce (${kernelName}) equals the ring's reference bitwise on every rank, any arrival order`, async () => {
    for (const n of [2, 3, 4, 5, 8]) {
      for (const length of [1, 7, 64, 1001, 40_000]) {
        for (const chunkElements of [256, 1024]) {
          const inputs = Array.from({ length: n }, (_, r) => seededGradients(23, length, r, n, length));
          const expected = referenceRingMean(inputs);
          const buffers = inputs.map((x) => x.slice());
          const { meshes, errors } = inMemoryMesh(
            n,
            makeKernel,
            chunkElements,
            n * 1000 + length + chunkElements,
          );
          await Promise.all(meshes.map((mesh, r) => mesh.start(0, buffers[r])));
          assert.deepEqual(errors, []);
          for (let r = 0; r < n; r++) {
            assert.deepEqual(
              bits(buffers[r]),
              bits(expected),
              `n=${n} length=${length} chunk=${chunkElements} rank=${r}`,
            );
          }
        }
      }
    }
  });
}

Deno.test("mesh all-reduce: overlapping buckets started at different times, ranks running ahead", async () => {
  const n = 5;
  const lengths = [3000, 17, 40_000, 1];
  const { meshes, errors } = inMemoryMesh(n, () => new WasmReductionKernel(), 512, 7);
  const inputs = lengths.map((len, b) =>
    Array.from({ length: n }, (_, r) => seededGradients(5, b, r, 0, len))
  );
  const buffers = inputs.map((perRank) => perRank.map((x) => x.slice()));
  // Rank 0 starts everything at once; the others start bucket b only after b ticks, so rank 0's chunks for
  // later buckets arrive before those collectives exist on the receivers.
  const pending: Promise<void>[] = [];
  for (const [b] of lengths.entries()) pending.push(meshes[0].start(b, buffers[b][0]));
  for (const [b] of lengths.entries()) {
    await new Promise((resolve) => setTimeout(resolve, b));
    for (let r = 1; r < n; r++) pending.push(meshes[r].start(b, buffers[b][r]));
  }
  await Promise.all(pending);
  assert.deepEqual(errors, []);
  for (const [b] of lengths.entries()) {
    const expected = referenceRingMean(inputs[b]);
    for (let r = 0; r < n; r++) {
      assert.deepEqual(bits(buffers[b][r]), bits(expected), `bucket ${b} rank ${r}`);
    }
  }
  for (const mesh of meshes) assert.equal(mesh.inFlight, 0);
});

Deno.test("mesh all-reduce: a rank that starts another bucket is refused with a RingOrderError", async () => {
  const n = 3;
  const { meshes, errors } = inMemoryMesh(n, () => jsReductionKernel, 1024, 3);
  const results = await Promise.allSettled([
    meshes[0].start(0, new Float32Array(100)),
    meshes[1].start(1, new Float32Array(100)), // the wrong bucket index
    meshes[2].start(0, new Float32Array(100)),
  ]);
  assert.ok(results.some((r) => r.status === "rejected"));
  assert.ok(errors.length > 0 && errors.every((e) => e instanceof RingOrderError), String(errors));
  assert.match(errors[0].message, /every rank must start the same buckets in the same fixed order/);
});

Deno.test("mesh all-reduce: refuses chunks off the schedule (wrong segment, duplicate, self, ring phase)", () => {
  const make = () =>
    new MeshAllReduce({
      rank: 1,
      worldSize: 4,
      generation: 0,
      chunkElements: 1024,
      kernel: jsReductionKernel,
      send: () => {},
    });
  // Rank 0's scatter chunk for rank 1's segment (segment 2 of a 4000-value bucket: [2000, 3000)).
  const scatter = () => {
    const frame = new ArrayBuffer(48 + 1000 * 4);
    writeDataHeader(frame, {
      generation: 0,
      collective: 0,
      bucket: 0,
      bucketLength: 4000,
      phase: RingPhase.meshScatter,
      step: 0,
      segment: 2,
      offset: 2000,
      elementCount: 1000,
    });
    return decodeFrame(frame) as DataFrame;
  };
  const good = make();
  void good.start(0, new Float32Array(4000)).catch(() => {});
  good.receive(0, scatter());
  assert.throws(() => good.receive(0, scatter()), /duplicate mesh scatter chunk/);

  const wrongSegment = make();
  void wrongSegment.start(0, new Float32Array(4000)).catch(() => {});
  const frame = scatter();
  frame.header.segment = 3;
  assert.throws(() => wrongSegment.receive(0, frame), /does not fit the schedule of rank 1/);

  const self = make();
  void self.start(0, new Float32Array(4000)).catch(() => {});
  assert.throws(() => self.receive(1, scatter()), /not another rank/);

  const ring = make();
  void ring.start(0, new Float32Array(4000)).catch(() => {});
  const ringFrame = scatter();
  ringFrame.header.phase = RingPhase.reduceScatter;
  assert.throws(() => ring.receive(0, ringFrame), /does not fit the schedule/);
});

Deno.test("meshMaxBytes / meshConnects: world size × 512 KiB, 3..16 ranks, 0 turns the mesh off", () => {
  assert.equal(meshMaxBytes(null, 4), 2 << 20);
  assert.equal(meshMaxBytes(null, 8), 4 << 20);
  assert.equal(meshMaxBytes(12345, 8), 12345);
  assert.equal(meshConnects(2, meshMaxBytes(null, 2)), false);
  assert.equal(meshConnects(3, meshMaxBytes(null, 3)), true);
  assert.equal(meshConnects(MESH_MAX_RANKS, 1), true);
  assert.equal(meshConnects(MESH_MAX_RANKS + 1, 1 << 30), false);
  assert.equal(meshConnects(8, 0), false);
});
