/** Shared-suite cases of the neural-network ops. */
import {
  concat,
  crossEntropy,
  dropout,
  embedding,
  geglu,
  gelu,
  layerNorm,
  mse,
  slice,
  softmax,
  streamId,
  transpose,
} from "../../src/ops/mod.ts";
import { ELEMENTWISE, REDUCTION } from "../reference/compare.ts";
import {
  refConcat,
  refCrossEntropy,
  refDropout,
  refEmbedding,
  refGeglu,
  refGelu,
  refLayerNorm,
  refMse,
  refSlice,
  refSoftmax,
  refTranspose,
} from "../reference/nn.ts";
import type { OpCase } from "./op_harness.ts";

const wide = (n: number, r: () => number) => Float32Array.from({ length: n }, () => (r() - 0.5) * 8);

function layerNormCases(): OpCase[] {
  return ([[3, 8], [5, 64], [2, 130], [300, 7]] as const).map(([rows, d]) => ({
    name: `layerNorm [${rows}, ${d}]`,
    inputs: [{ shape: [rows, d], gen: wide }, { shape: [d] }, { shape: [d] }],
    gpu: ([x, w, b]) => layerNorm(x, w, b),
    ref: refLayerNorm(rows, d),
    tol: ELEMENTWISE,
    gradTol: REDUCTION,
  }));
}

function activationCases(): OpCase[] {
  return [
    {
      name: "gelu [1000] in [-8, 8)",
      inputs: [{ shape: [1000], gen: (n, r) => Float32Array.from({ length: n }, () => (r() - 0.5) * 16) }],
      gpu: ([x]) => gelu(x),
      ref: refGelu,
      tol: ELEMENTWISE,
    },
    {
      name: "geglu [7, 2×5]",
      inputs: [{ shape: [7, 10], gen: wide }],
      gpu: ([h]) => geglu(h),
      ref: refGeglu(7, 5),
      tol: ELEMENTWISE,
    },
    {
      name: "geglu [3, 4, 2×33]",
      inputs: [{ shape: [3, 4, 66], gen: wide }],
      gpu: ([h]) => geglu(h),
      ref: refGeglu(12, 33),
      tol: ELEMENTWISE,
    },
    {
      name: "softmax [4, 3]",
      inputs: [{ shape: [4, 3], gen: wide }],
      gpu: ([x]) => softmax(x),
      ref: refSoftmax(4, 3),
      tol: ELEMENTWISE,
    },
    {
      name: "softmax [3, 200]",
      inputs: [{ shape: [3, 200], gen: wide }],
      gpu: ([x]) => softmax(x),
      ref: refSoftmax(3, 200),
      tol: ELEMENTWISE,
    },
  ];
}

function embeddingCases(): OpCase[] {
  const out: OpCase[] = [];
  for (const [vocab, d, t, pad] of [[5, 4, 9, -1], [11, 33, 40, 0], [3, 8, 300, 0]] as const) {
    const host = Int32Array.from({ length: t }, (_, i) => (i * 7 + (i >> 2)) % vocab);
    out.push({
      name: `embedding V=${vocab} D=${d} T=${t} padding=${pad}`,
      inputs: [{ shape: [vocab, d] }, { shape: [t], dtype: "i32", gen: () => host }],
      gpu: ([table, idx]) => embedding(table, { indices: idx, host }, { paddingIdx: pad }),
      ref: refEmbedding(vocab, d, t, pad),
      tol: ELEMENTWISE,
      gradTol: REDUCTION,
      // The padding row's gradient is zero by definition (PyTorch padding_idx), not the derivative.
      skipFiniteDifferences: pad >= 0,
    });
  }
  return out;
}

