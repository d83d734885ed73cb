/**
 * Philox4x32-10, the counter-based generator behind every random draw on the GPU (dropout masks), and
 * its TypeScript twin for references and CPU-side draws. Keys and counters follow Orion's rule:
 * key = (seed, stream id), counter = (element block, step, rank, 0): a resumed run redraws the same
 * numbers without any generator state beyond (seed, step).
 *
 * @module
 */
import philoxSource from "../../shaders/philox.wgsl" with { type: "text" };

/** WGSL of the generator, to prepend to kernels that draw. */
export const PHILOX_WGSL: string = philoxSource;

const M0 = 0xD2511F53;
const M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9;
const W1 = 0xBB67AE85;

function mulhilo(a: number, b: number): [number, number] {
  const p = BigInt(a >>> 0) * BigInt(b >>> 0);
  return [Number(p >> 32n) >>> 0, Number(p & 0xffffffffn) >>> 0];
}

/**
 * Philox4x32-10 of a 4-word counter under a 2-word key.
 *
 * @example
 * ```ts
 * import { philox4x32 } from "./philox.ts";
 * // Known-answer vector from the Random123 distribution:
 * console.log(philox4x32([0, 0, 0, 0], [0, 0]).map((w) => w.toString(16)));
 * // [ "6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8" ]
 * ```
 */
export function philox4x32(
  counter: readonly number[],
  key: readonly number[],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0);
  let [k0, k1] = key.map((x) => x >>> 0);
  for (let r = 0; r < 10; r++) {
    const [hi0, lo0] = mulhilo(M0, c0);
    const [hi1, lo1] = mulhilo(M1, c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** Uniform in [0, 1) from a word, with 24 random bits (as the WGSL `philox_unit`). */
export function philoxUnit(word: number): number {
  return (word >>> 8) / 16777216;
}

/** A stable 32-bit stream id for a named random site (FNV-1a of the name), e.g. `"proc.3.ffn.dropout"`. */
export function streamId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Keep-mask of dropout with probability `p` for `n` elements (reference of `shaders/dropout.wgsl`). */
export function dropoutMask(
  n: number,
  p: number,
  seed: number,
  stream: number,
  step: number,
  rank: number,
): Uint8Array {
  const keep = new Uint8Array(n);
  for (let block = 0; block * 4 < n; block++) {
    const words = philox4x32([block, step, rank, 0], [seed, stream]);
    for (let j = 0; j < 4 && block * 4 + j < n; j++) keep[block * 4 + j] = philoxUnit(words[j]) >= p ? 1 : 0;
  }
  return keep;
}
