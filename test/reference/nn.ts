/**
 * f64 references (forward and backward) of the neural-network ops: layer norm, GELU/GEGLU, softmax,
 * embedding, dropout, slice/concat/transpose, cross-entropy, MSE.
 *
 * @module
 */
import type { RefOp } from "../ops/op_harness.ts";
import { dropoutMask } from "../../src/ops/philox.ts";

/** erf to ~1e-15 (series for small |x|, continued fraction for the tail via erfc). */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    let sum = 0, term = a, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum) || n < 3) {
      sum += term / (2 * n + 1);
      n++;
      term *= -a * a / n;
      if (n > 200) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - erfcLarge(a));
}

function erfcLarge(a: number): number {
  // Lentz continued fraction for erfc(a), a ≥ 2.5.
  let f = a, c = a, d = 0;
  for (let n = 1; n < 300; n++) {
    const an = n / 2;
    d = a + an * d;
    d = 1 / d;
    c = a + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  // f approximates a + (1/2)/(a + 1/(a + (3/2)/(a + ...))) — erfc(a) = exp(-a²)/√π / f
  return Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF. */
export function phi(x: number): number {
  if (x < -2.5 * Math.SQRT2) return 0.5 * erfcLarge(-x / Math.SQRT2);
  return 0.5 * (1 + erf(x / Math.SQRT2));
}

export const geluRef = (x: number) => x * phi(x);
export const geluGradRef = (x: number) => phi(x) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

/** Layer norm over the last axis (inputs: x [R, D], w [D], b [D]). */
export function refLayerNorm(rows: number, d: number, eps = 1e-5): RefOp {
  const stats = (x: Float64Array, r: number) => {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - m) ** 2;
    v /= d;
    return [m, 1 / Math.sqrt(v + eps)];
  };
  return {
    forward([x, w, b]) {
      const y = new Float64Array(rows * d);
      for (let r = 0; r < rows; r++) {
        const [m, rs] = stats(x, r);
        for (let j = 0; j < d; j++) y[r * d + j] = (x[r * d + j] - m) * rs * w[j] + b[j];
      }
      return y;
    },
    backward([x, w], g) {
      const dx = new Float64Array(rows * d), dw = new Float64Array(d), db = new Float64Array(d);
      for (let r = 0; r < rows; r++) {
        const [m, rs] = stats(x, r);
        let sg = 0, sgx = 0;
        for (let j = 0; j < d; j++) {
          const xh = (x[r * d + j] - m) * rs;
          const gg = g[r * d + j] * w[j];
          sg += gg;
          sgx += gg * xh;
          dw[j] += g[r * d + j] * xh;
          db[j] += g[r * d + j];
        }
        for (let j = 0; j < d; j++) {
          const xh = (x[r * d + j] - m) * rs;
          dx[r * d + j] = rs * (g[r * d + j] * w[j] - sg / d - xh * sgx / d);
        }
      }
      return [dx, dw, db];
    },
  };
}

/** GELU elementwise. */
export const refGelu: RefOp = {
  forward: ([x]) => x.map(geluRef),
  backward: ([x], g) => [x.map((v, i) => g[i] * geluGradRef(v))],
};

/** GEGLU over [R, 2F]. */
export function refGeglu(rows: number, f: number): RefOp {
  return {
    forward([h]) {
      const y = new Float64Array(rows * f);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < f; c++) y[r * f + c] = h[r * 2 * f + c] * geluRef(h[r * 2 * f + f + c]);
      }
      return y;
    },
    backward([h], g) {
      const dh = new Float64Array(h.length);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < f; c++) {
          const a = h[r * 2 * f + c], gg = h[r * 2 * f + f + c];
          dh[r * 2 * f + c] = g[r * f + c] * geluRef(gg);
          dh[r * 2 * f + f + c] = g[r * f + c] * a * geluGradRef(gg);
        }
      }
      return [dh];
    },
  };
}

