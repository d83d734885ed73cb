// Weighted cross-entropy per row (src/ops/loss.ts).
//   forward:  loss[r] = w[r] · (logsumexp(z[r, :]) − z[r, y[r]])          (0 when y[r] ∉ [0, C))
//   backward: dz[r, c] = g[r] · w[r] · (softmax(z[r, :])[c] − [c = y[r]])  (0 when y[r] ∉ [0, C))
// The weighted mean Σ loss / Σ w is formed by the caller with the deterministic reduction.
// Bindings (forward):  0 uniform Params; 1 z (read [R, C]); 2 y (read i32 [R]); 3 w (read [R]);
//                      4 loss (rw [R]).
// Bindings (backward): 0 Params; 1 z; 2 y; 3 w; 4 g (read [R]; bound read_write by the shared
//                      module, only read); 5 dz (rw [R, C]).
// Workgroup: 64 threads, one row each, looping over the C classes (C is small: the readout width).

struct Params {
  rows: u32,
  c: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<i32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> io: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;

fn row_lse(base: u32) -> f32 {
  var m = -3.4028235e38;
  for (var c = 0u; c < p.c; c++) { m = max(m, z[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < p.c; c++) { s += exp(z[base + c] - m); }
  return m + log(s);
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let r = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (r >= p.rows) { return; }
  let label = y[r];
  if (label < 0 || u32(label) >= p.c) {
    io[r] = 0.0;
    return;
  }
  let base = r * p.c;
  io[r] = w[r] * (row_lse(base) - z[base + u32(label)]);
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let r = (wg.y * nwg.x + wg.x) * 64u + lid;
  if (r >= p.rows) { return; }
  let base = r * p.c;
  let label = y[r];
  if (label < 0 || u32(label) >= p.c) {
    for (var c = 0u; c < p.c; c++) { dz[base + c] = 0.0; }
    return;
  }
  let lse = row_lse(base);
  let scale = io[r] * w[r];
  for (var c = 0u; c < p.c; c++) {
    let sm = exp(z[base + c] - lse);
    dz[base + c] = scale * (sm - select(0.0, 1.0, c == u32(label)));
  }
}
