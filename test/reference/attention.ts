/**
 * f64 reference of the rotary attention op and the rotary embedding (forward and backward), written the
 * straightforward way: rotate, scores, mask, softmax, weighted sum, inverse rotation. Only the rotation
 * angles come from the f32 formula of the contract (`rotaryAngleF32`), since that rounding is part of
 * the model's definition; everything else is f64.
 *
 * @module
 */
import { rotaryAngleF32, rotaryPeriods } from "../../src/ops/rotary.ts";
import type { RefOp } from "../ops/op_harness.ts";

/** Geometry and packing of a reference attention problem. */
export interface RefAttentionShape {
  batch: number;
  lq: number;
  lk: number;
  heads: number;
  dimHead: number;
  rotateValue: boolean;
  tMin: number;
  tMax: number;
  /** Width of the q tensor and the column offset of q in it. */
  qWidth: number;
  qOff: number;
  /** Width of the k/v tensor and the column offsets of k and v in it. */
  kvWidth: number;
  kOff: number;
  vOff: number;
  /** Times given as [L] (shared by the batch) instead of [B, L]. */
  qTimeShared?: boolean;
  kTimeShared?: boolean;
}

/** Rotates `x[off .. off+dh)` in place by time `t` (sign −1: by −t). */
export function refRotate(
  x: Float64Array,
  off: number,
  t: number,
  periods: Float32Array,
  sign: number,
): void {
  for (let i = 0; i < periods.length; i++) {
    const theta = rotaryAngleF32(t, periods[i]);
    const c = Math.cos(theta);
    const s = sign * Math.sin(theta);
    const a = x[off + 2 * i];
    const b = x[off + 2 * i + 1];
    x[off + 2 * i] = a * c - b * s;
    x[off + 2 * i + 1] = b * c + a * s;
  }
}

interface Head {
  q: Float64Array[]; // rotated queries [Lq][dh]
  k: Float64Array[]; // rotated keys [Lk][dh]
  v: Float64Array[]; // (rotated) values [Lk][dh]
  p: Float64Array[]; // probabilities [Lq][n]
  n: number; // valid keys
}

function time(times: Float64Array, shared: boolean | undefined, len: number, b: number, i: number): number {
  return shared ? times[i] : times[b * len + i];
}

function headRows(
  s: RefAttentionShape,
  src: Float64Array,
  width: number,
  off: number,
  len: number,
  b: number,
  h: number,
  times: Float64Array,
  shared: boolean | undefined,
  rotate: boolean,
  periods: Float32Array,
): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let i = 0; i < len; i++) {
    const start = (b * len + i) * width + off + h * s.dimHead;
    const x = Float64Array.from(src.subarray(start, start + s.dimHead));
    if (rotate) refRotate(x, 0, time(times, shared, len, b, i), periods, 1);
    rows.push(x);
  }
  return rows;
}

function forwardHead(
  s: RefAttentionShape,
  q: Float64Array,
  kv: Float64Array,
  qTime: Float64Array,
  kTime: Float64Array,
  kvLen: Float64Array,
  b: number,
  h: number,
  periods: Float32Array,
): Head {
  const qr = headRows(s, q, s.qWidth, s.qOff, s.lq, b, h, qTime, s.qTimeShared, true, periods);
  const kr = headRows(s, kv, s.kvWidth, s.kOff, s.lk, b, h, kTime, s.kTimeShared, true, periods);
  const vr = headRows(s, kv, s.kvWidth, s.vOff, s.lk, b, h, kTime, s.kTimeShared, s.rotateValue, periods);
  const n = Math.max(0, Math.min(s.lk, kvLen[b]));
  const scale = 1 / Math.sqrt(s.dimHead);
  const p = qr.map((qi) => {
    const scores = new Float64Array(n);
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      let dot = 0;
      for (let d = 0; d < s.dimHead; d++) dot += qi[d] * kr[j][d];
      scores[j] = dot * scale;
      max = Math.max(max, scores[j]);
    }
    let sum = 0;
    for (let j = 0; j < n; j++) sum += scores[j] = Math.exp(scores[j] - max);
    for (let j = 0; j < n; j++) scores[j] /= sum;
    return scores;
  });
  return { q: qr, k: kr, v: vr, p, n };
}

/** Output [B, Lq, heads·dh] of the reference attention. */
export function refAttentionForward(
  s: RefAttentionShape,
  q: Float64Array,
  kv: Float64Array,
  qTime: Float64Array,
  kTime: Float64Array,
  kvLen: Float64Array,
): Float64Array {
  const periods = rotaryPeriods(s.dimHead, s.tMin, s.tMax);
  const width = s.heads * s.dimHead;
  const out = new Float64Array(s.batch * s.lq * width);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const hd = forwardHead(s, q, kv, qTime, kTime, kvLen, b, h, periods);
      for (let i = 0; i < s.lq; i++) {
        const o = new Float64Array(s.dimHead);
        for (let j = 0; j < hd.n; j++) {
          for (let d = 0; d < s.dimHead; d++) o[d] += hd.p[i][j] * hd.v[j][d];
        }
        if (s.rotateValue) refRotate(o, 0, time(qTime, s.qTimeShared, s.lq, b, i), periods, -1);
        out.set(o, (b * s.lq + i) * width + h * s.dimHead);
      }
    }
  }
  return out;
}