/** Softmax over the last axis of [R, C]. */
export function refSoftmax(rows: number, c: number): RefOp {
  const fwd = (x: Float64Array) => {
    const y = new Float64Array(rows * c);
    for (let r = 0; r < rows; r++) {
      let m = -Infinity;
      for (let j = 0; j < c; j++) m = Math.max(m, x[r * c + j]);
      let s = 0;
      for (let j = 0; j < c; j++) s += Math.exp(x[r * c + j] - m);
      for (let j = 0; j < c; j++) y[r * c + j] = Math.exp(x[r * c + j] - m) / s;
    }
    return y;
  };
  return {
    forward: ([x]) => fwd(x),
    backward([x], g) {
      const y = fwd(x);
      const dx = new Float64Array(rows * c);
      for (let r = 0; r < rows; r++) {
        let dot = 0;
        for (let j = 0; j < c; j++) dot += g[r * c + j] * y[r * c + j];
        for (let j = 0; j < c; j++) dx[r * c + j] = y[r * c + j] * (g[r * c + j] - dot);
      }
      return [dx];
    },
  };
}

/** Embedding gather (inputs: table [V, D], indices [T] as floats of integers). */
export function refEmbedding(vocab: number, d: number, t: number, paddingIdx = -1): RefOp {
  return {
    forward([table, idx]) {
      const y = new Float64Array(t * d);
      for (let i = 0; i < t; i++) {
        const r = idx[i];
        if (r >= 0 && r < vocab) { for (let j = 0; j < d; j++) y[i * d + j] = table[r * d + j]; }
      }
      return y;
    },
    backward([, idx], g) {
      const dt = new Float64Array(vocab * d);
      for (let i = 0; i < t; i++) {
        const r = idx[i];
        if (r >= 0 && r < vocab && r !== paddingIdx) {
          for (let j = 0; j < d; j++) dt[r * d + j] += g[i * d + j];
        }
      }
      return [dt, null];
    },
  };
}

/** Dropout with the Philox mask of (seed, stream, step, rank). */
export function refDropout(
  n: number,
  p: number,
  seed: number,
  stream: number,
  step: number,
  rank: number,
): RefOp {
  const keep = dropoutMask(n, p, seed, stream, step, rank);
  const s = 1 / Math.fround(1 - p);
  const scale = Math.fround(s);
  return {
    forward: ([x]) => x.map((v, i) => (keep[i] ? v * scale : 0)),
    backward: (_, g) => [g.map((v, i) => (keep[i] ? v * scale : 0))],
  };
}

/** Slice along `axis` of a tensor of `shape`. */
export function refSlice(shape: number[], axis: number, start: number, len: number): RefOp {
  const outer = shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const ax = shape[axis];
  return {
    forward([x]) {
      const y = new Float64Array(outer * len * inner);
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < len; k++) {
          for (let i = 0; i < inner; i++) {
            y[(o * len + k) * inner + i] = x[(o * ax + start + k) * inner + i];
          }
        }
      }
      return y;
    },
    backward([x], g) {
      const dx = new Float64Array(x.length);
      for (let o = 0; o < outer; o++) {
        for (let k = 0; k < len; k++) {
          for (let i = 0; i < inner; i++) {
            dx[(o * ax + start + k) * inner + i] = g[(o * len + k) * inner + i];
          }
        }
      }
      return [dx];
    },
  };
}

