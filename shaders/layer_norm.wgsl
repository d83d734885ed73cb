// Layer normalization over the last axis (src/ops/layer_norm.ts), PyTorch semantics: biased variance,
// eps inside the square root, learnable scale w and shift b.
//
// forward:  y[r, :] = (x[r, :] − mean_r) · rstd_r · w + b,  rstd_r = 1 / sqrt(var_r + eps);
//           also saves mean_r and rstd_r for the backward pass.
// backward_input: with x̂ = (x − mean)·rstd and ĝ = dy ⊙ w,
//           dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)).
// backward_params: per chunk c of 256 rows, partial_w[c, j] = Σ_r dy[r, j]·x̂[r, j], partial_b[c, j] =
//           Σ_r dy[r, j] (serial, increasing r); the host sums the chunks with reduce.wgsl (fixed order).
//
// Bindings (forward): 0 uniform Params; 1 x (read [R, D]); 2 w (read [D]); 3 b (read [D]);
//           4 y (rw [R, D]); 5 stats (rw [R, 2] = mean, rstd).
// Bindings (backward_input): 0 Params; 1 x; 2 w; 3 dy (read [R, D]); 4 stats ([R, 2], bound read_write as
//           the module declares it, only read); 5 dx (rw [R, D]).
// Bindings (backward_params): 0 Params; 1 x; 2 dy; 3 stats (read); 4 partial (rw [2, C, D]: w then b).
// The three entry points share one module, so bindings keep their slot across entry points.
// Workgroup: 64 threads per row (forward/backward_input), each striding over D; sums are fixed-shape
// trees in workgroup memory, so results do not depend on timing. backward_params: one thread per
// (chunk, column), 64 per workgroup.
// forward_rows / backward_input_rows: the same math with one thread per row (serial sums over D, no
// barriers) for narrow rows (D ≤ 128), where a 64-thread tree would mostly wait on barriers — on CPU
// adapters barriers dominate. Same bindings as forward / backward_input.

struct Params {
  rows: u32,
  d: u32,
  eps: f32,
  chunks: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;
@group(0) @binding(5) var<storage, read_write> out5: array<f32>;

var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;

// Tree-sums red_a and red_b over the 64 lanes; every lane gets the totals.
fn tree_sum2(lid: u32) -> vec2<f32> {
  for (var s = 32u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) {
      red_a[lid] += red_a[lid + s];
      red_b[lid] += red_b[lid + s];
    }
  }
  workgroupBarrier();
  let r = vec2<f32>(red_a[0], red_b[0]);
  workgroupBarrier();
  return r;
}

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.y * nwg.x + wg.x;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wg, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  var s = 0.0;
  for (var j = lid; j < p.d; j += 64u) { s += x[base + j]; }
  red_a[lid] = s;
  red_b[lid] = 0.0;
  let mean = tree_sum2(lid).x / f32(p.d);
  var v = 0.0;
  for (var j = lid; j < p.d; j += 64u) {
    let c = x[base + j] - mean;
    v += c * c;
  }
  red_a[lid] = v;
  red_b[lid] = 0.0;
  let variance = tree_sum2(lid).x / f32(p.d);
  let rstd = 1.0 / sqrt(variance + p.eps);
  for (var j = lid; j < p.d; j += 64u) {
    out4[base + j] = (x[base + j] - mean) * rstd * in2[j] + in3[j];
  }
  if (lid == 0u) {
    out5[2u * r] = mean;
    out5[2u * r + 1u] = rstd;
  }
}

// backward_input: in2 = w, in3 = dy, out4 = stats (declared read_write by the shared module, only read
// here), out5 = dx.
@compute @workgroup_size(64)
fn backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wg, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  let mean = out4[2u * r];
  let rstd = out4[2u * r + 1u];
  var sg = 0.0;
  var sgx = 0.0;
  for (var j = lid; j < p.d; j += 64u) {
    let g = in3[base + j] * in2[j];
    let xh = (x[base + j] - mean) * rstd;
    sg += g;
    sgx += g * xh;
  }
  red_a[lid] = sg;
  red_b[lid] = sgx;
  let sums = tree_sum2(lid) / f32(p.d);
  for (var j = lid; j < p.d; j += 64u) {
    let g = in3[base + j] * in2[j];
    let xh = (x[base + j] - mean) * rstd;
    out5[base + j] = rstd * (g - sums.x - xh * sums.y);
  }
}

// in2 = dy, in3 = stats; out4 = partials [2, chunks, d].
@compute @workgroup_size(64)
fn backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let e = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (e >= p.chunks * p.d) { return; }
  let j = e % p.d;
  let c = e / p.d;
  let r0 = c * 256u;
  let r1 = min(r0 + 256u, p.rows);
  var gw = 0.0;
  var gb = 0.0;
  for (var r = r0; r < r1; r++) {
    let dy = in2[r * p.d + j];
    let xh = (x[r * p.d + j] - in3[2u * r]) * in3[2u * r + 1u];
    gw += dy * xh;
    gb += dy;
  }
  out4[c * p.d + j] = gw;
  out4[(p.chunks + c) * p.d + j] = gb;
}

fn row_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn forward_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  var s = 0.0;
  for (var j = 0u; j < p.d; j++) { s += x[base + j]; }
  let mean = s / f32(p.d);
  var v = 0.0;
  for (var j = 0u; j < p.d; j++) {
    let c = x[base + j] - mean;
    v += c * c;
  }
  let rstd = 1.0 / sqrt(v / f32(p.d) + p.eps);
  for (var j = 0u; j < p.d; j++) {
    out4[base + j] = (x[base + j] - mean) * rstd * in2[j] + in3[j];
  }
  out5[2u * r] = mean;
  out5[2u * r + 1u] = rstd;
}

@compute @workgroup_size(64)
fn backward_input_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let r = row_index(wg, nwg, lid);
  if (r >= p.rows) { return; }
  let base = r * p.d;
  let mean = out4[2u * r];
  let rstd = out4[2u * r + 1u];
  var sg = 0.0;
  var sgx = 0.0;
  for (var j = 0u; j < p.d; j++) {
    let g = in3[base + j] * in2[j];
    sg += g;
    sgx += g * (x[base + j] - mean) * rstd;
  }
  sg = sg / f32(p.d);
  sgx = sgx / f32(p.d);
  for (var j = 0u; j < p.d; j++) {
    let g = in3[base + j] * in2[j];
    let xh = (x[base + j] - mean) * rstd;
    out5[base + j] = rstd * (g - sg - xh * sgx);
  }
}
