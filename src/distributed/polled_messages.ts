/**
 * The messages of the polled collectives ({@link PolledRing}, {@link PolledMesh}) and what they share: each
 * message is one WebSocket binary frame, unmasked (the accepting side sends), holding an Orion data frame
 * (`DataChunkHeader` + f32 values). A receiver knows from its schedule which message comes next and how many
 * values it holds, so it reads exactly the frame's prefix (WebSocket header + Orion head) first, checks it,
 * then reads the values straight to where they belong.
 *
 * @module
 */
import {
  DATA_VALUES_OFFSET,
  type DataChunkHeader,
  decodeDataHead,
  FrameError,
  MAX_CHUNK_ELEMENTS,
  writeDataHeader,
} from "./frames.ts";
import { frameHeader } from "./raw_websocket.ts";

/** WebSocket opcode of a binary frame. */
const BINARY = 0x2;

/** Largest prefix of a polled message: a 10-byte WebSocket header, then the Orion head. */
export const MAX_PREFIX_BYTES = 10 + DATA_VALUES_OFFSET;

/**
 * The bytes sent before a message's values: the WebSocket frame header for `header.elementCount` values, then
 * the Orion head.
 *
 * @example
 * ```ts
 * import { polledMessageHead } from "./polled_messages.ts";
 * const head = polledMessageHead({ generation: 0, collective: 0, bucket: 0, bucketLength: 4, phase: 0, step: 0,
 *   segment: 0, offset: 0, elementCount: 4 });
 * console.log(head.length); // 50: 2-byte WebSocket header + 48-byte Orion head
 * ```
 */
export function polledMessageHead(header: DataChunkHeader): Uint8Array<ArrayBuffer> {
  const frame = frameHeader(BINARY, DATA_VALUES_OFFSET + header.elementCount * 4, false);
  const head = new Uint8Array(frame.length + DATA_VALUES_OFFSET);
  head.set(frame);
  writeDataHeader(head.buffer, header, frame.length);
  return head;
}

/** Bytes of the prefix (WebSocket header + Orion head) of a message of `count` values. */
export function polledPrefixBytes(count: number): number {
  return frameHeader(BINARY, DATA_VALUES_OFFSET + count * 4, false).length + DATA_VALUES_OFFSET;
}

/**
 * Checks the prefix of a message expected to hold `count` values (`what` names it in the error) and returns
 * its Orion head; throws {@link FrameError} when the WebSocket header or the head does not fit.
 */
export function decodePolledPrefix(prefix: Uint8Array, count: number, what: string): DataChunkHeader {
  const payload = DATA_VALUES_OFFSET + count * 4;
  const expected = frameHeader(BINARY, payload, false);
  for (let i = 0; i < expected.length; i++) {
    if (prefix[i] !== expected[i]) {
      throw new FrameError(
        `${what} does not fit the schedule: expected an unmasked binary frame of ${payload} bytes`,
      );
    }
  }
  return decodeDataHead(prefix.subarray(expected.length, expected.length + DATA_VALUES_OFFSET), payload);
}

/** Throws unless `chunkElements` is a message size the polled collectives can send (4..MAX_CHUNK_ELEMENTS). */
export function checkChunkElements(chunkElements: number, what: string): void {
  if (!Number.isInteger(chunkElements) || chunkElements < 4 || chunkElements > MAX_CHUNK_ELEMENTS) {
    throw new RangeError(
      `Cannot build ${what} as chunkElements is out of range: current value is ${chunkElements}; use ` +
        `4..${MAX_CHUNK_ELEMENTS}`,
    );
  }
}

/** Float32Array buffers pooled by length (at most 64 of each), for values received before they are added. */
export class ScratchPool {
  readonly #free = new Map<number, Float32Array[]>();

  /** A buffer of `count` values (contents undefined). */
  take(count: number): Float32Array {
    return this.#free.get(count)?.pop() ?? new Float32Array(count);
  }

  /** Gives a buffer back. */
  give(values: Float32Array): void {
    let list = this.#free.get(values.length);
    if (!list) this.#free.set(values.length, list = []);
    if (list.length < 64) list.push(values);
  }
}
