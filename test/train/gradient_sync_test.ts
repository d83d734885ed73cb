/**
 * The gradient exchange on its own (no trainer): buckets read after each segment come back unchanged through
 * a world-size-1 context, and each boundary does the host work available to it — the bucket mapped at the
 * previous boundary is copied out, reduced and written back there, not left for `finish`.
 */
import assert from "node:assert/strict";
import { forEachMapMode } from "../gpu/map_modes.ts";
import { SingleRankContext, type StartBucketOptions } from "../../src/distributed/context.ts";
import { MAPPED_COPY_SLICE_BYTES } from "../../src/gpu/gpu.ts";
import { bf16BitsToF32, f32ToBf16Bits } from "../../src/ops/cast.ts";
import {
  autoBucketBytes,
  type BoundaryEvent,
  bucketPieces,
  DEFAULT_BUCKET_SIZES,
  exchangeBuckets,
  gradientBuckets,
  gradientSyncFor,
  WriteBackRate,
} from "../../src/train/gradient_sync.ts";

Deno.test({
  name:
    "gradient exchange: each boundary copies, reduces and writes back the previous bucket; finish the last",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu, earlyMaps) => {
      const elements = 6 * 1024; // 24 KiB: a 4 KiB first bucket, then 8, 8 and 4 KiB
      const values = Float32Array.from({ length: elements }, (_, i) => Math.fround(Math.sin(i) * 1e3));
      const grads = gpu.pool.acquire(elements * 4, "test.grads");
      gpu.write(grads, values);
      const events: BoundaryEvent[] = [];
      const sync = gradientSyncFor(new SingleRankContext(), gpu, {
        firstBucketBytes: 4096,
        bucketBytes: 8192,
        boundaryMarginMs: -1e9, // no time limit: the checks below must not depend on timing
        onBoundary: (e) => events.push(e),
      });
      // Two steps: the first maps every staging buffer once (a buffer's first map is always awaited).
      let buckets: readonly (readonly [number, number])[] = [];
      for (let step = 0; step < 2; step++) {
        events.length = 0;
        const exchange = sync.begin(grads, elements);
        buckets = exchange.buckets;
        assert.deepEqual(exchange.buckets, [[5120, 6144], [3072, 5120], [1024, 3072], [0, 1024]]);
        for (let i = 0; i < exchange.buckets.length; i++) {
          exchange.readBucket(i); // a "segment" that ends with bucket i final
          gpu.submit();
          // The trainer does the last boundary's host work before encoding the next step ahead: the same
          // boundary, done in two calls.
          if (i === exchange.buckets.length - 1) await exchange.hostWork();
          await exchange.submitted();
        }
        await exchange.finish();
        const back = new Float32Array(await gpu.read(grads, 0, elements * 4));
        const first = back.findIndex((x, i) => !Object.is(x, values[i]));
        assert.equal(first, -1, `gradient changed at ${first}: ${back[first]} vs ${values[first]}`);
      }
      assert.equal(events.length, buckets.length);
      for (const [k, e] of events.entries()) {
        const [start, end] = buckets[k];
        if (earlyMaps) {
          // What is left after boundary k is exactly the bucket mapped there: the previous one was copied
          // out, came back reduced (microtasks drained before the map) and was written back.
          assert.equal(e.pendingCopyBytes, (end - start) * 4, `copies left after boundary ${k}`);
          assert.equal(e.pendingWriteBytes, 0, `write-backs left after boundary ${k}`);
          assert.equal(e.writtenBuckets, k, `buckets written back by boundary ${k}`);
        }
      }
      assert.equal(sync.lastTimings.segments, buckets.length);
    });
  },
});

/** A world-size-1 context whose "reduction" negates the values, recording each collective's length. */
class NegatingContext extends SingleRankContext {
  readonly lengths: number[] = [];
  override startBucket(_index: number, data: Float32Array): Promise<void> {
    this.lengths.push(data.length);
    for (let i = 0; i < data.length; i++) data[i] = -data[i];
    return Promise.resolve();
  }
}

