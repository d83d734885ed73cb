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
import rotateSrc from "../../shaders/attention_rotate.wgsl" with { type: "text" };
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

/**
 * Bytes of workgroup memory each kernel needs for a head width and tile shape (the forward's row-stat
 * exchange buffer is counted unless `subgroups`).
 */
export function attentionSharedBytes(
  kind: keyof AttentionTiles,
  dimHead: number,
  t: TileShape,
  subgroups = false,
): number {
  const d4 = dimHead / 4;
  const rowsTile = t.ty * t.rows;
  const colsTile = t.tx * t.cols;
  switch (kind) {
    case "forward": // qts, kts, vs, pts, red, wg_valid
      return 4 * dimHead * rowsTile + 8 * dimHead * colsTile + 16 * colsTile * (rowsTile / 4 + 1) +
        (subgroups ? 0 : 4 * rowsTile * t.tx) + 4;
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
  subgroups = false,
): string | null {
  const d4 = dimHead / 4;
  for (const k of ["tx", "ty", "rows", "cols"] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 1) return `${k} must be a positive integer (is ${t[k]})`;
  }
  if (kind === "forward") {
    const problem = forwardShapeProblem(dimHead, t);
    if (problem) return problem;
  }
  if (d4 % t.tx !== 0) return `tx = ${t.tx} must divide dimHead/4 = ${d4}`;
  if ((t.tx * t.cols) % 4 !== 0) return `tx·cols = ${t.tx * t.cols} must be a multiple of 4`;
  if ((t.ty * t.rows) % 4 !== 0) return `ty·rows = ${t.ty * t.rows} must be a multiple of 4`;
  const threads = t.tx * t.ty;
  if (threads > limits.maxComputeInvocationsPerWorkgroup) {
    return `${threads} threads exceed maxComputeInvocationsPerWorkgroup = ${limits.maxComputeInvocationsPerWorkgroup}`;
  }
  const bytes = attentionSharedBytes(kind, dimHead, t, subgroups);
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    return `${bytes} bytes of workgroup memory exceed maxComputeWorkgroupStorageSize = ` +
      `${limits.maxComputeWorkgroupStorageSize}`;
  }
  return null;
}

/**
 * Preferred tile shapes, best first: measured on an H200 (Deno 2.9.6 / wgpu, dh = 64, POYO's
 * cross- and self-attention shapes; scripts/bench_attention.ts --tune). Shapes that need many registers
 * per thread (large prefetch or accumulator sets) fall off sharply there, so the winners are small.
 */
const PREFERRED: Record<keyof AttentionTiles, TileShape[]> = {
  forward: [
    { tx: 4, ty: 16, rows: 4, cols: 4 },
    { tx: 8, ty: 16, rows: 4, cols: 4 },
    { tx: 2, ty: 16, rows: 4, cols: 4 },
    { tx: 4, ty: 8, rows: 4, cols: 4 },
    { tx: 2, ty: 8, rows: 4, cols: 4 },
  ],
  backwardKv: [
    { tx: 8, ty: 16, rows: 2, cols: 4 },
    { tx: 4, ty: 16, rows: 2, cols: 4 },
    { tx: 2, ty: 16, rows: 2, cols: 4 },
    { tx: 4, ty: 8, rows: 2, cols: 4 },
  ],
  backwardQ: [
    { tx: 16, ty: 8, rows: 4, cols: 2 },
    { tx: 8, ty: 16, rows: 4, cols: 2 },
    { tx: 4, ty: 16, rows: 4, cols: 2 },
    { tx: 2, ty: 16, rows: 4, cols: 2 },
    { tx: 4, ty: 8, rows: 4, cols: 2 },
  ],
};

/**
 * The default tile shapes for a head width on a device: the first preferred shape that fits the head
 * width and the workgroup-memory and invocation limits (counting the forward's row-statistics buffer,
 * so the choice holds with or without subgroups), else the fitting shape with the largest score tile. On a
 * 48 KiB device and dh = 64: forward 64 queries × 16 keys on 64 threads, backward dK/dV 32 keys × 32
 * queries on 128 threads, dQ 32 queries × 32 keys on 128 threads.
 */
