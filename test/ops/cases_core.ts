/** Shared-suite cases of the elementwise, reduction and matmul ops. */
import { add, div, linear, matmul, mul, sub, sum } from "../../src/ops/mod.ts";
import { ELEMENTWISE, REDUCTION } from "../reference/compare.ts";
import { refBinary, refMatmul, refSum } from "../reference/ops.ts";
import type { OpCase } from "./op_harness.ts";

const binary = { add, sub, mul, div } as const;

function binaryCases(): OpCase[] {
  const shapes: [number[], number[]][] = [[[3, 5], [3, 5]], [[2, 3, 7], [7]], [[4, 1, 3], [1, 5, 1]], [
    [300],
    [1],
  ]];
  const out: OpCase[] = [];
  for (const kind of ["add", "sub", "mul", "div"] as const) {
    for (const [sa, sb] of shapes) {
      out.push({
        name: `${kind} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
        inputs: [{ shape: sa }, {
          shape: sb,
          gen: kind === "div"
            ? (n, r) => Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * (0.5 + r()))
            : undefined,
        }],
        gpu: ([a, b]) => binary[kind](a, b),
        ref: refBinary(kind, sa, sb),
        tol: ELEMENTWISE,
      });
    }
  }
  return out;
}

function sumCases(): OpCase[] {
  const cases: [number[], number][] = [[[5, 7], 0], [[5, 7], 1], [[3, 600, 2], 1], [[70000], 0]];
  return cases.map(([shape, axis]) => ({
    name: `sum ${JSON.stringify(shape)} axis ${axis}`,
    inputs: [{ shape }],
    gpu: ([x]) => sum(x, axis),
    ref: refSum(shape, axis),
    tol: REDUCTION,
  }));
}

function matmulCases(): OpCase[] {
  const out: OpCase[] = [];
  const dims: [number, number, number, number][] = [[1, 5, 7, 3], [2, 65, 67, 33], [1, 1, 130, 17], [
    3,
    16,
    16,
    16,
  ]];
  for (const [batch, m, n, k] of dims) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const sa = transA ? [k, m] : [m, k];
        const sb = transB ? [n, k] : [k, n];
        out.push({
          name: `matmul b${batch} ${m}×${n}×${k} tA=${transA} tB=${transB}`,
          inputs: [{ shape: batch > 1 ? [batch, ...sa] : sa }, { shape: batch > 1 ? [batch, ...sb] : sb }],
          gpu: ([a, b]) => matmul(a, b, { transA, transB }),
          ref: refMatmul(batch, m, n, k, transA, transB, false),
          tol: REDUCTION,
        });
      }
    }
  }
  out.push({
    name: "linear [2, 9, 13] → 11 with bias",
    inputs: [{ shape: [2, 9, 13] }, { shape: [11, 13] }, { shape: [11] }],
    gpu: ([x, w, b]) => linear(x, w, b),
    ref: refMatmul(1, 18, 11, 13, false, true, true),
    tol: REDUCTION,
  });
  // Weight gradients with a small output and a long K take the deterministic split-K path (splitKChunk):
  // full chunks plus a ragged tail — 2048-row chunks over 9001 rows, and the 256-row minimum over 1500.
  out.push({
    name: "linear [9001, 24] → 20: weight gradient through split-K (chunk 2048 or less)",
    inputs: [{ shape: [9001, 24] }, { shape: [20, 24] }, { shape: [20] }],
    gpu: ([x, w, b]) => linear(x, w, b),
    ref: refMatmul(1, 9001, 20, 24, false, true, true),
    tol: REDUCTION,
  });
  out.push({
    name: "linear [1500, 48] → 64: weight gradient through split-K (256-row chunks)",
    inputs: [{ shape: [1500, 48] }, { shape: [64, 48] }, { shape: [64] }],
    gpu: ([x, w, b]) => linear(x, w, b),
    ref: refMatmul(1, 1500, 64, 48, false, true, true),
    tol: REDUCTION,
  });
  return out;
}

/** Cases of this file. */
export const coreCases: OpCase[] = [...binaryCases(), ...sumCases(), ...matmulCases()];
