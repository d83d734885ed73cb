/**
 * The fast matmul path: a TypeScript generator that emits straight-line WGSL for one tile configuration
 * and one problem variant (transpose flags, 128-bit access per operand, which edges need bounds checks,
 * bias/alpha/beta epilogue), plus the choice of kernel that `matmulInto` makes.
 *
 * Why generated: wgpu's shader translator adds loop guards and index clamps to loops over
 * function-local arrays, which keeps NVIDIA's compiler from unrolling and register-allocating them
 * (measured: 1.9–2.1 TFLOP/s with loops, 41 TFLOP/s straight-line at 4096³ on an H200). So the only loop
 * left in the kernel is the one over K tiles; accumulators are named `vec4<f32>` variables and every
 * workgroup-memory index is a per-thread base plus a constant.
 *
 * Technique (for the 128×128 configuration): 256 threads, 8×8 outputs per thread held as 16 `vec4`
 * accumulators; thread (tx, ty) owns rows {ty·4 + i, 64 + ty·4 + i} and columns {tx·4 .. +3, 64 + tx·4 ..}
 * so a warp reads 2 distinct A vectors (broadcast) and 16 consecutive B vectors (conflict-free) from
 * workgroup memory. Both tiles are stored k-major (`As[k][m]`, `Bs[k][n]`) with optional padding; the next
 * global tile is prefetched into registers while the current one is multiplied. Operands stored with K
 * contiguous are either scattered into the k-major tile with scalar stores or, when a thread loads four
 * rows, transposed in registers and stored as vec4s. Two workgroup buffers (one barrier per K tile, K loop
 * unrolled by two) are available, but on an H200 one buffer with K tiles of 8 measured fastest
 * (41.9 TFLOP/s at 4096³ against 29.7 double-buffered); see `MATMUL_TILE_CONFIGS`.
 *
 * Numerics: every configuration and the general kernel (`shaders/matmul.wgsl`) compute each output as the
 * same sequence `acc = fma(a_k, b_k, acc)` for k = 0, 1, .., K−1 starting from 0, then
 * `alpha·acc (+ bias) (+ beta·C)`, so results are bitwise identical whichever kernel or tile
 * configuration runs (tested), and the autotuner's choice never changes numbers.
 *
 * Mixed precision: a variant's `halfA`/`halfB` make the load emitter read that operand as f16
 * (`vec4<f16>`/`f16` loads under `enable f16;`) or bf16 (u32 words of two bit patterns, unpacked by shifts);
 * values are widened exactly to f32 before the same k-ordered `fma` chain, so 16-bit results are also
 * bitwise equal across kernels. f32 variants generate exactly the same WGSL as before (tags unchanged).
 *
 * @module
 */
import type { BufferBinding, Gpu } from "../gpu/gpu.ts";
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import type { HalfDType } from "../tensor/tensor.ts";

/** A tile configuration of the generated kernel. */
export interface MatmulTileConfig {
  /** Output rows per workgroup (a multiple of threadM). */
  tileM: number;
  /** Output columns per workgroup (a multiple of threadN). */
  tileN: number;
  /** K per workgroup-memory tile (multiple of 4). */
  tileK: number;
  /** Output rows per thread (4 or 8): threadM/4 groups of 4 rows, `tileM/(threadM/4)` apart. */
  threadM: number;
  /** Output columns per thread (4 or 8). */
  threadN: number;
  /** Workgroup-memory buffers: 2 = prefetch into the other buffer, one barrier per K tile. */
  buffers: 1 | 2;
  /** Floats of padding after each k-row of a tile in workgroup memory (multiple of 4). */
  pad: number;
  /** Workgroup rows per swizzle group (0 = row-major order of workgroups) for L2 reuse. */
  groupM: number;
}

/** What a particular problem needs of the kernel (besides the tile configuration). */
export interface MatmulVariant {
  /** A stored [K, M]. */
  transA: boolean;
  /** B stored [N, K]. */
  transB: boolean;
  /** 128-bit loads of A (its contiguous dimension and batch stride are multiples of 4). */
  vecA: boolean;
  /** 128-bit loads of B. */
  vecB: boolean;
  /** 128-bit stores of C and loads of bias (N is a multiple of 4). */
  vecC: boolean;
  /** M is not a multiple of tileM: rows are bounds-checked. */
  checkM: boolean;
  /** N is not a multiple of tileN. */
  checkN: boolean;
  /** K is not a multiple of tileK. */
  checkK: boolean;
  /** Adds bias[N] to every row. */
  bias: boolean;
  /** Multiplies the product by `alpha` (left out when alpha = 1). */
  alpha: boolean;
  /** Adds `beta·C` (left out when beta = 0, C is then not read). */
  beta: boolean;
  /** A holds 16-bit elements of this type (mixed precision; absent = f32). Accumulation stays f32. */
  halfA?: HalfDType;
  /** B holds 16-bit elements of this type (absent = f32). */
  halfB?: HalfDType;
}

/** One product `C[b] = alpha·op(A[b])·op(B[b]) (+ bias) (+ beta·C[b])` as `matmulInto` sees it. */
export interface MatmulProblem {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** Elements between consecutive batches of A (0 = shared across the batch). */
  strideA: number;
  /** Elements between consecutive batches of B (0 = shared). */
  strideB: number;
  bias: boolean;
  alpha: number;
  beta: number;
  /** A's elements are 16-bit of this type (absent = f32); strides stay in elements. */
  halfA?: HalfDType;
  /** B's elements are 16-bit of this type (absent = f32). */
  halfB?: HalfDType;
}

/** Version of the generator; part of autotune cache keys so a generator change re-tunes. */
export const MATMUL_CODEGEN_VERSION = 2;

/** A config from its fields with the defaults `buffers: 2, pad: 4, groupM: 8`. */
export function tileConfig(
  tileM: number,
  tileN: number,
  tileK: number,
  threadM: number,
  threadN: number,
  options: Partial<Pick<MatmulTileConfig, "buffers" | "pad" | "groupM">> = {},
): MatmulTileConfig {
  return {
    tileM,
    tileN,
    tileK,
    threadM,
    threadN,
    buffers: options.buffers ?? 2,
    pad: options.pad ?? 4,
    groupM: options.groupM ?? 8,
  };
}

/**
 * Candidate configurations, best first for large problems on a GPU with ≥ 34 KiB of workgroup storage.
 * The autotuner times all that fit; without a tuning table `matmulInto` takes the first of the leading
 * {@linkcode DEFAULT_MATMUL_TILE_CONFIGS} that fits the device and suits the problem's size, or one of the
 * small tiles at the end for tiny problems, outputs at most 32 rows or columns wide, and tall-K products
 * with few output tiles (see {@linkcode defaultMatmulConfig} and {@linkcode chooseMatmulConfig}).
 */
