// Rotary attention, forward split combine (src/ops/attention.ts). When the keys are split over several
// workgroups (few query blocks, long key sequences), each split wrote its own softmax-normalized output
// and log2-sum-exp; this kernel merges them in split order (deterministic), rotates back by −t_q
// (ROTATE_V) and writes the final outputs:
//
//   m = max_s lse2_s,  w_s = exp2(lse2_s − m),  O = Σ_s w_s O_s / Σ_s w_s,  LSE = (m + log2 Σ_s w_s)·ln 2
//   (a split without valid keys has lse2_s = −1e30 and weight 0; a row without any has O = 0 and
//   LSE = 1e30, the backward's "no keys" marker)
//
// Bindings: 0 uniform Params; 1 part_o (read, vec4<f32> [splits, B, heads, Lq, D4]);
//   2 part_lse (read, f32 [splits, B, heads, Lq], log2 units); 3 q_rot (read, vec4<f32>): rotary table of the query
//   times, row b·p.qt_bstride + q;
//   4 out (read_write, vec4<f32> [B, Lq, heads·D4]); 5 lse (read_write, f32 [B, heads, Lq], natural log).
// Workgroup: 256 threads, one output vec4 each (1-D grid folded into (x, y)).

struct Params {
  rows: u32,       // B · heads · Lq
  lq: u32,
  heads: u32,
  splits: u32,
  qt_bstride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> part_o: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> part_lse: array<f32>;
@group(0) @binding(3) var<storage, read> q_rot: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;

const D4: u32 = {{D4}}u;
const ROTATE_V: bool = {{ROTATE_V}};
const LN2: f32 = 0.693147182f;
const EMPTY_LSE: f32 = 1e30f;

{{ROTARY}}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.rows * D4) { return; }
  let row = i / D4;          // (b · heads + h) · Lq + q
  let c = i % D4;
  let q = row % p.lq;
  let bh = row / p.lq;
  let h = bh % p.heads;
  let b = bh / p.heads;
  var m = -1e30f;
  for (var s = 0u; s < p.splits; s++) {
    m = max(m, part_lse[s * p.rows + row]);
  }
  var wsum = 0.0;
  var acc = vec4<f32>(0.0);
  if (m > -1e29f) {
    for (var s = 0u; s < p.splits; s++) {
      let w = exp2(part_lse[s * p.rows + row] - m);
      wsum += w;
      acc += w * part_o[(s * p.rows + row) * D4 + c];
    }
    acc = acc / wsum;
  }
  if (ROTATE_V && c < ROT4) {
    acc = rotate_chunk(acc, q_rot[(b * p.qt_bstride + q) * ROT4 + c], -1.0);
  }
  out[(b * p.lq + q) * (p.heads * D4) + h * D4 + c] = acc;
  if (c == 0u) {
    lse[row] = select(EMPTY_LSE, (m + log2(wsum)) * LN2, wsum > 0.0);
  }
}
