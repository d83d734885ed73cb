/**
 * WGSL generation for the rotary attention kernels (`shaders/attention_*.wgsl` are the templates; this
 * module fills their `{{NAME}}` placeholders). The inner tile products are emitted as straight-line code
 * over named scalar/vec4 variables — wgpu's translation of loops over function-local arrays keeps
 * NVIDIA's compiler from unrolling and register-allocating them (shared/notes/webgpu.md) — and only the
 * block loops stay loops.
 *
 * Two product shapes cover every tile product of the forward and backward passes, both reading
 * workgroup tiles stored row-major with the reduction axis contiguous as vec4:
 * - "dot": `acc[a][b] += Σ_k A[rowA_a][k] · B[rowB_b][k]` (scores, dP), vec4 loads of A and B rows;
 * - "axpy": `acc[a][e] += Σ_k A[rowA_a][k] · B[k][col_e]` (P·V, Pᵀ·dO, dSᵀ·Q, dS·K), vec4 loads of A
 *   along k and of B along its columns, accumulating vec4 columns.
 *
 * @module
 */
import forwardSrc from "../../shaders/attention_forward.wgsl" with { type: "text" };
import backwardKvSrc from "../../shaders/attention_backward_kv.wgsl" with { type: "text" };
import backwardQSrc from "../../shaders/attention_backward_q.wgsl" with { type: "text" };
import combineSrc from "../../shaders/attention_combine.wgsl" with { type: "text" };
import rowDotSrc from "../../shaders/attention_row_dot.wgsl" with { type: "text" };
import { fillTemplate, type RotaryConfig, rotaryWgsl, wgslF32 } from "./rotary.ts";

/**
 * A thread grid and register tile: `tx · ty` threads; each thread owns `rows` rows strided by `ty`
 * (row `ty_id + ty · a`) and `cols` columns strided by `tx` of the kernel's score tile.
 * Forward: rows = queries, cols = keys (BQ = ty·rows, BK = tx·cols). Backward dK/dV: rows = keys,
 * cols = queries. Backward dQ: rows = queries, cols = keys. In the output tiles each thread owns the
 * vec4 columns `tx_id + tx · e` (e < dh/4/tx), so `tx` must divide dh/4.
 */
export interface TileShape {
  tx: number;
  ty: number;
  rows: number;
  cols: number;
}

/** Tile shapes of the three attention kernels. */
export interface AttentionTiles {
  forward: TileShape;
  backwardKv: TileShape;
  backwardQ: TileShape;
}

/** Bytes of workgroup memory each kernel needs for a head width and tile shape. */
export function attentionSharedBytes(kind: keyof AttentionTiles, dimHead: number, t: TileShape): number {
  const d4 = dimHead / 4;
  const rowsTile = t.ty * t.rows;
  const colsTile = t.tx * t.cols;
  switch (kind) {
    case "forward": // qs, ks, vs, ps, red, wg_valid
      return 16 *
          (rowsTile * (d4 + 1) + colsTile * (d4 + 1) + colsTile * d4 + rowsTile * (colsTile / 4 + 1)) +
        4 * rowsTile * t.tx + 4;
    case "backwardKv": // ks, vs, qs, dos, pts, dsts, lse_s, dd_s, wg_valid
      return 16 * (2 * rowsTile * (d4 + 1) + 2 * colsTile * (d4 + 1) + 2 * rowsTile * (colsTile / 4 + 1)) +
        8 * colsTile + 4;
    case "backwardQ": // qs, dos, ks, vs, dss, wg_valid
      return 16 * (2 * rowsTile * (d4 + 1) + 2 * colsTile * (d4 + 1) + rowsTile * (colsTile / 4 + 1)) + 4;
  }
}

