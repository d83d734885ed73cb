// Rotary attention, backward for keys and values (src/ops/attention.ts; generated parts from
// src/ops/attention_codegen.ts). One workgroup owns BKV keys of one (batch b, head h), keeps K̃ and Ṽ in
// workgroup memory and loops over every query block, accumulating dK̃ and dṼ in registers (no atomics:
// each key row is written by exactly one workgroup, in a fixed loop order, so results are deterministic).
//
//   P = exp(q̃·k̃ / √dh − LSE_q) (0 for keys n ≥ kvLen[b]),  dÕ = R(t_q) dO (ROTATE_V) or dO
//   dṽ = Σ_q P dÕ_q,   dS = P ⊙ (dÕ·ṽ − D_q) with D_q = Σ_d dO∘O (precomputed; valid after the output
//   rotation since it is orthogonal),   dk̃ = Σ_q dS q̃_q / √dh
//   dk = R(−t_k) dk̃,  dv = R(−t_k) dṽ (ROTATE_V) or dṽ
// Keys past kvLen[b] get zero gradients; a block entirely past kvLen[b] skips the query loop and writes
// its zeros, so every gradient column of the key and value slices is written.
//
// Bindings: 0 uniform Params;
//   1 q_src, 2 kv_src (read, vec4<f32>): packed inputs as in attention_forward.wgsl
//   3 dout (read, vec4<f32>): dO [B, Lq, heads·D4]
//   4 lse (read, f32 [B, heads, Lq], natural log), 5 dd (read, f32 [B, heads, Lq]): D_q
//   6 q_rot, 7 k_rot (read, vec4<f32>), 8 kv_len (read, i32 [B]) as in attention_forward.wgsl
//   9 dkv (read_write, vec4<f32>): rows [B, Lk] of p.dkv_stride vec4; dk at p.dk_off + h·D4, dv at
//     p.dv_off + h·D4
// Grid: (ceil(Lk / BKV), heads, B).
// Workgroup: TX·TY threads; thread (tx, ty) owns keys ty + TY·a (a < RK) and, in the transposed score
// tile, queries tx + TX·b (b < RQ), in the gradient tiles vec4 columns tx + TX·e (e < RD4). Workgroup
// memory: K̃, Ṽ [BKV][D4+1], Q̃, dÕ [BQ][D4+1], Pᵀ and dSᵀ [BKV][BQ/4+1] vec4, LSE and D [BQ] f32.

struct Params {
  lq: u32,
  lk: u32,
  heads: u32,
  q_blocks: u32,
  q_stride: u32,
  q_off: u32,
  kv_stride: u32,
  k_off: u32,
  v_off: u32,
  qt_bstride: u32,
  kt_bstride: u32,
  dkv_stride: u32,
  dk_off: u32,
  dv_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q_src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kv_src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dd: array<f32>;
@group(0) @binding(6) var<storage, read> q_rot: array<vec4<f32>>;
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

// Rotation of a vec4 chunk c of a head by the table row of a query (rot_q) or key (rot_k) time.
fn rot_q(x: vec4<f32>, row: u32, c: u32, sgn: f32) -> vec4<f32> {
  if (c < ROT4) {
    return rotate_chunk(x, q_rot[row * ROT4 + c], sgn);
  }
  return x;
}

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
  if (lid == 0u) {
    wg_valid = u32(clamp(kv_len[b], 0, i32(p.lk)));
  }
  let n_valid = workgroupUniformLoad(&wg_valid);

  // K̃ and Ṽ tiles: keys k0 .. k0+BKV (zeros past kvLen), rotated by the key times.
  for (var e = lid; e < BKV * D4; e += T) {
    let r = e / D4;
    let c = e % D4;
    let k = k0 + r;
    var kx = vec4<f32>(0.0);
    var vx = vec4<f32>(0.0);
    if (k < n_valid) {
      let base = (b * p.lk + k) * p.kv_stride + h * D4 + c;
      let t = b * p.kt_bstride + k;
      kx = rot_k(kv_src[base + p.k_off], t, c, 1.0);
      vx = kv_src[base + p.v_off];
      if (ROTATE_V) {
        vx = rot_k(vx, t, c, 1.0);
      }
    }
    ks[r * SD4 + c] = kx;
    vs[r * SD4 + c] = vx;
  }

{{DECLS}}

  let q_loop = select(0u, p.q_blocks, k0 < n_valid);
  for (var qb = 0u; qb < q_loop; qb++) {
    let q0 = qb * BQ;
    workgroupBarrier();
    // Q̃ and dÕ tiles: queries q0 .. q0+BQ (zeros past Lq), LSE (log2 units) and D of those rows.
    for (var e = lid; e < BQ * D4; e += T) {
      let r = e / D4;
      let c = e % D4;
      let q = q0 + r;
      var qx = vec4<f32>(0.0);
      var gx = vec4<f32>(0.0);
      if (q < p.lq) {
        let t = b * p.qt_bstride + q;
        qx = rot_q(q_src[(b * p.lq + q) * p.q_stride + p.q_off + h * D4 + c], t, c, 1.0);
        gx = dout[(b * p.lq + q) * (p.heads * D4) + h * D4 + c];
        if (ROTATE_V) {
          gx = rot_q(gx, t, c, 1.0);
        }
      }
      qs[r * SD4 + c] = qx;
      dos[r * SD4 + c] = gx;
    }
    for (var r = lid; r < BQ; r += T) {
      let q = q0 + r;
      var l2 = BIG;
      var d = 0.0;
      if (q < p.lq) {
        let i = (b * p.heads + h) * p.lq + q;
        l2 = min(lse[i], BIG) * LOG2E;
        d = dd[i];
      }
      lse_s[r] = l2;
      dd_s[r] = d;
    }
    workgroupBarrier();
{{SCORES}}
    workgroupBarrier();
{{ACCUMULATE}}
  }

{{FINISH}}
}