Deno.test({
  name: "gradient exchange: buckets larger than collectiveBytes are reduced and written back in pieces",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu) => {
      const elements = 6 * 1024 + 5; // a 4 KiB first bucket, then 8, 8 and 4 KiB + 20 B
      const values = Float32Array.from({ length: elements }, (_, i) => Math.fround(Math.cos(i) * 1e3));
      const grads = gpu.pool.acquire(elements * 4, "test.grads");
      const ctx = new NegatingContext();
      const sync = gradientSyncFor(ctx, gpu, {
        firstBucketBytes: 4096,
        bucketBytes: 8192,
        collectiveBytes: 3000, // 736 elements: the 8 KiB buckets in 3 pieces, the others in 2
        boundaryMarginMs: -1e9,
      });
      for (let step = 0; step < 2; step++) {
        gpu.write(grads, values);
        ctx.lengths.length = 0;
        const exchange = sync.begin(grads, elements);
        for (let i = 0; i < exchange.buckets.length; i++) {
          exchange.readBucket(i);
          gpu.submit();
          await exchange.submitted();
        }
        await exchange.finish();
        const pieces = exchange.buckets.flatMap(([a, b]) => bucketPieces(b - a, 3000).map(([x, y]) => y - x));
        assert.deepEqual(ctx.lengths, pieces, "one collective per piece, in order");
        assert.ok(ctx.lengths.length > exchange.buckets.length);
        assert.ok(Math.max(...ctx.lengths) * 4 <= 3000);
        const back = new Float32Array(await gpu.read(grads, 0, elements * 4));
        const wrong = back.findIndex((x, i) => !Object.is(x, -values[i]));
        assert.equal(wrong, -1, `element ${wrong}: ${back[wrong]}, expected ${-values[wrong]}`);
      }
    });
  },
});

/**
 * A world-size-1 context that records, when each collective starts, whether the exchange had already copied
 * out the memory just after that collective's values (the next piece's first value).
 */
class PeekingContext extends SingleRankContext {
  readonly nextCopied: boolean[] = [];
  override startBucket(index: number, data: Float32Array, options?: StartBucketOptions): Promise<void> {
    const after = data.byteOffset + data.byteLength;
    if (after + 4 <= data.buffer.byteLength) {
      this.nextCopied[index] = new Float32Array(data.buffer, after, 1)[0] !== 0;
    }
    return super.startBucket(index, data, options);
  }
}

Deno.test({
  name:
    "gradient exchange: a piece's collective starts as soon as it is copied out, before the next is copied",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu) => {
      // One 192 KiB bucket in three pieces of one copy slice each (64 KiB), none of whose values is zero.
      const elements = 3 * (MAPPED_COPY_SLICE_BYTES / 4);
      const grads = gpu.pool.acquire(elements * 4, "test.grads");
      gpu.write(grads, Float32Array.from({ length: elements }, (_, i) => i + 1));
      const ctx = new PeekingContext();
      const sync = gradientSyncFor(ctx, gpu, {
        firstBucketBytes: elements * 4,
        bucketBytes: elements * 4,
        collectiveBytes: MAPPED_COPY_SLICE_BYTES,
      });
      const exchange = sync.begin(grads, elements);
      assert.equal(exchange.buckets.length, 1);
      exchange.readBucket(0);
      gpu.submit();
      await exchange.finish();
      assert.deepEqual(ctx.nextCopied.slice(0, 2), [false, false]);
      gpu.pool.release(grads);
    });
  },
});

/**
 * A world-size-1 context that records, when each collective starts, how many gradient write-backs the
 * exchange had issued by then; buckets other than the last finish only once `release` was called.
 */