export const MATMUL_TILE_CONFIGS: readonly MatmulTileConfig[] = [
  // H200 (Deno 2.9.6, wgpu, Vulkan) TFLOP/s at 4096³ nn / Aᵀ / Bᵀ, measured with scripts/bench_kernels.ts:
  tileConfig(128, 128, 8, 8, 8, { buffers: 1 }), // 8.3 KiB: 41.9 / 37.6 / 42.1
  tileConfig(128, 128, 16, 8, 8, { buffers: 1 }), // 16.5 KiB: 39.7 / 39.8 / 38.4
  tileConfig(128, 128, 32, 8, 8, { buffers: 1 }), // 33 KiB, register-transposed loads: 38.1 / 40.7 / 35.5
  tileConfig(128, 64, 16, 8, 4, { buffers: 1 }), // 12.5 KiB: best where 128×128 tiles leave SMs idle
  tileConfig(128, 64, 32, 8, 4, { buffers: 1 }), // 25 KiB
  tileConfig(64, 128, 16, 4, 8, { buffers: 1 }), // 12.5 KiB
  tileConfig(64, 64, 16, 4, 4, { buffers: 1 }), // 8.5 KiB
  tileConfig(64, 64, 32, 8, 4, { buffers: 1 }), // 17 KiB, 128 threads
  tileConfig(128, 128, 16, 8, 8), // 33 KiB, double-buffered (one barrier per K tile): 29.7 at 4096³
  tileConfig(128, 128, 8, 8, 8), // 16.5 KiB, double-buffered: 30.6
  tileConfig(128, 128, 16, 8, 8, { buffers: 1, pad: 0 }), // 16 KiB
  tileConfig(64, 64, 16, 4, 4, { pad: 0 }), // 16 KiB, double-buffered
  // Small tiles for tall-K products with a small output, e.g. the encoder cross-attention's P·V and dS·K
  // (batch 32, [512 × 2560]·[2560 × 64]): 128 workgroups of 128×64 leave most SMs of an H200 idle, these
  // give 512–1024; and for outputs at most 32 wide and tiny problems. Left out of
  // `DEFAULT_MATMUL_TILE_CONFIGS`: `defaultMatmulConfig` takes them only in those cases (SMALL_OUTPUT_TILES).
  tileConfig(64, 32, 16, 4, 4, { buffers: 1 }), // 6.5 KiB, 128 threads
  tileConfig(32, 64, 16, 4, 4, { buffers: 1 }), // 6.5 KiB, 128 threads
  tileConfig(64, 32, 32, 4, 4, { buffers: 1 }), // 13 KiB, 128 threads, register-transposed A loads
  tileConfig(32, 64, 32, 4, 4, { buffers: 1 }), // 13 KiB, 128 threads, register-transposed B loads
  tileConfig(32, 32, 16, 4, 4, { buffers: 1 }), // 4.5 KiB, 64 threads
];

/**
 * The leading entries of {@linkcode MATMUL_TILE_CONFIGS} that {@linkcode defaultMatmulConfig} chooses
 * from (in this order) for outputs wider than 32 in both directions; the small tiles after them are also
 * autotuning candidates.
 */
export const DEFAULT_MATMUL_TILE_CONFIGS: readonly MatmulTileConfig[] = MATMUL_TILE_CONFIGS.slice(0, 12);

/**
 * The small tiles {@linkcode defaultMatmulConfig} takes for small outputs (entries of
 * {@linkcode MATMUL_TILE_CONFIGS} after the defaults): `rows32` for outputs at most 32 rows high (K-32 and
 * K-16 variants), `cols32` for outputs at most 32 columns wide, `both32` for both and for tiny problems.
 */
const SMALL_OUTPUT_TILES = {
  rows32: {
    deep: tileConfig(32, 64, 32, 4, 4, { buffers: 1 }),
    shallow: tileConfig(32, 64, 16, 4, 4, { buffers: 1 }),
  },
  cols32: {
    deep: tileConfig(64, 32, 32, 4, 4, { buffers: 1 }),
    shallow: tileConfig(64, 32, 16, 4, 4, { buffers: 1 }),
  },
  both32: tileConfig(32, 32, 16, 4, 4, { buffers: 1 }),
} as const;

/** A short stable name, e.g. `128x128x16_t8x8_b2_p4_g8`. */
export function matmulConfigName(c: MatmulTileConfig): string {
  return `${c.tileM}x${c.tileN}x${c.tileK}_t${c.threadM}x${c.threadN}_b${c.buffers}_p${c.pad}_g${c.groupM}`;
}

/** Parses {@linkcode matmulConfigName}'s output (and validates it). */
export function parseMatmulConfigName(name: string): MatmulTileConfig {
  const m = /^(\d+)x(\d+)x(\d+)_t(\d+)x(\d+)_b([12])_p(\d+)_g(\d+)$/.exec(name);
  if (!m) {
    throw new RangeError(
      `Cannot parse matmul tile config name "${name}": expected the form 128x128x16_t8x8_b2_p4_g8`,
    );
  }
  const [tm, tn, tk, thm, thn, b, pad, g] = m.slice(1).map(Number);
  const c = tileConfig(tm, tn, tk, thm, thn, { buffers: b as 1 | 2, pad, groupM: g });
  validateTileConfig(c);
  return c;
}

/** Threads per workgroup of a configuration. */
export function threadsOf(c: MatmulTileConfig): number {
  return (c.tileM / c.threadM) * (c.tileN / c.threadN);
}

/** Bytes of workgroup memory a configuration declares. */
export function workgroupBytes(c: MatmulTileConfig): number {
  return c.buffers * c.tileK * (c.tileM + c.pad + c.tileN + c.pad) * 4;
}

/** Throws a RangeError naming the first structural problem of a configuration. */
export function validateTileConfig(c: MatmulTileConfig): void {
  const name = matmulConfigName(c);
  const fail = (why: string) => {
    throw new RangeError(`Cannot use matmul tile config ${name} as ${why}`);
  };
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v < 0) fail(`${k} must be an integer ≥ 0: current value is ${v}`);
  }
  if (c.threadM !== 4 && c.threadM !== 8) fail(`threadM must be 4 or 8: current value is ${c.threadM}`);
  if (c.threadN !== 4 && c.threadN !== 8) fail(`threadN must be 4 or 8: current value is ${c.threadN}`);
  if (c.tileK % 4 !== 0 || c.tileK === 0) {
    fail(`tileK must be a positive multiple of 4: current value is ${c.tileK}`);
  }
  if (c.pad % 4 !== 0) fail(`pad must be a multiple of 4: current value is ${c.pad}`);
  if (c.tileM % c.threadM !== 0 || c.tileN % c.threadN !== 0) {
    fail("tileM/tileN must be multiples of threadM/threadN");
  }
  const threads = threadsOf(c);
  if (threads < 32 || threads > 1024) fail(`it has ${threads} threads: it must have 32 to 1024`);
  // Every thread loads the same whole number of 4-float slots of each tile.
  const slotsA = (c.tileM * c.tileK) / 4;
  const slotsB = (c.tileN * c.tileK) / 4;
  if (slotsA % threads !== 0 || slotsB % threads !== 0) {
    fail(
      `its tiles hold ${slotsA} and ${slotsB} 4-float slots: both must be multiples of ${threads} threads`,
    );
  }
  // Loader mappings (see loaderSetup): k-contiguous needs threads % (tileK/4) = 0 and a row step that is
  // a multiple of 4; outer-contiguous needs threads % (tile/4) = 0.
  for (const outer of [c.tileM, c.tileN]) {
    if (threads % (c.tileK / 4) !== 0 || ((threads * 4) / c.tileK) % 4 !== 0) {
      fail(`threads (${threads}) must be a multiple of tileK (${c.tileK})`);
    }
    if (threads % (outer / 4) !== 0) fail(`threads (${threads}) must be a multiple of tile/4 (${outer / 4})`);
  }
}

