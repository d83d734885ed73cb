/**
 * Shared-suite cases of the rotary attention op (self- and cross-attention, ragged sizes, kvLen edge
 * cases, split keys, small tiles), each run by the flash kernels and by the materialized path (the
 * flash-only options — tiles, key splits, subgroups — dropped), and of the standalone rotary embedding.
 */
import { rotaryAttention } from "../../src/ops/attention.ts";
import type { AttentionTiles } from "../../src/ops/attention_codegen.ts";
import type { AttentionImplementation } from "../../src/ops/attention_selection.ts";
import { rotaryEmbed } from "../../src/ops/rotary.ts";
import { ELEMENTWISE, randomF32, REDUCTION } from "../reference/compare.ts";
import { refAttention, refRotaryEmbed } from "../reference/attention.ts";
import type { InputSpec, OpCase } from "./op_harness.ts";

const T_MIN = 1e-4;
const T_MAX = 2.0627;

/** Times in seconds, uniform in [0, 4) (f32). */
const times = (shape: number[]): InputSpec => ({
  shape,
  grad: false,
  gen: (n, r) => randomF32(n, r, 0, 4),
});

const lengths = (values: number[]): InputSpec => ({
  shape: [values.length],
  dtype: "i32",
  gen: () => Int32Array.from(values),
});

interface SelfCase {
  batch: number;
  len: number;
  heads: number;
  dimHead: number;
  rotateValue: boolean;
  kvLen: number[];
  sharedTime?: boolean;
  tiles?: Partial<AttentionTiles>;
  implementation?: AttentionImplementation;
  note?: string;
}

function selfCase(c: SelfCase): OpCase {
  const w = c.heads * c.dimHead;
  return {
    name: `rotaryAttention self B${c.batch} L${c.len} h${c.heads} dh${c.dimHead} rotV=${c.rotateValue} ` +
      `kvLen=${JSON.stringify(c.kvLen)}${c.note ? ` ${c.note}` : ""} [${c.implementation ?? "auto"}]`,
    inputs: [
      { shape: [c.batch, c.len, 3 * w] },
      times(c.sharedTime ? [c.len] : [c.batch, c.len]),
      lengths(c.kvLen),
    ],
    gpu: ([qkv, t, kvLen]) =>
      rotaryAttention({
        q: { tensor: qkv, colOffset: 0 },
        k: { tensor: qkv, colOffset: w },
        v: { tensor: qkv, colOffset: 2 * w },
        heads: c.heads,
        dimHead: c.dimHead,
        qTime: t,
        kTime: t,
        kvLen,
        rotateValue: c.rotateValue,
        tMin: T_MIN,
        tMax: T_MAX,
        tiles: c.tiles,
        implementation: c.implementation,
      }),
    ref: refAttention({
      batch: c.batch,
      lq: c.len,
      lk: c.len,
      heads: c.heads,
      dimHead: c.dimHead,
      rotateValue: c.rotateValue,
      tMin: T_MIN,
      tMax: T_MAX,
      qWidth: 3 * w,
      qOff: 0,
      kvWidth: 3 * w,
      kOff: w,
      vOff: 2 * w,
      qTimeShared: c.sharedTime,
      kTimeShared: c.sharedTime,
    }, true),
    tol: REDUCTION,
  };
}

interface CrossCase {
  batch: number;
  lq: number;
  lk: number;
  heads: number;
  dimHead: number;
  rotateValue: boolean;
  kvLen: number[];
  /** Store v before k in the kv tensor. */
  valueFirst?: boolean;
  /** Extra (unused) columns before q in the q tensor. */
  qPad?: number;
  sharedQueryTime?: boolean;
  keysPerSplit?: number;
  tiles?: Partial<AttentionTiles>;
  subgroups?: boolean;
  implementation?: AttentionImplementation;
  note?: string;
}

function crossCase(c: CrossCase): OpCase {
  const w = c.heads * c.dimHead;
  const qPad = c.qPad ?? 0;
  const kOff = c.valueFirst ? w : 0;
  const vOff = c.valueFirst ? 0 : w;
  return {
    name: `rotaryAttention cross B${c.batch} Lq${c.lq} Lk${c.lk} h${c.heads} dh${c.dimHead} ` +
      `rotV=${c.rotateValue} kvLen=${JSON.stringify(c.kvLen)}${c.note ? ` ${c.note}` : ""} ` +
      `[${c.implementation ?? "auto"}]`,
    inputs: [
      { shape: [c.batch, c.lq, qPad + w] },
      { shape: [c.batch, c.lk, 2 * w] },
      times(c.sharedQueryTime ? [c.lq] : [c.batch, c.lq]),
      times([c.batch, c.lk]),
      lengths(c.kvLen),
    ],
    gpu: ([q, kv, qt, kt, kvLen]) =>
      rotaryAttention({
        q: { tensor: q, colOffset: qPad },
        k: { tensor: kv, colOffset: kOff },
        v: { tensor: kv, colOffset: vOff },
        heads: c.heads,
        dimHead: c.dimHead,
        qTime: qt,
        kTime: kt,
        kvLen,
        rotateValue: c.rotateValue,
        tMin: T_MIN,
        tMax: T_MAX,
        keysPerSplit: c.keysPerSplit,
        tiles: c.tiles,
        subgroups: c.subgroups,
        implementation: c.implementation,
      }),
    ref: refAttention({
      batch: c.batch,
      lq: c.lq,
      lk: c.lk,
      heads: c.heads,
      dimHead: c.dimHead,
      rotateValue: c.rotateValue,
      tMin: T_MIN,
      tMax: T_MAX,
      qWidth: qPad + w,
      qOff: qPad,
      kvWidth: 2 * w,
      kOff,
      vOff,
      qTimeShared: c.sharedQueryTime,
    }, false),
    tol: REDUCTION,
  };
}

