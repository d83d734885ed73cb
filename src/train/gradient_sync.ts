/**
 * Data-parallel gradient averaging for the step engine, overlapped with backward (PyTorch DDP's scheme).
 *
 * The flat gradient buffer is cut into buckets from its end (first 1 MiB, then 2–8 MiB, the last at most 512
 * KiB; the same ranges in the same order on every rank): parameters are registered in forward order, so
 * backward finishes the last ones first. The step engine submits backward in segments, one ending wherever
 * the next bucket's parameters are all final ({@linkcode GradientExchange.readBucket}); each bucket is then
 * read back, averaged by the distributed layer's ring all-reduce (deterministic summation order, identical
 * bits on every rank) while later segments run on the GPU, and written back before the optimizer's commands
 * run.
 *
 * Deno 2.9.6's `mapAsync` blocks the thread until the GPU has run everything submitted so far. So a segment's
 * buckets are mapped right after its submit and before the next segment is submitted (the map waits for that
 * segment only). With early maps (`Gpu.earlyMaps`, `src/gpu/early_map.ts`) a bucket's bytes are readable
 * when that call returns; it is copied out at the next boundary, in slices and in index order, and reduced
 * buckets are written back there too — but only for as long as the segment just submitted ran last step
 * (steps replay the same segments), so host work never holds the next submit back; what does not fit is done
 * in `finish`. Without early maps a map resolves ~10 ms later in the event loop's timer phase, and a boundary
 * yields one timer turn when the oldest mapped bucket is due. See docs/distributed.md.
 *
 * With bf16 compression (`compression: "bf16"`) buckets travel as bf16 between the GPU and this thread: a GPU
 * cast before each read-back, the stripe workers widen and round back around the f32 reduction, and one GPU
 * dispatch widens the written-back gradient before the optimizer.
 *
 * @module
 */
import { BucketReductions } from "../distributed/bucket_overlap.ts";
import type { DistributedContext } from "../distributed/context.ts";
import { type Bf16Codec, bf16CodecFor } from "../distributed/bf16_codec.ts";
import { type Gpu, MAPPED_COPY_SLICE_BYTES, type MappedReadback } from "../gpu/gpu.ts";
import { castRangeFromBf16, castRangeToBf16 } from "../ops/cast.ts";
import type { GpuBuffer } from "../gpu/buffer_pool.ts";
import type { GradientExchange, GradientSync } from "./trainer.ts";

/** Bucket sizes of {@linkcode gradientSyncFor} (bytes). */
export interface BucketSizes {
  /** The first bucket (small, so the exchange starts early; default 1 MiB; at most the later buckets' size). */
  firstBucketBytes: number;
  /** Every later bucket: bytes, or "auto" ({@linkcode autoBucketBytes}, the default; DDP's `bucket_cap_mb` is 25 MiB). */
  bucketBytes: number | "auto";
  /**
   * The last bucket in exchange order, the buffer's first bytes, is at most this (and at most the later
   * buckets' size); the bucket before it takes whatever lies between. Its parameters (the input embeddings and
   * the encoder, registered first) finish backward last, so its exchange is what is left after backward:
   * small, it is short, and the bucket before it goes out while the encoder's backward still runs. Omitted
   * or 0: the last bucket is whatever remains. The exchange ends it where a parameter starts
   * ({@linkcode exchangeBuckets}).
   */
  lastBucketBytes?: number;
  /**
   * Buckets of whole parameters (DDP's layout) instead of byte ranges. Default false: on the H200 the seed size
   * ran 204.1–205.3 samples/s with byte ranges and 196.9–200.6 aligned (synced loopback, same run; aligned
   * buckets left 5–6 ms less after backward but made backward ~10 ms longer).
   */
  alignToParameters?: boolean;
}

/** Options of {@linkcode gradientSyncFor}: bucket sizes and how host work is fitted under backward. */
export interface GradientSyncOptions extends BucketSizes {
  /**
   * Host work at a segment boundary (copies, write-backs) stops this long before the segment is expected to
   * finish, as the last step measured it; default {@linkcode DEFAULT_BOUNDARY_MARGIN_MS}.
   */
  boundaryMarginMs?: number;
  /**
   * The largest all-reduce: a bucket larger than this is reduced in pieces of at most this many bytes (whole
   * multiples of 64 bytes, in offset order), each handed to the all-reduce as soon as it is copied out and
   * written back as soon as it is reduced, so a large bucket's copy, reduction and write-back overlap.
   * Default: no limit (a bucket is one all-reduce). Every rank must use the same value: pieces are
   * collectives, and their boundaries set the summation order.
   */
  collectiveBytes?: number;
  /** Called at every segment boundary with what happened there (for benchmarks and tuning). */
  onBoundary?: (event: BoundaryEvent) => void;
  /**
   * Gradient compression (default `"none"`). `"bf16"` halves the bytes that cross PCIe and that this thread
   * copies: each bucket is cast to bf16 on the GPU (round to nearest even) before its read-back, widened to
   * f32 on the host (exact), averaged in f32 by the all-reduce as usual, rounded to bf16 again for the
   * write-back and widened on the GPU before the optimizer. The same on every rank, deterministic; the
   * averaged gradient carries bf16's 8-bit mantissa (PyTorch DDP's `bf16_compress_hook` also sums in bf16;
   * here the sum is f32). Every rank must use the same value.
   */
  compression?: GradientCompression;
}