/** Whether the configuration's workgroup memory and threads fit the device limits. */
export function configFits(
  c: MatmulTileConfig,
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): boolean {
  return workgroupBytes(c) <= limits.maxComputeWorkgroupStorageSize &&
    threadsOf(c) <= limits.maxComputeInvocationsPerWorkgroup;
}

/** The variant of the generated kernel a problem needs under a configuration. */
export function matmulVariantFor(p: MatmulProblem, c: MatmulTileConfig): MatmulVariant {
  const contigA = p.transA ? p.m : p.k;
  const contigB = p.transB ? p.k : p.n;
  return {
    transA: p.transA,
    transB: p.transB,
    vecA: contigA % 4 === 0 && p.strideA % 4 === 0,
    vecB: contigB % 4 === 0 && p.strideB % 4 === 0,
    vecC: p.n % 4 === 0,
    checkM: p.m % c.tileM !== 0,
    checkN: p.n % c.tileN !== 0,
    checkK: p.k % c.tileK !== 0,
    bias: p.bias,
    alpha: p.alpha !== 1,
    beta: p.beta !== 0,
    ...(p.halfA ? { halfA: p.halfA } : {}),
    ...(p.halfB ? { halfB: p.halfB } : {}),
  };
}

function variantTag(v: MatmulVariant): string {
  const f = (b: boolean, s: string) => (b ? s : "");
  return `${v.transA ? "t" : "n"}${v.transB ? "t" : "n"}_v${f(v.vecA, "a")}${f(v.vecB, "b")}${
    f(v.vecC, "c")
  }` +
    `_c${f(v.checkM, "m")}${f(v.checkN, "n")}${f(v.checkK, "k")}_e${f(v.bias, "b")}${f(v.alpha, "a")}${
      f(v.beta, "c")
    }` + (v.halfA || v.halfB ? `_i${v.halfA ?? "f32"}x${v.halfB ?? "f32"}` : "");
}

/**
 * WGSL reading global operand `buf` as f32: `readVec4` takes a vec4 index (4 consecutive elements, which
 * start at a multiple of 4), `readScalar` an element index. f16 operands load `vec4<f16>`/`f16` (exact
 * widening); bf16 operands load u32 words holding two bf16 patterns and shift them into f32 bit patterns.
 */
interface OperandReader {
  /** Element type of the binding's array. */
  arrayElem(vec: boolean): string;
  readVec4(buf: string, idx: string): string;
  readScalar(buf: string, idx: string): string;
  /** Helper functions the reads of a binding with (or without) vec4 loads call (module scope). */
  helpers(buf: string, vec: boolean): string[];
}

/** The reader of an operand stored as `half` (or f32 when undefined). */
export function operandReader(half: HalfDType | undefined): OperandReader {
  if (half === "f16") {
    return {
      arrayElem: (vec) => (vec ? "vec4<f16>" : "f16"),
      readVec4: (buf, idx) => `vec4<f32>(${buf}[${idx}])`,
      readScalar: (buf, idx) => `f32(${buf}[${idx}])`,
      helpers: () => [],
    };
  }
  if (half === "bf16") {
    return {
      arrayElem: (vec) => (vec ? "vec2<u32>" : "u32"),
      readVec4: (buf, idx) => `bf16x4_${buf}(${idx})`,
      readScalar: (buf, idx) => `bf16_${buf}(${idx})`,
      helpers: (buf, vec) =>
        vec
          ? [
            `fn bf16x4_${buf}(i: u32) -> vec4<f32> {`,
            `  let w = ${buf}[i];`,
            "  return vec4<f32>(bitcast<f32>(w.x << 16u), bitcast<f32>(w.x & 0xffff0000u), " +
            "bitcast<f32>(w.y << 16u), bitcast<f32>(w.y & 0xffff0000u));",
            "}",
          ]
          : [
            `fn bf16_${buf}(i: u32) -> f32 {`,
            `  let w = ${buf}[i >> 1u];`,
            "  return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));",
            "}",
          ],
    };
  }
  return {
    arrayElem: (vec) => (vec ? "vec4<f32>" : "f32"),
    readVec4: (buf, idx) => `${buf}[${idx}]`,
    readScalar: (buf, idx) => `${buf}[${idx}]`,
    helpers: () => [],
  };
}

const COMPONENTS = ["x", "y", "z", "w"];

/** One operand's loader: global → registers → workgroup memory (see generateMatmulWgsl). */
interface Loader {
  /** Statements run once (per-thread indices). */
  setup: string[];
  /** Statements loading K tile `kt` (a u32 expression) into the prefetch registers. */
  load(kt: string): string[];
  /** Statements storing the prefetch registers into the buffer at vec4 offset `base`. */
  store(base: string): string[];
  /** Declarations of the prefetch registers. */
  regs: string[];
}

/**
 * Builds the loader of operand X (A or B) whose tile is `outer` (tileM or tileN) × tileK, stored in
 * workgroup memory k-major with row stride `stride4` vec4s.
 *
 * kContiguous: X is stored with K as its contiguous dimension (A plain, B transposed): a thread reads 4
 * consecutive k of one outer index and scatters them to 4 k-rows. Otherwise (A transposed, B plain) a
 * thread reads 4 consecutive outer indices of one k and stores them as one vec4.
 */
