// Rotary attention, forward (src/ops/attention.ts `rotaryAttention`; generated parts from
// src/ops/attention_codegen.ts). Flash-style: one workgroup owns BQ query rows of one (batch b, head h)
// and streams the keys [k_begin, k_end) of its split in blocks of BK through workgroup memory with an
// online softmax (running row max m and row sum l), so the score matrix never exists in memory.
//
//   inputs q̃ = R(t_q) q, k̃ = R(t_k) k, ṽ = R(t_k) v (ROTATE_V) or v, prepared head-major by
//   attention_rotate.wgsl
//   O = softmax_keys(q̃ k̃ᵀ / √dh, keys n ≥ kvLen[b] masked) ṽ,  then O ← R(−t_q) O (ROTATE_V)
//   LSE = log Σ_n exp(q̃·k̃_n / √dh)   (natural log; 1e30 when the row has no valid key)
// Scores live in the log2 domain (scaled by log2(e)/√dh) so the exponentials are exp2.
//
// Bindings: 0 uniform Params;
//   1 qr, 2 kr, 3 vr (read, vec4<f32>): q̃ [B, heads, Lq, D4], k̃ and ṽ [B, heads, Lk, D4]
//   4 q_rot (read, vec4<f32>): rotary table of the query times (src/ops/rotary.ts rotaryTable), row
//     b·p.qt_bstride + q (p.qt_bstride = Lq, or 0 for times shared by the batch); used to rotate O back
//   5 kv_len (read, i32 [B]): valid keys per batch row, clamped to [0, Lk]
//   6 out (read_write, vec4<f32>): PARTIAL = false: O [B, Lq, heads·D4] (heads merged, head-major);
//     PARTIAL = true: per-split O [splits, B, heads, Lq, D4], not yet rotated back
//   7 lse (read_write, f32): PARTIAL = false: [B, heads, Lq] natural log; PARTIAL = true: per-split
//     [splits, B, heads, Lq] in log2 units, −1e30 for a split without valid keys
// Grid: (q_blocks · splits, heads, B); wg.x = split · q_blocks + query block.
// Workgroup: TX·TY threads. As in the fast matmul, every product is a sum of outer products of vec4
// columns of k-major workgroup tiles: S = Q̃ᵀᵀ·K̃ᵀ over d (tiles qts [dh][BQ], kts [dh][BK]) and O += Pᵀᵀ·Ṽ
// over keys (tiles pts [BK][BQ], vs [BK][dh]). Thread (tx, ty) owns query rows g·4·TY + 4·ty + i
// (g < GQ, i < 4), keys h·4·TX + 4·tx + j (h < GK) and output vec4 columns e·TX + tx (e < D4/TX): a warp
// reads few distinct A vectors (broadcast) and consecutive B vectors (no bank conflicts). The next K/V
// tile is prefetched into registers while the current one is used. The row max is combined across the
// TX threads of a row with subgroup shuffles (SUBGROUPS) or through `red`; partial row sums are combined
// once at the end. All reductions have a fixed order: results are deterministic.

struct Params {
  lq: u32,
  lk: u32,
  heads: u32,
  q_blocks: u32,
  qt_bstride: u32,
  keys_per_split: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qr: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kr: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> vr: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> q_rot: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> kv_len: array<i32>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> lse: array<f32>;

const D4: u32 = {{D4}}u;
const TX: u32 = {{TX}}u;
const TY: u32 = {{TY}}u;
const T: u32 = TX * TY;
const BQ: u32 = {{BQ}}u;
const BK: u32 = {{BK}}u;
const SQ: u32 = BQ / 4u;       // vec4 per d-row of qts
const SK: u32 = BK / 4u;       // vec4 per d-row of kts
const SP: u32 = BQ / 4u + 1u;  // vec4 per key row of pts (one vec4 of padding)
const ROTATE_V: bool = {{ROTATE_V}};
const PARTIAL: bool = {{PARTIAL}};
const SCALE_LOG2: f32 = {{SCALE_LOG2}};
const LN2: f32 = 0.693147182f;
const NEG_BIG: f32 = -1e30f;
const EMPTY_LSE: f32 = 1e30f;

var<workgroup> qts: array<vec4<f32>, {{D4}}u * 4u * SQ>;
var<workgroup> kts: array<vec4<f32>, {{D4}}u * 4u * SK>;
var<workgroup> vs: array<vec4<f32>, BK * D4>;
var<workgroup> pts: array<vec4<f32>, BK * SP>;
{{RED_DECL}}
var<workgroup> wg_valid: u32;

{{ROTARY}}

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
  let qbase = (b * p.heads + h) * p.lq * D4;
  let kbase = (b * p.heads + h) * p.lk * D4;
  if (lid == 0u) {
    wg_valid = u32(clamp(kv_len[b], 0, i32(p.lk)));
  }
  let n_valid = workgroupUniformLoad(&wg_valid);
  let k_begin = min(split * p.keys_per_split, n_valid);
  let k_end = min(k_begin + p.keys_per_split, n_valid);

  // Q̃ᵀ tile, d-major: qts[d][q] (zeros past Lq). Consecutive threads take consecutive rows.
  for (var e = lid; e < BQ * D4; e += T) {
    let r = e % BQ;
    let c = e / BQ;
    var x = vec4<f32>(0.0);
    if (q0 + r < p.lq) {
      x = qr[qbase + (q0 + r) * D4 + c];
    }
    let at = 4u * c * SQ + r / 4u;
    let comp = r % 4u;
    qts[at][comp] = x.x;
    qts[at + SQ][comp] = x.y;
    qts[at + 2u * SQ][comp] = x.z;
    qts[at + 3u * SQ][comp] = x.w;
  }

{{DECLS}}

{{PREFETCH_FIRST}}

  for (var kb = k_begin; kb < k_end; kb += BK) {
    workgroupBarrier();
{{STORE_TILES}}
    workgroupBarrier();
    let nb = kb + BK;
    if (nb < k_end) {
{{PREFETCH_NEXT}}
    }
{{SCORES}}
{{PROBS}}
    workgroupBarrier();
{{ACCUMULATE}}
  }

{{FINISH}}
}
