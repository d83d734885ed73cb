// Softmax over the last axis (src/ops/softmax.ts).
//   forward:  y[r, j] = exp(x[r, j] − max_r) / Σ_k exp(x[r, k] − max_r)
//   backward: dx[r, j] = y[r, j] · (dy[r, j] − Σ_k dy[r, k] · y[r, k])
// Bindings: 0 uniform Params; 1 x or y (read [R, C]); 2 dy (read [R, C]; forward: unused);
//           3 out (rw [R, C]).
// Workgroup: 64 threads per row striding over C; max and sums are fixed-shape workgroup trees.

struct Params {
  rows: u32,
  c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, 64>;

fn tree(lid: u32, is_max: bool) -> f32 {
  for (var s = 32u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max);
    }
  }
  workgroupBarrier();
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let r = wg.y * nwg.x + wg.x;
  if (r >= p.rows) { return; }
  let base = r * p.c;
  var m = -3.4028235e38;
  for (var j = lid; j < p.c; j += 64u) { m = max(m, x[base + j]); }
  red[lid] = m;
  let mx = tree(lid, true);
  var s = 0.0;
  for (var j = lid; j < p.c; j += 64u) { s += exp(x[base + j] - mx); }
  red[lid] = s;
  let total = tree(lid, false);
  for (var j = lid; j < p.c; j += 64u) { out[base + j] = exp(x[base + j] - mx) / total; }
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let r = wg.y * nwg.x + wg.x;
  if (r >= p.rows) { return; }
  let base = r * p.c;
  var s = 0.0;
  for (var j = lid; j < p.c; j += 64u) { s += dy[base + j] * x[base + j]; }
  red[lid] = s;
  let dot = tree(lid, false);
  for (var j = lid; j < p.c; j += 64u) { out[base + j] = x[base + j] * (dy[base + j] - dot); }
}
