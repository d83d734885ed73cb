/**
 * Rotary time embedding (POYO contract, "Rotary time embedding"): the periods, the exact f32 angle, the
 * WGSL helpers that attention kernels paste in to rotate tiles while loading them, and a standalone op.
 *
 * Math, per head of width dh (a multiple of 4): F = dh/4 frequencies with periods
 * `P_i = exp(ln tMin + (ln tMax − ln tMin) · i/(F−1))` (computed in f64, rounded to f32; `P_0 = tMin` when
 * F = 1), angle `θ_i(t) = 2π · fract(t / P_i)` in f32 (the quotient correctly rounded, so large t keep a
 * small, exact argument), and dims (2i, 2i+1) for i < F rotate by θ_i:
 * `x'_{2i} = x_{2i} cos θ − x_{2i+1} sin θ`, `x'_{2i+1} = x_{2i+1} cos θ + x_{2i} sin θ`; dims dh/2..dh−1
 * pass through. Rotation by −t negates sin (it is the transpose, so it is also the backward).
 *
 * On the GPU the quotient t/P is computed by integer long division of the f32 significands
 * (`rotary_div`), so it is the correctly rounded f32 quotient on every adapter — WGSL's f32 division may
 * be 2.5 ulp off and `fma` is not fused on every adapter, and at t/P ≈ 10⁵ one ulp of the quotient moves
 * the angle by ~0.05 rad. Attention kernels read (cos, sin) from a small table computed once per time
 * tensor ({@linkcode rotaryTable}) instead of recomputing angles in their tile loads.
 *
 * @module
 */
import src from "../../shaders/rotary.wgsl" with { type: "text" };
import { Params } from "../gpu/kernel.ts";
import type { KernelSpec } from "../gpu/kernel.ts";
import { record } from "../tensor/autograd.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { contiguous } from "./elementwise.ts";
import { expectDtype, grid1d } from "./launch.ts";

/** f32 value of 2π, the factor of the angle formula. */
export const TWO_PI_F32: number = Math.fround(2 * Math.PI);

/** The rotary geometry of one attention head. */
export interface RotaryConfig {
  /** Per-head width dh (a multiple of 4). */
  dimHead: number;
  /** Shortest period in seconds (> 0). */
  tMin: number;
  /** Longest period in seconds (≥ tMin). */
  tMax: number;
}

/** Throws unless the rotary geometry is usable. */
export function checkRotaryConfig(op: string, c: RotaryConfig): void {
  if (!Number.isInteger(c.dimHead) || c.dimHead < 4 || c.dimHead % 4 !== 0) {
    throw new RangeError(
      `Cannot run ${op} as dimHead must be a positive multiple of 4 (F = dimHead/4 rotary frequencies): ` +
        `current value is ${c.dimHead}`,
    );
  }
  if (!(c.tMin > 0) || !(c.tMax >= c.tMin) || !Number.isFinite(c.tMax)) {
    throw new RangeError(
      `Cannot run ${op} as the rotary periods need 0 < tMin ≤ tMax < ∞: current values are ` +
        `tMin=${c.tMin}, tMax=${c.tMax}`,
    );
  }
}

/**
 * The F = dimHead/4 rotary periods in seconds, as f32 values.
 *
 * @example
 * ```ts
 * import { rotaryPeriods } from "./rotary.ts";
 * const p = rotaryPeriods(64, 1e-4, 2.0627);
 * console.log(p.length, p[0], p[15]); // 16 0.0001 2.0627
 * ```
 */
export function rotaryPeriods(dimHead: number, tMin: number, tMax: number): Float32Array {
  const f = dimHead / 4;
  const out = new Float32Array(f);
  const lo = Math.log(tMin);
  const hi = Math.log(tMax);
  for (let i = 0; i < f; i++) out[i] = f === 1 ? tMin : Math.exp(lo + (hi - lo) * i / (f - 1));
  return out;
}