class HeldContext extends SingleRankContext {
  readonly writesAtStart: number[] = [];
  #held: (() => void)[] = [];
  constructor(readonly writes: () => number, readonly last: number) {
    super();
  }
  #released = false;
  override startBucket(index: number, _data: Float32Array): Promise<void> {
    this.writesAtStart[index] = this.writes();
    if (index === this.last || this.#released) return Promise.resolve();
    return new Promise((resolve) => this.#held.push(resolve));
  }
  release(): void {
    this.#released = true;
    for (const resolve of this.#held.splice(0)) resolve();
  }
}

Deno.test({
  name: "gradient exchange: finish starts the last bucket's collective before it writes back earlier buckets",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu) => {
      const elements = 6 * 1024;
      const grads = gpu.pool.acquire(elements * 4, "test.grads");
      gpu.write(grads, new Float32Array(elements).fill(1));
      let writes = 0;
      const write = gpu.write.bind(gpu);
      gpu.write = ((...args: Parameters<typeof gpu.write>) => {
        writes++;
        return write(...args);
      }) as typeof gpu.write;
      const ctx = new HeldContext(() => writes, 3);
      const sync = gradientSyncFor(ctx, gpu, {
        firstBucketBytes: 4096,
        bucketBytes: 8192,
        boundaryMarginMs: -1e9,
      });
      const exchange = sync.begin(grads, elements);
      for (let i = 0; i < exchange.buckets.length; i++) {
        exchange.readBucket(i);
        gpu.submit();
        await exchange.submitted();
      }
      // Buckets 0–2 come back reduced only now: finish has their write-backs and the last bucket's start to do.
      ctx.release();
      const before = writes;
      await exchange.finish();
      assert.equal(
        ctx.writesAtStart[3],
        before,
        "the last collective started before any write-back in finish",
      );
      assert.equal(writes - before, 4, "then all four buckets were written back");
    });
  },
});

/**
 * A world-size-1 context whose collectives, but the last bucket's, run "on another thread": they finish only
 * when the exchange waits for them (`pollCollectives(untilMs)`) or at `release`.
 */
class OffThreadContext extends SingleRankContext {
  readonly waits: number[] = [];
  #held: (() => void)[] = [];
  #released = false;
  constructor(readonly last: number) {
    super();
  }
  override startBucket(index: number, _data: Float32Array): Promise<void> {
    if (index === this.last || this.#released) return Promise.resolve();
    return new Promise((resolve) => this.#held.push(resolve));
  }
  override pollCollectives(untilMs?: number): number {
    if (untilMs === undefined) return 0;
    this.waits.push(untilMs);
    const held = this.#held.splice(0);
    for (const resolve of held) resolve();
    return held.length;
  }
  /** From now on (until `hold`), every collective finishes at once, those in flight too. */
  release(): void {
    this.#released = true;
    for (const resolve of this.#held.splice(0)) resolve();
  }
  hold(): void {
    this.#released = false;
  }
}

Deno.test({
  name:
    "gradient exchange: a boundary with budget left waits for the collectives in flight and writes them back",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu, earlyMaps) => {
      const elements = 6 * 1024;
      const values = Float32Array.from({ length: elements }, (_, i) => Math.fround(Math.cos(i) * 1e3));
      const grads = gpu.pool.acquire(elements * 4, "test.grads");
      gpu.write(grads, values);
      const ctx = new OffThreadContext(3);
      const events: BoundaryEvent[] = [];
      const sync = gradientSyncFor(ctx, gpu, {
        firstBucketBytes: 4096,
        bucketBytes: 8192,
        boundaryMarginMs: -1e9, // budget everywhere once measured
        onBoundary: (e) => events.push(e),
      });
      for (let step = 0; step < 2; step++) {
        events.length = 0;
        ctx.waits.length = 0;
        ctx.hold();
        const exchange = sync.begin(grads, elements);
        for (let i = 0; i < exchange.buckets.length; i++) {
          exchange.readBucket(i);
          gpu.submit();
          if (i === exchange.buckets.length - 1) await exchange.hostWork(); // never waits
          await exchange.submitted();
        }
        ctx.release();
        await exchange.finish();
        const back = new Float32Array(await gpu.read(grads, 0, elements * 4));
        const wrong = back.findIndex((x, i) => !Object.is(x, values[i]));
        assert.equal(wrong, -1, `element ${wrong}: ${back[wrong]}, expected ${values[wrong]}`);
        if (step === 0) {
          // No budget measured yet: a boundary does not wait, and everything is written back in finish.
          assert.deepEqual(ctx.waits, []);
          assert.deepEqual(events.map((e) => e.writtenBuckets), [0, 0, 0, 0]);
        } else if (earlyMaps) {
          // Bucket k − 1 is copied out and handed on at boundary k, waited for, and written back there.
          assert.deepEqual(events.map((e) => e.writtenBuckets), [0, 1, 2, 3]);
          assert.deepEqual(events.map((e) => e.pendingWriteBytes), [0, 0, 0, 0]);
          assert.equal(ctx.waits.length, 3, "one wait per boundary with a collective in flight");
          // The wait is capped, whatever the budget.
          for (const until of ctx.waits) assert.ok(until - performance.now() < 60, `waits until ${until}`);
        }
      }
      gpu.pool.release(grads);
    });
  },
});

