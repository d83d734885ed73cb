// Rotary attention backward, first pass (src/ops/attention.ts): D[b, h, q] = Σ_d dO[b, q, h, d]·O[b, q, h, d],
// the row term of the softmax backward (dS = P ⊙ (dP − D)). Using the final, rotated-back O and dO is
// valid because the output rotation is orthogonal: Σ dO∘O = Σ (R dO)∘(R O).
//
// Bindings: 0 uniform Params; 1 dout (read, vec4<f32> [B, Lq, heads·D4]); 2 o (read, vec4<f32>, same
//   layout); 3 dd (read_write, f32 [B, heads, Lq]).
// Workgroup: 256 threads, one (b, h, q) row each, summing its D4 vec4 products in order (deterministic);
// 1-D grid folded into (x, y).

struct Params {
  rows: u32,   // B · heads · Lq
  lq: u32,
  heads: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dd: array<f32>;

const D4: u32 = {{D4}}u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (row >= p.rows) { return; }
  let q = row % p.lq;
  let bh = row / p.lq;
  let h = bh % p.heads;
  let b = bh / p.heads;
  let base = (b * p.lq + q) * (p.heads * D4) + h * D4;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < D4; c++) {
    acc = fma(dout[base + c], o[base + c], acc);
  }
  dd[row] = (acc.x + acc.y) + (acc.z + acc.w);
}