/** Why a tile shape cannot run (or null when it can). */
export function tileProblem(
  kind: keyof AttentionTiles,
  dimHead: number,
  t: TileShape,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): string | null {
  const d4 = dimHead / 4;
  for (const k of ["tx", "ty", "rows", "cols"] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 1) return `${k} must be a positive integer (is ${t[k]})`;
  }
  if (d4 % t.tx !== 0) return `tx = ${t.tx} must divide dimHead/4 = ${d4}`;
  if ((t.tx * t.cols) % 4 !== 0) return `tx·cols = ${t.tx * t.cols} must be a multiple of 4`;
  if ((t.ty * t.rows) % 4 !== 0) return `ty·rows = ${t.ty * t.rows} must be a multiple of 4`;
  const threads = t.tx * t.ty;
  if (threads > limits.maxComputeInvocationsPerWorkgroup) {
    return `${threads} threads exceed maxComputeInvocationsPerWorkgroup = ${limits.maxComputeInvocationsPerWorkgroup}`;
  }
  const bytes = attentionSharedBytes(kind, dimHead, t);
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    return `${bytes} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize = ` +
      `${limits.maxComputeWorkgroupStorageSize}`;
  }
  return null;
}

/**
 * The default tile shapes for a head width on a device: the first candidate, in order of preference
 * (largest tiles first), that fits the workgroup-memory and invocation limits. On a 48 KiB device and
 * dh = 64: forward 64 queries × 32 keys on 128 threads, backward 32 × 32 on 64 threads.
 */
export function chooseAttentionTiles(
  dimHead: number,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): AttentionTiles {
  const d4 = dimHead / 4;
  const tx = [8, 4, 2, 1].find((x) => d4 % x === 0)!;
  const pick = (kind: keyof AttentionTiles, tys: number[]): TileShape => {
    for (const ty of tys) {
      for (const rows of [4, 2, 1]) {
        if ((ty * rows) % 4 !== 0) continue;
        const t = { tx, ty, rows, cols: 4 };
        if (!tileProblem(kind, dimHead, t, limits)) return t;
      }
    }
    throw new RangeError(
      `Cannot run rotaryAttention with dimHead ${dimHead}: no ${kind} tile fits this device's ` +
        `maxComputeWorkgroupStorageSize of ${limits.maxComputeWorkgroupStorageSize} bytes`,
    );
  };
  return {
    forward: pick("forward", [16, 8, 4, 2, 1]),
    backwardKv: pick("backwardKv", [8, 4, 2, 1]),
    backwardQ: pick("backwardQ", [8, 4, 2, 1]),
  };
}

const COMPONENTS = ["x", "y", "z", "w"] as const;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** `acc[a][b] += Σ_{k4 < k4Count} dot(A[aRows[a] + k4], B[bRows[b] + k4])` as straight-line code. */
function emitDot(o: {
  a: string;
  aRows: string[];
  b: string;
  bRows: string[];
  k4Count: number;
  acc: (a: number, b: number) => string;
  indent: string;
}): string {
  const lines: string[] = [];
  for (let k4 = 0; k4 < o.k4Count; k4++) {
    o.aRows.forEach((row, a) => lines.push(`let a${a}_${k4} = ${o.a}[${row} + ${k4}u];`));
    o.bRows.forEach((row, b) => lines.push(`let b${b}_${k4} = ${o.b}[${row} + ${k4}u];`));
    for (const comp of COMPONENTS) {
      for (let a = 0; a < o.aRows.length; a++) {
        for (let b = 0; b < o.bRows.length; b++) {
          const acc = o.acc(a, b);
          lines.push(`${acc} = fma(a${a}_${k4}.${comp}, b${b}_${k4}.${comp}, ${acc});`);
        }
      }
    }
  }
  return `${o.indent}{\n${lines.map((l) => `${o.indent}  ${l}`).join("\n")}\n${o.indent}}`;
}

/** `acc[a][e] += Σ_{k < kCount} A[aRows[a] + k/4][k%4] · B[k·bStride4 + bCols[e]]` (vec4 acc). */
function emitAxpy(o: {
  a: string;
  aRows: string[];
  b: string;
  bStride4: number;
  bCols: string[];
  kCount: number;
  acc: (a: number, e: number) => string;
  indent: string;
}): string {
  const lines: string[] = [];
  for (let k4 = 0; k4 < o.kCount / 4; k4++) {
    o.aRows.forEach((row, a) => lines.push(`let a${a}_${k4} = ${o.a}[${row} + ${k4}u];`));
    for (let kk = 0; kk < 4; kk++) {
      const k = 4 * k4 + kk;
      o.bCols.forEach((col, e) => lines.push(`let b${e}_${k} = ${o.b}[${col} + ${k * o.bStride4}u];`));
      for (let a = 0; a < o.aRows.length; a++) {
        for (let e = 0; e < o.bCols.length; e++) {
          const acc = o.acc(a, e);
          lines.push(`${acc} = fma(vec4<f32>(a${a}_${k4}.${COMPONENTS[kk]}), b${e}_${k}, ${acc});`);
        }
      }
    }
  }
  return `${o.indent}{\n${lines.map((l) => `${o.indent}  ${l}`).join("\n")}\n${o.indent}}`;
}