/**
 * A world-size-1 context whose "reduction" divides by 3 (rounding, unlike a negation), in place. With
 * `bf16Buckets` it takes bf16 buckets as the stripe workers do (widens, reduces, rounds back, here by the
 * TypeScript references); without, the exchange's own thread widens and rounds.
 */
class ThirdingContext extends SingleRankContext {
  readonly lengths: number[] = [];
  override readonly bf16Buckets: boolean;
  constructor(bf16Buckets: boolean) {
    super();
    this.bf16Buckets = bf16Buckets;
  }
  override startBucket(_index: number, data: Float32Array, options?: StartBucketOptions): Promise<void> {
    this.lengths.push(data.length);
    const bf16 = options?.bf16;
    assert.equal(bf16 !== undefined, this.bf16Buckets, "bf16 bits are passed exactly when taken");
    if (bf16) { for (let i = 0; i < data.length; i++) data[i] = bf16BitsToF32(bf16[i]); }
    for (let i = 0; i < data.length; i++) data[i] = Math.fround(data[i] / 3);
    if (bf16) { for (let i = 0; i < data.length; i++) bf16[i] = f32ToBf16Bits(data[i]); }
    return Promise.resolve();
  }
}

Deno.test({
  name:
    "gradient exchange, bf16 compression: each rank's bucket rounded to bf16, reduced in f32, rounded back",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu) => {
      for (const onReducers of [false, true]) {
        const elements = 6 * 1024 + 64;
        // Values over many binades, with specials: bf16 rounding is visible in every element.
        const values = Float32Array.from(
          { length: elements },
          (_, i) => Math.fround(Math.sin(i * 1.7) * 10 ** ((i % 13) - 6)),
        );
        values.set([0, -0, Infinity, -Infinity, NaN, 3.4e38], 100);
        const grads = gpu.pool.acquire(elements * 4, "test.grads");
        const ctx = new ThirdingContext(onReducers);
        const sync = gradientSyncFor(ctx, gpu, {
          firstBucketBytes: 4094, // odd element bounds: moved to even ones
          bucketBytes: 8190,
          collectiveBytes: 3000,
          boundaryMarginMs: -1e9,
          compression: "bf16",
        });
        const round = (x: number) => bf16BitsToF32(f32ToBf16Bits(x));
        for (let step = 0; step < 2; step++) {
          gpu.write(grads, values);
          ctx.lengths.length = 0;
          const exchange = sync.begin(grads, elements);
          for (const [a, b] of exchange.buckets) assert.ok(a % 2 === 0 && b % 2 === 0, `bucket [${a}, ${b})`);
          assert.equal(exchange.buckets[0][1], elements);
          assert.equal(exchange.buckets.at(-1)![0], 0);
          for (let i = 0; i < exchange.buckets.length; i++) {
            exchange.readBucket(i);
            gpu.submit();
            await exchange.submitted();
          }
          await exchange.finish();
          const back = new Float32Array(await gpu.read(grads, 0, elements * 4));
          const bad: string[] = [];
          for (let i = 0; i < elements; i++) {
            const want = round(Math.fround(round(values[i]) / 3));
            if (!Object.is(back[i], want)) bad.push(`[${i}] ${back[i]} vs ${want} (from ${values[i]})`);
          }
          assert.equal(
            bad.length,
            0,
            `onReducers ${onReducers}: ${bad.length} elements differ, first: ${bad.slice(0, 5).join("; ")}`,
          );
          assert.ok(ctx.lengths.length > exchange.buckets.length, "pieces still apply");
        }
        assert.ok(ctx.bucketMemory, "the buckets live in an arena: the SIMD codec works on them in place");
        assert.throws(() => sync.begin(grads, elements - 1), /must be whole u32 words/);
        gpu.pool.release(grads);
      }
    });
  },
});