/** Gradients of Σ out·gradOut with respect to the q tensor and the k/v tensor. */
export function refAttentionBackward(
  s: RefAttentionShape,
  q: Float64Array,
  kv: Float64Array,
  qTime: Float64Array,
  kTime: Float64Array,
  kvLen: Float64Array,
  gradOut: Float64Array,
): { dq: Float64Array; dkv: Float64Array } {
  const periods = rotaryPeriods(s.dimHead, s.tMin, s.tMax);
  const width = s.heads * s.dimHead;
  const dh = s.dimHead;
  const scale = 1 / Math.sqrt(dh);
  const dq = new Float64Array(q.length);
  const dkv = new Float64Array(kv.length);
  for (let b = 0; b < s.batch; b++) {
    for (let h = 0; h < s.heads; h++) {
      const hd = forwardHead(s, q, kv, qTime, kTime, kvLen, b, h, periods);
      const dk = hd.k.map(() => new Float64Array(dh));
      const dv = hd.k.map(() => new Float64Array(dh));
      for (let i = 0; i < s.lq; i++) {
        const tq = time(qTime, s.qTimeShared, s.lq, b, i);
        const start = (b * s.lq + i) * width + h * dh;
        const dO = Float64Array.from(gradOut.subarray(start, start + dh));
        if (s.rotateValue) refRotate(dO, 0, tq, periods, 1); // (R(−t))ᵀ = R(t)
        const dp = new Float64Array(hd.n);
        let rowDot = 0;
        for (let j = 0; j < hd.n; j++) {
          for (let d = 0; d < dh; d++) {
            dp[j] += dO[d] * hd.v[j][d];
            dv[j][d] += hd.p[i][j] * dO[d];
          }
          rowDot += hd.p[i][j] * dp[j];
        }
        const dqi = new Float64Array(dh);
        for (let j = 0; j < hd.n; j++) {
          const ds = hd.p[i][j] * (dp[j] - rowDot) * scale;
          for (let d = 0; d < dh; d++) {
            dqi[d] += ds * hd.k[j][d];
            dk[j][d] += ds * hd.q[i][d];
          }
        }
        refRotate(dqi, 0, tq, periods, -1);
        const qStart = (b * s.lq + i) * s.qWidth + s.qOff + h * dh;
        for (let d = 0; d < dh; d++) dq[qStart + d] += dqi[d];
      }
      for (let j = 0; j < s.lk; j++) {
        const tk = time(kTime, s.kTimeShared, s.lk, b, j);
        refRotate(dk[j], 0, tk, periods, -1);
        if (s.rotateValue) refRotate(dv[j], 0, tk, periods, -1);
        const row = (b * s.lk + j) * s.kvWidth + h * dh;
        for (let d = 0; d < dh; d++) {
          dkv[row + s.kOff + d] += dk[j][d];
          dkv[row + s.vOff + d] += dv[j][d];
        }
      }
    }
  }
  return { dq, dkv };
}

/**
 * The attention as a {@linkcode RefOp} over the suite's inputs: self-attention `[qkv, qTime, kTime?,
 * kvLen]` (q, k, v all in input 0; the time is input 1 for both unless `separateKeyTime`), or
 * cross-attention `[q, kv, qTime, kTime, kvLen]`.
 */
export function refAttention(s: RefAttentionShape, selfAttention: boolean): RefOp {
  const split = (inputs: Float64Array[]) =>
    selfAttention
      ? { q: inputs[0], kv: inputs[0], qt: inputs[1], kt: inputs[1], len: inputs[2] }
      : { q: inputs[0], kv: inputs[1], qt: inputs[2], kt: inputs[3], len: inputs[4] };
  return {
    forward(inputs) {
      const x = split(inputs);
      return refAttentionForward(s, x.q, x.kv, x.qt, x.kt, x.len);
    },
    backward(inputs, g) {
      const x = split(inputs);
      const { dq, dkv } = refAttentionBackward(s, x.q, x.kv, x.qt, x.kt, x.len, g);
      if (selfAttention) {
        for (let i = 0; i < dq.length; i++) dq[i] += dkv[i];
        return [dq, null, null];
      }
      return [dq, dkv, null, null, null];
    },
  };
}

/** `rotaryEmbed` over [x [B, L, heads·dh], time [B, L] or [L]]; the backward rotates the other way. */
export function refRotaryEmbed(
  batch: number,
  len: number,
  heads: number,
  dimHead: number,
  tMin: number,
  tMax: number,
  inverse: boolean,
  timeShared: boolean,
): RefOp {
  const periods = rotaryPeriods(dimHead, tMin, tMax);
  const apply = (x: Float64Array, times: Float64Array, sign: number) => {
    const out = Float64Array.from(x);
    for (let b = 0; b < batch; b++) {
      for (let l = 0; l < len; l++) {
        const t = timeShared ? times[l] : times[b * len + l];
        for (let h = 0; h < heads; h++) {
          refRotate(out, ((b * len + l) * heads + h) * dimHead, t, periods, sign);
        }
      }
    }
    return out;
  };
  const sign = inverse ? -1 : 1;
  return {
    forward: ([x, t]) => apply(x, t, sign),
    backward: ([_x, t], g) => [apply(g, t, -sign), null],
  };
}