/** {@linkcode GradientSyncOptions.compression}. */
export type GradientCompression = "none" | "bf16";

/** What one segment boundary did ({@linkcode GradientSyncOptions.onBoundary}). */
export interface BoundaryEvent {
  /** Boundary index within the step (0: after the first segment). */
  index: number;
  /** The time this boundary allowed for host work (the segment's measured time less the margin; ms). */
  budgetMs: number;
  /** Host work done (copies, write-backs, the all-reduce's start, the caller's `spare` work; ms). */
  workMs: number;
  /** Of `workMs`, the time in the caller's `spare` work (e.g. staging the next batch; ms). */
  spareMs: number;
  /** How long the map then waited for the segment (ms). */
  waitMs: number;
  /** Whether the map waited for the segment (the host work fit under it), not a map of finished work. */
  blocked: boolean;
  /** Bytes of mapped buckets and reduced buckets still waiting for the host afterwards. */
  pendingCopyBytes: number;
  pendingWriteBytes: number;
  /** Buckets written back so far in this step. */
  writtenBuckets: number;
}

/** Default {@linkcode GradientSyncOptions.boundaryMarginMs}. */
export const DEFAULT_BOUNDARY_MARGIN_MS = 0.5;

/** A 1 MiB first bucket, then {@linkcode autoBucketBytes}, and a last bucket of at most 512 KiB. */
export const DEFAULT_BUCKET_SIZES: BucketSizes = {
  firstBucketBytes: 1 << 20,
  bucketBytes: "auto",
  lastBucketBytes: 512 << 10,
};

/**
 * The "auto" bucket size for a gradient of `gradientBytes`: an eighth of it, within 2–8 MiB. Measured on the
 * H200 with synced loopback steps (`docs/performance.md`). `poyo_1_3m` (5.3 MB) ran 1952–1998 samples/s
 * with 2 MiB against 1839–1872 with 8 MiB, because more of its exchange overlaps backward. For the seed
 * size (129.5 MB), 2, 4 and 8 MiB ran 227–230 alike, and 25 MiB ran 197.5–201.5 against 208.1–211.3 for 8
 * MiB (before sealed segments). A large gradient keeps 8 MiB buckets: they are fewer collectives, and
 * each is large enough for the striped ring (8 ranks on one host reduce 2 MiB in 2.4 ms, 8 MiB in 7.8).
 *
 * @example
 * ```ts
 * import { autoBucketBytes } from "./gradient_sync.ts";
 * console.log(autoBucketBytes(5_296_524) / 2 ** 20); // 2
 * console.log(autoBucketBytes(129_500_000) / 2 ** 20); // 8
 * ```
 */
export function autoBucketBytes(gradientBytes: number): number {
  return Math.min(8 << 20, Math.max(2 << 20, Math.ceil(gradientBytes / 8 / 4) * 4));
}

/**
 * Bucket boundaries [start, end) in f32 elements over a flat gradient of `elements`, in exchange order: the
 * first bucket is the buffer's last `firstBucketBytes`, each next one the `bucketBytes` before it. With
 * `paramOffsets` (where each parameter starts in the flat buffer) buckets
 * hold whole parameters, as DDP's do: a cut moves down to the start of the parameter it would split, and a
 * parameter larger than a bucket gets one of its own. A bucket is final once all its parameters are, so a
 * split parameter would hold its bucket back until the parameter's own end of backward.
 *
 * With `lastBucketBytes` the last bucket is the buffer's first `lastBucketBytes`, and the one before it
 * reaches down to it (it takes a remainder of less than half a bucket).
 *
 * @example
 * ```ts
 * import { gradientBuckets } from "./gradient_sync.ts";
 * console.log(gradientBuckets(10, { firstBucketBytes: 8, bucketBytes: 12 }));
 * // [[8, 10], [5, 8], [2, 5], [0, 2]]
 * console.log(gradientBuckets(10, { firstBucketBytes: 8, bucketBytes: 12, lastBucketBytes: 8 }));
 * // [[8, 10], [5, 8], [2, 5], [0, 2]]
 * console.log(gradientBuckets(11, { firstBucketBytes: 8, bucketBytes: 12, lastBucketBytes: 8 }));
 * // [[9, 11], [6, 9], [2, 6], [0, 2]]
 * console.log(gradientBuckets(10, { firstBucketBytes: 8, bucketBytes: 12 }, [0, 1, 4, 9]));
 * // [[4, 10], [1, 4], [0, 1]]
 * ```
 */