export function chooseAttentionTiles(
  dimHead: number,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): AttentionTiles {
  const d4 = dimHead / 4;
  const pick = (kind: keyof AttentionTiles): TileShape => {
    for (const t of PREFERRED[kind]) if (!tileProblem(kind, dimHead, t, limits)) return { ...t };
    // Otherwise the fitting shape with the largest score tile (then the most threads).
    let best: TileShape | null = null;
    const area = (t: TileShape) => t.tx * t.cols * t.ty * t.rows;
    for (const tx of [16, 8, 4, 2, 1].filter((x) => d4 % x === 0)) {
      for (const ty of [16, 8, 4, 2, 1]) {
        for (const rows of kind === "forward" ? [4] : [4, 2, 1]) {
          for (const cols of kind === "forward" ? [4] : [4, 2, 1]) {
            const t = { tx, ty, rows, cols };
            if (tileProblem(kind, dimHead, t, limits)) continue;
            if (!best || area(t) > area(best) || (area(t) === area(best) && tx * ty > best.tx * best.ty)) {
              best = t;
            }
          }
        }
      }
    }
    if (best) return best;
    throw new RangeError(
      `Cannot run rotaryAttention with dimHead ${dimHead}: no ${kind} tile fits this device's ` +
        `maxComputeWorkgroupStorageSize of ${limits.maxComputeWorkgroupStorageSize} bytes`,
    );
  };
  return { forward: pick("forward"), backwardKv: pick("backwardKv"), backwardQ: pick("backwardQ") };
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

/** Options of the forward kernel's code. */
export interface ForwardCodeOptions {
  /** Write per-split results for the combine kernel. */
  partial: boolean;
  /**
   * Combine row maxima and sums across the `tx` threads of a row with subgroup shuffles (needs the
   * `subgroups` feature, a subgroup size ≥ tx, and consecutive local indices forming a subgroup);
   * otherwise through workgroup memory.
   */
  subgroups: boolean;
}

/** Why a forward tile shape cannot be generated (beyond {@linkcode tileProblem}), or null. */
function forwardShapeProblem(dimHead: number, t: TileShape): string | null {
  if (t.rows % 4 !== 0 || t.cols % 4 !== 0) return `forward rows and cols must be multiples of 4`;
  if ((t.tx & (t.tx - 1)) !== 0) return `forward tx must be a power of two (is ${t.tx})`;
  if ((dimHead / 4) % t.tx !== 0) return `tx = ${t.tx} must divide dimHead/4`;
  return null;
}

/** WGSL of the forward kernel. */
export function forwardKernelCode(g: AttentionGeometry, t: TileShape, o: ForwardCodeOptions): string {
  const problem = forwardShapeProblem(g.dimHead, t);
  if (problem) throw new RangeError(`Cannot generate the attention forward kernel: ${problem}`);
  const c = common(g);
  const d4 = c.D4;
  const dh = g.dimHead;
  const TX = t.tx;
  const TY = t.ty;
  const T = TX * TY;
  const GQ = t.rows / 4;
  const GK = t.cols / 4;
  const GO = d4 / TX;
  const bq = TY * t.rows;
  const bk = TX * t.cols;
  const SQ = bq / 4;
  const SK = bk / 4;
  const SP = bq / 4 + 1;
  const Gq = range(GQ);
  const Gk = range(GK);
  const Go = range(GO);
  const I = range(4);
  const ind = "    ";
  const block = (lines: string[], indent: string) =>
    `${indent}{\n${lines.map((l) => `${indent}  ${l}`).join("\n")}\n${indent}}`;
  const row = (g: number, i: number) => `${g}${i}`; // suffix of per-row names
  // Prefetch slots: K with consecutive threads on consecutive keys (so the transposed stores into kts
  // are conflict-free), V with consecutive threads on consecutive vec4 of a row (coalesced).
  const slots = Math.ceil((bk * d4) / T);
  const prefetch = (start: string): string[] =>
    range(slots).flatMap((n) => [
      `{`,
      `  let e = lid + ${n * T}u;`,
      `  let k = e % BK;`,
      `  let c = e / BK;`,
      `  kp${n} = vec4<f32>(0.0);`,
      `  if (c < D4 && ${start} + k < k_end) {`,
      `    kp${n} = kr[kbase + (${start} + k) * D4 + c];`,
      `  }`,
      `  let kv = e / D4;`,
      `  let cv = e % D4;`,
      `  vp${n} = vec4<f32>(0.0);`,
      `  if (kv < BK && ${start} + kv < k_end) {`,
      `    vp${n} = vr[kbase + (${start} + kv) * D4 + cv];`,
      `  }`,
      `}`,
    ]);
  const storeTiles = range(slots).flatMap((n) => [
    `{`,
    `  let e = lid + ${n * T}u;`,
    `  let k = e % BK;`,
    `  let c = e / BK;`,
    `  if (c < D4) {`,
    `    let at = 4u * c * SK + k / 4u;`,
    `    let comp = k % 4u;`,
    `    kts[at][comp] = kp${n}.x;`,
    `    kts[at + SK][comp] = kp${n}.y;`,
    `    kts[at + 2u * SK][comp] = kp${n}.z;`,
    `    kts[at + 3u * SK][comp] = kp${n}.w;`,
    `  }`,
    `  if (e / D4 < BK) {`,
    `    vs[e] = vp${n};`,
    `  }`,
    `}`,
  ]);
  const decls = [
    ...range(slots).flatMap((n) => [`var kp${n} = vec4<f32>(0.0);`, `var vp${n} = vec4<f32>(0.0);`]),
    ...Gq.flatMap((g) => I.map((i) => `var m${row(g, i)} = NEG_BIG;`)),
    ...Gq.flatMap((g) => I.map((i) => `var l${row(g, i)} = 0.0;`)),
    ...Gq.flatMap((g) => I.flatMap((i) => Go.map((e) => `var o${row(g, i)}_${e} = vec4<f32>(0.0);`))),
  ].map((l) => `  ${l}`).join("\n");
  // S = Q̃·K̃ᵀ as outer products over d: s{g}{i}_{h} holds the 4 keys h·4TX + 4tx + 0..3 of row (g, i).
  const scoreLines: string[] = [];
  for (let d = 0; d < dh; d++) {
    for (const gq of Gq) scoreLines.push(`let a${gq}_${d} = qts[${d * SQ + gq * TY}u + ty];`);
    for (const hk of Gk) scoreLines.push(`let b${hk}_${d} = kts[${d * SK + hk * TX}u + tx];`);
    for (const gq of Gq) {
      for (const i of I) {
        for (const hk of Gk) {
          const acc = `s${row(gq, i)}_${hk}`;
          scoreLines.push(`${acc} = fma(vec4<f32>(a${gq}_${d}.${COMPONENTS[i]}), b${hk}_${d}, ${acc});`);
        }
      }
    }
  }
  const scores = [
    ...Gq.flatMap((gq) =>
      I.flatMap((i) => Gk.map((hk) => `${ind}var s${row(gq, i)}_${hk} = vec4<f32>(0.0);`))
    ),
    block(scoreLines, ind),
    ...Gk.map((hk) =>
      `${ind}let kv${hk} = vec4<u32>(kb + ${
        hk * 4 * TX
      }u + 4u * tx) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(k_end);`
    ),
    ...Gq.flatMap((gq) =>
      I.flatMap((i) =>
        Gk.map((hk) => {
          const acc = `s${row(gq, i)}_${hk}`;
          return `${ind}${acc} = select(vec4<f32>(NEG_BIG), ${acc} * SCALE_LOG2, kv${hk});`;
        })
      )
    ),
  ].join("\n");
  const max4 = (v: string) => `max(max(${v}.x, ${v}.y), max(${v}.z, ${v}.w))`;
  const sum4 = (v: string) => `((${v}.x + ${v}.y) + (${v}.z + ${v}.w))`;
  const rowsAll = Gq.flatMap((gq) => I.map((i) => ({ gq, i, r: row(gq, i) })));
  const shuffleSteps = range(Math.log2(TX)).map((k) => 1 << k);
  // Row maxima across the TX threads of each row.
  const exchange = (name: string, op: "max" | "+"): string[] => {
    if (TX === 1) return [];
    if (o.subgroups) {
      return rowsAll.flatMap(({ r }) =>
        shuffleSteps.map((off) =>
          op === "max"
            ? `${name}${r} = max(${name}${r}, subgroupShuffleXor(${name}${r}, ${off}u));`
            : `${name}${r} = ${name}${r} + subgroupShuffleXor(${name}${r}, ${off}u);`
        )
      );
    }
    return [
      ...rowsAll.map(({ gq, i, r }) => `red[(${gq * 4 * TY + i}u + 4u * ty) * TX + tx] = ${name}${r};`),
      `workgroupBarrier();`,
      ...rowsAll.map(({ gq, i, r }) => {
        const terms = range(TX).map((j) => `red[(${gq * 4 * TY + i}u + 4u * ty) * TX + ${j}u]`);
        return `${name}${r} = ${op === "max" ? treeMax(terms) : treeSum(terms)};`;
      }),
    ];
  };
  const probs = [
    ...rowsAll.map(({ r }) => `${ind}var mx${r} = ${treeMax(Gk.map((hk) => max4(`s${r}_${hk}`)))};`),
    ...exchange("mx", "max").map((l) => `${ind}${l}`),
    ...rowsAll.map(({ gq, i, r }) =>
      block([
        `let m_new = max(m${r}, mx${r});`,
        `let alpha = exp2(m${r} - m_new);`,
        `m${r} = m_new;`,
        ...Gk.map((hk) =>
          `s${r}_${hk} = select(vec4<f32>(0.0), exp2(s${r}_${hk} - vec4<f32>(m_new)), kv${hk});`
        ),
        `l${r} = l${r} * alpha + ${treeSum(Gk.map((hk) => sum4(`s${r}_${hk}`)))};`,
        ...Go.map((e) => `o${r}_${e} = o${r}_${e} * alpha;`),
      ], ind) + (gq === -1 || i === -1 ? "" : "")
    ),
    // Pᵀ tile: key row (h·4TX + 4tx + j), the thread's 4 query rows of group g as one vec4.
    ...Gq.flatMap((gq) =>
      Gk.flatMap((hk) =>
        I.map((j) =>
          `${ind}pts[(${hk * 4 * TX + j}u + 4u * tx) * SP + ${gq * TY}u + ty] = vec4<f32>(${
            I.map((i) => `s${row(gq, i)}_${hk}.${COMPONENTS[j]}`).join(", ")
          });`
        )
      )
    ),
  ].join("\n");
  const accLines: string[] = [];
  for (let k = 0; k < bk; k++) {
    for (const gq of Gq) accLines.push(`let a${gq}_${k} = pts[${k * SP + gq * TY}u + ty];`);
    for (const e of Go) accLines.push(`let b${e}_${k} = vs[${k * d4 + e * TX}u + tx];`);
    for (const gq of Gq) {
      for (const i of I) {
        for (const e of Go) {
          const acc = `o${row(gq, i)}_${e}`;
          accLines.push(`${acc} = fma(vec4<f32>(a${gq}_${k}.${COMPONENTS[i]}), b${e}_${k}, ${acc});`);
        }
      }
    }
  }
  const accumulate = block(accLines, ind);
  const finish = [
    ...exchange("l", "+").map((l) => (l === "workgroupBarrier();" ? l : l)),
    ...rowsAll.map(({ gq, i, r }) => {
      const lines = [
        `let l = l${r};`,
        `let inv = select(0.0, 1.0 / l, l > 0.0);`,
        `let q = q0 + ${gq * 4 * TY + i}u + 4u * ty;`,
        `if (q < p.lq) {`,
        ...(o.partial
          ? [
            `  let prow = ((split * nwg.z + b) * p.heads + h) * p.lq + q;`,
            ...Go.map((e) => `  out[prow * D4 + ${e * TX}u + tx] = o${r}_${e} * inv;`),
            `  if (tx == 0u) {`,
            `    lse[prow] = select(NEG_BIG, m${r} + log2(l), l > 0.0);`,
            `  }`,
          ]
          : [
            `  let trow = (b * p.qt_bstride + q) * ROT4;`,
            `  let obase = (b * p.lq + q) * (p.heads * D4) + h * D4;`,
            ...Go.flatMap((e) => [
              `  {`,
              `    let dc = ${e * TX}u + tx;`,
              `    var v = o${r}_${e} * inv;`,
              ...(g.rotateValue
                ? [`    if (dc < ROT4) {`, `      v = rotate_chunk(v, q_rot[trow + dc], -1.0);`, `    }`]
                : []),
              `    out[obase + dc] = v;`,
              `  }`,
            ]),
            `  if (tx == 0u) {`,
            `    lse[(b * p.heads + h) * p.lq + q] = select(EMPTY_LSE, (m${r} + log2(l)) * LN2, l > 0.0);`,
            `  }`,
          ]),
        `}`,
      ];
      return block(lines, "  ");
    }),
  ];
  // The exchange of the sums needs every thread past the loop's last reads of `red`.
  const finishText = (o.subgroups || TX === 1 ? [] : ["workgroupBarrier();"]).concat(finish)
    .map((l) => (l.startsWith(" ") ? l : `  ${l}`)).join("\n");
  return fillTemplate("attention_forward.wgsl", forwardSrc, {
    D4: d4,
    TX,
    TY,
    T,
    BQ: bq,
    BK: bk,
    ROTATE_V: c.ROTATE_V,
    PARTIAL: o.partial ? "true" : "false",
    SCALE_LOG2: c.SCALE_LOG2,
    RED_DECL: o.subgroups || TX === 1 ? "" : `var<workgroup> red: array<f32, ${bq * TX}>;`,
    ROTARY: c.ROTARY,
    DECLS: decls,
    PREFETCH_FIRST: `  if (k_begin < k_end) {\n${prefetch("k_begin").map((l) => `    ${l}`).join("\n")}\n  }`,
    STORE_TILES: storeTiles.map((l) => `    ${l}`).join("\n"),
    PREFETCH_NEXT: prefetch("nb").map((l) => `      ${l}`).join("\n"),
    SCORES: scores,
    PROBS: probs,
    ACCUMULATE: accumulate,
    FINISH: finishText,
  });
}

/**
 * Register prefetch of two row-major tiles (`rows` rows × D4 vec4 each, consecutive threads on
 * consecutive vec4 of a row): declarations, the loads of the block starting at a row expression, and the
 * stores into workgroup tiles of row stride SD4 (zeros past `limit`).
 */
function rowTilePrefetch(o: {
  rows: number;
  d4: number;
  threads: number;
  names: [string, string];
  sources: [string, string];
  base: string;
  tiles: [string, string];
  limit: string;
}) {
  const slots = Math.ceil((o.rows * o.d4) / o.threads);
  const [a, b] = o.names;
  const decls = range(slots).flatMap((
    n,
  ) => [`var ${a}${n} = vec4<f32>(0.0);`, `var ${b}${n} = vec4<f32>(0.0);`]);
  const load = (start: string) =>
    range(slots).flatMap((n) => [
      `{`,
      `  let e = lid + ${n * o.threads}u;`,
      `  let r = e / D4;`,
      `  ${a}${n} = vec4<f32>(0.0);`,
      `  ${b}${n} = vec4<f32>(0.0);`,
      `  if (r < ${o.rows}u && ${start} + r < ${o.limit}) {`,
      `    let at = ${o.base} + (${start} + r) * D4 + e % D4;`,
      `    ${a}${n} = ${o.sources[0]}[at];`,
      `    ${b}${n} = ${o.sources[1]}[at];`,
      `  }`,
      `}`,
    ]);
  const store = range(slots).flatMap((n) => [
    `{`,
    `  let e = lid + ${n * o.threads}u;`,
    `  let r = e / D4;`,
    `  if (r < ${o.rows}u) {`,
    `    ${o.tiles[0]}[r * SD4 + e % D4] = ${a}${n};`,
    `    ${o.tiles[1]}[r * SD4 + e % D4] = ${b}${n};`,
    `  }`,
    `}`,
  ]);
  return { decls, load, store };
}

const indentLines = (lines: string[], indent: string) => lines.map((l) => `${indent}${l}`).join("\n");

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
  const threads = t.tx * t.ty;
  const pf = rowTilePrefetch({
    rows: bq,
    d4,
    threads,
    names: ["qp", "gp"],
    sources: ["qr", "gr"],
    base: "qbase",
    tiles: ["qs", "dos"],
    limit: "p.lq",
  });
  const statSlots = Math.ceil(bq / threads);
  const statLoad = (start: string) =>
    range(statSlots).flatMap((n) => [
      `{`,
      `  let r = lid + ${n * threads}u;`,
      `  lp${n} = BIG;`,
      `  dp${n} = 0.0;`,
      `  if (r < BQ && ${start} + r < p.lq) {`,
      `    let i = (b * p.heads + h) * p.lq + ${start} + r;`,
      `    lp${n} = min(lse[i], BIG) * LOG2E;`,
      `    dp${n} = dd[i];`,
      `  }`,
      `}`,
    ]);
  const statStore = range(statSlots).flatMap((n) => [
    `if (lid + ${n * threads}u < BQ) {`,
    `  lse_s[lid + ${n * threads}u] = lp${n};`,
    `  dd_s[lid + ${n * threads}u] = dp${n};`,
    `}`,
  ]);
  const decls = [
    ...pf.decls,
    ...range(statSlots).flatMap((n) => [`var lp${n} = BIG;`, `var dp${n} = 0.0;`]),
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
    PREFETCH_FIRST: `  if (q_loop > 0u) {\n${
      indentLines([...pf.load("0u"), ...statLoad("0u")], "    ")
    }\n  }`,
    STORE_TILES: indentLines([...pf.store, ...statStore], "    "),
    PREFETCH_NEXT: indentLines([...pf.load("(qb + 1u) * BQ"), ...statLoad("(qb + 1u) * BQ")], "      "),
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
  const pf = rowTilePrefetch({
    rows: bk,
    d4,
    threads: t.tx * t.ty,
    names: ["kp", "vp"],
    sources: ["kr", "vr"],
    base: "kbase",
    tiles: ["ks", "vs"],
    limit: "n_valid",
  });
  const decls = [
    ...pf.decls,
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
    PREFETCH_FIRST: `  if (n_valid > 0u) {\n${indentLines(pf.load("0u"), "    ")}\n  }`,
    STORE_TILES: indentLines(pf.store, "    "),
    PREFETCH_NEXT: indentLines(pf.load("(kb + BK)"), "      "),
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

/** WGSL of the backward preparation kernel (D = rowsum(dO∘O) and the rotated, head-major dÕ). */
export function rowDotKernelCode(g: AttentionGeometry): string {
  const c = common(g);
  return fillTemplate("attention_row_dot.wgsl", rowDotSrc, {
    D4: c.D4,
    ROTATE_V: c.ROTATE_V,
    ROTARY: c.ROTARY,
  });
}

/** WGSL of the input preparation kernel (one role copied head-major, rotated). */
export function rotateKernelCode(g: RotaryConfig): string {
  return fillTemplate("attention_rotate.wgsl", rotateSrc, { D4: g.dimHead / 4, ROTARY: rotaryWgsl(g) });
}
