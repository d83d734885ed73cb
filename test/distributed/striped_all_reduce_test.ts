import assert from "node:assert/strict";
import { polledSockets } from "../../src/distributed/polled_socket.ts";
import { DATA_VALUES_OFFSET, decodeDataHead, decodeFrame } from "../../src/distributed/frames.ts";
import { generateJoinSecret } from "../../src/distributed/join_token.ts";
import { SharedReduceArena } from "../../src/distributed/reduce_arena.ts";
import {
  type DataFrame,
  referenceRingMean,
  RingAllReduce,
  RingOrderError,
} from "../../src/distributed/ring_all_reduce.ts";
import { ArenaReductionKernel, bf16Bits, jsReductionKernel } from "../../src/distributed/simd_add.ts";
import {
  COMPLETION_SLOTS,
  completionDrained,
  completionReached,
  SAT_OUT,
  StripeRing,
  stripesRunning,
} from "../../src/distributed/stripe_ring.ts";
import {
  agreedStripes,
  stripeCapFor,
  StripedAllReduce,
  stripeMinBytes,
  stripesForBucket,
} from "../../src/distributed/striped_all_reduce.ts";
import { Coordinator } from "../../src/distributed/coordinator.ts";
import { joinJob } from "../../src/distributed/rank_client.ts";
import {
  agreedMeshMaxBytes,
  MESH_MAX_RANKS,
  meshStripesForBucket,
} from "../../src/distributed/polled_mesh.ts";
import { assertSameBits } from "./fixtures/same_bits.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** The unstriped ring (RingAllReduce), n ranks in this thread. */
async function unstripedRing(inputs: Float32Array[], chunkElements: number): Promise<Float32Array[]> {
  const n = inputs.length;
  const outputs = inputs.map((x) => x.slice());
  const queues: ArrayBuffer[][] = Array.from({ length: n }, () => []);
  const rings: RingAllReduce[] = [];
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    for (let moved = true; moved;) {
      moved = false;
      for (let r = 0; r < n; r++) {
        const message = queues[r].shift();
        if (!message) continue;
        moved = true;
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
        kernel: jsReductionKernel,
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
  await Promise.all(rings.map((ring, r) => ring.start(0, outputs[r])));
  return outputs;
}

/**
 * `stripes` StripeRings per rank over one arena per rank, joined by in-memory links. Like a socket, a link
 * delivers a message's values in two reads with other work in between (a turn of the event loop), so a
 * collective may start while a read into the ring's receive area is half done.
 */
function inMemoryStripes(n: number, stripes: number, chunkElements: number) {
  const arenas = Array.from({ length: n }, () => new SharedReduceArena(1 << 16));
  type Message = { head: Uint8Array; values: Uint8Array; written: () => void };
  const queues: Message[][] = [];
  const reading: Array<{ message: Message; target: Uint8Array; head: Uint8Array; turns: number } | null> = [];
  let delivered = 0;
  const rings: StripeRing[][] = [];
  let scheduled = false;
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setTimeout(pump, 0);
    }
  };
  const pump = () => {
    scheduled = false;
    for (let q = 0; q < queues.length; q++) {
      const [r, k] = [Math.floor(q / stripes), q % stripes];
      const receiver = rings[(r + 1) % n][k];
      try {
        const partial = reading[q];
        if (partial && partial.turns-- > 0) continue;
        if (partial) {
          // Second read: the rest of the values, then the chunk is complete.
          const half = partial.target.length >> 1;
          partial.target.set(partial.message.values.subarray(half), half);
          reading[q] = null;
          partial.message.written();
          const bytes = DATA_VALUES_OFFSET + partial.target.length;
          receiver.receiveDone(decodeDataHead(partial.head, bytes), partial.target);
          continue;
        }
        const message = queues[q].shift();
        if (!message) continue;
        const bytes = DATA_VALUES_OFFSET + message.values.length;
        const head = message.head.slice();
        const target = receiver.receiveTarget(decodeDataHead(head, bytes));
        // First read: half of the values (a copy, like the socket's).
        target.set(message.values.subarray(0, message.values.length >> 1));
        // The rest arrives 1–3 turns later (varies per message, deterministically).
        reading[q] = { message, target, head, turns: (delivered++ * 7 + q) % 3 };
      } catch {
        queues[q].length = 0; // the receiver refused: a socket would close this link
        reading[q] = null;
        for (const stripeRings of rings) for (const ring of stripeRings) ring.abort(new Error("link closed"));
      }
    }
    if (queues.some((q) => q.length > 0) || reading.some((p) => p !== null)) schedule();
  };
  for (let r = 0; r < n; r++) {
    const kernel = new ArenaReductionKernel(arenas[r].memory);
    rings.push([]);
    for (let k = 0; k < stripes; k++) {
      const q = queues.push([]) - 1;
      reading.push(null);
      rings[r].push(
        new StripeRing({
          rank: r,
          worldSize: n,
          generation: 0,
          chunkElements,
          stripe: k,
          stripes,
          kernel,
          receiveOffset: arenas[r].allocate(2 * chunkElements * 4),
          send(head, values, written) {
            queues[q].push({ head, values, written });
            schedule();
          },
        }),
      );
    }
  }
  return { arenas, rings };
}