export function gradientBuckets(
  elements: number,
  sizes: BucketSizes = DEFAULT_BUCKET_SIZES,
  paramOffsets?: readonly number[],
): [number, number][] {
  const starts = paramOffsets
    ? [...new Set(paramOffsets)].filter((o) => o > 0 && o < elements).sort((x, y) => x - y)
    : null;
  // The largest parameter start ≤ `at` (0 when none): where a cut at `at` moves so no parameter is split.
  const snap = (at: number) => {
    if (!starts) return at;
    let lo = 0, hi = starts.length; // first index with starts[i] > at
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 ? starts[lo - 1] : 0;
  };
  const elementsOf = (bytes: number) => Math.max(1, Math.floor(bytes / 4));
  const bucketBytes = sizes.bucketBytes === "auto" ? autoBucketBytes(elements * 4) : sizes.bucketBytes;
  const lastElements = sizes.lastBucketBytes ? elementsOf(Math.min(sizes.lastBucketBytes, bucketBytes)) : 0;
  const out: [number, number][] = [];
  let end = elements;
  let size = elementsOf(Math.min(sizes.firstBucketBytes, bucketBytes));
  while (end > 0) {
    let target = Math.max(0, end - size);
    // Less than half a bucket would remain between this cut and the last bucket: this bucket takes it.
    if (lastElements > 0 && end > lastElements && target - lastElements < size / 2) target = lastElements;
    let start = snap(target);
    // A parameter larger than the bucket: the bucket is that whole parameter.
    if (start >= end) start = snap(end - 1);
    out.push([start, end]);
    end = start;
    size = elementsOf(bucketBytes);
  }
  return out;
}

/**
 * How a bucket of `elements` is cut into all-reduces of at most `collectiveBytes` ({@linkcode
 * GradientSyncOptions.collectiveBytes}): equal pieces in offset order, each a multiple of 16 elements (64
 * bytes) but the last. `[start, end)` element ranges within the bucket; one piece without a limit.
 *
 * @example
 * ```ts
 * import { bucketPieces } from "./gradient_sync.ts";
 * console.log(bucketPieces(100, 128)); // at most 32 elements each
 * // [[0, 32], [32, 64], [64, 96], [96, 100]]
 * console.log(bucketPieces(100, 256)); // 2 pieces of 50 → 64 and 36
 * // [[0, 64], [64, 100]]
 * console.log(bucketPieces(100));
 * // [[0, 100]]
 * ```
 */
export function bucketPieces(elements: number, collectiveBytes?: number): [number, number][] {
  const most = collectiveBytes ? Math.max(16, Math.floor(collectiveBytes / 64) * 16) : Infinity;
  if (elements <= most) return [[0, elements]];
  const count = Math.ceil(elements / most);
  const size = Math.min(most, Math.ceil(elements / count / 16) * 16);
  const out: [number, number][] = [];
  for (let start = 0; start < elements; start += size) out.push([start, Math.min(elements, start + size)]);
  return out;
}

/**
 * The buckets a {@linkcode gradientSyncFor} exchange uses for a flat gradient of `elements` whose parameters
 * start at `paramOffsets`: {@linkcode gradientBuckets}, with whole parameters when `alignToParameters`, and a
 * last bucket of the whole leading parameters that fit in `lastBucketBytes` (none when the first parameter is
 * larger: a last bucket that split it would wait for it anyway, and so would the bucket before).
 *
 * @example
 * ```ts
 * import { exchangeBuckets } from "./gradient_sync.ts";
 * const sizes = { firstBucketBytes: 8, bucketBytes: 12, lastBucketBytes: 12 };
 * console.log(exchangeBuckets(11, sizes, [0, 2, 4, 7])); // the last bucket ends where a parameter starts
 * // [[9, 11], [6, 9], [2, 6], [0, 2]]
 * console.log(exchangeBuckets(11, sizes, [0, 4, 7])); // the first parameter is larger: no last bucket
 * // [[9, 11], [6, 9], [3, 6], [0, 3]]
 * ```
 */
export function exchangeBuckets(
  elements: number,
  sizes: BucketSizes,
  paramOffsets?: readonly number[],
): [number, number][] {
  let lastBucketBytes = sizes.lastBucketBytes ?? 0;
  if (lastBucketBytes > 0 && paramOffsets) {
    const within = Math.floor(lastBucketBytes / 4);
    lastBucketBytes = 4 * paramOffsets.reduce((m, o) => (o <= within && o > m ? o : m), 0);
  }
  return gradientBuckets(
    elements,
    { ...sizes, lastBucketBytes },
    sizes.alignToParameters ? paramOffsets : undefined,
  );
}

/**
 * Buckets whose bounds are all even (whole u32 words of a packed bf16 buffer, which bf16 compression reads
 * back and writes by bucket): every bound moves down to an even element, `elements` itself must be even;
 * a bucket left empty is dropped.
 *
 * @example
 * ```ts
 * import { evenBuckets } from "./gradient_sync.ts";
 * console.log(evenBuckets([[7, 12], [3, 7], [0, 3]])); // [[6, 12], [2, 6], [0, 2]]
 * ```
 */
