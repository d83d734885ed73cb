/**
 * Plain f64 reference implementations (forward and backward) of Orion's ops, written for clarity, not
 * speed. Every GPU kernel is tested against these, and these against finite differences.
 *
 * @module
 */
import type { RefOp } from "../ops/op_harness.ts";

const numel = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

function stridesOf(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Index into a broadcast input for output multi-index. */
function bcastIndex(outIdx: number[], shape: readonly number[], outRank: number): number {
  const st = stridesOf(shape);
  let off = 0;
  for (let d = 0; d < shape.length; d++) {
    const od = outIdx[outRank - shape.length + d];
    off += (shape[d] === 1 ? 0 : od) * st[d];
  }
  return off;
}

function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    out.push(Math.max(da, db));
  }
  return out;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** Broadcasting binary op. */
export function refBinary(kind: "add" | "sub" | "mul" | "div", sa: number[], sb: number[]): RefOp {
  const so = broadcastShape(sa, sb);
  const n = numel(so);
  const f = (x: number, y: number) =>
    kind === "add" ? x + y : kind === "sub" ? x - y : kind === "mul" ? x * y : x / y;
  return {
    forward([a, b]) {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const idx = unravel(i, so);
        out[i] = f(a[bcastIndex(idx, sa, so.length)], b[bcastIndex(idx, sb, so.length)]);
      }
      return out;
    },
    backward([a, b], g) {
      const ga = new Float64Array(a.length);
      const gb = new Float64Array(b.length);
      for (let i = 0; i < n; i++) {
        const idx = unravel(i, so);
        const ia = bcastIndex(idx, sa, so.length);
        const ib = bcastIndex(idx, sb, so.length);
        const x = a[ia], y = b[ib];
        if (kind === "add") (ga[ia] += g[i], gb[ib] += g[i]);
        else if (kind === "sub") (ga[ia] += g[i], gb[ib] -= g[i]);
        else if (kind === "mul") (ga[ia] += g[i] * y, gb[ib] += g[i] * x);
        else (ga[ia] += g[i] / y, gb[ib] -= g[i] * x / (y * y));
      }
      return [ga, gb];
    },
  };
}

/** Sum over one axis. */
export function refSum(shape: number[], axis: number): RefOp {
  const outer = numel(shape.slice(0, axis));
  const r = shape[axis];
  const inner = numel(shape.slice(axis + 1));
  return {
    forward([x]) {
      const out = new Float64Array(outer * inner);
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < r; k++) {
          for (let i = 0; i < inner; i++) out[o * inner + i] += x[(o * r + k) * inner + i];
        }
      }
      return out;
    },
    backward([x], g) {
      const gx = new Float64Array(x.length);
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < r; k++) {
          for (let i = 0; i < inner; i++) gx[(o * r + k) * inner + i] = g[o * inner + i];
        }
      }
      return [gx];
    },
  };
}

/** Batched matmul with transposes and optional bias (inputs: A, B[, bias]). */
export function refMatmul(
  batch: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  hasBias: boolean,
): RefOp {
  const ia = (b: number, r: number, c: number) => b * m * k + (transA ? c * m + r : r * k + c); // A(r=m, c=k)
  const ib = (b: number, r: number, c: number) => b * k * n + (transB ? c * k + r : r * n + c); // B(r=k, c=n)
  return {
    forward([a, bm, bias]) {
      const out = new Float64Array(batch * m * n);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = hasBias ? bias[j] : 0;
            for (let l = 0; l < k; l++) s += a[ia(b, i, l)] * bm[ib(b, l, j)];
            out[(b * m + i) * n + j] = s;
          }
        }
      }
      return out;
    },
    backward([a, bm], g) {
      const ga = new Float64Array(a.length);
      const gb = new Float64Array(bm.length);
      const gbias = new Float64Array(n);
      for (let b = 0; b < batch; b++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            const gv = g[(b * m + i) * n + j];
            gbias[j] += gv;
            for (let l = 0; l < k; l++) {
              ga[ia(b, i, l)] += gv * bm[ib(b, l, j)];
              gb[ib(b, l, j)] += gv * a[ia(b, i, l)];
            }
          }
        }
      }
      return hasBias ? [ga, gb, gbias] : [ga, gb];
    },
  };
}
