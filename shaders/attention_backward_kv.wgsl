// Rotary attention, backward for keys and values (src/ops/attention.ts; generated parts from
// src/ops/attention_codegen.ts). One workgroup owns BKV keys of one (batch b, head h), keeps K̃ and Ṽ in
// workgroup memory and loops over every query block, accumulating dK̃ and dṼ in registers (no atomics:
// each key row is written by exactly one workgroup, in a fixed loop order, so results are deterministic).
//
//   P = exp(q̃·k̃ / √dh − LSE_q) (0 for keys n ≥ kvLen[b]),  dÕ = R(t_q) dO (ROTATE_V) or dO
//   dṽ = Σ_q P dÕ_q,   dS = P ⊙ (dÕ·ṽ − D_q) with D_q = Σ_d dO∘O,   dk̃ = Σ_q dS q̃_q / √dh
//   dk = R(−t_k) dk̃,  dv = R(−t_k) dṽ (ROTATE_V) or dṽ
// Keys past kvLen[b] get zero gradients; a block entirely past kvLen[b] skips the query loop and writes
// its zeros, so every gradient column of the key and value slices is written.
//
// Bindings: 0 uniform Params;
//   1 qr (read, vec4<f32> [B, heads, Lq, D4]): q̃;  2 kr, 3 vr (read, vec4<f32> [B, heads, Lk, D4]): k̃, ṽ
//   (prepared by attention_rotate.wgsl);  4 gr (read, vec4<f32> [B, heads, Lq, D4]): dÕ and
//   5 dd (read, f32 [B, heads, Lq]): D (both from attention_row_dot.wgsl);  6 lse (read, f32
//   [B, heads, Lq], natural log);  7 k_rot (read, vec4<f32>): rotary table of the key times, row
//   b·p.kt_bstride + k;  8 kv_len (read, i32 [B]);
//   9 dkv (read_write, vec4<f32>): rows [B, Lk] of p.dkv_stride vec4; dk at p.dk_off + h·D4, dv at
//   p.dv_off + h·D4
// Grid: (ceil(Lk / BKV), heads, B).
// Workgroup: TX·TY threads; thread (tx, ty) owns keys ty + TY·a (a < RK) and, in the transposed score
// tile, queries tx + TX·b (b < RQ), in the gradient tiles vec4 columns tx + TX·e (e < RD4). Tiles are
// row-major with the reduction axis contiguous and one vec4 of padding per row (reads of distinct rows
// in a warp hit distinct banks). Workgroup memory: K̃, Ṽ [BKV][D4+1], Q̃, dÕ [BQ][D4+1], Pᵀ and dSᵀ
// [BKV][BQ/4+1] vec4, LSE and D [BQ] f32.

struct Params {
  lq: u32,
  lk: u32,
  heads: u32,
  q_blocks: u32,
  kt_bstride: u32,
  dkv_stride: u32,
  dk_off: u32,
  dv_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qr: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kr: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> vr: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gr: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> dd: array<f32>;
@group(0) @binding(6) var<storage, read> lse: array<f32>;
@group(0) @binding(7) var<storage, read> k_rot: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> kv_len: array<i32>;
@group(0) @binding(9) var<storage, read_write> dkv: array<vec4<f32>>;

const D4: u32 = {{D4}}u;
const TX: u32 = {{TX}}u;
const TY: u32 = {{TY}}u;
const T: u32 = TX * TY;
const BKV: u32 = {{BKV}}u;
const BQ: u32 = {{BQ}}u;
const SD4: u32 = D4 + 1u;
const SP4: u32 = BQ / 4u + 1u;
const ROTATE_V: bool = {{ROTATE_V}};
const SCALE: f32 = {{SCALE}};
const SCALE_LOG2: f32 = {{SCALE_LOG2}};
const LOG2E: f32 = 1.44269502f;
const BIG: f32 = 1e30f;

var<workgroup> ks: array<vec4<f32>, BKV * SD4>;
var<workgroup> vs: array<vec4<f32>, BKV * SD4>;
var<workgroup> qs: array<vec4<f32>, BQ * SD4>;
var<workgroup> dos: array<vec4<f32>, BQ * SD4>;
var<workgroup> pts: array<vec4<f32>, BKV * SP4>;
var<workgroup> dsts: array<vec4<f32>, BKV * SP4>;
var<workgroup> lse_s: array<f32, BQ>;
var<workgroup> dd_s: array<f32, BQ>;
var<workgroup> wg_valid: u32;

{{ROTARY}}

// Rotation of a vec4 chunk c of a head by the table row of a key time.
fn rot_k(x: vec4<f32>, row: u32, c: u32, sgn: f32) -> vec4<f32> {
  if (c < ROT4) {
    return rotate_chunk(x, k_rot[row * ROT4 + c], sgn);
  }
  return x;
}

@compute @workgroup_size({{T}})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let b = wg.z;
  let h = wg.y;
  let k0 = wg.x * BKV;
  let qbase = (b * p.heads + h) * p.lq * D4;
  let kbase = (b * p.heads + h) * p.lk * D4;
  if (lid == 0u) {
    wg_valid = u32(clamp(kv_len[b], 0, i32(p.lk)));
  }
  let n_valid = workgroupUniformLoad(&wg_valid);

  // K̃ and Ṽ tiles: keys k0 .. k0+BKV (zeros past kvLen).
  for (var e = lid; e < BKV * D4; e += T) {
    let r = e / D4;
    let c = e % D4;
    let k = k0 + r;
    var kx = vec4<f32>(0.0);
    var vx = vec4<f32>(0.0);
    if (k < n_valid) {
      kx = kr[kbase + k * D4 + c];
      vx = vr[kbase + k * D4 + c];
    }
    ks[r * SD4 + c] = kx;
    vs[r * SD4 + c] = vx;
  }

{{DECLS}}

  let q_loop = select(0u, p.q_blocks, k0 < n_valid);
  // Q̃/dÕ tiles of query block qb (zeros past Lq) with their LSE (log2 units) and D go through registers:
  // the next block's loads are issued before the current block's products.
{{PREFETCH_FIRST}}
  for (var qb = 0u; qb < q_loop; qb++) {
    workgroupBarrier();
{{STORE_TILES}}
    workgroupBarrier();
    if (qb + 1u < q_loop) {
{{PREFETCH_NEXT}}
    }
{{SCORES}}
    workgroupBarrier();
{{ACCUMULATE}}
  }

{{FINISH}}
}