export function evenBuckets(buckets: readonly (readonly [number, number])[]): [number, number][] {
  const even = (x: number) => x - (x % 2);
  return buckets.map(([a, b]): [number, number] => [even(a), even(b)]).filter(([a, b]) => b > a);
}

/** Phases of one step's gradient exchange, in ms from its start (the step's first segment). */
export interface GradientSyncTimings {
  /** The first bucket was copied out and handed to the all-reduce. */
  firstReadMs: number;
  /** The last bucket was copied out. */
  lastReadMs: number;
  /** The last reduced bucket was written back (its `queue.writeBuffer` returned). */
  lastWriteMs: number;
  /** The last map call returned: the GPU had finished backward. */
  backwardDoneMs: number;
  /** Every bucket reduced and written back. */
  totalMs: number;
  /** Backward segments submitted separately (1: no overlap). */
  segments: number;
  /** Time spent copying buckets out of mapped memory (on this thread). */
  copyMs: number;
  /** Time spent in the write-backs (`queue.writeBuffer` calls, on this thread). */
  writeMs: number;
  /** Host work done at segment boundaries, while the GPU ran the segment just submitted. */
  boundaryWorkMs: number;
  /** Boundaries whose map did not wait: the host work there outlasted the segment (the GPU idled). */
  overruns: number;
  /** Per bucket, in exchange order ({@linkcode BucketTimings}). */
  buckets: BucketTimings[];
}

/**
 * One bucket's exchange, ms from the step's start: its map call returned (`mapped`), its last slice was
 * copied out and it was handed to the all-reduce (`handed`), it came back reduced (`reduced`), and its
 * write-back returned (`written`); and when its collective began and finished on the thread that ran it
 * (`collectiveStart`, `collectiveEnd`: a stripe worker or this thread), on this thread's ring also when the
 * first chunk from the left neighbour was processed (`firstChunk`); 0 when unknown.
 */
export interface BucketTimings {
  mapped: number;
  handed: number;
  reduced: number;
  written: number;
  collectiveStart: number;
  firstChunk: number;
  collectiveEnd: number;
}

/** A {@linkcode BucketTimings} with every time 0. */
export function noBucketTimings(): BucketTimings {
  return {
    mapped: 0,
    handed: 0,
    reduced: 0,
    written: 0,
    collectiveStart: 0,
    firstChunk: 0,
    collectiveEnd: 0,
  };
}

/**
 * A {@linkcode GradientSync} over a distributed context. Buckets are copied straight into arrays the context
 * reduces in place (allocated on the first step and kept: no fresh host buffers, whose page faults cost ~0.7
 * ms per MiB on the H200 host), handed to the all-reduce in index order ({@linkcode allReduceBuckets}), and
 * each is written back as soon as it and every earlier bucket are reduced.
 */