function loader(opts: {
  x: "a" | "b";
  buf: string;
  smem: string;
  outer: number;
  outerDim: string;
  origin: string;
  tileK: number;
  threads: number;
  stride4: number;
  kContiguous: boolean;
  vec: boolean;
  checkOuter: boolean;
  checkK: boolean;
  reader: OperandReader;
}): Loader {
  const { x, buf, smem, outer, outerDim, origin, tileK, threads, stride4, kContiguous, vec, reader } = opts;
  const slots = (outer * tileK) / 4 / threads;
  const regs = Array.from({ length: slots }, (_, r) => `${x}_reg${r}`);
  const setup: string[] = [];
  const base = vec ? `${x}_base4` : `${x}_base`;
  setup.push(
    vec ? `let ${x}_base4 = wg.z * (p.stride_${x} / 4u);` : `let ${x}_base = wg.z * p.stride_${x};`,
  );
  if (kContiguous && slots % 4 === 0) {
    // Register transpose: a thread loads 4 consecutive outer rows o..o+3 at one k quad per pass, then
    // stores 4 vec4s, one per k, each holding the 4 rows (no scattered scalar stores).
    const perRow = tileK / 4;
    const groupStep = threads / perRow; // row groups (of 4) between a thread's passes
    setup.push(`let ${x}_g = li / ${perRow}u;`, `let ${x}_q = li % ${perRow}u;`);
    setup.push(`let ${x}_st = ${x}_q * ${4 * stride4}u + ${x}_g;`);
    if (vec) {
      setup.push(
        `let ${x}_ld = ${base} + (${origin} + ${x}_g * 4u) * (p.k / 4u) + ${x}_q;`,
        `let ${x}_row = p.k / 4u;`,
      );
    } else {
      setup.push(
        `let ${x}_ld = ${base} + (${origin} + ${x}_g * 4u) * p.k + ${x}_q * 4u;`,
        `let ${x}_row = p.k;`,
      );
    }
    return {
      regs,
      setup,
      load(kt) {
        const out: string[] = [];
        if (opts.checkK) out.push(`let ${x}_k = ${kt} * ${tileK}u + ${x}_q * 4u;`);
        for (let r = 0; r < slots; r++) {
          const reg = regs[r];
          const rowOff = (r >> 2) * groupStep * 4 + (r & 3); // outer offset from the thread's first row
          const o = `${origin} + ${x}_g * 4u + ${rowOff}u`;
          const oCond = opts.checkOuter ? `${o} < ${outerDim}` : "";
          const idx = `${x}_ld + ${kt} * ${vec ? tileK / 4 : tileK}u + ${rowOff}u * ${x}_row`;
          out.push(...guardedLoad(reg, buf, idx, vec, oCond, opts.checkK ? `${x}_k` : null, reader));
        }
        return out;
      },
      store(sbase) {
        const out: string[] = [];
        for (let j = 0; j < slots / 4; j++) {
          const rs = regs.slice(4 * j, 4 * j + 4);
          for (let c = 0; c < 4; c++) {
            const comp = COMPONENTS[c];
            const off = c * stride4 + j * groupStep;
            out.push(
              `${smem}[${sbase} + ${x}_st + ${off}u] = vec4<f32>(${
                rs.map((r) => `${r}.${comp}`).join(", ")
              });`,
            );
          }
        }
        return out;
      },
    };
  }
  if (kContiguous) {
    // Slot e = li + r·threads → outer index o = e / (tileK/4), k quad q = e % (tileK/4).
    const perRow = tileK / 4;
    const rowStep = threads / perRow; // outer rows between a thread's slots (multiple of 4)
    setup.push(`let ${x}_o = li / ${perRow}u;`, `let ${x}_q = li % ${perRow}u;`);
    setup.push(`let ${x}_st = ${x}_q * ${4 * stride4}u + ${x}_o / 4u;`, `let ${x}_sc = ${x}_o % 4u;`);
    if (vec) {
      setup.push(
        `let ${x}_ld = ${base} + (${origin} + ${x}_o) * (p.k / 4u) + ${x}_q;`,
        `let ${x}_rstep = ${rowStep}u * (p.k / 4u);`,
      );
    } else {
      setup.push(
        `let ${x}_ld = ${base} + (${origin} + ${x}_o) * p.k + ${x}_q * 4u;`,
        `let ${x}_rstep = ${rowStep}u * p.k;`,
      );
    }
    return {
      regs,
      setup,
      load(kt) {
        const out: string[] = [];
        const kq = `${kt} * ${tileK}u + ${x}_q * 4u`;
        if (opts.checkK) out.push(`let ${x}_k = ${kq};`);
        for (let r = 0; r < slots; r++) {
          const reg = regs[r];
          const o = `${origin} + ${x}_o + ${r * rowStep}u`;
          const oCond = opts.checkOuter ? `${o} < ${outerDim}` : "";
          const idx = vec
            ? `${x}_ld + ${kt} * ${tileK / 4}u + ${r}u * ${x}_rstep`
            : `${x}_ld + ${kt} * ${tileK}u + ${r}u * ${x}_rstep`;
          out.push(...guardedLoad(reg, buf, idx, vec, oCond, opts.checkK ? `${x}_k` : null, reader));
        }
        return out;
      },
      store(sbase) {
        const out: string[] = [];
        for (let r = 0; r < slots; r++) {
          for (let c = 0; c < 4; c++) {
            const off = c * stride4 + (r * rowStep) / 4;
            out.push(`${smem}[${sbase} + ${x}_st + ${off}u][${x}_sc] = ${regs[r]}.${COMPONENTS[c]};`);
          }
        }
        return out;
      },
    };
  }
  // Outer-contiguous: slot e → k row kk = e / (outer/4), outer quad q = e % (outer/4).
  const perRow = outer / 4;
  const kStep = threads / perRow; // k rows between a thread's slots
  setup.push(`let ${x}_kr = li / ${perRow}u;`, `let ${x}_q = li % ${perRow}u;`);
  setup.push(`let ${x}_st = ${x}_kr * ${stride4}u + ${x}_q;`);
  if (vec) {
    setup.push(
      `let ${x}_ld = ${base} + ${x}_kr * (${outerDim} / 4u) + ${origin} / 4u + ${x}_q;`,
      `let ${x}_rstep = ${kStep}u * (${outerDim} / 4u);`,
      `let ${x}_tstep = ${tileK}u * (${outerDim} / 4u);`,
    );
  } else {
    setup.push(
      `let ${x}_ld = ${base} + ${x}_kr * ${outerDim} + ${origin} + ${x}_q * 4u;`,
      `let ${x}_rstep = ${kStep}u * ${outerDim};`,
      `let ${x}_tstep = ${tileK}u * ${outerDim};`,
    );
  }
  if (opts.checkOuter) setup.push(`let ${x}_oq = ${origin} + ${x}_q * 4u;`);
  return {
    regs,
    setup,
    load(kt) {
      const out: string[] = [];
      for (let r = 0; r < slots; r++) {
        const reg = regs[r];
        const kCond = opts.checkK ? `${kt} * ${tileK}u + ${x}_kr + ${r * kStep}u < p.k` : "";
        const idx = `${x}_ld + ${kt} * ${x}_tstep + ${r}u * ${x}_rstep`;
        if (vec) {
          const c = conds([kCond, opts.checkOuter ? `${x}_oq < ${outerDim}` : ""]);
          const ld = reader.readVec4(buf, idx);
          if (c) out.push(`${reg} = vec4<f32>(0.0);`, `if (${c}) { ${reg} = ${ld}; }`);
          else out.push(`${reg} = ${ld};`);
        } else {
          out.push(`{`, `  let i = ${idx};`);
          for (let c = 0; c < 4; c++) {
            const cc = conds([kCond, opts.checkOuter ? `${x}_oq + ${c}u < ${outerDim}` : ""]);
            const ld = reader.readScalar(buf, `i + ${c}u`);
            out.push(
              cc
                ? `  ${reg}.${COMPONENTS[c]} = select(0.0, ${ld}, ${cc});`
                : `  ${reg}.${COMPONENTS[c]} = ${ld};`,
            );
          }
          out.push(`}`);
        }
      }
      return out;
    },
    store(sbase) {
      return regs.map((reg, r) => `${smem}[${sbase} + ${x}_st + ${r * kStep * stride4}u] = ${reg};`);
    },
  };
}

