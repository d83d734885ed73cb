// Rotary attention, backward for queries (src/ops/attention.ts; generated parts from
// src/ops/attention_codegen.ts). One workgroup owns BQ query rows of one (batch b, head h), keeps Q̃ and
// dÕ in workgroup memory and loops over the valid key blocks, accumulating dq̃ in registers (each query
// row is written by exactly one workgroup in a fixed loop order: deterministic, no atomics).
//
//   P = exp(q̃·k̃ / √dh − LSE_q) (0 for keys n ≥ kvLen[b]),  dÕ = R(t_q) dO (ROTATE_V) or dO
//   dS = P ⊙ (dÕ·ṽ − D_q),   dq̃ = Σ_n dS k̃_n / √dh,   dq = R(−t_q) dq̃
// Rows without valid keys (kvLen[b] = 0) get zero gradients.
//
// Bindings: 0 uniform Params;
//   1 qr (read, vec4<f32> [B, heads, Lq, D4]): q̃;  2 kr, 3 vr (read, vec4<f32> [B, heads, Lk, D4]): k̃, ṽ
//   (prepared by attention_rotate.wgsl);  4 gr (read, vec4<f32> [B, heads, Lq, D4]): dÕ and
//   5 dd (read, f32 [B, heads, Lq]): D (both from attention_row_dot.wgsl);  6 lse (read, f32
//   [B, heads, Lq], natural log);  7 q_rot (read, vec4<f32>): rotary table of the query times, row
//   b·p.qt_bstride + q;  8 kv_len (read, i32 [B]);
//   9 dq (read_write, vec4<f32>): rows [B, Lq] of p.dq_stride vec4; dq at p.dq_off + h·D4
// Grid: (ceil(Lq / BQ), heads, B).
// Workgroup: TX·TY threads; thread (tx, ty) owns query rows ty + TY·a (a < RQ) and, in the score tile,
// keys tx + TX·b (b < RK), in the gradient tile vec4 columns tx + TX·e (e < RD4). Workgroup memory:
// Q̃, dÕ [BQ][D4+1], K̃, Ṽ [BK][D4+1], dS [BQ][BK/4+1] vec4.

struct Params {
  lq: u32,
  lk: u32,
  heads: u32,
  qt_bstride: u32,
  dq_stride: u32,
  dq_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qr: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kr: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> vr: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gr: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dd: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> q_rot: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> kv_len: array<i32>;
@group(0) @binding(9) var<storage, read_write> dq: array<vec4<f32>>;

const D4: u32 = {{D4}}u;
const TX: u32 = {{TX}}u;
const TY: u32 = {{TY}}u;
const T: u32 = TX * TY;
const BQ: u32 = {{BQ}}u;
const BK: u32 = {{BK}}u;
const SD4: u32 = D4 + 1u;
const SP4: u32 = BK / 4u + 1u;
const ROTATE_V: bool = {{ROTATE_V}};
const SCALE: f32 = {{SCALE}};
const SCALE_LOG2: f32 = {{SCALE_LOG2}};
const LOG2E: f32 = 1.44269502f;
const BIG: f32 = 1e30f;

var<workgroup> qs: array<vec4<f32>, BQ * SD4>;
var<workgroup> dos: array<vec4<f32>, BQ * SD4>;
var<workgroup> ks: array<vec4<f32>, BK * SD4>;
var<workgroup> vs: array<vec4<f32>, BK * SD4>;
var<workgroup> dss: array<vec4<f32>, BQ * SP4>;
var<workgroup> wg_valid: u32;

{{ROTARY}}

// Rotation of a vec4 chunk c of a head by the table row of a query time.
fn rot_q(x: vec4<f32>, row: u32, c: u32, sgn: f32) -> vec4<f32> {
  if (c < ROT4) {
    return rotate_chunk(x, q_rot[row * ROT4 + c], sgn);
  }
  return x;
}

@compute @workgroup_size({{T}})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let b = wg.z;
  let h = wg.y;
  let q0 = wg.x * BQ;
  let qbase = (b * p.heads + h) * p.lq * D4;
  let kbase = (b * p.heads + h) * p.lk * D4;
  if (lid == 0u) {
    wg_valid = u32(clamp(kv_len[b], 0, i32(p.lk)));
  }
  let n_valid = workgroupUniformLoad(&wg_valid);

  // Q̃ and dÕ tiles: queries q0 .. q0+BQ (zeros past Lq).
  for (var e = lid; e < BQ * D4; e += T) {
    let r = e / D4;
    let c = e % D4;
    let q = q0 + r;
    var qx = vec4<f32>(0.0);
    var gx = vec4<f32>(0.0);
    if (q < p.lq) {
      qx = qr[qbase + q * D4 + c];
      gx = gr[qbase + q * D4 + c];
    }
    qs[r * SD4 + c] = qx;
    dos[r * SD4 + c] = gx;
  }

{{DECLS}}

  // K̃/Ṽ tiles of key block kb (zeros past kvLen) go through registers: the next block's loads are
  // issued before the current block's products.
{{PREFETCH_FIRST}}
  for (var kb = 0u; kb < n_valid; kb += BK) {
    workgroupBarrier();
{{STORE_TILES}}
    workgroupBarrier();
    if (kb + BK < n_valid) {
{{PREFETCH_NEXT}}
    }
{{SCORES}}
    workgroupBarrier();
{{ACCUMULATE}}
  }

{{FINISH}}
}
