// Rotary attention, forward (src/ops/attention.ts `rotaryAttention`; generated parts from
// src/ops/attention_codegen.ts). Flash-style: one workgroup owns BQ query rows of one (batch b, head h)
// and streams the keys [k_begin, k_end) of its split in blocks of BK through workgroup memory with an
// online softmax (running row max m and row sum l), so the score matrix never exists in memory.
//
//   q̃ = R(t_q) q,  k̃ = R(t_k) k,  ṽ = R(t_k) v (ROTATE_V) or v
//   O = softmax_keys(q̃ k̃ᵀ / √dh, keys n ≥ kvLen[b] masked) ṽ,  then O ← R(−t_q) O (ROTATE_V)
//   LSE = log Σ_n exp(q̃·k̃_n / √dh)   (natural log; 1e30 when the row has no valid key)
// Scores live in the log2 domain (scaled by log2(e)/√dh) so the exponentials are exp2.
//
// Bindings: 0 uniform Params;
//   1 q_src (read, vec4<f32>): rows [B, Lq] of p.q_stride vec4; head h of q at vec4 column p.q_off + h·D4
//   2 kv_src (read, vec4<f32>): rows [B, Lk] of p.kv_stride vec4; k at p.k_off + h·D4, v at p.v_off + h·D4
//     (may be the same buffer as q_src for self-attention)
//   3 q_rot (read, vec4<f32>): rotary table of the query times (src/ops/rotary.ts rotaryTable),
//     [B·Lq or Lq, ROT4]: row b·p.qt_bstride + q (p.qt_bstride = Lq, or 0 for times shared by the batch)
//   4 k_rot (read, vec4<f32>): rotary table of the key times, row b·p.kt_bstride + k
//   5 kv_len (read, i32 [B]): valid keys per batch row, clamped to [0, Lk]
//   6 out (read_write, vec4<f32>): PARTIAL = false: O [B, Lq, heads·D4] (heads merged, head-major);
//     PARTIAL = true: per-split O [splits, B, heads, Lq, D4], not yet rotated back
//   7 lse (read_write, f32): PARTIAL = false: [B, heads, Lq] natural log; PARTIAL = true: per-split
//     [splits, B, heads, Lq] in log2 units, −1e30 for a split without valid keys
// Grid: (q_blocks · splits, heads, B); wg.x = split · q_blocks + query block.
// Workgroup: TX·TY threads; thread (tx, ty) owns query rows ty + TY·a (a < RQ) and, in the score tile,
// keys tx + TX·b (b < RK), in the output tile vec4 columns tx + TX·e (e < RD4). Tiles are row-major with
// the reduction axis contiguous as vec4 and one vec4 of padding per row, so the vec4 reads of distinct
// rows in one warp hit distinct banks. Workgroup memory: BQ·(D4+1) + BK·(D4+1) + BK·D4 + BQ·(BK/4+1)
// vec4 + BQ·TX f32, sized against maxComputeWorkgroupStorageSize by the host. Row maxima and sums are
// combined across the TX threads of a row through `red` in a fixed order (deterministic).

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
  keys_per_split: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q_src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kv_src: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> q_rot: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k_rot: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> kv_len: array<i32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

const D4: u32 = {{D4}}u;
const TX: u32 = {{TX}}u;
const TY: u32 = {{TY}}u;
const T: u32 = TX * TY;
const BQ: u32 = {{BQ}}u;
const BK: u32 = {{BK}}u;
const SD4: u32 = D4 + 1u;
const SP4: u32 = BK / 4u + 1u;
const ROTATE_V: bool = {{ROTATE_V}};
const PARTIAL: bool = {{PARTIAL}};
const SCALE_LOG2: f32 = {{SCALE_LOG2}};
const LN2: f32 = 0.693147182f;
const NEG_BIG: f32 = -1e30f;
const EMPTY_LSE: f32 = 1e30f;

var<workgroup> qs: array<vec4<f32>, BQ * SD4>;
var<workgroup> ks: array<vec4<f32>, BK * SD4>;
var<workgroup> vs: array<vec4<f32>, BK * D4>;
var<workgroup> ps: array<vec4<f32>, BQ * SP4>;
var<workgroup> red: array<f32, BQ * TX>;
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
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let tx = lid % TX;
  let ty = lid / TX;
  let b = wg.z;
  let h = wg.y;
  let qb = wg.x % p.q_blocks;
  let split = wg.x / p.q_blocks;
  let q0 = qb * BQ;
  if (lid == 0u) {
    wg_valid = u32(clamp(kv_len[b], 0, i32(p.lk)));
  }
  let n_valid = workgroupUniformLoad(&wg_valid);
  let k_begin = min(split * p.keys_per_split, n_valid);
  let k_end = min(k_begin + p.keys_per_split, n_valid);

  // Q̃ tile: rows q0 .. q0+BQ (zeros past Lq), rotated by the query times.
  for (var e = lid; e < BQ * D4; e += T) {
    let r = e / D4;
    let c = e % D4;
    let q = q0 + r;
    var x = vec4<f32>(0.0);
    if (q < p.lq) {
      x = rot_q(q_src[(b * p.lq + q) * p.q_stride + p.q_off + h * D4 + c], b * p.qt_bstride + q, c, 1.0);
    }
    qs[r * SD4 + c] = x;
  }

{{DECLS}}

  for (var kb = k_begin; kb < k_end; kb += BK) {
    workgroupBarrier();
    // K̃ and Ṽ tiles: keys kb .. kb+BK (zeros past k_end), rotated by the key times.
    for (var e = lid; e < BK * D4; e += T) {
      let r = e / D4;
      let c = e % D4;
      let k = kb + r;
      var kx = vec4<f32>(0.0);
      var vx = vec4<f32>(0.0);
      if (k < k_end) {
        let base = (b * p.lk + k) * p.kv_stride + h * D4 + c;
        let t = b * p.kt_bstride + k;
        kx = rot_k(kv_src[base + p.k_off], t, c, 1.0);
        vx = kv_src[base + p.v_off];
        if (ROTATE_V) {
          vx = rot_k(vx, t, c, 1.0);
        }
      }
      ks[r * SD4 + c] = kx;
      vs[r * D4 + c] = vx;
    }
    workgroupBarrier();
{{SCORES}}
    workgroupBarrier();
{{PROBS}}
    workgroupBarrier();
{{ACCUMULATE}}
  }

  // Row sums: combine the TX partial sums of each row in a fixed order.
  workgroupBarrier();
{{FINISH}}
}