/**
 * The rotary angle θ = 2π·fract(t/P) exactly as the GPU computes it in f32 (t and P are rounded to f32
 * first; the quotient is the correctly rounded f32 quotient).
 *
 * @example
 * ```ts
 * import { rotaryAngleF32 } from "./rotary.ts";
 * console.log(rotaryAngleF32(0.25, 1)); // ≈ π/2
 * ```
 */
export function rotaryAngleF32(t: number, period: number): number {
  const q = Math.fround(Math.fround(t) / Math.fround(period));
  const frac = Math.fround(q - Math.floor(q));
  return Math.fround(TWO_PI_F32 * frac);
}

/** A WGSL f32 literal that parses back to exactly `x` (which must be an f32 value). */
export function wgslF32(x: number): string {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) throw new RangeError(`Cannot write ${x} as a finite WGSL f32 literal`);
  if (f === 0) return "0.0f";
  return `${f.toPrecision(9)}f`;
}

/** The f32 fields of a period: P = mantissa · 2^(exponent − 23), mantissa in [2^23, 2^24). */
function f32Parts(x: number): { mantissa: number; exponent: number } {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  const field = (bits >>> 23) & 0xff;
  if (field === 0 || field === 255) {
    throw new RangeError(`Cannot use ${x} as a rotary period: it must be a normal f32`);
  }
  return { mantissa: (bits & 0x7fffff) | 0x800000, exponent: field - 127 };
}

/** Number of vec4 (cos, sin, cos, sin) chunks per time in a rotary table: ceil(F / 2). */
export function rotaryTableChunks(dimHead: number): number {
  return Math.ceil(dimHead / 8);
}

/**
 * WGSL helpers for one rotary geometry (pasted into kernels through a template placeholder):
 *
 * - `const ROT4: u32`: vec4 chunks per head that rotate (ceil(F/2); chunk c holds pairs 2c and 2c+1).
 * - `fn rotary_div(t: f32, mb: u32, eb: i32) -> f32`: the correctly rounded f32 quotient t / P for
 *   P = mb·2^(eb−23), by integer long division (exact on every adapter, whatever its f32 division or fma
 *   precision; |t| < 2^−126 gives 0).
 * - `fn rotary_cs(c: u32, t: f32) -> vec4<f32>`: (cos θ_2c, sin θ_2c, cos θ_2c+1, sin θ_2c+1) at time t;
 *   a pair past F gives (1, 0).
 * - `fn rotate_chunk(x: vec4<f32>, cs: vec4<f32>, sgn: f32) -> vec4<f32>`: rotates the two pairs of a
 *   chunk by the angles in `cs` (sgn = −1: by the opposite angles).
 */