/** Tiny tiles: many blocks per axis at test sizes. */
const SMALL_TILES: AttentionTiles = {
  forward: { tx: 2, ty: 2, rows: 4, cols: 4 },
  backwardKv: { tx: 2, ty: 2, rows: 2, cols: 2 },
  backwardQ: { tx: 2, ty: 2, rows: 2, cols: 2 },
};

/** The flash-path cases; each also runs materialized (flash-only options dropped). */
const SELF_CASES: SelfCase[] = [
  { batch: 2, len: 37, heads: 2, dimHead: 16, rotateValue: true, kvLen: [37, 20] },
  { batch: 3, len: 19, heads: 3, dimHead: 8, rotateValue: false, kvLen: [19, 1, 0] },
  { batch: 1, len: 45, heads: 1, dimHead: 64, rotateValue: true, kvLen: [45], sharedTime: true },
  {
    batch: 2,
    len: 11,
    heads: 2,
    dimHead: 8,
    rotateValue: true,
    kvLen: [7, 11],
    tiles: SMALL_TILES,
    note: "small tiles",
  },
];

const CROSS_CASES: CrossCase[] = [
  { batch: 2, lq: 33, lk: 45, heads: 1, dimHead: 64, rotateValue: true, kvLen: [45, 17] },
  {
    batch: 2,
    lq: 9,
    lk: 130,
    heads: 2,
    dimHead: 16,
    rotateValue: false,
    kvLen: [100, 130],
    keysPerSplit: 32,
    note: "split keys",
  },
  {
    batch: 3,
    lq: 6,
    lk: 21,
    heads: 2,
    dimHead: 8,
    rotateValue: true,
    kvLen: [0, 5, 21],
    valueFirst: true,
    qPad: 4,
    sharedQueryTime: true,
    note: "v before k, padded q",
  },
  {
    batch: 2,
    lq: 13,
    lk: 29,
    heads: 1,
    dimHead: 16,
    rotateValue: true,
    kvLen: [29, 3],
    keysPerSplit: 8,
    tiles: SMALL_TILES,
    note: "small tiles, split keys",
  },
  {
    batch: 2,
    lq: 21,
    lk: 40,
    heads: 2,
    dimHead: 16,
    rotateValue: true,
    kvLen: [40, 26],
    subgroups: false,
    note: "row statistics through workgroup memory",
  },
];

/**
 * Materialized-only cases: rows longer than the softmax workgroup (300 keys > 128 threads), and products
 * big enough for the generated matmul kernel (≥ 64³ multiply-adds, K ≥ 16).
 */
const MATERIALIZED_CASES: (SelfCase | CrossCase)[] = [
  { batch: 2, lq: 70, lk: 300, heads: 2, dimHead: 64, rotateValue: true, kvLen: [300, 129] },
  { batch: 2, len: 67, heads: 3, dimHead: 32, rotateValue: false, kvLen: [0, 67] },
];

function attentionCaseList(): OpCase[] {
  const materialized = { implementation: "materialized", tiles: undefined } as const;
  // A note about flash-only options does not apply to the materialized run.
  const note = (c: SelfCase | CrossCase) =>
    c.tiles || ("keysPerSplit" in c && c.keysPerSplit) || ("subgroups" in c && c.subgroups !== undefined)
      ? undefined
      : c.note;
  return [
    ...SELF_CASES.map((c) => selfCase({ ...c, implementation: "flash" })),
    ...CROSS_CASES.map((c) => crossCase({ ...c, implementation: "flash" })),
    ...SELF_CASES.map((c) => selfCase({ ...c, ...materialized, note: note(c) })),
    ...CROSS_CASES.map((c) =>
      crossCase({ ...c, ...materialized, keysPerSplit: undefined, subgroups: undefined, note: note(c) })
    ),
    ...MATERIALIZED_CASES.map((c) =>
      "len" in c ? selfCase({ ...c, ...materialized }) : crossCase({ ...c, ...materialized })
    ),
  ];
}

function rotaryCases(): OpCase[] {
  return [
    [2, 5, 2, 16, false, false],
    [1, 7, 1, 64, true, true],
  ].map(([batch, len, heads, dimHead, inverse, shared]) => {
    const [b, l, h, dh] = [batch, len, heads, dimHead] as number[];
    return {
      name: `rotaryEmbed B${b} L${l} h${h} dh${dh} inverse=${inverse} sharedTime=${shared}`,
      inputs: [{ shape: [b, l, h * dh] }, times(shared ? [l] : [b, l])],
      gpu: ([x, t]) =>
        rotaryEmbed(x, t, { heads: h, dimHead: dh, tMin: T_MIN, tMax: T_MAX, inverse: inverse as boolean }),
      ref: refRotaryEmbed(b, l, h, dh, T_MIN, T_MAX, inverse as boolean, shared as boolean),
      tol: ELEMENTWISE,
    };
  });
}

/** Cases of this file. */
export const attentionCases: OpCase[] = [...attentionCaseList(), ...rotaryCases()];