Deno.test('bucket sizes: "auto" is an eighth of the gradient within 2–8 MiB; the first bucket is at most that', () => {
  const MiB = 2 ** 20;
  assert.equal(autoBucketBytes(1_324_131 * 4), 2 * MiB); // poyo_1_3m
  assert.equal(autoBucketBytes(40 * MiB), 5 * MiB);
  assert.equal(autoBucketBytes(129_500_000), 8 * MiB); // the seed size
  const lengths = (buckets: [number, number][]) => buckets.map(([a, b]) => (b - a) * 4);
  // 5.3 MB: 1 MiB first, then 2 MiB buckets, a 512 KiB one last, and the one before it takes the rest; the
  // buckets tile the buffer from its end.
  const poyo = gradientBuckets(1_324_131, DEFAULT_BUCKET_SIZES);
  assert.deepEqual(lengths(poyo), [MiB, 2 * MiB, 5_296_524 - 3.5 * MiB, MiB / 2]);
  assert.equal(poyo.at(-1)![0], 0);
  assert.equal(poyo[0][1], 1_324_131);
  for (let i = 1; i < poyo.length; i++) assert.equal(poyo[i][1], poyo[i - 1][0]);
  // Without a last-bucket size the rest is last, however small.
  const plain = gradientBuckets(1_324_131, { ...DEFAULT_BUCKET_SIZES, lastBucketBytes: 0 });
  assert.deepEqual(lengths(plain), [MiB, 2 * MiB, 2 * MiB, 5_296_524 - 5 * MiB]);
  // With the parameters' offsets the last bucket holds whole leading parameters: the buckets before it are
  // final once its parameters' backward has run, and the last parameters finish backward last. A leading
  // parameter larger than the last bucket leaves the layout as without one (it would hold both back).
  const offsets = [0, 65_312, 104_640, 137_408, 154_496];
  assert.deepEqual(exchangeBuckets(1_324_131, DEFAULT_BUCKET_SIZES, offsets).at(-1), [0, 104_640]);
  assert.deepEqual(exchangeBuckets(1_324_131, DEFAULT_BUCKET_SIZES, [0, 522_496, 595_200]), plain);
  // A fixed size still works, and a first bucket never exceeds the later ones.
  assert.deepEqual(lengths(gradientBuckets(1000, { firstBucketBytes: MiB, bucketBytes: 1024 })), [
    1024,
    1024,
    1024,
    928,
  ]);
});

Deno.test("write-back rate: a write-back starts at a boundary only when it is expected to end by the deadline", () => {
  const rate = new WriteBackRate();
  assert.equal(rate.fits(64 << 20, 10, 10.5), true, "nothing measured: any size before the deadline");
  assert.equal(rate.fits(1, 10.5, 10.5), false, "at the deadline: nothing");
  rate.record(1 << 20, 0.125); // 8 MiB/ms
  assert.equal(rate.fits(8 << 20, 10, 10.5), false, "~1 ms of writing does not fit in 0.5 ms");
  assert.equal(rate.fits(4 << 20, 10, 10.5), true, "~0.5 ms does");
  assert.equal(rate.fits(64 << 20, 10, Infinity), true, "no deadline (finish)");
  // A running mean: one slow write-back (4× the time) moves the estimate a fifth of the way.
  rate.record(1 << 20, 0.5);
  assert.equal(rate.fits(2 << 20, 0, 0.41), true); // 0.2 ms/MiB now: 0.4 ms
  assert.equal(rate.fits(2 << 20, 0, 0.39), false);
});