Deno.test("stripe rings: bits equal the unstriped ring and the reference for 2 and 3 ranks, any stripe count", async () => {
  for (const n of [2, 3]) {
    for (const length of [1, 5, 37, 1001, 4099]) {
      const inputs = Array.from({ length: n }, (_, r) => seededGradients(5, 1, r, 0, length));
      const expected = referenceRingMean(inputs);
      const unstriped = await unstripedRing(inputs, 64);
      for (const stripes of [1, 2, 3]) {
        const { arenas, rings } = inMemoryStripes(n, stripes, 64);
        const buckets = inputs.map((x, r) => {
          const offset = arenas[r].allocate(length * 4);
          arenas[r].float32(offset, length).set(x);
          return offset;
        });
        // Two buckets back to back (the second a different bucket index) to exercise overlap.
        await Promise.all(
          rings.flatMap((stripeRings, r) => stripeRings.map((ring) => ring.start(0, buckets[r], length))),
        );
        for (let r = 0; r < n; r++) {
          const out = arenas[r].float32(buckets[r], length);
          const what = `n=${n} length=${length} stripes=${stripes} rank=${r}`;
          assert.deepEqual(bits(out), bits(expected), `${what} vs reference`);
          assert.deepEqual(bits(out), bits(unstriped[r]), `${what} vs unstriped ring`);
        }
      }
    }
  }
});

Deno.test("stripe rings: overlapping buckets started at staggered times; a bucket-order mismatch is refused", async () => {
  for (const stagger of [[0, 1, 2], [2, 0, 1], [1, 3, 0], [0, 2, 2], [3, 0, 0]]) {
    await overlappingBuckets(3, 2, [300, 77, 1000], stagger);
  }
  // Rank 1 starts bucket 7 where the others start bucket 3.
  const bad = inMemoryStripes(2, 1, 32);
  const o0 = bad.arenas[0].allocate(400), o1 = bad.arenas[1].allocate(400);
  const results = await Promise.allSettled([
    bad.rings[0][0].start(3, o0, 100),
    bad.rings[1][0].start(7, o1, 100),
  ]);
  assert.ok(results.some((r) => r.status === "rejected" && r.reason instanceof RingOrderError));
});

/**
 * Ranks start `lengths.length` buckets, rank r waiting `stagger[r]` turns before each, so chunks of a
 * collective arrive before this rank started it (they wait) and collectives start while a read is half done.
 */
async function overlappingBuckets(n: number, stripes: number, lengths: number[], stagger: number[]) {
  const { arenas, rings } = inMemoryStripes(n, stripes, 32);
  const inputs = lengths.map((length, b) =>
    Array.from({ length: n }, (_, r) => seededGradients(9, 0, r, b, length))
  );
  const offsets = lengths.map((length, b) =>
    inputs[b].map((x, r) => {
      const offset = arenas[r].allocate(length * 4);
      arenas[r].float32(offset, length).set(x);
      return offset;
    })
  );
  const delay = () => new Promise((resolve) => setTimeout(resolve, 0));
  await Promise.all(rings.map(async (stripeRings, r) => {
    const pending: Promise<void>[] = [];
    for (const [b, length] of lengths.entries()) {
      for (let t = 0; t < stagger[r]; t++) await delay();
      for (const ring of stripeRings) pending.push(ring.start(b, offsets[b][r], length));
    }
    await Promise.all(pending);
  }));
  for (const [b, length] of lengths.entries()) {
    const expected = referenceRingMean(inputs[b]);
    for (let r = 0; r < n; r++) {
      assert.deepEqual(bits(arenas[r].float32(offsets[b][r], length)), bits(expected), `stagger ${stagger}`);
    }
  }
}
/** `n` ranks' striped rings on loopback; `polled`: every stripe a polled ring (busy-polled in its worker). */
async function stripedRanks(
  n: number,
  stripes: number,
  chunkElements: number,
  polled = false,
  lingerMs?: number,
) {
  const secret = generateJoinSecret();
  const lost: Array<{ rank: number; peerRank: number | null; reason: string }> = [];
  const ranks = await Promise.all(
    Array.from({ length: n }, (_, rank) =>
      StripedAllReduce.listen({
        stripes,
        hostname: "127.0.0.1",
        secret,
        jobId: "striped-test",
        polled,
        onLinkLost: (peerRank, reason) => lost.push({ rank, peerRank, reason }),
      })),
  );
  if (polled) { for (const striped of ranks) assert.equal(striped.polledPorts.length, stripes); }
  await Promise.all(ranks.map((striped, rank) =>
    striped.connect({
      rank,
      worldSize: n,
      generation: 0,
      left: { host: "127.0.0.1", ports: ranks[(rank - 1 + n) % n].ports },
      stripes,
      chunkElements,
      ...(polled
        ? { polled: { leftPorts: ranks[(rank - 1 + n) % n].polledPorts, spinMs: 0.05, lingerMs } }
        : {}),
    })
  ));
  if (polled) { for (const striped of ranks) assert.equal(striped.polled, true); }
  return { ranks, lost };
}

