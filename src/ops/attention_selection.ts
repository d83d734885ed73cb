/**
 * Which implementation `rotaryAttention` (src/ops/attention.ts) runs:
 *
 * - `"materialized"` (src/ops/attention_materialized.ts): the score matrix S = q̃·k̃ᵀ [B·heads, Lq, Lk] is
 *   written by the batched matmul kernel, a masked row softmax turns it into P in place, and every other
 *   product (P·ṽ, and in the backward Pᵀ·dÕ, dÕ·ṽᵀ, dS·k̃, dSᵀ·q̃) is a matmul too, so attention runs at
 *   close to the matmul rate. P is saved for the backward pass and the backward allocates one more
 *   score-sized buffer (dP, turned into dS in place): 2 · B·heads·Lq·Lk·4 bytes per layer.
 * - `"flash"`: the fused kernels of src/ops/attention_codegen.ts; memory O(L·dh), never a score matrix,
 *   but several times slower on the H200.
 *
 * `"auto"` picks the materialized path when one score matrix takes at most
 * {@linkcode MATERIALIZED_ATTENTION_MAX_BYTES} (and fits one storage binding and the dispatch grid), else
 * flash — except on a software (fallback) adapter, where it always picks flash: on Mesa's llvmpipe the fused
 * kernels trained the default demo config 1.34× faster (22.7 vs 16.9 samples/s, `bench_train --preset
 * demo_small --batch 16`). The choice depends only on the shapes and the device, never on the data or
 * timing, so a run takes the same path (and gets the same bits) every step.
 *
 * @module
 */

/** An attention implementation. */
export type AttentionImplementation = "flash" | "materialized";

/** How `rotaryAttention` picks its implementation (`"auto"` by default). */
export type AttentionImplementationChoice = "auto" | AttentionImplementation;

/**
 * Largest score matrix (B·heads·Lq·Lk f32, in bytes) for which `"auto"` materializes attention: 1 GiB.
 *
 * Why this size: the saved P stays alive until the backward pass, and the backward adds a second buffer of
 * the same size (buffers return to the pool at the end of the step), so a layer costs twice its score
 * matrix. POYO at the seed size needs 256 MiB per latent self-attention layer (B 32, 8 heads, L 512) and
 * 162.5 MiB for the encoder cross-attention (N 2600): with depth 6, P and dS of every layer come to ≈ 3.3
 * GiB of the H200's 141 GB. A 1 GiB cap keeps a layer at ≤ 2 GiB even for long sequences (where flash's
 * O(L·dh) memory wins), and keeps one binding below the 2 GiB storage-binding limit many adapters have.
 */
export const MATERIALIZED_ATTENTION_MAX_BYTES = 2 ** 30;

/** The largest grid dimension WebGPU guarantees; the batched matmul puts B·heads on one. */
const MAX_GRID_DIM = 65535;

/** Shape of one attention call, as the selection sees it. */
export interface AttentionShape {
  batch: number;
  heads: number;
  lq: number;
  lk: number;
}

/** Bytes of one f32 score matrix [B·heads, Lq, Lk]. */
export function attentionScoreBytes(s: AttentionShape): number {
  return s.batch * s.heads * s.lq * s.lk * 4;
}

/**
 * Why the materialized path cannot run this shape on a device whose largest buffer binding is
 * `maxBindingBytes`, or null when it can.
 */
export function materializedProblem(s: AttentionShape, maxBindingBytes: number): string | null {
  const bytes = attentionScoreBytes(s);
  if (bytes > maxBindingBytes) {
    return `the score matrix takes ${bytes} bytes, more than the device's largest buffer binding ` +
      `${maxBindingBytes}`;
  }
  if (s.batch * s.heads > MAX_GRID_DIM) {
    return `B·heads = ${s.batch * s.heads} exceeds the ${MAX_GRID_DIM} batched-matmul workgroups per axis`;
  }
  return null;
}

/**
 * The implementation `rotaryAttention` runs for a shape: the explicit choice, or for `"auto"` the
 * materialized path when the score matrix is non-empty, at most
 * {@linkcode MATERIALIZED_ATTENTION_MAX_BYTES} and runnable on the device (see
 * {@linkcode materializedProblem}), flash otherwise.
 *
 * @example
 * ```ts
 * import { chooseAttentionImplementation } from "./attention_selection.ts";
 * const self = { batch: 32, heads: 8, lq: 512, lk: 512 }; // 256 MiB of scores
 * console.log(chooseAttentionImplementation(self, "auto", 2 ** 31)); // "materialized"
 * ```
 */
export function chooseAttentionImplementation(
  s: AttentionShape,
  choice: AttentionImplementationChoice = "auto",
  maxBindingBytes = Infinity,
  softwareAdapter = false,
): AttentionImplementation {
  if (choice !== "auto") return choice;
  if (softwareAdapter) return "flash";
  const bytes = attentionScoreBytes(s);
  const fits = bytes > 0 && bytes <= MATERIALIZED_ATTENTION_MAX_BYTES &&
    materializedProblem(s, maxBindingBytes) === null;
  return fits ? "materialized" : "flash";
}