/** A balanced sum of expressions (fixed order). */
function treeSum(terms: string[]): string {
  if (terms.length === 1) return terms[0];
  const mid = Math.ceil(terms.length / 2);
  return `(${treeSum(terms.slice(0, mid))} + ${treeSum(terms.slice(mid))})`;
}

/** Nested max of expressions. */
function treeMax(terms: string[]): string {
  if (terms.length === 1) return terms[0];
  const mid = Math.ceil(terms.length / 2);
  return `max(${treeMax(terms.slice(0, mid))}, ${treeMax(terms.slice(mid))})`;
}

/** What every attention kernel of one geometry shares. */
export interface AttentionGeometry extends RotaryConfig {
  rotateValue: boolean;
}

function common(g: AttentionGeometry) {
  const scale = 1 / Math.sqrt(g.dimHead);
  return {
    D4: g.dimHead / 4,
    ROTATE_V: g.rotateValue ? "true" : "false",
    ROTARY: rotaryWgsl(g),
    scale,
    SCALE: wgslF32(scale),
    SCALE_LOG2: wgslF32(scale * Math.LOG2E),
  };
}

/** WGSL of the forward kernel (`partial`: write per-split results for the combine kernel). */
export function forwardKernelCode(g: AttentionGeometry, t: TileShape, partial: boolean): string {
  const c = common(g);
  const d4 = c.D4;
  const rd4 = d4 / t.tx;
  const bq = t.ty * t.rows;
  const bk = t.tx * t.cols;
  const A = range(t.rows);
  const B = range(t.cols);
  const E = range(rd4);
  const decls = [
    ...A.map((a) => `let row${a} = ty + ${a * t.ty}u;`),
    ...A.map((a) => `let qrow${a} = row${a} * SD4;`),
    ...A.map((a) => `let prow${a} = row${a} * SP4;`),
    ...B.map((b) => `let key${b} = tx + ${b * t.tx}u;`),
    ...B.map((b) => `let krow${b} = key${b} * SD4;`),
    ...E.map((e) => `let col${e} = tx + ${e * t.tx}u;`),
    ...A.map((a) => `var m${a} = NEG_BIG;`),
    ...A.map((a) => `var l${a} = 0.0;`),
    ...A.flatMap((a) => E.map((e) => `var o${a}_${e} = vec4<f32>(0.0);`)),
  ].map((l) => `  ${l}`).join("\n");
  const ind = "    ";
  const scores = [
    ...A.flatMap((a) => B.map((b) => `${ind}var s${a}_${b} = 0.0;`)),
    emitDot({
      a: "qs",
      aRows: A.map((a) => `qrow${a}`),
      b: "ks",
      bRows: B.map((b) => `krow${b}`),
      k4Count: d4,
      acc: (a, b) => `s${a}_${b}`,
      indent: ind,
    }),
    ...B.map((b) => `${ind}let kv${b} = kb + key${b} < k_end;`),
    ...A.flatMap((a) => B.map((b) => `${ind}s${a}_${b} = select(NEG_BIG, s${a}_${b} * SCALE_LOG2, kv${b});`)),
    ...A.map((a) => `${ind}red[row${a} * TX + tx] = ${treeMax(B.map((b) => `s${a}_${b}`))};`),
  ].join("\n");
  const probs = A.map((a) => {
    const lines = [
      `let mx = ${treeMax(range(t.tx).map((j) => `red[row${a} * TX + ${j}u]`))};`,
      `let m_new = max(m${a}, mx);`,
      `let alpha = exp2(m${a} - m_new);`,
      `m${a} = m_new;`,
      ...B.map((b) => `let p${b} = select(0.0, exp2(s${a}_${b} - m_new), kv${b});`),
      `l${a} = l${a} * alpha + ${treeSum(B.map((b) => `p${b}`))};`,
      ...E.map((e) => `o${a}_${e} = o${a}_${e} * alpha;`),
      ...B.map((b) => `ps[prow${a} + key${b} / 4u][key${b} % 4u] = p${b};`),
    ];
    return `${ind}{\n${lines.map((l) => `${ind}  ${l}`).join("\n")}\n${ind}}`;
  }).join("\n");
  const accumulate = emitAxpy({
    a: "ps",
    aRows: A.map((a) => `prow${a}`),
    b: "vs",
    bStride4: d4,
    bCols: E.map((e) => `col${e}`),
    kCount: bk,
    acc: (a, e) => `o${a}_${e}`,
    indent: ind,
  });
  const finish = [
    ...A.map((a) => `  red[row${a} * TX + tx] = l${a};`),
    `  workgroupBarrier();`,
    ...A.map((a) => {
      const lines = [
        `let l = ${treeSum(range(t.tx).map((j) => `red[row${a} * TX + ${j}u]`))};`,
        `let inv = select(0.0, 1.0 / l, l > 0.0);`,
        `let q = q0 + row${a};`,
        `if (q < p.lq) {`,
        ...(partial
          ? [
            `  let prow = ((split * nwg.z + b) * p.heads + h) * p.lq + q;`,
            ...E.map((e) => `  out[prow * D4 + col${e}] = o${a}_${e} * inv;`),
            `  if (tx == 0u) {`,
            `    lse[prow] = select(NEG_BIG, m${a} + log2(l), l > 0.0);`,
            `  }`,
          ]
          : [
            `  let t = b * p.qt_bstride + q;`,
            `  let obase = (b * p.lq + q) * (p.heads * D4) + h * D4;`,
            ...E.map((e) =>
              g.rotateValue
                ? `  out[obase + col${e}] = rot_q(o${a}_${e} * inv, t, col${e}, -1.0);`
                : `  out[obase + col${e}] = o${a}_${e} * inv;`
            ),
            `  if (tx == 0u) {`,
            `    lse[(b * p.heads + h) * p.lq + q] = select(EMPTY_LSE, (m${a} + log2(l)) * LN2, l > 0.0);`,
            `  }`,
          ]),
        `}`,
      ];
      return `  {\n${lines.map((l) => `    ${l}`).join("\n")}\n  }`;
    }),
  ].join("\n");
  return fillTemplate("attention_forward.wgsl", forwardSrc, {
    D4: d4,
    TX: t.tx,
    TY: t.ty,
    T: t.tx * t.ty,
    BQ: bq,
    BK: bk,
    ROTATE_V: c.ROTATE_V,
    PARTIAL: partial ? "true" : "false",
    SCALE_LOG2: c.SCALE_LOG2,
    ROTARY: c.ROTARY,
    DECLS: decls,
    SCORES: scores,
    PROBS: probs,
    ACCUMULATE: accumulate,
    FINISH: finish,
  });
}