for (const polled of [false, true]) {
  Deno.test({
    name: `striped all-reduce over Workers and sockets${
      polled ? ", polled" : ""
    }: bitwise reference for 2 and 3 ranks, odd sizes`,
    ignore: polled && polledSockets() === null,
    async fn() {
      for (const [n, stripes] of [[2, 2], [3, 3]]) {
        const { ranks } = await stripedRanks(n, stripes, 1000, polled);
        try {
          for (const [b, length] of [1, 13, 2 * 3 * 1000 + 7, 40_001].entries()) {
            const inputs = Array.from({ length: n }, (_, r) => seededGradients(21, 0, r, b, length));
            const expected = referenceRingMean(inputs);
            // Rank 0 hands a plain array (copied in and out), the others shared buckets (reduced in place).
            const buffers = inputs.map((x, r) => {
              if (r === 0) return x.slice();
              const shared = ranks[r].sharedBucket(length);
              shared.set(x);
              return shared;
            });
            await Promise.all(ranks.map((striped, r) => striped.start(b, buffers[r])));
            for (let r = 0; r < n; r++) {
              assert.deepEqual(
                bits(buffers[r]),
                bits(expected),
                `n=${n} stripes=${stripes} length=${length} rank=${r}`,
              );
              if (r > 0) ranks[r].releaseSharedBucket(buffers[r]);
            }
          }
          await Promise.all(ranks.map((striped) => striped.drain()));
        } finally {
          await Promise.all(ranks.map((striped) => striped.close()));
        }
      }
    },
  });

  Deno.test({
    name: `striped all-reduce, bf16 buckets${
      polled ? ", polled" : ""
    }: the workers widen, reduce and round back; bitwise reference`,
    ignore: polled && polledSockets() === null,
    async fn() {
      for (const [n, stripes] of [[2, 2], [3, 3]]) {
        const { ranks } = await stripedRanks(n, stripes, 1000, polled);
        try {
          for (const [b, length] of [13, 2 * 3 * 1000 + 7, 40_001].entries()) {
            // Each rank's values as bf16 bits; the reference reduces their exact f32 widening.
            const halves = Array.from({ length: n }, (_, r) => {
              const x = seededGradients(31, 0, r, b, length);
              return Uint16Array.from(x, (v) => bf16Bits(v));
            });
            const widened = halves.map((h) => new Float32Array(Uint32Array.from(h, (v) => v << 16).buffer));
            const expected = referenceRingMean(widened);
            const arrays = halves.map((h, r) => {
              const data = ranks[r].sharedBucket(length).fill(NaN); // overwritten by the widening
              const words = ranks[r].sharedBucket(Math.ceil(length / 2));
              const half = new Uint16Array(words.buffer, words.byteOffset, length);
              half.set(h);
              return { data, half, words };
            });
            await Promise.all(ranks.map((striped, r) => striped.start(b, arrays[r].data, arrays[r].half)));
            for (let r = 0; r < n; r++) {
              const label = `n=${n} stripes=${stripes} length=${length} rank=${r}`;
              assert.deepEqual(bits(arrays[r].data), bits(expected), label);
              assert.deepEqual(
                [...arrays[r].half],
                Array.from(expected, (v) => bf16Bits(v)),
                label + " (bf16)",
              );
              ranks[r].releaseSharedBucket(arrays[r].data);
              ranks[r].releaseSharedBucket(arrays[r].words);
            }
          }
          // Arrays outside the arena cannot be widened there.
          await assert.rejects(
            ranks[0].start(9, new Float32Array(8), new Uint16Array(8)),
            /outside the striped ring's arena/,
          );
        } finally {
          await Promise.all(ranks.map((striped) => striped.close()));
        }
      }
    },
  });
}

Deno.test("striped all-reduce: a blocked thread sees finished collectives by polling, without an event-loop turn", async () => {
  const n = 2;
  const { ranks } = await stripedRanks(n, 2, 1000);
  try {
    const length = 50_001;
    const inputs = Array.from({ length: n }, (_, r) => seededGradients(5, 0, r, 0, length));
    const expected = referenceRingMean(inputs);
    const buffers = inputs.map((x, r) => {
      const shared = ranks[r].sharedBucket(length);
      shared.set(x);
      return shared;
    });
    let resolved = 0;
    const done = ranks.map((striped, r) => striped.start(0, buffers[r]).then(() => resolved++));
    // Block this thread (as a training step's blocking buffer map does): the workers' `done` messages cannot
    // be delivered, but the shared completion slots can be read.
    let settled = 0;
    const t0 = performance.now();
    while (settled < n && performance.now() - t0 < 20_000) {
      for (const striped of ranks) settled += striped.pollCompleted();
    }
    assert.equal(settled, n, "both collectives settled while the thread never yielded");
    // The workers timed them in the shared timeline: within the blocked stretch, in this thread's clock.
    for (const [r, striped] of ranks.entries()) {
      const times = striped.bucketTimes.get(0);
      assert.ok(times, `rank ${r} timed bucket 0`);
      assert.ok(
        t0 - 50 <= times.startMs && times.startMs <= times.endMs,
        `rank ${r} ${JSON.stringify(times)}`,
      );
      assert.ok(times.endMs <= performance.now(), `rank ${r} ${JSON.stringify(times)}`);
    }
    assert.equal(resolved, 0, "their promises resolve in microtasks, after this synchronous stretch");
    await Promise.all(done);
    for (let r = 0; r < n; r++) assert.deepEqual(bits(buffers[r]), bits(expected), `rank ${r}`);
    for (const striped of ranks) assert.equal(striped.pollCompleted(), 0, "nothing settles twice");
    // The `done` messages that arrive later find nothing left to settle; the next collective still works.
    await new Promise((r) => setTimeout(r, 20));
    await Promise.all(ranks.map((striped, r) => striped.start(1, buffers[r])));
  } finally {
    await Promise.all(ranks.map((striped) => striped.close()));
  }
});