/** Binding kinds of a generated kernel: Params, A, B, [bias], C. */
export function generatedBindings(v: Pick<MatmulVariant, "bias">): ("uniform" | "read" | "rw")[] {
  return v.bias ? ["uniform", "read", "read", "read", "rw"] : ["uniform", "read", "read", "rw"];
}

/**
 * Emits the WGSL of one (configuration, variant). Only the K-tile loop remains a loop; everything else
 * is straight-line code with named `vec4<f32>` variables.
 */
export function generateMatmulWgsl(c: MatmulTileConfig, v: MatmulVariant): string {
  validateTileConfig(c);
  const threads = threadsOf(c);
  const TX = c.tileN / c.threadN; // threads along N
  const TY = c.tileM / c.threadM; // threads along M
  const GM = c.threadM / 4; // row groups per thread
  const GN = c.threadN / 4; // column groups per thread
  const SA = (c.tileM + c.pad) / 4; // vec4s per k-row of the A tile
  const SB = (c.tileN + c.pad) / 4;
  const sizeA = c.tileK * SA; // vec4s per A buffer
  const sizeB = c.tileK * SB;
  const readA = operandReader(v.halfA);
  const readB = operandReader(v.halfB);
  const elemA = readA.arrayElem(v.vecA);
  const elemB = readB.arrayElem(v.vecB);
  const elemC = v.vecC ? "vec4<f32>" : "f32";
  const L: string[] = [];
  const name = `matmul.gen.${matmulConfigName(c)}.${variantTag(v)}`;
  L.push(
    `// Generated by src/ops/matmul_codegen.ts (v${MATMUL_CODEGEN_VERSION}): ${name}`,
    `// C[b] = ${v.alpha ? "alpha · " : ""}op(A[b]) · op(B[b])${v.bias ? " + bias" : ""}${
      v.beta ? " + beta · C[b]" : ""
    }; op(A) = ${v.transA ? "Aᵀ (A stored [K, M])" : "A (stored [M, K])"}, op(B) = ${
      v.transB ? "Bᵀ (B stored [N, K])" : "B (stored [K, N])"
    }.`,
    `// Bindings: 0 Params; 1 A (${elemA}, batch stride p.stride_a floats, 0 = shared); 2 B (${elemB}, ` +
      `stride p.stride_b);`,
    v.bias
      ? `//   3 bias (${elemC} [N]); 4 C (${elemC} [batch, M, N], read_write).`
      : `//   3 C (${elemC} [batch, M, N], read_write).`,
    `// Workgroup: ${threads} threads, a ${c.tileM}×${c.tileN} tile of C, ${c.threadM}×${c.threadN} outputs per thread ` +
      `as ${GM * c.threadN} vec4 accumulators; K in tiles of ${c.tileK} through ${c.buffers} workgroup ` +
      `buffer(s) (${workgroupBytes(c)} bytes), next tile prefetched into registers.`,
    `// Bounds checks: ${v.checkM ? "M " : ""}${v.checkN ? "N " : ""}${v.checkK ? "K" : ""}${
      v.checkM || v.checkN || v.checkK ? "" : "none (M, N, K are tile multiples)"
    }. Grid: (tiles_n, tiles_m, batch); workgroups are swizzled in groups of ` +
      `${c.groupM} tile rows for L2 reuse.`,
    `// Each output accumulates fma over k = 0..K-1 in order: bitwise equal to shaders/matmul.wgsl.`,
    ...(v.halfA || v.halfB
      ? [
        `// Mixed precision: A is ${v.halfA ?? "f32"}, B is ${
          v.halfB ?? "f32"
        } (bf16: two bit patterns per u32 ` +
        "word); both are widened exactly to f32 on load, accumulation and C stay f32.",
      ]
      : []),
    ...(v.halfA === "f16" || v.halfB === "f16" ? ["enable f16;"] : []),
    "",
    "struct Params {",
    "  m: u32,",
    "  n: u32,",
    "  k: u32,",
    "  stride_a: u32,",
    "  stride_b: u32,",
    "  num_tiles: u32,",
    "  tiles_m: u32,",
    "  tiles_n: u32,",
    "  alpha: f32,",
    "  beta: f32,",
    "}",
    "",
    "@group(0) @binding(0) var<uniform> p: Params;",
    `@group(0) @binding(1) var<storage, read> A: array<${elemA}>;`,
    `@group(0) @binding(2) var<storage, read> B: array<${elemB}>;`,
  );
  if (v.bias) {
    L.push(`@group(0) @binding(3) var<storage, read> bias: array<${elemC}>;`);
    L.push(`@group(0) @binding(4) var<storage, read_write> C: array<${elemC}>;`);
  } else {
    L.push(`@group(0) @binding(3) var<storage, read_write> C: array<${elemC}>;`);
  }
  L.push(...readA.helpers("A", v.vecA), ...readB.helpers("B", v.vecB));
  L.push(
    "",
    `var<workgroup> As: array<vec4<f32>, ${sizeA * c.buffers}>; // [buffer][k][m/4], k-row stride ${SA}`,
    `var<workgroup> Bs: array<vec4<f32>, ${sizeB * c.buffers}>; // [buffer][k][n/4], k-row stride ${SB}`,
    "",
    `@compute @workgroup_size(${threads})`,
    "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {",
  );
  const body: string[] = [];
  // Workgroup swizzle: consecutive workgroups walk down groupM tile rows before moving right.
  if (c.groupM > 0) {
    body.push(
      "let pid = wg.y * p.tiles_n + wg.x;",
      `let width = ${c.groupM}u * p.tiles_n;`,
      "let grp = pid / width;",
      `let first_m = grp * ${c.groupM}u;`,
      `let group_rows = min(p.tiles_m - first_m, ${c.groupM}u);`,
      "let in_group = pid - grp * width;",
      "let tile_m = first_m + in_group % group_rows;",
      "let tile_n = in_group / group_rows;",
    );
  } else {
    body.push("let tile_m = wg.y;", "let tile_n = wg.x;");
  }
  body.push(
    `let row0 = tile_m * ${c.tileM}u;`,
    `let col0 = tile_n * ${c.tileN}u;`,
    `let tx = li % ${TX}u;`,
    `let ty = li / ${TX}u;`,
  );
  const la = loader({
    x: "a",
    buf: "A",
    smem: "As",
    outer: c.tileM,
    outerDim: "p.m",
    origin: "row0",
    tileK: c.tileK,
    threads,
    stride4: SA,
    kContiguous: !v.transA,
    vec: v.vecA,
    checkOuter: v.checkM,
    checkK: v.checkK,
    reader: readA,
  });
  const lb = loader({
    x: "b",
    buf: "B",
    smem: "Bs",
    outer: c.tileN,
    outerDim: "p.n",
    origin: "col0",
    tileK: c.tileK,
    threads,
    stride4: SB,
    kContiguous: v.transB,
    vec: v.vecB,
    checkOuter: v.checkN,
    checkK: v.checkK,
    reader: readB,
  });
  body.push(...la.setup, ...lb.setup);
  for (const r of [...la.regs, ...lb.regs]) body.push(`var ${r}: vec4<f32>;`);
  const acc = (row: number, h: number) => `acc${row}_${h}`;
  for (let row = 0; row < c.threadM; row++) {
    for (let h = 0; h < GN; h++) body.push(`var ${acc(row, h)} = vec4<f32>(0.0);`);
  }
  // Per-thread workgroup-memory read bases.
  body.push(`let ra = ty;`, `let rb = tx;`);

  const computeTile = (offA: number, offB: number): string[] => {
    const out: string[] = [];
    for (let kk = 0; kk < c.tileK; kk++) {
      out.push("{");
      for (let g = 0; g < GM; g++) out.push(`  let a${g} = As[ra + ${offA + kk * SA + g * TY}u];`);
      for (let h = 0; h < GN; h++) out.push(`  let b${h} = Bs[rb + ${offB + kk * SB + h * TX}u];`);
      for (let g = 0; g < GM; g++) {
        for (let i = 0; i < 4; i++) {
          const row = g * 4 + i;
          for (let h = 0; h < GN; h++) {
            out.push(`  ${acc(row, h)} = fma(vec4<f32>(a${g}.${COMPONENTS[i]}), b${h}, ${acc(row, h)});`);
          }
        }
      }
      out.push("}");
    }
    return out;
  };

  const indent = (lines: string[], n = 2) => lines.map((s) => " ".repeat(n) + s);
  if (c.buffers === 2) {
    // The K loop is unrolled by two (buffer 0, then buffer 1) so every workgroup-memory index is a
    // per-thread base plus a constant.
    body.push("// Prologue: K tile 0 into buffer 0.");
    body.push(...la.load("0u"), ...lb.load("0u"));
    body.push(...la.store("0u"), ...lb.store("0u"));
    body.push("workgroupBarrier();");
    body.push("for (var t = 0u; t < p.num_tiles; t += 2u) {");
    body.push("  let more1 = t + 1u < p.num_tiles;");
    body.push("  if (more1) {", ...indent([...la.load("(t + 1u)"), ...lb.load("(t + 1u)")], 4), "  }");
    body.push(...indent(computeTile(0, 0)));
    body.push(
      "  if (more1) {",
      ...indent([...la.store(`${sizeA}u`), ...lb.store(`${sizeB}u`)], 4),
      "  }",
    );
    body.push("  workgroupBarrier();");
    body.push("  if (more1) {");
    body.push("    let more2 = t + 2u < p.num_tiles;");
    body.push("    if (more2) {", ...indent([...la.load("(t + 2u)"), ...lb.load("(t + 2u)")], 6), "    }");
    body.push(...indent(computeTile(sizeA, sizeB), 4));
    body.push(
      "    if (more2) {",
      ...indent([...la.store("0u"), ...lb.store("0u")], 6),
      "    }",
    );
    body.push("    workgroupBarrier();");
    body.push("  }");
    body.push("}");
  } else {
    body.push("// Prologue: K tile 0 into registers.");
    body.push(...la.load("0u"), ...lb.load("0u"));
    body.push("for (var t = 0u; t < p.num_tiles; t++) {");
    body.push(...indent([...la.store("0u"), ...lb.store("0u")]));
    body.push("  workgroupBarrier();");
    body.push(
      "  if (t + 1u < p.num_tiles) {",
      ...indent([...la.load("(t + 1u)"), ...lb.load("(t + 1u)")], 4),
      "  }",
    );
    body.push(...indent(computeTile(0, 0)));
    body.push("  workgroupBarrier();", "}");
  }

  // Epilogue.
  body.push("let base_c = wg.z * p.m * p.n;");
  for (let g = 0; g < GM; g++) {
    for (let i = 0; i < 4; i++) {
      const row = g * 4 + i;
      body.push("{");
      body.push(`  let row = row0 + ${g * TY * 4 + i}u + ty * 4u;`);
      const inner: string[] = [];
      for (let h = 0; h < GN; h++) {
        const colExpr = `col0 + ${h * TX * 4}u + tx * 4u`;
        inner.push("{", `  let col = ${colExpr};`);
        let val = acc(row, h);
        if (v.vecC) {
          const body2: string[] = [];
          body2.push(`let idx = (base_c + row * p.n + col) / 4u;`);
          body2.push(`var v = ${v.alpha ? `p.alpha * ${val}` : val};`);
          if (v.bias) body2.push(`v += bias[col / 4u];`);
          if (v.beta) body2.push(`v += p.beta * C[idx];`);
          body2.push(`C[idx] = v;`);
          if (v.checkN) inner.push(`  if (col < p.n) {`, ...indent(body2, 4), "  }");
          else inner.push(...indent(body2));
        } else {
          inner.push(`  let idx = base_c + row * p.n + col;`);
          for (let cc = 0; cc < 4; cc++) {
            val = `${acc(row, h)}.${COMPONENTS[cc]}`;
            const b2: string[] = [`var v = ${v.alpha ? `p.alpha * ${val}` : val};`];
            if (v.bias) b2.push(`v += bias[col + ${cc}u];`);
            if (v.beta) b2.push(`v += p.beta * C[idx + ${cc}u];`);
            b2.push(`C[idx + ${cc}u] = v;`);
            // N is not a multiple of 4 here, so the last column group can be partial.
            inner.push(`  if (col + ${cc}u < p.n) {`, ...indent(b2, 4), "  }");
          }
        }
        inner.push("}");
      }
      if (v.checkM) body.push("  if (row < p.m) {", ...indent(inner, 4), "  }");
      else body.push(...indent(inner));
      body.push("}");
    }
  }
  L.push(...indent(body));
  L.push("}", "");
  return L.join("\n");
}