/** WGSL of the backward kernel for keys and values. */
export function backwardKvKernelCode(g: AttentionGeometry, t: TileShape): string {
  const c = common(g);
  const d4 = c.D4;
  const rd4 = d4 / t.tx;
  const bkv = t.ty * t.rows;
  const bq = t.tx * t.cols;
  const A = range(t.rows); // keys
  const B = range(t.cols); // queries
  const E = range(rd4);
  const ind = "    ";
  const decls = [
    ...A.map((a) => `let key${a} = ty + ${a * t.ty}u;`),
    ...A.map((a) => `let krow${a} = key${a} * SD4;`),
    ...A.map((a) => `let prow${a} = key${a} * SP4;`),
    ...A.map((a) => `let kv${a} = k0 + key${a} < n_valid;`),
    ...B.map((b) => `let qry${b} = tx + ${b * t.tx}u;`),
    ...B.map((b) => `let qrow${b} = qry${b} * SD4;`),
    ...E.map((e) => `let col${e} = tx + ${e * t.tx}u;`),
    ...A.flatMap((a) => E.map((e) => `var dk${a}_${e} = vec4<f32>(0.0);`)),
    ...A.flatMap((a) => E.map((e) => `var dv${a}_${e} = vec4<f32>(0.0);`)),
  ].map((l) => `  ${l}`).join("\n");
  const scores = [
    ...A.flatMap((a) => B.map((b) => `${ind}var s${a}_${b} = 0.0;`)),
    ...A.flatMap((a) => B.map((b) => `${ind}var g${a}_${b} = 0.0;`)),
    emitDot({
      a: "ks",
      aRows: A.map((a) => `krow${a}`),
      b: "qs",
      bRows: B.map((b) => `qrow${b}`),
      k4Count: d4,
      acc: (a, b) => `s${a}_${b}`,
      indent: ind,
    }),
    emitDot({
      a: "vs",
      aRows: A.map((a) => `krow${a}`),
      b: "dos",
      bRows: B.map((b) => `qrow${b}`),
      k4Count: d4,
      acc: (a, b) => `g${a}_${b}`,
      indent: ind,
    }),
    ...B.map((b) => `${ind}let lse${b} = lse_s[qry${b}];`),
    ...B.map((b) => `${ind}let dd${b} = dd_s[qry${b}];`),
    ...A.flatMap((a) =>
      B.flatMap((b) => [
        `${ind}{`,
        `${ind}  let pr = select(0.0, exp2(s${a}_${b} * SCALE_LOG2 - lse${b}), kv${a});`,
        `${ind}  pts[prow${a} + qry${b} / 4u][qry${b} % 4u] = pr;`,
        `${ind}  dsts[prow${a} + qry${b} / 4u][qry${b} % 4u] = pr * (g${a}_${b} - dd${b});`,
        `${ind}}`,
      ])
    ),
  ].join("\n");
  const accumulate = [
    emitAxpy({
      a: "pts",
      aRows: A.map((a) => `prow${a}`),
      b: "dos",
      bStride4: d4 + 1,
      bCols: E.map((e) => `col${e}`),
      kCount: bq,
      acc: (a, e) => `dv${a}_${e}`,
      indent: ind,
    }),
    emitAxpy({
      a: "dsts",
      aRows: A.map((a) => `prow${a}`),
      b: "qs",
      bStride4: d4 + 1,
      bCols: E.map((e) => `col${e}`),
      kCount: bq,
      acc: (a, e) => `dk${a}_${e}`,
      indent: ind,
    }),
  ].join("\n");
  const finish = A.map((a) => {
    const lines = [
      `let k = k0 + key${a};`,
      `if (k < p.lk) {`,
      `  let t = b * p.kt_bstride + k;`,
      `  let base = (b * p.lk + k) * p.dkv_stride + h * D4;`,
      ...E.flatMap((e) => [
        `  dkv[base + p.dk_off + col${e}] = rot_k(dk${a}_${e} * SCALE, t, col${e}, -1.0);`,
        g.rotateValue
          ? `  dkv[base + p.dv_off + col${e}] = rot_k(dv${a}_${e}, t, col${e}, -1.0);`
          : `  dkv[base + p.dv_off + col${e}] = dv${a}_${e};`,
      ]),
      `}`,
    ];
    return `  {\n${lines.map((l) => `    ${l}`).join("\n")}\n  }`;
  }).join("\n");
  return fillTemplate("attention_backward_kv.wgsl", backwardKvSrc, {
    D4: d4,
    TX: t.tx,
    TY: t.ty,
    T: t.tx * t.ty,
    BKV: bkv,
    BQ: bq,
    ROTATE_V: c.ROTATE_V,
    SCALE: c.SCALE,
    SCALE_LOG2: c.SCALE_LOG2,
    ROTARY: c.ROTARY,
    DECLS: decls,
    SCORES: scores,
    ACCUMULATE: accumulate,
    FINISH: finish,
  });
}