for (const polled of [false, true]) {
  Deno.test({
    name: `striped all-reduce${
      polled ? ", polled" : ""
    }: a peer that dies mid-reduce is reported and pending reductions reject`,
    ignore: polled && polledSockets() === null,
    async fn() {
      const n = 3;
      const { ranks, lost } = await stripedRanks(n, 2, 1024, polled);
      try {
        const length = 4 << 20; // 16 MiB: still in flight when rank 2 dies
        const pending = ranks.slice(0, 2).map((striped, r) =>
          striped.start(0, seededGradients(1, 0, r, 0, length))
        );
        const settled = Promise.allSettled(pending);
        await new Promise((r) => setTimeout(r, 20));
        const t0 = performance.now();
        await ranks[2].close(); // its workers end: their sockets close like a killed process's
        const results = await settled;
        const waited = performance.now() - t0;
        for (const result of results) {
          assert.equal(result.status, "rejected");
          assert.match(
            (result as PromiseRejectedResult).reason.message,
            /stripe \d (polled )?link (to|from) rank \d closed/,
          );
        }
        assert.ok(waited < 5000, `reported after ${waited} ms`);
        assert.ok(lost.some((l) => l.rank !== 2 && l.peerRank === 2), JSON.stringify(lost));
      } finally {
        await Promise.all(ranks.map((striped) => striped.close()));
      }
    },
  });
}

Deno.test("completion slots: a collective is finished once its running stripes are; its slot is free once all passed", () => {
  assert.equal(stripesRunning(100, 2), 2);
  assert.equal(stripesRunning(0, 3), 0); // an empty bucket: no stripe runs it
  // 4 stripes, 2 run it: finished when both ran, whatever the two that sit it out have done.
  assert.equal(completionReached(1, 2, 4), false);
  assert.equal(completionReached(2, 2, 4), true);
  assert.equal(completionReached(1 + 2 * SAT_OUT, 2, 4), false);
  assert.equal(completionDrained(2, 4), false);
  assert.equal(completionDrained(2 + SAT_OUT, 4), false);
  assert.equal(completionDrained(2 + 2 * SAT_OUT, 4), true);
  // None runs it: finished (and free) once every stripe passed it.
  assert.equal(completionReached(3 * SAT_OUT, 0, 4), false);
  assert.equal(completionReached(4 * SAT_OUT, 0, 4), true);
  // Event-loop stripes: every stripe runs every collective.
  assert.equal(completionReached(3, 4, 4), false);
  assert.equal(completionReached(4, 4, 4), true);
});

Deno.test({
  name:
    "polled stripes: collectives on fewer stripes than the ring has (and empty ones) keep the reference bits past every completion slot's reuse",
  ignore: polledSockets() === null,
  async fn() {
    const n = 2, stripes = 3, batch = 64;
    const { ranks } = await stripedRanks(n, stripes, 1024, true);
    try {
      const total = COMPLETION_SLOTS + 2 * batch - 1; // every slot used, some twice; the last one not empty
      const lengthOf = (seq: number) => seq % 9 === 8 ? 0 : 1 + (seq * 37) % 300;
      const usedOf = (seq: number) => 1 + (seq % stripes);
      for (let first = 0; first < total; first += batch) {
        const seqs = Array.from({ length: Math.min(batch, total - first) }, (_, i) => first + i);
        const inputs = seqs.map((seq) =>
          ranks.map((_, r) => seededGradients(17, seq, r, seq % 8, lengthOf(seq)))
        );
        const expected = inputs.map((perRank) => referenceRingMean(perRank));
        await Promise.all(
          ranks.map((striped, r) =>
            Promise.all(seqs.map((seq, i) => striped.start(seq % 8, inputs[i][r], undefined, usedOf(seq))))
          ),
        );
        for (const [i, seq] of seqs.entries()) {
          for (const x of inputs[i]) {
            assertSameBits(x, expected[i], `collective ${seq} on ${usedOf(seq)} stripes`);
          }
        }
      }
      // The last collective's span covers the stripes that ran it only.
      const last = total - 1;
      assert.equal(lengthOf(last) > 0, true);
      const times = ranks[0].bucketTimes.get(last % 8)!;
      assert.deepEqual(
        times.stripes!.map((t) => t.stripe),
        Array.from({ length: usedOf(last) }, (_, k) => k),
      );
    } finally {
      await Promise.all(ranks.map((striped) => striped.close()));
    }
  },
});