const specCache = new Map<string, KernelSpec>();

/** The (cached) kernel spec of one configuration and variant. */
export function generatedMatmulSpec(c: MatmulTileConfig, v: MatmulVariant): KernelSpec {
  const name = `matmul.gen.${matmulConfigName(c)}.${variantTag(v)}`;
  let spec = specCache.get(name);
  if (!spec) {
    spec = { name, code: generateMatmulWgsl(c, v), bindings: generatedBindings(v), family: "matmul" };
    specCache.set(name, spec);
  }
  return spec;
}

/** Tensor bindings of one generated-matmul dispatch. */
export interface MatmulBindings {
  a: BufferBinding;
  b: BufferBinding;
  bias?: BufferBinding;
  c: BufferBinding;
}

/** Grid of the generated kernel: (tiles_n, tiles_m, batch). */
export function generatedGrid(c: MatmulTileConfig, p: MatmulProblem): [number, number, number] {
  return [Math.ceil(p.n / c.tileN), Math.ceil(p.m / c.tileM), p.batch];
}

/**
 * Records one generated-kernel dispatch of problem `p` under configuration `c` (validated by the
 * caller to fit the device). Throws when the grid exceeds the device's workgroup-count limit.
 */
export function dispatchGeneratedMatmul(
  gpu: Gpu,
  c: MatmulTileConfig,
  p: MatmulProblem,
  bindings: MatmulBindings,
  family?: string,
): void {
  const v = matmulVariantFor(p, c);
  if (v.bias !== Boolean(bindings.bias)) {
    throw new RangeError(
      `Cannot dispatch the generated matmul as the problem says bias=${p.bias}: ` +
        `current value of bindings.bias is ${bindings.bias ? "set" : "missing"}`,
    );
  }
  let spec = generatedMatmulSpec(c, v);
  if (family) spec = { ...spec, family };
  const grid = generatedGrid(c, p);
  const u = gpu.uniform(
    new Params().u32(p.m).u32(p.n).u32(p.k).u32(p.strideA).u32(p.strideB)
      .u32(Math.ceil(p.k / c.tileK)).u32(grid[1]).u32(grid[0]).f32(p.alpha).f32(p.beta).bytes(),
  );
  const resources = bindings.bias
    ? [u, bindings.a, bindings.b, bindings.bias, bindings.c]
    : [u, bindings.a, bindings.b, bindings.c];
  gpu.dispatch(spec, resources, grid);
}