/** WGSL of the backward kernel for queries. */
export function backwardQKernelCode(g: AttentionGeometry, t: TileShape): string {
  const c = common(g);
  const d4 = c.D4;
  const rd4 = d4 / t.tx;
  const bq = t.ty * t.rows;
  const bk = t.tx * t.cols;
  const A = range(t.rows); // queries
  const B = range(t.cols); // keys
  const E = range(rd4);
  const ind = "    ";
  const decls = [
    ...A.map((a) => `let row${a} = ty + ${a * t.ty}u;`),
    ...A.map((a) => `let qrow${a} = row${a} * SD4;`),
    ...A.map((a) => `let prow${a} = row${a} * SP4;`),
    ...B.map((b) => `let key${b} = tx + ${b * t.tx}u;`),
    ...B.map((b) => `let krow${b} = key${b} * SD4;`),
    ...E.map((e) => `let col${e} = tx + ${e * t.tx}u;`),
    ...A.flatMap((a) => [
      `var lse${a} = BIG;`,
      `var dd${a} = 0.0;`,
      `if (q0 + row${a} < p.lq) {`,
      `  lse${a} = min(lse[(b * p.heads + h) * p.lq + q0 + row${a}], BIG) * LOG2E;`,
      `  dd${a} = dd[(b * p.heads + h) * p.lq + q0 + row${a}];`,
      `}`,
    ]),
    ...A.flatMap((a) => E.map((e) => `var dq${a}_${e} = vec4<f32>(0.0);`)),
  ].map((l) => `  ${l}`).join("\n");
  const scores = [
    ...A.flatMap((a) => B.map((b) => `${ind}var s${a}_${b} = 0.0;`)),
    ...A.flatMap((a) => B.map((b) => `${ind}var g${a}_${b} = 0.0;`)),
    emitDot({
      a: "qs",
      aRows: A.map((a) => `qrow${a}`),
      b: "ks",
      bRows: B.map((b) => `krow${b}`),
      k4Count: d4,
      acc: (a, b) => `s${a}_${b}`,
      indent: ind,
    }),
    emitDot({
      a: "dos",
      aRows: A.map((a) => `qrow${a}`),
      b: "vs",
      bRows: B.map((b) => `krow${b}`),
      k4Count: d4,
      acc: (a, b) => `g${a}_${b}`,
      indent: ind,
    }),
    ...B.map((b) => `${ind}let kv${b} = kb + key${b} < n_valid;`),
    ...A.flatMap((a) =>
      B.flatMap((b) => [
        `${ind}{`,
        `${ind}  let pr = select(0.0, exp2(s${a}_${b} * SCALE_LOG2 - lse${a}), kv${b});`,
        `${ind}  dss[prow${a} + key${b} / 4u][key${b} % 4u] = pr * (g${a}_${b} - dd${a});`,
        `${ind}}`,
      ])
    ),
  ].join("\n");
  const accumulate = emitAxpy({
    a: "dss",
    aRows: A.map((a) => `prow${a}`),
    b: "ks",
    bStride4: d4 + 1,
    bCols: E.map((e) => `col${e}`),
    kCount: bk,
    acc: (a, e) => `dq${a}_${e}`,
    indent: ind,
  });
  const finish = A.map((a) => {
    const lines = [
      `let q = q0 + row${a};`,
      `if (q < p.lq) {`,
      `  let t = b * p.qt_bstride + q;`,
      `  let base = (b * p.lq + q) * p.dq_stride + p.dq_off + h * D4;`,
      ...E.map((e) => `  dq[base + col${e}] = rot_q(dq${a}_${e} * SCALE, t, col${e}, -1.0);`),
      `}`,
    ];
    return `  {\n${lines.map((l) => `    ${l}`).join("\n")}\n  }`;
  }).join("\n");
  return fillTemplate("attention_backward_q.wgsl", backwardQSrc, {
    D4: d4,
    TX: t.tx,
    TY: t.ty,
    T: t.tx * t.ty,
    BQ: bq,
    BK: bk,
    ROTATE_V: c.ROTATE_V,
    SCALE: c.SCALE,
    SCALE_LOG2: c.SCALE_LOG2,
    ROTARY: c.ROTARY,
    DECLS: decls,
    SCORES: scores,
    ACCUMULATE: accumulate,
    FINISH: finish,
  });
}

/** WGSL of the split-combine kernel. */
export function combineKernelCode(g: AttentionGeometry): string {
  const c = common(g);
  return fillTemplate("attention_combine.wgsl", combineSrc, {
    D4: c.D4,
    ROTATE_V: c.ROTATE_V,
    ROTARY: c.ROTARY,
  });
}

/** WGSL of the D = rowsum(dO∘O) kernel. */
export function rowDotKernelCode(dimHead: number): string {
  return fillTemplate("attention_row_dot.wgsl", rowDotSrc, { D4: dimHead / 4 });
}
