// Rotary attention, materialized path (src/ops/attention_materialized.ts): the softmax backward of the
// saved probabilities, in place over dP = dÕ·ṽᵀ:
//
//   dS[r, n] = P[r, n] · (dP[r, n] − D[r]) · SCALE,   SCALE = 1/√dh
//
// where D[r] = Σ_d dO·O of the row (attention_row_dot.wgsl) and dS is the gradient of the unscaled scores
// S = q̃·k̃ᵀ (the 1/√dh of the softmax argument is folded in here). Masked keys have P = 0 and so dS = 0.
//
// Bindings: 0 uniform Params; 1 prob (read, f32 [rows, Lk]): P; 2 dd (read, f32 [rows]): D;
//   3 ds (read_write, f32 [rows, Lk]): dP in, dS out.
// Workgroup: 256 threads, one element each (1-D grid folded into (x, y)); memory-bound, consecutive
//   threads touch consecutive elements.

struct Params {
  count: u32, // rows · Lk
  lk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> prob: array<f32>;
@group(0) @binding(2) var<storage, read> dd: array<f32>;
@group(0) @binding(3) var<storage, read_write> ds: array<f32>;

const SCALE: f32 = {{SCALE}};

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.count) { return; }
  ds[i] = prob[i] * (ds[i] - dd[i / p.lk]) * SCALE;
}
