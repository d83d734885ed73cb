/**
 * Start slots: how the rank's thread hands collectives to its stripe workers (`striped_all_reduce.ts`)
 * through shared memory instead of one `postMessage` per worker.
 *
 * The rank's thread writes collective `seq`'s descriptor (bucket index, byte offset, length, bf16 offset,
 * stripes used) to slot `seq % COMPLETION_SLOTS`, then publishes `seq + 1` as the count of started
 * collectives and wakes the workers waiting on it (`Atomics.notify`). A polled stripe that finished its
 * collectives lingers: it blocks in `Atomics.wait` on that count (no CPU) for a while, and starts the next
 * collective the moment it is published, without an event-loop turn. A worker that is not lingering (it has
 * its flag down) gets a `start` message as well, which makes it read the slots on its event loop.
 *
 * No start is lost: the rank's thread stores the count, then reads the worker's flag; the worker lowers its
 * flag, then reads the count again (both sequentially consistent), so either the rank's thread sees the flag
 * up (and the worker, still lingering or rechecking, sees the count) or the worker sees the new count.
 *
 * Layout (Int32 words): [0] started count; [1 + stripe] lingering flag of each stripe (up to
 * {@link MAX_STRIPES}); then {@link COMPLETION_SLOTS} descriptors of 5 words.
 *
 * @example
 * ```ts
 * import { StripeStartSlots } from "./stripe_start_slots.ts";
 * const slots = new StripeStartSlots(new SharedArrayBuffer(StripeStartSlots.BYTES), 0);
 * slots.publish(0, { bucket: 3, offset: 4096, length: 1024, bf16Offset: null, stripes: 2 });
 * console.log(slots.published, slots.read(0).bucket); // 1 3
 * ```
 *
 * @module
 */
import { COMPLETION_SLOTS } from "./stripe_ring.ts";

/** Most stripes a rank runs (`StripedAllReduce.listen`'s range). */
export const MAX_STRIPES = 64;

/** One collective handed to the stripes. */
export interface StripeStart {
  /** Index in the fixed bucket order. */
  bucket: number;
  /** Byte offset of the f32 values in the arena. */
  offset: number;
  /** Number of values. */
  length: number;
  /** Byte offset of the bucket's bf16 bits (gradient compression), or null. */
  bf16Offset: number | null;
  /** Stripes that reduce it (0..stripes−1); the others skip it. */
  stripes: number;
}

const HEADER_WORDS = 1 + MAX_STRIPES;
const DESCRIPTOR_WORDS = 5;

/** The shared start slots of one striped ring, seen from either side. */
export class StripeStartSlots {
  /** Bytes the slots take in the shared memory. */
  static readonly BYTES = (HEADER_WORDS + COMPLETION_SLOTS * DESCRIPTOR_WORDS) * 4;
  readonly #words: Int32Array;

  /** The slots at byte `offset` of `buffer` ({@link BYTES} bytes, 4-aligned). */
  constructor(buffer: ArrayBufferLike, offset: number) {
    this.#words = new Int32Array(buffer, offset, StripeStartSlots.BYTES / 4);
  }

  /** Collectives started so far (the next one's `seq`). */
  get published(): number {
    return Atomics.load(this.#words, 0);
  }

  /** Writes collective `seq`'s descriptor, publishes it, and wakes lingering workers. */
  publish(seq: number, start: StripeStart): void {
    const at = HEADER_WORDS + (seq % COMPLETION_SLOTS) * DESCRIPTOR_WORDS;
    const words = this.#words;
    words[at] = start.bucket;
    words[at + 1] = start.offset;
    words[at + 2] = start.length;
    words[at + 3] = start.bf16Offset ?? -1;
    words[at + 4] = start.stripes;
    Atomics.store(words, 0, seq + 1);
    Atomics.notify(words, 0);
  }

  /** Collective `seq`'s descriptor (valid from when `seq` was published until it finished on every stripe). */
  read(seq: number): StripeStart {
    const at = HEADER_WORDS + (seq % COMPLETION_SLOTS) * DESCRIPTOR_WORDS;
    const words = this.#words;
    const bf16 = words[at + 3];
    return {
      bucket: words[at],
      offset: words[at + 1],
      length: words[at + 2],
      bf16Offset: bf16 < 0 ? null : bf16,
      stripes: words[at + 4],
    };
  }

  /** Whether `stripe` is lingering (it will see a published start without a message). */
  lingering(stripe: number): boolean {
    return Atomics.load(this.#words, 1 + stripe) !== 0;
  }

  /**
   * On a stripe's thread: blocks until a collective past `next − 1` is published (true) or `ms` pass (false),
   * with the stripe's lingering flag up meanwhile.
   */
  waitForStart(stripe: number, next: number, ms: number): boolean {
    const words = this.#words;
    Atomics.store(words, 1 + stripe, 1);
    const until = performance.now() + ms;
    for (;;) {
      const seen = Atomics.load(words, 0);
      const left = until - performance.now();
      if (seen > next || left <= 0) break;
      Atomics.wait(words, 0, seen, left);
    }
    Atomics.store(words, 1 + stripe, 0);
    return Atomics.load(words, 0) > next;
  }
}