export function rotaryWgsl(c: RotaryConfig): string {
  const periods = rotaryPeriods(c.dimHead, c.tMin, c.tMax);
  const f = periods.length;
  const chunks = rotaryTableChunks(c.dimHead);
  const pair = (i: number) => {
    if (i >= f) return "vec2<f32>(1.0, 0.0)";
    const { mantissa, exponent } = f32Parts(periods[i]);
    return `rotary_pair(t, ${mantissa}u, ${exponent}i)`;
  };
  const cases = range(chunks).map((chunk) =>
    `    case ${chunk}u: {\n      return vec4<f32>(${pair(2 * chunk)}, ${pair(2 * chunk + 1)});\n    }`
  );
  return `// Rotary time embedding for dh = ${c.dimHead} (F = ${f}), tMin = ${c.tMin}, tMax = ${c.tMax}.
const ROT4: u32 = ${chunks}u;

// Correctly rounded f32 quotient t / P, P = mb·2^(eb−23) with mb in [2^23, 2^24): long division of the
// 24-bit significands (33 quotient bits and a sticky remainder), then round half to even.
fn rotary_div(t: f32, mb: u32, eb: i32) -> f32 {
  let bits = bitcast<u32>(t);
  let field = i32((bits >> 23u) & 0xffu);
  if (field == 0) {
    return 0.0;
  }
  let ma = (bits & 0x7fffffu) | 0x800000u;
  var rem = ma;
  var lead = 0u;
  if (rem >= mb) {
    lead = 1u;
    rem -= mb;
  }
  var frac = 0u;
  for (var step = 0u; step < 4u; step++) {
    rem = rem << 8u;
    let digit = rem / mb;
    rem -= digit * mb;
    frac = (frac << 8u) | digit;
  }
  var e = field - 127 - eb;
  var mant = 0u;
  var round = 0u;
  var sticky = rem != 0u;
  if (lead == 1u) {
    mant = 0x800000u | (frac >> 9u);
    round = (frac >> 8u) & 1u;
    sticky = sticky || (frac & 0xffu) != 0u;
  } else {
    mant = frac >> 8u;
    round = (frac >> 7u) & 1u;
    sticky = sticky || (frac & 0x7fu) != 0u;
    e -= 1;
  }
  if (round == 1u && (sticky || (mant & 1u) == 1u)) {
    mant += 1u;
  }
  if (mant == 0x1000000u) {
    mant = 0x800000u;
    e += 1;
  }
  if (e < -126) {
    return 0.0;
  }
  return bitcast<f32>((u32(e + 127) << 23u) | (mant & 0x7fffffu) | (bits & 0x80000000u));
}

// (cos θ, sin θ) with θ = 2π·fract(t/P) in f32.
fn rotary_pair(t: f32, mb: u32, eb: i32) -> vec2<f32> {
  let q = rotary_div(t, mb, eb);
  let theta = ${wgslF32(TWO_PI_F32)} * (q - floor(q));
  return vec2<f32>(cos(theta), sin(theta));
}

fn rotary_cs(c: u32, t: f32) -> vec4<f32> {
  switch c {
${cases.join("\n")}
    default: {
      return vec4<f32>(1.0, 0.0, 1.0, 0.0);
    }
  }
}

fn rotate_chunk(x: vec4<f32>, cs: vec4<f32>, sgn: f32) -> vec4<f32> {
  let s0 = sgn * cs.y;
  let s1 = sgn * cs.w;
  return vec4<f32>(x.x * cs.x - x.y * s0, x.y * cs.x + x.x * s0, x.z * cs.z - x.w * s1, x.w * cs.z + x.z * s1);
}
`;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Fills `{{NAME}}` placeholders of a WGSL template; throws on a missing or unused value. */
export function fillTemplate(
  name: string,
  template: string,
  values: Record<string, string | number>,
): string {
  const used = new Set<string>();
  const out = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_m, key: string) => {
    if (!(key in values)) throw new Error(`Cannot fill WGSL template ${name}: no value for {{${key}}}`);
    used.add(key);
    return String(values[key]);
  });
  for (const key of Object.keys(values)) {
    if (!used.has(key)) throw new Error(`Cannot fill WGSL template ${name}: it has no {{${key}}}`);
  }
  return out;
}

/** Options of {@linkcode rotaryEmbed}. */
export interface RotaryEmbedOptions extends RotaryConfig {
  /** Number of heads packed in the last axis (width = heads · dimHead). */
  heads: number;
  /** Rotate by −t instead of +t (default false). */
  inverse?: boolean;
}

const kernelCache = new Map<string, { embed: KernelSpec; table: KernelSpec }>();

function rotaryKernels(c: RotaryConfig): { embed: KernelSpec; table: KernelSpec } {
  const key = `${c.dimHead}|${c.tMin}|${c.tMax}`;
  let specs = kernelCache.get(key);
  if (!specs) {
    const code = fillTemplate("rotary.wgsl", src, { ROTARY: rotaryWgsl(c), DH4: c.dimHead / 4 });
    const spec = (entryPoint: string): KernelSpec => ({
      name: `rotary.${entryPoint}.dh${c.dimHead}`,
      code,
      entryPoint,
      bindings: ["uniform", "read", "read", "rw"],
      family: "elementwise",
    });
    specs = { embed: spec("embed"), table: spec("table") };
    kernelCache.set(key, specs);
  }
  return specs;
}

