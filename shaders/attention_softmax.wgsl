// Rotary attention, materialized path (src/ops/attention_materialized.ts): the masked row softmax of the
// score matrix S = q̃·k̃ᵀ (unscaled, written by the batched matmul), in place:
//
//   P[r, n] = exp2((S[r, n] − m_r)·SCALE_LOG2) / Σ_{n' < len} exp2((S[r, n'] − m_r)·SCALE_LOG2)   for n < len
//   P[r, n] = 0                                                                                     for n ≥ len
//   m_r = max_{n < len} S[r, n],  len = clamp(kvLen[b], 0, Lk),  SCALE_LOG2 = log2(e)/√dh
//
// i.e. softmax(S/√dh) over the valid keys. A row of a batch entry with kvLen = 0 has no valid key and is
// all zeros, so its output and every gradient through it are zero (the flash path's convention).
//
// Bindings: 0 uniform Params; 1 kv_len (read, i32 [B]); 2 s (read_write, f32 [B·heads·Lq, Lk] row-major,
//   row r = (b·heads + h)·Lq + q): S in, P out.
// Workgroup: 128 threads, one workgroup per row (1-D grid folded into (x, y)); thread t visits keys
//   t, t + 128, … (coalesced; POYO rows are 512 or ~2600 keys, 4–21 per thread). The row maximum (exact in
//   any order) and the row sum are combined by the same fixed tree over workgroup memory every time, so
//   the result is bit-identical run to run.

struct Params {
  rows: u32,      // B · heads · Lq
  lk: u32,        // keys per row
  row_batch: u32, // heads · Lq: rows per batch entry
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> kv_len: array<i32>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;

const WG: u32 = 128u;
const SCALE_LOG2: f32 = {{SCALE_LOG2}};
const LOWEST: f32 = -3.40282347e38f;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wg.y * nwg.x + wg.x;
  if (row >= p.rows) { return; }
  let len = u32(clamp(kv_len[row / p.row_batch], 0, i32(p.lk)));
  let base = row * p.lk;

  var m = LOWEST;
  for (var n = lid; n < len; n += WG) {
    m = max(m, s[base + n]);
  }
  red[lid] = m;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      red[lid] = max(red[lid], red[lid + w]);
    }
    workgroupBarrier();
  }
  let row_max = red[0];
  workgroupBarrier();

  var sum = 0.0;
  for (var n = lid; n < len; n += WG) {
    sum += exp2((s[base + n] - row_max) * SCALE_LOG2);
  }
  red[lid] = sum;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid < w) {
      red[lid] = red[lid] + red[lid + w];
    }
    workgroupBarrier();
  }
  let inv = 1.0 / red[0];

  for (var n = lid; n < p.lk; n += WG) {
    var v = 0.0;
    if (n < len) {
      v = exp2((s[base + n] - row_max) * SCALE_LOG2) * inv;
    }
    s[base + n] = v;
  }
}