export function gradientSyncFor(
  ctx: DistributedContext,
  gpu: Gpu,
  sizes: GradientSyncOptions = DEFAULT_BUCKET_SIZES,
): GradientSync & {
  /** Phases of the last finished exchange (for benchmarks). */
  readonly lastTimings: GradientSyncTimings;
} {
  const bf16 = (sizes.compression ?? "none") === "bf16";
  // Buckets and their host arrays, kept while the layout stays (the step engine passes the same offsets).
  let host: {
    elements: number;
    offsets: readonly number[] | undefined;
    buckets: [number, number][];
    data: Float32Array[];
    /**
     * The all-reduces, in order: bucket index, and the piece as a view into that bucket's host array (with
     * bf16 compression, `half`: its bf16 bits, a view into the bucket's `halves` array).
     */
    pieces: { bucket: number; data: Float32Array; half: Uint16Array | null; last: boolean }[];
    /**
     * bf16 compression: the packed gradient on the GPU, each bucket's bf16 host array, and who widens and
     * rounds: the context's reducing threads (`bf16Buckets`: the stripe workers), or this thread's codec.
     */
    compressed: { packed: GpuBuffer; halves: Uint16Array[]; onReducers: boolean; codec: Bf16Codec } | null;
  } | null = null;
  const hostFor = (elements: number, paramOffsets?: readonly number[]) => {
    if (host?.elements !== elements || host.offsets !== paramOffsets) {
      if (bf16 && elements % 2 !== 0) {
        throw new RangeError(
          `Cannot compress a gradient of ${elements} elements to bf16 as it must be whole u32 words: current ` +
            `value is ${elements} (odd)`,
        );
      }
      const layout = exchangeBuckets(elements, sizes, paramOffsets);
      const buckets = bf16 ? evenBuckets(layout) : layout;
      const data = buckets.map(([a, b]) => ctx.sharedBucket(b - a));
      let compressed = null;
      if (bf16) {
        if (host?.compressed) gpu.pool.release(host.compressed.packed);
        const halves = buckets.map(([a, b]) => {
          const words = ctx.sharedBucket((b - a) / 2);
          return new Uint16Array(words.buffer, words.byteOffset, b - a);
        });
        const packed = gpu.pool.acquire(Math.max(4, elements * 2), "orion.bf16_gradient");
        compressed = {
          packed,
          halves,
          onReducers: ctx.bf16Buckets === true,
          codec: bf16CodecFor(ctx.bucketMemory),
        };
      }
      const pieces = buckets.flatMap((_, bucket) =>
        bucketPieces(data[bucket].length, sizes.collectiveBytes).map(([a, b], i, all) => ({
          bucket,
          data: data[bucket].subarray(a, b),
          half: compressed?.halves[bucket].subarray(a, b) ?? null,
          last: i === all.length - 1,
        }))
      );
      host = { elements, offsets: paramOffsets, buckets, data, pieces, compressed };
    }
    return host;
  };
  const noTimings = (): GradientSyncTimings => ({
    firstReadMs: 0,
    lastReadMs: 0,
    lastWriteMs: 0,
    backwardDoneMs: 0,
    totalMs: 0,
    segments: 0,
    copyMs: 0,
    writeMs: 0,
    boundaryWorkMs: 0,
    overruns: 0,
    buckets: [],
  });
  const lastTimings = noTimings();
  // Per boundary of a step (0: after the first backward segment), the GPU time of the segment submitted
  // there, as the last step measured it; steps replay the same segments, so the host work done at a
  // boundary (copies, write-backs) is cut to fit under that segment instead of holding the next submit back.
  const segmentMs: number[] = [];
  const writeRate = new WriteBackRate();
  const margin = sizes.boundaryMarginMs ?? DEFAULT_BOUNDARY_MARGIN_MS;
  return {
    worldSize: ctx.worldSize,
    lastTimings,
    begin(grads: GpuBuffer, elements: number, paramOffsets?: readonly number[]): GradientExchange {
      const t0 = performance.now();
      const { buckets, data, pieces, compressed } = hostFor(elements, paramOffsets);
      const timings = noTimings();
      timings.buckets = buckets.map(noBucketTimings);
      const reads: Promise<MappedReadback>[] = [];
      const ready: (MappedReadback | null)[] = [];
      let mapped = 0; // reads[0, mapped) were mapped
      let handed = 0; // reads[0, handed) were copied out and handed on
      let copied = 0; // bytes of bucket `handed` copied out so far
      let pieceHanded = 0; // pieces[0, pieceHanded) were handed on
      let piecesStarted = 0; // pieces[0, piecesStarted) were handed before an event-loop turn (sends went out)
      let boundary = 0; // boundaries passed this step
      let failure: { error: unknown } | null = null;
      // Reduced buckets wait here for their write-back: done within a boundary's budget, or at once from
      // `finish` on (the GPU has nothing left to run then).
      const reduced: { index: number; data: Float32Array }[] = [];
      let written = 0; // buckets written back (all their pieces)
      let piecesReduced = 0; // pieces[0, piecesReduced) came back reduced
      let writeAtOnce = false;
      const writeReduced = (deadline: number, betweenWrites?: () => void) => {
        while (reduced.length) {
          const bytes = compressed ? reduced[0].data.byteLength / 2 : reduced[0].data.byteLength;
          if (!writeRate.fits(bytes, performance.now(), deadline)) break;
          const { index, data: values } = reduced.shift()!;
          const piece = pieces[index];
          const at = buckets[piece.bucket][0] + (values.byteOffset - data[piece.bucket].byteOffset) / 4;
          let w0 = performance.now();
          let spent = 0;
          // With `betweenWrites`, in slices with a call after each: the polled ring's messages that arrived
          // are reduced and forwarded while a large piece is written, not after it.
          const write = (target: GpuBuffer, array: Float32Array | Uint16Array, byteOffset: number) => {
            const slice = betweenWrites ? WRITE_BACK_SLICE_BYTES / array.BYTES_PER_ELEMENT : array.length;
            for (let i = 0; i < array.length; i += slice) {
              gpu.write(target, array.subarray(i, i + slice), byteOffset + i * array.BYTES_PER_ELEMENT);
              if (!betweenWrites) continue;
              spent += performance.now() - w0;
              betweenWrites();
              w0 = performance.now();
            }
          };
          if (compressed) {
            // The reducing threads rounded the mean into the piece's bf16 bits already, or this one does.
            if (!compressed.onReducers) compressed.codec.pack(values, piece.half!);
            write(compressed.packed, piece.half!, at * 2);
          } else write(grads, values, at * 4);
          if (piece.last) written++;
          const w1 = performance.now();
          spent += betweenWrites ? 0 : w1 - w0;
          writeRate.record(bytes, spent);
          timings.writeMs += spent;
          timings.lastWriteMs = w1 - t0;
          if (piece.last) timings.buckets[piece.bucket].written = w1 - t0;
        }
      };
      // Every piece but the last bucket's is handed over while this thread will block in maps: it goes to the
      // stripe workers whatever its size (the ring on this thread would advance only when this thread's event
      // loop runs). The last bucket's go after backward, when this thread waits for them. Each piece's
      // collective starts as it is handed over, even in the middle of copying out later ones.
      const lastBucket = buckets.length - 1;
      const reductions = new BucketReductions(ctx, (index: number) => ({
        offThread: pieces[index].bucket !== lastBucket,
        ...(compressed?.onReducers ? { bf16: pieces[index].half! } : {}),
      }));
      const writeBack = (async () => {
        for await (const r of reductions) {
          const piece = pieces[r.index];
          if (piece.last) {
            const bucket = timings.buckets[piece.bucket];
            bucket.reduced = performance.now() - t0;
            const times = ctx.collectiveTimes?.(r.index);
            if (times) {
              bucket.collectiveStart = times.startMs - t0;
              bucket.firstChunk = times.firstChunkMs === undefined ? 0 : times.firstChunkMs - t0;
              bucket.collectiveEnd = times.endMs - t0;
            }
          }
          reduced.push(r);
          piecesReduced++;
          if (writeAtOnce) writeReduced(Infinity);
        }
      })();
      writeBack.catch(() => {}); // observed by finish()
      // Buckets are copied out in index order, each once it and every earlier one are mapped, in slices
      // until `deadline`; a bucket whose last slice is copied is handed to the all-reduce.
      // Hands on the pieces of bucket `handed` that lie within its first `bytes` copied bytes.
      const handPieces = (bytes: number) => {
        const bucket = data[handed];
        for (; pieceHanded < pieces.length && pieces[pieceHanded].bucket === handed; pieceHanded++) {
          const piece = pieces[pieceHanded].data;
          if (piece.byteOffset + piece.byteLength - bucket.byteOffset > bytes) return;
          reductions.start(piece);
        }
      };
      const handOn = (deadline = Infinity) => {
        while (handed < mapped && ready[handed]) {
          const mappedBucket = ready[handed]!;
          const bucket = data[handed];
          // bf16: the mapped bytes are the bucket's bf16 halves, widened into `bucket` slice by slice here
          // unless the reducing threads widen them.
          const half = compressed?.halves[handed];
          const widenHere = half !== undefined && !compressed!.onReducers;
          const target = half ?? bucket;
          const into = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
          const c0 = performance.now();
          try {
            while (copied < mappedBucket.size) {
              if (performance.now() >= deadline) {
                timings.copyMs += performance.now() - c0;
                return;
              }
              const end = Math.min(mappedBucket.size, copied + MAPPED_COPY_SLICE_BYTES);
              mappedBucket.copyRange(into, copied, end);
              if (widenHere) {
                compressed!.codec.unpack(
                  half.subarray(copied / 2, end / 2),
                  bucket.subarray(copied / 2, end / 2),
                );
              }
              copied = end;
              handPieces(half ? 2 * copied : copied);
            }
            mappedBucket.release();
          } catch (error) {
            failure ??= { error };
            return;
          }
          ready[handed] = null;
          copied = 0;
          timings.lastReadMs = performance.now() - t0;
          timings.buckets[handed].handed = timings.lastReadMs;
          timings.copyMs += timings.lastReadMs - (c0 - t0);
          if (handed === 0) timings.firstReadMs = timings.lastReadMs;
          handed++;
        }
      };
      const pendingCopyBytes = () => {
        let bytes = -copied;
        for (let i = handed; i < mapped; i++) bytes += (compressed?.halves[i] ?? data[i]).byteLength;
        return bytes;
      };
      const mappedAt: number[] = []; // when each bucket's map call returned
      // Early maps (`Gpu.earlyMaps`) hand a bucket over as soon as its map call returns, right after its
      // segment's submit; it is copied out only at a later boundary (or in `finish`), while the GPU works.
      let holdCopies = false;
      const mapNew = (): boolean => {
        if (mapped === reads.length) return false;
        holdCopies = true;
        gpu.mapHeldReadbacks();
        const now = performance.now();
        for (; mapped < reads.length; mapped++) {
          mappedAt[mapped] = now;
          timings.buckets[mapped].mapped = now - t0;
        }
        timings.backwardDoneMs = now - t0;
        timings.segments++;
        return true;
      };
      let closed = false;
      const close = async (error?: unknown) => {
        if (closed) return;
        closed = true;
        // Unmap whatever will not be copied (an error, a stop).
        mapNew();
        for (let i = handed; i < reads.length; i++) {
          reads[i].then((m) => (ready[i] = null, m.release()), () => {});
          ready[i]?.release();
        }
        handed = reads.length;
        reductions.close(error);
        await writeBack.catch(() => {});
      };
      // When this boundary's host work began (set by its first `boundaryWork`; a boundary may do some before
      // the trainer encodes ahead, the rest just before its map).
      let boundaryStart: number | null = null;
      // The segment just submitted runs on the GPU: copy out what earlier boundaries mapped and write back
      // what came back reduced, within the time that segment took last step (everything on a step's first
      // boundaries, until measured). Without early maps, when the oldest mapped bucket is due (its map
      // resolves ~10 ms after the call returned), give the event loop a timer phase so it is copied out and
      // handed on. Right before the map (`beforeMap`), after the caller's `spare` work, time left in the
      // budget goes to waiting for the collectives still running on the stripe workers (this thread would
      // block in the map anyway), and to writing them back: a bucket that finishes while the map blocks would
      // wait for the next boundary, and after the last one for `finish`, where its write-back would hold up
      // this thread while it runs the last bucket's ring.
      let spareMs = 0; // the caller's spare work at this boundary
      const boundaryWork = async (beforeMap: boolean, spare?: (deadline: number) => void) => {
        const start = boundaryStart ??= performance.now();
        const budget = segmentMs[boundary];
        const deadline = budget === undefined ? Infinity : start + budget - margin;
        holdCopies = false;
        handOn(deadline);
        // Buckets the stripe workers finished while this thread was blocked in the last map: their
        // completion messages would wait for an event-loop turn.
        const settled = ctx.pollCollectives();
        // A bucket that is already reduced (one rank, a fast ring, or settled above) comes back in microtasks,
        // and the collectives started above send through this thread's event loop: let them run now, not
        // after the next map has blocked this thread for a whole segment.
        if (pieceHanded > piecesStarted || settled > 0) {
          piecesStarted = pieceHanded;
          await microtasksDrained();
        }
        writeReduced(deadline);
        if (spare) {
          const s0 = performance.now();
          spare(deadline);
          spareMs += performance.now() - s0;
        }
        if (
          beforeMap && budget !== undefined && piecesReduced < piecesStarted && performance.now() < deadline
        ) {
          const until = Math.min(deadline, performance.now() + MAX_COLLECTIVE_WAIT_MS);
          if (ctx.pollCollectives(until) > 0) {
            await microtasksDrained();
            writeReduced(deadline);
          }
        }
        if (handed < mapped && !ready[handed] && performance.now() - mappedAt[handed] >= MAP_DUE_MS) {
          await timerTurn();
        }
        if (failure) {
          await close(failure.error);
          throw failure.error;
        }
        return { start, deadline };
      };
      return {
        buckets,
        readBucket(index: number): void {
          if (index !== reads.length || index >= buckets.length) {
            throw new RangeError(
              `Cannot read gradient bucket ${index} as the next one in order is ${reads.length} of ${buckets.length}`,
            );
          }
          const [a, b] = buckets[index];
          let read: Promise<MappedReadback>;
          if (compressed) {
            castRangeToBf16(gpu, grads, compressed.packed, a, b);
            read = gpu.readbackMapped(compressed.packed, a * 2, (b - a) * 2, { hold: true });
          } else read = gpu.readbackMapped(grads, a * 4, (b - a) * 4, { hold: true });
          reads.push(read);
          ready.push(null);
          read.then((m) => {
            if (closed) return m.release();
            ready[index] = m;
            if (!holdCopies) handOn();
          }, (error) => failure ??= { error });
        },
        async hostWork(spare?: (deadline: number) => void): Promise<void> {
          await boundaryWork(false, spare);
        },
        async submitted(spare?: (deadline: number) => void): Promise<void> {
          const { start, deadline } = await boundaryWork(true, spare);
          boundaryStart = null;
          const spent = spareMs;
          spareMs = 0;
          const m0 = performance.now();
          if (!mapNew()) return; // nothing new to map: no segment ended here
          const m1 = performance.now();
          // A map that blocked returned when the segment finished: its GPU time. One that did not means the
          // work done here outlasted the segment: do less next time.
          const blocked = m1 - m0 >= MAP_BLOCKED_MS;
          sizes.onBoundary?.({
            index: boundary,
            budgetMs: deadline - start,
            workMs: m0 - start,
            spareMs: spent,
            waitMs: m1 - m0,
            blocked,
            pendingCopyBytes: pendingCopyBytes(),
            pendingWriteBytes: reduced.reduce((n, r) => n + r.data.byteLength, 0),
            writtenBuckets: written,
          });
          segmentMs[boundary++] = blocked ? m1 - start : 0.75 * (m0 - start);
          timings.boundaryWorkMs += m0 - start;
          if (!blocked) timings.overruns++;
        },
        async finish(whileReducing?: () => void): Promise<void> {
          if (reads.length !== buckets.length) {
            await close();
            throw new Error(
              `Cannot finish a gradient exchange as ${reads.length} of its ${buckets.length} buckets were read`,
            );
          }
          mapNew();
          holdCopies = false;
          // The GPU is idle now: copy out the rest first (each piece's collective starts as it is copied), let
          // the event loop put the first sends on the wire (now, not after the write-backs), then write back.
          await Promise.allSettled(reads);
          handOn();
          if (pieceHanded > piecesStarted) {
            piecesStarted = pieceHanded;
            // The event-loop ring's first sends need a turn; the polled ring's and the stripes' left already.
            if (!ctx.polledRing) await microtasksDrained();
          }
          // bf16: every bucket's average ends in the packed buffer (queue writes, landing before the next
          // submit, which carries this): widen it into the gradient before the caller's commands.
          const widen = () => {
            if (compressed) castRangeFromBf16(gpu, compressed.packed, grads, 0, elements);
          };
          const calledBack = whileReducing !== undefined && !failure && handed === reads.length;
          if (calledBack) {
            widen();
            whileReducing();
          }
          writeAtOnce = true;
          // Write back what came back reduced, moving the last collectives between writes: a polled ring's
          // message that arrived meanwhile is reduced and forwarded at once (a non-blocking check, ~µs).
          ctx.pollCollectives();
          writeReduced(Infinity, () => ctx.pollCollectives());
          // Nothing is left for this thread but the collectives: drive the polled ring's links here rather
          // than sleep in the event loop, whose wake-up each hop would pay. (Not the stripes: a bucket they
          // finish is written back as it comes, while later ones still reduce.) Their write-back follows in
          // microtasks (writeAtOnce).
          if (piecesReduced < piecesStarted) ctx.spinPolled?.(performance.now() + MAX_COLLECTIVE_WAIT_MS);
          writeReduced(Infinity);
          if (failure || handed < reads.length) {
            const error = failure?.error ??
              new Error("Cannot finish a gradient exchange: a bucket was not copied");
            await close(error);
            throw error;
          }
          closed = true;
          reductions.close();
          await writeBack; // buckets reduced from here on were written as they came (writeAtOnce)
          if (!calledBack) widen();
          timings.totalMs = performance.now() - t0;
          Object.assign(lastTimings, timings);
        },
        cancel: () => close(),
      };
    },
  };
}

