/**
 * f64 reference of the POYO forward pass and loss (the contract, dropout off), composed from the op
 * references. Gradients are checked against central finite differences of this function.
 *
 * @module
 */
import type { PoyoBatch } from "../../src/data/batch.ts";
import type { ResolvedPoyoKwargs } from "../../src/models/poyo_kwargs.ts";
import type { PoyoVocabulary } from "../../src/models/poyo.ts";
import { refAttentionForward } from "./attention.ts";
import { geluRef } from "./nn.ts";

type W = Map<string, Float64Array>;

function linear(
  x: Float64Array,
  rows: number,
  inF: number,
  w: Float64Array,
  b: Float64Array | undefined,
  out: number,
) {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

function layerNorm(x: Float64Array, rows: number, d: number, w: Float64Array, b: Float64Array) {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[r * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[r * d + j] - m) ** 2;
    const rs = 1 / Math.sqrt(v / d + 1e-5);
    for (let j = 0; j < d; j++) y[r * d + j] = (x[r * d + j] - m) * rs * w[j] + b[j];
  }
  return y;
}

function addInPlace(a: Float64Array, b: Float64Array) {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/** Logits [B·Q, C] and the weighted-mean cross-entropy of the contract, in f64. */
export function refPoyoLoss(
  k: ResolvedPoyoKwargs,
  vocab: PoyoVocabulary,
  w: W,
  batch: PoyoBatch,
): { logits: Float64Array; loss: number } {
  const d = k.dim;
  const B = batch.batchSize, N = batch.numTokens, P = batch.patch, Q = batch.numQueries;
  const L = batch.latentTime.length;
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`reference: missing ${n}`);
    return t;
  };
  const lin = (x: Float64Array, rows: number, inF: number, name: string, out: number, bias = true) =>
    linear(x, rows, inF, get(`${name}.weight`), bias ? get(`${name}.bias`) : undefined, out);
  const ln = (x: Float64Array, rows: number, name: string) =>
    layerNorm(x, rows, d, get(`${name}.weight`), get(`${name}.bias`));
  const ffn = (x: Float64Array, rows: number, name: string) => {
    const h = lin(ln(x, rows, `${name}.norm`), rows, d, `${name}.w1`, 8 * d);
    const f = 4 * d;
    const g = new Float64Array(rows * f);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < f; c++) g[r * f + c] = h[r * 2 * f + c] * geluRef(h[r * 2 * f + f + c]);
    }
    return lin(g, rows, f, `${name}.w2`, d);
  };
  // Tokens.
  const x = new Float64Array(B * N * d);
  const value = Float64Array.from(batch.value);
  vocab.modalities.forEach((m, mi) => {
    const proj = lin(value, B * N, P, `value_map.${m}`, d / 2);
    for (let t = 0; t < B * N; t++) {
      if (batch.modality[t] !== mi || batch.unit[t] === 0) continue;
      for (let j = 0; j < d / 2; j++) x[t * d + j] += proj[t * (d / 2) + j];
    }
  });
  const unitEmb = get("unit_emb.weight");
  for (let t = 0; t < B * N; t++) {
    for (let j = 0; j < d / 2; j++) x[t * d + d / 2 + j] = unitEmb[batch.unit[t] * (d / 2) + j];
  }
  const latentEmb = get("latent_emb.weight");
  const z = new Float64Array(B * L * d);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < L; j++) {
      z.set(latentEmb.subarray((j % k.numLatents) * d, (j % k.numLatents + 1) * d), (b * L + j) * d);
    }
  }
  const sessionEmb = get("session_emb.weight");
  const y = new Float64Array(B * Q * d);
  for (let i = 0; i < B * Q; i++) {
    y.set(sessionEmb.subarray(batch.querySession[i] * d, (batch.querySession[i] + 1) * d), i * d);
  }

  const latentTime = Float64Array.from(batch.latentTime);
  const full = new Float64Array(B).fill(L);
  const cross = (
    name: string,
    query: Float64Array,
    lq: number,
    ctx: Float64Array,
    lk: number,
    qt: Float64Array,
    kt: Float64Array,
    kvLen: Float64Array,
    rotateValue: boolean,
    qShared: boolean,
    kShared: boolean,
  ) => {
    const hd = k.crossHeads * k.dimHead;
    const q = lin(ln(query, B * lq, `${name}.norm`), B * lq, d, `${name}.to_q`, hd, false);
    const kv = lin(ln(ctx, B * lk, `${name}.norm_context`), B * lk, d, `${name}.to_kv`, 2 * hd, false);
    const a = refAttentionForward(
      {
        batch: B,
        lq,
        lk,
        heads: k.crossHeads,
        dimHead: k.dimHead,
        rotateValue,
        tMin: k.tMin,
        tMax: k.tMax,
        qWidth: hd,
        qOff: 0,
        kvWidth: 2 * hd,
        kOff: 0,
        vOff: hd,
        qTimeShared: qShared,
        kTimeShared: kShared,
      },
      q,
      kv,
      qt,
      kt,
      kvLen,
    );
    return lin(a, B * lq, hd, `${name}.to_out`, d);
  };
  addInPlace(
    z,
    cross(
      "enc_atn",
      z,
      L,
      x,
      N,
      latentTime,
      Float64Array.from(batch.time),
      Float64Array.from(batch.kvLen),
      true,
      true,
      false,
    ),
  );
  addInPlace(z, ffn(z, B * L, "enc_ffn"));
  for (let i = 0; i < k.depth; i++) {
    const hd = k.selfHeads * k.dimHead;
    const qkv = lin(ln(z, B * L, `proc.${i}.atn.norm`), B * L, d, `proc.${i}.atn.to_qkv`, 3 * hd, false);
    const a = refAttentionForward(
      {
        batch: B,
        lq: L,
        lk: L,
        heads: k.selfHeads,
        dimHead: k.dimHead,
        rotateValue: true,
        tMin: k.tMin,
        tMax: k.tMax,
        qWidth: 3 * hd,
        qOff: 0,
        kvWidth: 3 * hd,
        kOff: hd,
        vOff: 2 * hd,
        qTimeShared: true,
        kTimeShared: true,
      },
      qkv,
      qkv,
      latentTime,
      latentTime,
      full,
    );
    addInPlace(z, lin(a, B * L, hd, `proc.${i}.atn.to_out`, d));
    addInPlace(z, ffn(z, B * L, `proc.${i}.ffn`));
  }
  addInPlace(
    y,
    cross("dec_atn", y, Q, z, L, Float64Array.from(batch.queryTime), latentTime, full, false, false, true),
  );
  addInPlace(y, ffn(y, B * Q, "dec_ffn"));
  const C = k.numClasses;
  const logits = lin(y, B * Q, d, "readout", C);
  let num = 0, den = 0;
  for (let r = 0; r < B * Q; r++) {
    den += batch.weight[r];
    const lab = batch.label[r];
    if (lab < 0 || lab >= C) continue;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, logits[r * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(logits[r * C + c] - m);
    num += batch.weight[r] * (m + Math.log(s) - logits[r * C + lab]);
  }
  return { logits, loss: num / den };
}