/** How `matmulInto` picks its kernel. */
export type MatmulKernelChoice =
  /** The device's tuning table if one is installed and holds the shape, else the size heuristic. */
  | "auto"
  /** Always the general kernel (`shaders/matmul.wgsl`). */
  | "general"
  /** The generated kernel under the best default configuration that fits the device. */
  | "generated"
  /** The generated kernel under exactly this configuration (throws if it does not fit). */
  | MatmulTileConfig;

/** Tuned choices per problem key ({@linkcode matmulProblemKey}): a config name or `"general"`. */
export type MatmulTuningTable = Record<string, string>;

const tuning = new WeakMap<Gpu, Map<string, MatmulTileConfig | "general">>();

/**
 * The key of a problem in tuning tables: batch, sizes and transposes (the epilogue costs little and is
 * left out), e.g. `b1_m4096_n4096_k4096_nn`.
 */
export function matmulProblemKey(
  p: Pick<MatmulProblem, "batch" | "m" | "n" | "k" | "transA" | "transB">,
): string {
  return `b${p.batch}_m${p.m}_n${p.n}_k${p.k}_${p.transA ? "t" : "n"}${p.transB ? "t" : "n"}`;
}

/**
 * Installs (or with `null` removes) the tuning table `matmulInto` consults under `"auto"` on this
 * device. Entries naming configurations that do not fit the device are ignored.
 *
 * @example
 * ```ts ignore
 * setMatmulTuning(gpu, { "b1_m4096_n4096_k4096_nn": "128x128x16_t8x8_b2_p4_g8" });
 * ```
 */
export function setMatmulTuning(gpu: Gpu, table: MatmulTuningTable | null): void {
  if (!table) {
    tuning.delete(gpu);
    return;
  }
  const map = new Map<string, MatmulTileConfig | "general">();
  for (const [key, value] of Object.entries(table)) {
    if (value === "general") {
      map.set(key, "general");
      continue;
    }
    const c = parseMatmulConfigName(value);
    if (configFits(c, gpu.device.limits)) map.set(key, c);
  }
  tuning.set(gpu, map);
}

/**
 * Problems smaller than this many multiply-adds (all batches together), or with K < 16, take the smallest
 * generated tile (32×32×16, 64 threads) under `"auto"`. They used to take the general kernel, which runs
 * about 100× slower than the generated ones on an H200 (0.38 TFLOP/s on 16384×2048×512; autotune caches in
 * `docs/results/h200_2026-11-29_autotune_cache_*.json`): its single-workgroup dispatches for the output
 * heads and their gradients ([32 × 64]·[64 × 3] and the like) cost 0.41 ms per `poyo_1_3m` step and 2.1
 * ms per seed-size step (`bench_train --timing-kernels`, `matmul.tiled64@1x1x1`), where a generated tile
 * takes microseconds.
 */
export const TINY_MATMUL_WORK = 64 * 64 * 64;

/**
 * Below this many 128×128 output tiles (about one wave on a 132-SM GPU) the default prefers tiles of at
 * most 128×64, which double the number of workgroups (measured on an H200: 1000² ×1000 went from 16 to
 * 24 TFLOP/s, [16384,512]ᵀ·[16384,2048] from 20 to 32).
 */
export const SMALL_GRID_TILES = 128;

/** Products with at least this K are "tall-K" for {@linkcode TALL_K_MIN_THREADS}. */
export const TALL_K = 256;

/**
 * A tall-K product whose default tile launches fewer threads than this (all workgroups together) takes
 * 32×64×32 tiles (16 outputs per thread instead of 32 or 64): each thread walks all of K, so a few
 * thousand busy threads leave an H200 idle. Measured in the autotune caches above: [4096 × 1536]·[1536 ×
 * 64] 0.097 ms with 128×64 tiles, 0.038 with 32×64×32; batch 64 of [128 × 2600]·[2600 × 64] 0.274 vs
 * 0.159.
 */
export const TALL_K_MIN_THREADS = 32768;

/** Threads a problem launches under a configuration (every workgroup of every batch). */
function launchedThreads(p: { m: number; n: number; batch?: number }, c: MatmulTileConfig): number {
  return (p.batch ?? 1) * Math.ceil(p.m / c.tileM) * Math.ceil(p.n / c.tileN) * threadsOf(c);
}

/**
 * The small tile for an output at most 32 rows high or 32 columns wide (a 64- or 128-wide tile would
 * compute mostly padding), or null. K < 32 takes the K-16 variant. Measured (autotune caches above):
 * [32 × 4096]·[4096 × 512] 0.094 ms with 32×64×32 against 0.249 with the 64×128 default; batch 81 of
 * [256 × 1024]·[1024 × 16] 0.058 with 64×32×32 against 0.149.
 */