Deno.test({
  name:
    "polled stripes take back-to-back collectives from the start slots while they linger, later ones by message",
  ignore: polledSockets() === null,
  async fn() {
    const n = 2;
    const stripes = 2;
    // Lingering 0.5 s: long enough for this thread's next start even on a loaded machine.
    const { ranks } = await stripedRanks(n, stripes, 1000, true, 500);
    const reduce = async (b: number, length: number) => {
      const inputs = Array.from({ length: n }, (_, r) => seededGradients(33, 0, r, b, length));
      const expected = referenceRingMean(inputs);
      const shared = inputs.map((x, r) => {
        const bucket = ranks[r].sharedBucket(length);
        bucket.set(x);
        return bucket;
      });
      await Promise.all(ranks.map((striped, r) => striped.start(b, shared[r])));
      for (let r = 0; r < n; r++) {
        assert.deepEqual(bits(shared[r]), bits(expected), `bucket ${b} length ${length} rank ${r}`);
        ranks[r].releaseSharedBucket(shared[r]);
      }
    };
    try {
      const lengths = [5000, 0, 7, 12_345, 5000, 5000, 3, 5000, 5000, 5000];
      for (const [b, length] of lengths.entries()) await reduce(b, length);
      const messages = ranks.map((striped) => striped.startMessages);
      for (const count of messages) {
        // The first collective needs its messages; the next ones mostly find the stripes lingering.
        assert.ok(count >= stripes && count < stripes * lengths.length, `start messages ${messages}`);
      }
      // Past the linger: the stripes are back on their event loop, and a start must wake them by message.
      const deadline = performance.now() + 10_000;
      while (ranks.some((striped) => striped.lingering > 0)) {
        assert.ok(performance.now() < deadline, "the stripes never stopped lingering");
        await new Promise((r) => setTimeout(r, 10));
      }
      await reduce(lengths.length, 4321);
      for (const [r, striped] of ranks.entries()) {
        assert.ok(striped.startMessages > messages[r], "a start after the linger goes by message");
      }
    } finally {
      await Promise.all(ranks.map((striped) => striped.close()));
    }
  },
});

Deno.test({
  name:
    "polled stripes: a bucket on fewer stripes (the others sit it out) has the reference bits on every rank",
  ignore: polledSockets() === null,
  async fn() {
    const n = 3;
    const stripes = 3;
    const { ranks } = await stripedRanks(n, stripes, 1000, true);
    try {
      let b = 0;
      for (const length of [7, 6007, 40_001]) {
        for (const used of [1, 2, 3, 1]) {
          const inputs = Array.from({ length: n }, (_, r) => seededGradients(41, used, r, b, length));
          const expected = referenceRingMean(inputs);
          const shared = inputs.map((x, r) => {
            const bucket = ranks[r].sharedBucket(length);
            bucket.set(x);
            return bucket;
          });
          await Promise.all(ranks.map((striped, r) => striped.start(b, shared[r], undefined, used)));
          for (let r = 0; r < n; r++) {
            assert.deepEqual(
              bits(shared[r]),
              bits(expected),
              `length ${length} on ${used} stripes, rank ${r}`,
            );
            ranks[r].releaseSharedBucket(shared[r]);
          }
          b++;
        }
      }
      await assert.rejects(ranks[0].start(b, ranks[0].sharedBucket(8), undefined, 4), /on 4 stripes/);
    } finally {
      await Promise.all(ranks.map((striped) => striped.close()));
    }
    const { ranks: eventLoop } = await stripedRanks(2, 2, 1000, false);
    try {
      await assert.rejects(
        eventLoop[0].start(0, eventLoop[0].sharedBucket(8), undefined, 1),
        /event-loop stripes, which all take every bucket/,
      );
    } finally {
      await Promise.all(eventLoop.map((striped) => striped.close()));
    }
  },
});

Deno.test("smallest striped bucket: ranks × stripes × max(128 KiB, ranks × 32 KiB) unless set", () => {
  assert.equal(stripeMinBytes(null, 2, 4), 1 << 20);
  assert.equal(stripeMinBytes(null, 4, 4), 2 << 20);
  assert.equal(stripeMinBytes(null, 8, 4), 8 << 20);
  assert.equal(stripeMinBytes(null, 8, 2), 4 << 20);
  assert.equal(stripeMinBytes(null, 16, 1), 8 << 20);
  assert.equal(stripeMinBytes(null, 2, 1), 256 << 10);
  assert.equal(stripeMinBytes(0, 8, 4), 0);
  assert.equal(stripeMinBytes(12345, 2, 1), 12345);
  // Polled stripes: from two stripes' worth of 128 KiB parts (one with a single stripe).
  assert.equal(stripeMinBytes(null, 8, 4, true), 2 << 20);
  assert.equal(stripeMinBytes(null, 16, 1, true), 2 << 20);
  assert.equal(stripeMinBytes(null, 2, 4, true), 512 << 10);
  assert.equal(stripeMinBytes(null, 4, 4, true), 1 << 20);
});

Deno.test("stripes per bucket: polled stripes take as many as give each 128 KiB parts, at least two", () => {
  const mib = 1 << 20;
  assert.equal(stripesForBucket(mib, 8, 4, true, null), 0); // one stripe's worth: the own ring
  assert.equal(stripesForBucket(2 * mib, 8, 4, true, null), 2);
  assert.equal(stripesForBucket(3 * mib, 8, 4, true, null), 3);
  assert.equal(stripesForBucket(4 * mib, 8, 4, true, null), 4);
  assert.equal(stripesForBucket(64 * mib, 8, 4, true, null), 4);
  assert.equal(stripesForBucket(mib, 4, 4, true, null), 2);
  assert.equal(stripesForBucket(mib, 2, 4, true, null), 4);
  assert.equal(stripesForBucket(mib / 2, 2, 4, true, null), 2);
  assert.equal(stripesForBucket(256 << 10, 2, 1, true, null), 1); // a single stripe from one part
  assert.equal(stripesForBucket(255 << 10, 2, 1, true, null), 0);
  // Set by hand, or event-loop stripes: every stripe from the smallest striped size.
  assert.equal(stripesForBucket(mib, 8, 4, true, 0), 4);
  assert.equal(stripesForBucket(8 * mib, 8, 4, false, null), 4);
  assert.equal(stripesForBucket(4 * mib, 8, 4, false, null), 0);
  assert.equal(stripesForBucket(64 * mib, 8, 0, true, null), 0);
  assert.equal(stripeMinBytes(12345, 8, 4, true), 12345);
});