/**
 * Resolves after every pending microtask has run: one `MessageChannel` turn (~0.05 ms; a macrotask, and the
 * microtask queue drains before any macrotask).
 */
function microtasksDrained(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

/**
 * The write-back rate of a rank's thread (a running mean of milliseconds per byte), so that a boundary starts
 * a write-back only when it is expected to end before the boundary's deadline. A whole 8 MiB write-back takes
 * ~1 ms on the H200 host, longer than the short segments between some of the seed-sized model's buckets:
 * started anyway, it delayed the next segment's submit (the GPU idled) and shrank that boundary's budget.
 *
 * @example
 * ```ts
 * import { WriteBackRate } from "./gradient_sync.ts";
 * const rate = new WriteBackRate();
 * console.log(rate.fits(8 << 20, 0, 0.5)); // true: nothing measured yet
 * rate.record(1 << 20, 0.125); // 1 MiB in 0.125 ms
 * console.log(rate.fits(8 << 20, 0, 0.5), rate.fits(2 << 20, 0, 0.5)); // false true
 * ```
 */
export class WriteBackRate {
  #msPerByte = 0;

  /**
   * Whether a write-back of `bytes` started at `now` is expected to end by `deadline` (`Infinity`: no
   * deadline). Before anything was measured, whenever `now` is before `deadline`.
   */
  fits(bytes: number, now: number, deadline: number): boolean {
    return now < deadline && (deadline === Infinity || now + bytes * this.#msPerByte <= deadline);
  }

  /** Adds a write-back of `bytes` that took `ms` to the running mean (weight 0.2 for the newest). */
  record(bytes: number, ms: number): void {
    const msPerByte = ms / Math.max(1, bytes);
    this.#msPerByte = this.#msPerByte === 0 ? msPerByte : 0.8 * this.#msPerByte + 0.2 * msPerByte;
  }
}

/**
 * The longest a boundary blocks waiting for collectives on other threads, whatever its budget (a failed
 * collective is reported by a message, which cannot arrive while this thread blocks).
 */
const MAX_COLLECTIVE_WAIT_MS = 50;

/** Slices of the write-backs in `finish`, between which the polled ring's links are checked. */
const WRITE_BACK_SLICE_BYTES = 256 << 10;

/** A map call that took this long waited for its segment (one that did not returns in ~0.1 ms). */
const MAP_BLOCKED_MS = 0.3;

/**
 * A held map is worth a timer turn this long after its map call returned: Deno 2.9.6 resolves it ~10 ms
 * later, and a `setTimeout(0)` turn takes ≥ 1 ms itself.
 */
const MAP_DUE_MS = 9;

/**
 * Resolves after the event loop's next timer phase, where Deno 2.9.6 resolves `mapAsync` promises whose time
 * has come (measured on llvmpipe: a map due during a 20 ms block resolved at the first `setTimeout(0)` turn,
 * but took 30 or more `MessageChannel` turns in two probes). Costs ~1–4 ms, spent while the GPU runs the segment just
 * submitted.
 */
function timerTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