/** Concat of tensors of `shapes` along `axis`. */
export function refConcat(shapes: number[][], axis: number): RefOp {
  const outer = shapes[0].slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = shapes[0].slice(axis + 1).reduce((p, d) => p * d, 1);
  const total = shapes.reduce((p, s) => p + s[axis], 0);
  return {
    forward(xs) {
      const y = new Float64Array(outer * total * inner);
      let start = 0;
      xs.forEach((x, t) => {
        const ax = shapes[t][axis];
        for (let o = 0; o < outer; o++) {
          for (let k = 0; k < ax; k++) {
            for (let i = 0; i < inner; i++) {
              y[(o * total + start + k) * inner + i] = x[(o * ax + k) * inner + i];
            }
          }
        }
        start += ax;
      });
      return y;
    },
    backward(xs, g) {
      let start = 0;
      return xs.map((x, t) => {
        const ax = shapes[t][axis];
        const dx = new Float64Array(x.length);
        for (let o = 0; o < outer; o++) {
          for (let k = 0; k < ax; k++) {
            for (let i = 0; i < inner; i++) {
              dx[(o * ax + k) * inner + i] = g[(o * total + start + k) * inner + i];
            }
          }
        }
        start += ax;
        return dx;
      });
    },
  };
}

/** Permutation of axes. */
export function refTranspose(shape: number[], axes: number[]): RefOp {
  const outShape = axes.map((a) => shape[a]);
  const n = shape.reduce((p, d) => p * d, 1);
  const inStrides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const map = new Int32Array(n);
  for (let e = 0; e < n; e++) {
    let rem = e, off = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const idx = rem % outShape[d];
      rem = Math.floor(rem / outShape[d]);
      off += idx * inStrides[axes[d]];
    }
    map[e] = off;
  }
  return {
    forward: ([x]) => Float64Array.from(map, (o) => x[o]),
    backward([x], g) {
      const dx = new Float64Array(x.length);
      map.forEach((o, e) => (dx[o] = g[e]));
      return [dx];
    },
  };
}

/** Weighted-mean cross-entropy (inputs: logits [R, C], labels [R] (as numbers), weights [R]). */
export function refCrossEntropy(rows: number, c: number): RefOp {
  return {
    forward([z, y, w]) {
      let num = 0, den = 0;
      for (let r = 0; r < rows; r++) {
        den += w[r];
        const lab = y[r];
        if (lab < 0 || lab >= c) continue;
        let m = -Infinity;
        for (let j = 0; j < c; j++) m = Math.max(m, z[r * c + j]);
        let s = 0;
        for (let j = 0; j < c; j++) s += Math.exp(z[r * c + j] - m);
        num += w[r] * (m + Math.log(s) - z[r * c + lab]);
      }
      return Float64Array.of(num / den);
    },
    backward([z, y, w], g) {
      let den = 0;
      for (let r = 0; r < rows; r++) den += w[r];
      const dz = new Float64Array(rows * c);
      for (let r = 0; r < rows; r++) {
        const lab = y[r];
        if (lab < 0 || lab >= c) continue;
        let m = -Infinity;
        for (let j = 0; j < c; j++) m = Math.max(m, z[r * c + j]);
        let s = 0;
        for (let j = 0; j < c; j++) s += Math.exp(z[r * c + j] - m);
        for (let j = 0; j < c; j++) {
          dz[r * c + j] = g[0] * w[r] / den * (Math.exp(z[r * c + j] - m) / s - (j === lab ? 1 : 0));
        }
      }
      return [dz, null, null];
    },
  };
}

/** Weighted MSE (inputs: pred [R, C], target [R, C], weights [R]). */
export function refMse(rows: number, c: number): RefOp {
  return {
    forward([p, t, w]) {
      let num = 0, den = 0;
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < c; j++) s += (p[r * c + j] - t[r * c + j]) ** 2;
        num += w[r] * s / c;
        den += w[r];
      }
      return Float64Array.of(num / den);
    },
    backward([p, t, w], g) {
      let den = 0;
      for (let r = 0; r < rows; r++) den += w[r];
      const dp = new Float64Array(rows * c), dt = new Float64Array(rows * c);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < c; j++) {
          const v = g[0] * w[r] / den * 2 * (p[r * c + j] - t[r * c + j]) / c;
          dp[r * c + j] = v;
          dt[r * c + j] = -v;
        }
      }
      return [dp, dt, null];
    },
  };
}
