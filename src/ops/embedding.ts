/**
 * Embedding lookup with a deterministic backward: the host, which uploaded the indices, also builds
 * their CSR inverse (each row's tokens in increasing order), so the gradient of each table row is a
 * serial sum in a fixed order — no float atomics. Kernels: `shaders/embedding.wgsl`.
 *
 * @module
 */
import src from "../../shaders/embedding.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

const spec = (entryPoint: string): KernelSpec => ({
  name: `embedding.${entryPoint}`,
  code: src,
  entryPoint,
  bindings: ["uniform", "read", "read", "rw"],
  family: "elementwise",
});
const GATHER = spec("gather");
const BACKWARD = spec("backward");

/**
 * The CSR inverse of `indices` over `vocab` rows: `[start[0..V], order[0..T)]` where the tokens of row v
 * are `order[start[v] .. start[v+1])` in increasing token order. Indices outside [0, V) are left out.
 *
 * @example
 * ```ts
 * import { gatherIndex } from "./embedding.ts";
 * console.log(gatherIndex(new Int32Array([2, 0, 2]), 3)); // Int32Array [0, 1, 1, 3, 1, 0, 2]
 * ```
 */
export function gatherIndex(indices: Int32Array, vocab: number): Int32Array {
  const t = indices.length;
  const out = new Int32Array(vocab + 1 + t);
  for (let i = 0; i < t; i++) {
    const r = indices[i];
    if (r >= 0 && r < vocab) out[r + 1]++;
  }
  for (let v = 0; v < vocab; v++) out[v + 1] += out[v];
  const fill = out.slice(0, vocab);
  for (let i = 0; i < t; i++) {
    const r = indices[i];
    if (r >= 0 && r < vocab) out[vocab + 1 + fill[r]++] = i;
  }
  return out;
}

/** Indices for {@linkcode embedding}: the device tensor plus the host copy its backward needs. */
export interface EmbeddingIndices {
  /** i32 indices on the GPU, any shape [...]. */
  indices: Tensor;
  /** The same indices on the host (row-major). */
  host: Int32Array;
  /** Pre-built CSR (see {@linkcode gatherIndex}); built on demand when absent and a gradient is needed. */
  csr?: Tensor;
}

/**
 * `table[indices]` → [..., D]. `paddingIdx` rows get no gradient (PyTorch `padding_idx`).
 *
 * @example
 * ```ts ignore
 * const e = embedding(unitEmb, { indices: unitIds, host: batch.unit }, { paddingIdx: 0 });
 * ```
 */
export function embedding(
  table: Tensor,
  idx: EmbeddingIndices,
  options: { paddingIdx?: number } = {},
): Tensor {
  expectDtype("embedding", "table", table, "f32");
  expectDtype("embedding", "indices", idx.indices, "i32");
  if (table.rank !== 2) {
    throw new RangeError(`Cannot gather from an embedding table of shape ${fmtShape(table.shape)}`);
  }
  if (idx.host.length !== idx.indices.size) {
    throw new RangeError(
      `Cannot gather with ${idx.indices.size} device indices and ${idx.host.length} host indices: they must match`,
    );
  }
  const gpu = table.gpu;
  const [vocab, d] = table.shape;
  const t = idx.indices.size;
  const out = Tensor.empty(gpu, [...idx.indices.shape, d]);
  const gatherParams = gpu.uniform(new Params().u32(t).u32(d).u32(vocab).i32(-1).bytes());
  gpu.dispatch(GATHER, [gatherParams, table.binding(), idx.indices.binding(), out.binding()], grid1d(t * d));
  return record("embedding", [table], out, (dy) => {
    const csr = idx.csr ?? Tensor.fromArray(gpu, gatherIndex(idx.host, vocab), [vocab + 1 + t]);
    const dtable = Tensor.empty(gpu, table.shape);
    const u = gpu.uniform(new Params().u32(vocab).u32(d).u32(vocab).i32(options.paddingIdx ?? -1).bytes());
    gpu.dispatch(BACKWARD, [u, contiguous(dy).binding(), csr.binding(), dtable.binding()], grid1d(vocab * d));
    return [dtable];
  });
}