function dropoutCases(): OpCase[] {
  return ([[1000, 0.2], [37, 0.5], [4096, 0.4]] as const).map(([n, p]) => ({
    name: `dropout n=${n} p=${p}`,
    inputs: [{ shape: [n] }],
    gpu: ([x]) => {
      x.gpu.setStepState({ step: 17, seed: 1234, rank: 1 });
      return dropout(x, p, "test.site");
    },
    ref: refDropout(n, p, 1234, streamId("test.site"), 17, 1),
    tol: ELEMENTWISE,
    skipFiniteDifferences: true, // piecewise linear: exact, and FD would cross no kinks anyway
  }));
}

function shapeCases(): OpCase[] {
  return [
    {
      name: "slice [4, 10, 3] axis 1 [2, 7)",
      inputs: [{ shape: [4, 10, 3] }],
      gpu: ([x]) => slice(x, 1, 2, 5),
      ref: refSlice([4, 10, 3], 1, 2, 5),
      tol: ELEMENTWISE,
    },
    {
      name: "slice [6, 9] axis -1 [0, 4)",
      inputs: [{ shape: [6, 9] }],
      gpu: ([x]) => slice(x, -1, 0, 4),
      ref: refSlice([6, 9], 1, 0, 4),
      tol: ELEMENTWISE,
    },
    {
      name: "concat [2,3,4] ++ [2,5,4] axis 1",
      inputs: [{ shape: [2, 3, 4] }, { shape: [2, 5, 4] }],
      gpu: ([a, b]) => concat([a, b], 1),
      ref: refConcat([[2, 3, 4], [2, 5, 4]], 1),
      tol: ELEMENTWISE,
    },
    {
      name: "concat [7, 3] ++ [7, 3] ++ [7, 1] axis -1",
      inputs: [{ shape: [7, 3] }, { shape: [7, 3] }, { shape: [7, 1] }],
      gpu: ([a, b, c]) => concat([a, b, c], -1),
      ref: refConcat([[7, 3], [7, 3], [7, 1]], 1),
      tol: ELEMENTWISE,
    },
    {
      name: "transpose [2,3,4,5] → (0,2,1,3)",
      inputs: [{ shape: [2, 3, 4, 5] }],
      gpu: ([x]) => transpose(x, [0, 2, 1, 3]),
      ref: refTranspose([2, 3, 4, 5], [0, 2, 1, 3]),
      tol: ELEMENTWISE,
    },
    {
      name: "transpose [6, 5] → (1, 0)",
      inputs: [{ shape: [6, 5] }],
      gpu: ([x]) => transpose(x, [1, 0]),
      ref: refTranspose([6, 5], [1, 0]),
      tol: ELEMENTWISE,
    },
  ];
}

function lossCases(): OpCase[] {
  const out: OpCase[] = [];
  for (const [rows, c] of [[6, 3], [70, 11]] as const) {
    out.push({
      name: `crossEntropy [${rows}, ${c}] with ignored rows`,
      inputs: [
        { shape: [rows, c], gen: wide },
        {
          shape: [rows],
          dtype: "i32",
          gen: (n) => Int32Array.from({ length: n }, (_, i) => (i % 5 === 4 ? -1 : (i * 3) % c)),
        },
        { shape: [rows], grad: false, gen: (n, r) => Float32Array.from({ length: n }, () => 0.25 + r()) },
      ],
      gpu: ([z, y, w]) => crossEntropy(z, y, w),
      ref: refCrossEntropy(rows, c),
      tol: REDUCTION,
    });
  }
  out.push({
    name: "mse [9, 4]",
    inputs: [{ shape: [9, 4] }, { shape: [9, 4] }, {
      shape: [9],
      grad: false,
      gen: (n, r) => Float32Array.from({ length: n }, () => r()),
    }],
    gpu: ([p, t, w]) => mse(p, t, w),
    ref: refMse(9, 4),
    tol: REDUCTION,
  });
  return out;
}

/** Cases of this file. */
export const nnCases: OpCase[] = [
  ...layerNormCases(),
  ...activationCases(),
  ...embeddingCases(),
  ...dropoutCases(),
  ...shapeCases(),
  ...lossCases(),
];