Deno.test("stripe count: the smallest offer, within each host's cores shared by its ranks", () => {
  assert.equal(stripeCapFor(16, 8), 2);
  assert.equal(stripeCapFor(16, 4), 4);
  assert.equal(stripeCapFor(16, 2), 8);
  assert.equal(stripeCapFor(2, 8), 1); // never below one stripe
  const offer = (n: number) => Array.from({ length: n }, (_, i) => 40000 + i);
  assert.equal(agreedStripes([{ stripePorts: offer(4) }, { stripePorts: offer(2) }]), 2);
  assert.equal(agreedStripes([{ stripePorts: offer(4), stripeCap: 2 }, { stripePorts: offer(4) }]), 2);
  assert.equal(
    agreedStripes([{ stripePorts: offer(4), stripeCap: 8 }, { stripePorts: offer(4), stripeCap: 8 }]),
    4,
  );
  assert.equal(agreedStripes([{ stripePorts: offer(4) }, {}]), 0); // a rank without stripes: the own-thread ring
});

/**
 * Runs `fn` on `worldSize` rank sessions joined to an in-process coordinator over loopback, then closes them
 * and the coordinator.
 */
async function withInProcessJob(
  jobId: string,
  worldSize: number,
  join:
    | { stripes?: number; polledRing?: boolean; meshMaxBytes?: number; stripeMinBytes?: number }
    | ((rank: number) => { stripes?: number; meshMaxBytes?: number }),
  fn: (sessions: Awaited<ReturnType<typeof joinJob>>[]) => Promise<void> | void,
): Promise<void> {
  const secret = generateJoinSecret();
  const coordinator = await Coordinator.start({
    jobId,
    secret,
    worldSize,
    hostname: "127.0.0.1",
    log: () => {},
  });
  try {
    const sessions = await Promise.all(
      Array.from({ length: worldSize }, (_, i) =>
        joinJob({
          coordinatorUrl: coordinator.url(),
          jobId,
          secret,
          localRank: i,
          dataHostname: "127.0.0.1",
          advertiseHost: "127.0.0.1",
          ...(typeof join === "function" ? join(i) : join),
          log: () => {},
        })),
    );
    try {
      await fn(sessions);
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
  } finally {
    await coordinator.close();
  }
}

Deno.test("stripe count: ranks with the default count share the host's cores (coordinator cap, same on every rank)", async () => {
  // Pretend this host has 8 logical cores: each rank's default is 2 stripes; 5 ranks on it leave 1 each.
  Object.defineProperty(navigator, "hardwareConcurrency", { get: () => 8, configurable: true });
  const worldSize = 5;
  try {
    await withInProcessJob("stripe-cap", worldSize, {}, async (sessions) => {
      for (const s of sessions) {
        assert.deepEqual(
          s.peers.map((p) => [p.stripePorts?.length, p.stripeCap]),
          Array(worldSize).fill([2, 1]),
        );
        assert.equal(s.stripes, 1);
      }
      const inputs = sessions.map((s) => seededGradients(3, 0, s.rank, 0, 5000));
      const ranks = sessions.map((s) => s.rank);
      const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
      await Promise.all(sessions.map((s, i) => s.allReduceMean([inputs[i]])));
      for (const x of inputs) assert.deepEqual(bits(x), bits(expected));
    });
  } finally {
    delete (navigator as { hardwareConcurrency?: number }).hardwareConcurrency;
  }
});

Deno.test("startBucket offThread: a small bucket goes to the stripes and finishes while the thread is blocked", async () => {
  const worldSize = 2;
  // The event-loop ring on this thread (the polled ring would finish while this thread polls: below).
  await withInProcessJob("off-thread", worldSize, { stripes: 1, polledRing: false }, async (sessions) => {
    const length = 1000; // far under the smallest striped bucket: the ring on this thread by default
    for (const s of sessions) assert.equal(s.onStripes(length), false);
    const ranks = sessions.map((s) => s.rank);
    for (const offThread of [true, false]) {
      const inputs = sessions.map((s) => seededGradients(9, 0, s.rank, 0, length));
      const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
      const buckets = sessions.map((s, i) => {
        const b = s.sharedBucket(length);
        b.set(inputs[i]);
        return b;
      });
      const done = sessions.map((s, i) => s.startBucket(0, buckets[i], { offThread }));
      // Block this thread for up to 2 s, as a training step's buffer map does, polling the stripes.
      let settled = 0;
      const t0 = performance.now();
      while (settled < worldSize && performance.now() - t0 < 2000) {
        for (const s of sessions) settled += s.pollCollectives();
      }
      assert.equal(settled, offThread ? worldSize : 0, `offThread ${offThread}: settled while blocked`);
      await Promise.all(done);
      await Promise.all(sessions.map((s) => s.flush()));
      for (const b of buckets) assert.deepEqual(bits(b), bits(expected), `offThread ${offThread}`);
    }
  });
});

Deno.test({
  name:
    "polled ring: small buckets finish while the thread polls, never yielding, bit-identical to the reference",
  ignore: polledSockets() === null,
  async fn() {
    const worldSize = 2;
    await withInProcessJob("polled", worldSize, { stripes: 1 }, async (sessions) => {
      for (const s of sessions) assert.equal(s.polledRing, true);
      const ranks = sessions.map((s) => s.rank);
      for (const length of [1000, 3, 30_000]) { // all under the polled stripes' smallest bucket (128 KiB)
        for (const s of sessions) assert.equal(s.onStripes(length), false);
        const inputs = sessions.map((s) => seededGradients(10, length, s.rank, 0, length));
        const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
        const buckets = inputs.map((x) => x.slice());
        const finished = [false, false];
        const done = sessions.map((s, i) => s.startBucket(0, buckets[i]).then(() => finished[i] = true));
        // Poll without ever turning the event loop (microtasks only): the links are read by polling alone.
        const t0 = performance.now();
        while (!finished.every(Boolean) && performance.now() - t0 < 2000) {
          for (const s of sessions) s.pollCollectives();
          for (let i = 0; i < 4; i++) await Promise.resolve();
        }
        assert.deepEqual(finished, [true, true], `length ${length}: finished while this thread polled`);
        await Promise.all(done);
        for (const b of buckets) assert.deepEqual(bits(b), bits(expected), `length ${length}`);
        const times = sessions[0].collectiveTimes(0)!;
        assert.ok(
          times.firstChunkMs! >= times.startMs && times.endMs >= times.firstChunkMs!,
          JSON.stringify(times),
        );
      }
    });
  },
});

Deno.test({
  name: "polled stripes: buckets of 1 to 300 000 values, 2 and 3 ranks, equal the reference bitwise",
  ignore: polledSockets() === null,
  async fn() {
    for (const worldSize of [2, 3]) {
      await withInProcessJob(`polled-stripes-${worldSize}`, worldSize, { stripes: 2 }, async (sessions) => {
        for (const s of sessions) assert.equal(s.polledStripes, true);
        const ranks = sessions.map((s) => s.rank);
        for (const [bucket, length] of [1, 5, 4099, 300_000].entries()) {
          const inputs = sessions.map((s) => seededGradients(12, length, s.rank, bucket, length));
          const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
          const buckets = sessions.map((s, i) => {
            const b = s.sharedBucket(length);
            b.set(inputs[i]);
            return b;
          });
          await Promise.all(sessions.map((s, i) => s.startBucket(bucket, buckets[i], { offThread: true })));
          for (const b of buckets) {
            assert.deepEqual(bits(b), bits(expected), `${worldSize} ranks, ${length} values`);
          }
          for (const [i, s] of sessions.entries()) s.releaseSharedBucket(buckets[i]);
        }
      });
    }
  },
});

Deno.test("pollCollectives(untilMs) blocks until the stripes' collectives finish, or until untilMs", async () => {
  const worldSize = 2;
  await withInProcessJob("poll-until", worldSize, { stripes: 2 }, async (sessions) => {
    const length = 3000;
    const ranks = sessions.map((s) => s.rank);
    const inputs = sessions.map((s) => seededGradients(11, 0, s.rank, 0, length));
    const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
    const buckets = sessions.map((s, i) => {
      const b = s.sharedBucket(length);
      b.set(inputs[i]);
      return b;
    });
    // Only rank 0 starts: its collective cannot finish, so the wait ends at untilMs with nothing settled.
    const first = sessions[0].startBucket(0, buckets[0], { offThread: true });
    await new Promise((resolve) => setTimeout(resolve, 20)); // the start message reaches the workers
    let t0 = performance.now();
    assert.equal(sessions[0].pollCollectives(t0 + 150), 0);
    const waited = performance.now() - t0;
    assert.ok(waited >= 149 && waited < 1000, `waited ${waited} ms for a collective that cannot finish`);
    // Rank 1 starts too: the blocked wait returns when the collective is done, long before untilMs.
    let firstSettled = false;
    first.then(() => firstSettled = true);
    const second = sessions[1].startBucket(0, buckets[1], { offThread: true });
    await new Promise((resolve) => setTimeout(resolve, 0)); // rank 1's start message is posted
    // Lingering stripes may finish it within that turn, and the last one's `done` message settle it there.
    const settledBefore = firstSettled ? 1 : 0;
    t0 = performance.now();
    assert.equal(sessions[0].pollCollectives(t0 + 20_000), 1 - settledBefore);
    assert.ok(performance.now() - t0 < 10_000, `returned ${performance.now() - t0} ms after the wait began`);
    assert.equal(sessions[1].pollCollectives(performance.now() + 20_000), 1);
    await Promise.all([first, second]);
    for (const b of buckets) assert.deepEqual(bits(b), bits(expected));
  });
});

Deno.test({
  name:
    "polled stripes' meshes: at 3 and 4 ranks, mesh buckets take the stripes' meshes from parts of ranks × 16 KiB (or the size set by hand), bits equal the reference",
  ignore: polledSockets() === null,
  async fn() {
    const MIB = 1 << 20;
    for (const [worldSize, stripeMinBytes] of [[3, null], [4, null], [3, 4096], [4, 4096]] as const) {
      await withInProcessJob(
        `mesh-${worldSize}-${stripeMinBytes}`,
        worldSize,
        { stripes: 2, meshMaxBytes: MIB, ...(stripeMinBytes ? { stripeMinBytes } : {}) },
        async (sessions) => {
          const ranks = sessions.map((s) => s.rank);
          // Two stripes with parts of ranks × 16 KiB: 288 KiB at 3 ranks, 512 KiB at 4.
          const meshOnStripes = stripeMinBytes ?? 2 * worldSize * worldSize * 16 * 1024;
          for (const s of sessions) {
            assert.equal(s.meshMaxBytes, MIB);
            assert.equal(s.onMesh(MIB / 4), true);
            assert.equal(s.onMesh(MIB / 4 + 1), false);
            assert.equal(s.stripesFor(MIB / 4), 2);
            assert.equal(s.stripesFor(meshOnStripes / 4), 2);
            assert.equal(s.stripesFor(meshOnStripes / 4 - 1), 0); // the ring on the rank's thread
          }
          const lengths = [1, 7, 4099, 100_000, MIB / 4, MIB / 4 + 1];
          const inputs = lengths.map((length, bucket) =>
            sessions.map((s) => seededGradients(13, length, s.rank, bucket, length))
          );
          const expected = inputs.map((perSession) =>
            referenceRingMean(ranks.map((_, r) => perSession[ranks.indexOf(r)]))
          );
          await Promise.all(
            sessions.map((s, i) => s.allReduceMean(inputs.map((perSession) => perSession[i]))),
          );
          for (const [bucket, perSession] of inputs.entries()) {
            for (const x of perSession) {
              assertSameBits(
                x,
                expected[bucket],
                `${worldSize} ranks, stripes from ${meshOnStripes} bytes, ${lengths[bucket]} values`,
              );
            }
          }
          const times = sessions[0].collectiveTimes(4)!; // on the stripes' meshes
          assert.ok(times.endMs >= times.startMs, JSON.stringify(times));
        },
      );
    }
  },
});

Deno.test({
  name: "polled stripes' meshes: the job takes the smallest offer; a rank offering 0, or 2 ranks, runs none",
  ignore: polledSockets() === null,
  async fn() {
    await withInProcessJob(
      "mesh-min",
      3,
      (i) => ({ stripes: 1, meshMaxBytes: [8192, 4096, 1 << 20][i] }),
      async (sessions) => {
        for (const s of sessions) assert.equal(s.meshMaxBytes, 4096);
        const inputs = sessions.map((s) => seededGradients(14, 0, s.rank, 0, 1024));
        const ranks = sessions.map((s) => s.rank);
        const expected = referenceRingMean(ranks.map((_, r) => inputs[ranks.indexOf(r)]));
        await Promise.all(sessions.map((s, i) => s.startBucket(0, inputs[i], { offThread: true }))); // the mesh
        for (const x of inputs) assert.deepEqual(bits(x), bits(expected));
      },
    );
    await withInProcessJob(
      "mesh-off",
      3,
      (i) => ({ stripes: 1, meshMaxBytes: i === 1 ? 0 : 8192 }),
      (sessions) => {
        for (const s of sessions) assert.equal(s.meshMaxBytes, 0);
      },
    );
    await withInProcessJob("mesh-two", 2, { stripes: 1, meshMaxBytes: 8192 }, (sessions) => {
      for (const s of sessions) assert.equal(s.meshMaxBytes, 0);
    });
  },
});

Deno.test("polled mesh: agreedMeshMaxBytes takes the smallest offer, 0 outside 3..8 ranks or without an offer", () => {
  assert.equal(agreedMeshMaxBytes([4096, 1024, 8192]), 1024);
  assert.equal(agreedMeshMaxBytes([4096, 4096]), 0);
  assert.equal(agreedMeshMaxBytes(Array(MESH_MAX_RANKS).fill(4096)), 4096);
  assert.equal(agreedMeshMaxBytes(Array(MESH_MAX_RANKS + 1).fill(4096)), 0);
  assert.equal(agreedMeshMaxBytes([4096, undefined, 4096]), 0);
});

Deno.test("polled mesh: meshStripesForBucket gives each stripe parts of ranks × 16 KiB, at least two stripes", () => {
  const table: Array<[number, number, number, number | null, number]> = [
    // bytes, ranks, stripes, set by hand, expected
    [1 << 20, 4, 4, null, 4],
    [(1 << 20) - 4, 4, 4, null, 3],
    [512 << 10, 4, 4, null, 2],
    [(512 << 10) - 4, 4, 4, null, 0], // one stripe's worth: the rank's ring
    [2 << 20, 8, 4, null, 2],
    [4 << 20, 8, 4, null, 4],
    [1 << 20, 8, 4, null, 0],
    [8 << 20, 3, 4, null, 4],
    [144 << 10, 3, 1, null, 1], // a single stripe takes a bucket from one part
    [4096, 4, 2, 4096, 2], // the smallest striped size set by hand: every stripe
    [4092, 4, 2, 4096, 0],
    [1 << 20, 8, 0, null, 0],
  ];
  for (const [bytes, ranks, stripes, explicit, expected] of table) {
    assert.equal(
      meshStripesForBucket(bytes, ranks, stripes, explicit),
      expected,
      `${bytes} B, ${ranks} ranks`,
    );
  }
});