function launchRotary(x: Tensor, time: Tensor, o: RotaryEmbedOptions, sign: 1 | -1): Tensor {
  const [batch, len] = x.shape;
  const out = Tensor.empty(x.gpu, x.shape);
  const chunks = batch * len * o.heads * (o.dimHead / 4);
  const u = x.gpu.uniform(
    new Params().u32(chunks).u32(len).u32(o.heads).u32(time.rank === 1 ? 0 : len).f32(sign).bytes(),
  );
  x.gpu.dispatch(
    rotaryKernels(o).embed,
    [u, contiguous(x).binding(), time.binding(), out.binding()],
    grid1d(chunks),
  );
  return out;
}

/**
 * The rotation table of a time tensor: for every time (any shape, flattened to N) and rotating chunk c
 * (c < ceil(F/2)), the vec4 (cos θ_2c, sin θ_2c, cos θ_2c+1, sin θ_2c+1); shape [N, 4·ceil(F/2)], f32.
 * Not differentiable (times get no gradient).
 *
 * @example
 * ```ts ignore
 * const table = rotaryTable(latentTime, { dimHead: 64, tMin: 1e-4, tMax: 2.0627 }); // [L, 32]
 * ```
 */
export function rotaryTable(time: Tensor, config: RotaryConfig): Tensor {
  checkRotaryConfig("rotaryTable", config);
  expectDtype("rotaryTable", "time", time, "f32");
  const n = time.size;
  const r4 = rotaryTableChunks(config.dimHead);
  const out = Tensor.empty(time.gpu, [n, 4 * r4]);
  if (n === 0) return out;
  const u = time.gpu.uniform(new Params().u32(n * r4).u32(n).u32(1).u32(0).f32(1).bytes());
  time.gpu.dispatch(
    rotaryKernels(config).table,
    [u, time.gpu.scratch, contiguous(time).binding(), out.binding()],
    grid1d(n * r4),
  );
  return out;
}
/**
 * Rotates every head of `x` ([B, L, heads·dimHead], head-major) by its row's time (`time` is [B, L], or
 * [L] shared by the batch), or by −t with `inverse`. Differentiable in `x` (the backward rotates the
 * gradient the other way); `time` gets no gradient.
 *
 * @example
 * ```ts ignore
 * const q = rotaryEmbed(x, t, { heads: 8, dimHead: 64, tMin: 1e-4, tMax: 2.0627 });
 * ```
 */
export function rotaryEmbed(x: Tensor, time: Tensor, options: RotaryEmbedOptions): Tensor {
  checkRotaryConfig("rotaryEmbed", options);
  expectDtype("rotaryEmbed", "x", x, "f32");
  expectDtype("rotaryEmbed", "time", time, "f32");
  const width = options.heads * options.dimHead;
  if (x.rank !== 3 || x.shape[2] !== width) {
    throw new RangeError(
      `Cannot run rotaryEmbed as x must be [B, L, heads·dimHead = ${width}]: current shape is ` +
        fmtShape(x.shape),
    );
  }
  const [batch, len] = x.shape;
  const timeOk = (time.rank === 2 && time.shape[0] === batch && time.shape[1] === len) ||
    (time.rank === 1 && time.shape[0] === len);
  if (!timeOk) {
    throw new RangeError(
      `Cannot run rotaryEmbed as time must be [${batch}, ${len}] or [${len}]: current shape is ` +
        fmtShape(time.shape),
    );
  }
  const sign = options.inverse ? -1 : 1;
  const out = launchRotary(x, time, options, sign);
  return record("rotaryEmbed", [x], out, (g) => [launchRotary(g, time, options, sign === 1 ? -1 : 1)]);
}
