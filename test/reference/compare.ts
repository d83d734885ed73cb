/**
 * Numeric comparison used by every kernel test: prints the tolerance rule, the first mismatches
 * (index, got, want) and the maximum error when a comparison fails.
 *
 * Rule: element i passes when |got_i − want_i| ≤ rtol · (|want_i| + mean_j |want_j|) + atol.
 * The mean term keeps relative error meaningful near zero crossings (a value that cancels to ~0 is judged
 * against the tensor's typical magnitude, not against itself).
 *
 * @module
 */

/** Tolerances: relative 1e-5 for elementwise/normalization ops, 1e-4 for long reductions (f32). */
export interface Tolerance {
  rtol: number;
  atol?: number;
}

/** f32 tolerance for elementwise and normalization ops. */
export const ELEMENTWISE: Tolerance = { rtol: 1e-5 };
/** f32 tolerance for ops with long reductions (matmul, attention, sums). */
export const REDUCTION: Tolerance = { rtol: 1e-4 };

/** Compares arrays; throws an Error with a readable report when any element fails. */
export function assertClose(
  what: string,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: Tolerance,
): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: length ${got.length} differs from the reference's ${want.length}`);
  }
  let meanAbs = 0;
  for (let i = 0; i < want.length; i++) meanAbs += Math.abs(want[i]);
  meanAbs /= Math.max(1, want.length);
  const atol = tol.atol ?? 0;
  const bad: string[] = [];
  let nBad = 0;
  let maxErr = 0;
  let maxRel = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    const err = Math.abs(g - w);
    const bound = tol.rtol * (Math.abs(w) + meanAbs) + atol;
    if (err > maxErr) maxErr = err;
    const rel = err / (Math.abs(w) + meanAbs || 1);
    if (rel > maxRel) maxRel = rel;
    if (!(err <= bound)) { // also catches NaN
      nBad++;
      if (bad.length < 8) {
        bad.push(`  [${i}] got ${g} want ${w} (err ${err.toExponential(3)} > ${bound.toExponential(3)})`);
      }
    }
  }
  if (nBad) {
    throw new Error(
      `${what}: ${nBad} of ${want.length} elements outside tolerance\n` +
        `  rule: |got − want| ≤ ${tol.rtol} · (|want| + mean|want| = ${
          meanAbs.toExponential(3)
        }) + ${atol}\n` +
        `  max abs error ${maxErr.toExponential(3)}, max scaled error ${maxRel.toExponential(3)}\n` +
        `  first mismatches:\n${bad.join("\n")}`,
    );
  }
}

/** A seeded PRNG (mulberry32) for test inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` uniform values in [lo, hi) rounded to f32 (so the reference sees exactly what the GPU sees). */
export function randomF32(n: number, random: () => number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * random();
  return out;
}