function smallOutputTile(
  p: { m: number; n: number; k?: number },
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): MatmulTileConfig | null {
  const deep = (p.k ?? 32) >= 32;
  const tile = p.m <= 32 && p.n <= 32
    ? SMALL_OUTPUT_TILES.both32
    : p.m <= 32
    ? (deep ? SMALL_OUTPUT_TILES.rows32.deep : SMALL_OUTPUT_TILES.rows32.shallow)
    : p.n <= 32
    ? (deep ? SMALL_OUTPUT_TILES.cols32.deep : SMALL_OUTPUT_TILES.cols32.shallow)
    : null;
  return tile && configFits(tile, limits) ? tile : null;
}

/**
 * The default configuration for a problem on a device with the given limits:
 * - an output at most 32 rows high or 32 columns wide takes a small tile (`smallOutputTile`);
 * - otherwise the first candidate of {@linkcode DEFAULT_MATMUL_TILE_CONFIGS} that fits and whose tile is
 *   not larger than the output (128-row or 128-column tiles need ≥ 128 rows or columns), taking tiles of
 *   ≤ 128×64 first when 128×128 tiles would give fewer than {@linkcode SMALL_GRID_TILES} workgroups, and
 *   the K-16 tile first when A is transposed;
 * - a tall-K product (K ≥ {@linkcode TALL_K}) whose choice launches fewer than
 *   {@linkcode TALL_K_MIN_THREADS} threads then takes 32×64×32 tiles.
 */
export function defaultMatmulConfig(
  p: Pick<MatmulProblem, "m" | "n"> & { batch?: number; k?: number; transA?: boolean },
  limits: { maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number },
): MatmulTileConfig | null {
  const small = smallOutputTile(p, limits);
  if (small) return small;
  const suits = (c: MatmulTileConfig) =>
    (c.tileM <= 64 || p.m >= c.tileM) && (c.tileN <= 64 || p.n >= c.tileN);
  const bigTiles = (p.batch ?? 1) * Math.ceil(p.m / 128) * Math.ceil(p.n / 128);
  const all = DEFAULT_MATMUL_TILE_CONFIGS;
  let order: readonly MatmulTileConfig[] = all;
  if (bigTiles < SMALL_GRID_TILES) {
    order = [
      ...all.filter((c) => c.tileM * c.tileN <= 128 * 64),
      ...all.filter((c) => c.tileM * c.tileN > 128 * 64),
    ];
  } else if (p.transA) {
    // A stored [K, M]: BK 16 measured 39.8 vs 37.6 TFLOP/s (4096³) and 39.9 vs 37.5 (a weight gradient).
    order = [all[1], ...all.filter((_, i) => i !== 1)];
  }
  let chosen: MatmulTileConfig | null = null;
  for (const c of order) {
    if (suits(c) && configFits(c, limits)) {
      chosen = c;
      break;
    }
  }
  if (!chosen) { for (const c of order) if (configFits(c, limits)) return c; }
  if (!chosen || (p.k ?? 0) < TALL_K || launchedThreads(p, chosen) >= TALL_K_MIN_THREADS) return chosen;
  // 16 outputs per thread instead of 32 or 64: two to four times the threads.
  return configFits(SMALL_OUTPUT_TILES.rows32.deep, limits) ? SMALL_OUTPUT_TILES.rows32.deep : chosen;
}

/**
 * The configuration `matmulInto` runs for problem `p` under `choice`, or null for the general kernel.
 * Deterministic: it depends only on the problem, the device limits and the installed tuning table.
 */
export function chooseMatmulConfig(
  gpu: Gpu,
  p: MatmulProblem,
  choice: MatmulKernelChoice = "auto",
): MatmulTileConfig | null {
  const limits = gpu.device.limits;
  if (choice === "general" || p.m === 0 || p.n === 0 || p.k === 0) return null;
  if (typeof choice === "object") {
    validateTileConfig(choice);
    if (!configFits(choice, limits)) {
      throw new RangeError(
        `Cannot run matmul tile config ${matmulConfigName(choice)} as it needs ${
          workgroupBytes(choice)
        } bytes of workgroup memory and ${threadsOf(choice)} threads: the device allows ` +
          `${limits.maxComputeWorkgroupStorageSize} bytes and ${limits.maxComputeInvocationsPerWorkgroup} threads`,
      );
    }
    return choice;
  }
  if (choice === "generated") return defaultMatmulConfig(p, limits);
  const tuned = tuning.get(gpu)?.get(matmulProblemKey(p));
  if (tuned) return tuned === "general" ? null : tuned;
  if (p.batch * p.m * p.n * p.k < TINY_MATMUL_WORK || p.k < 16) {
    return configFits(SMALL_OUTPUT_TILES.both32, limits) ? SMALL_OUTPUT_TILES.both32 : null;
  }
  return defaultMatmulConfig(p, limits);
}

/**
 * WGSL that loads 4 consecutive K-values into the vec4 register `reg` from `buf[idx]` (one vec4 load, or
 * four scalar loads when rows are not vec4-aligned), zero where the outer index is out of range (`oCond`)
 * or k ≥ p.k (`kVar`: the first k of the four, null when K needs no check).
 */
function guardedLoad(
  reg: string,
  buf: string,
  idx: string,
  vec: boolean,
  oCond: string,
  kVar: string | null,
  reader: OperandReader,
): string[] {
  if (vec) {
    const c = conds([oCond, kVar ? `${kVar} < p.k` : ""]);
    const ld = reader.readVec4(buf, idx);
    return c ? [`${reg} = vec4<f32>(0.0);`, `if (${c}) { ${reg} = ${ld}; }`] : [`${reg} = ${ld};`];
  }
  const out = [`{`, `  let i = ${idx};`];
  for (let c = 0; c < 4; c++) {
    const cc = conds([oCond, kVar ? `${kVar} + ${c}u < p.k` : ""]);
    const ld = reader.readScalar(buf, `i + ${c}u`);
    out.push(
      cc ? `  ${reg}.${COMPONENTS[c]} = select(0.0, ${ld}, ${cc});` : `  ${reg}.${COMPONENTS[c]} = ${ld};`,
    );
  }
  out.push(`}`);
  return out;
}

/** A matmul problem with the common defaults (one batch, no bias, alpha 1, beta 0) — benches and tests. */
export function matmulProblem(
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  extra: Partial<MatmulProblem> = {},
): MatmulProblem {
  return {
    batch: 1,
    m,
    n,
    k,
    transA,
    transB,
    strideA: 0,
    strideB: 0,
    bias: false,
    alpha: 1,
    beta: 0,
    ...extra,
  };
}

/** `a && b && …` over the non-empty conditions ("" when none). */
function conds(parts: string[]): string {
  return parts.filter((s) => s !== "").join(" && ");
}
