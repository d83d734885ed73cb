// Rotary attention backward, preparation (src/ops/attention.ts): per (b, h, q) row,
//   D[b, h, q] = Σ_d dO[b, q, h, d]·O[b, q, h, d]   (the softmax backward's row term, dS = P ⊙ (dP − D);
//     using the final, rotated-back O and dO is valid because the output rotation is orthogonal)
//   dÕ[b, h, q, :] = R(t_q) dO[b, q, h, :] (ROTATE_V; R(−t)ᵀ = R(t)) or dO, head-major contiguous, the
//     gradient of the attention output before its rotation, which the dK/dV and dQ kernels load.
//
// Bindings: 0 uniform Params; 1 dout (read, vec4<f32> [B, Lq, heads·D4]); 2 o (read, vec4<f32>, same
//   layout); 3 q_rot (read, vec4<f32>): rotary table of the query times, row b·p.qt_bstride + q;
//   4 gr (read_write, vec4<f32> [B, heads, Lq, D4]): dÕ; 5 dd (read_write, f32 [B, heads, Lq]): D.
// Workgroup: 256 threads, one row each, summing its D4 vec4 products in order (deterministic); 1-D grid
// folded into (x, y).

struct Params {
  rows: u32,   // B · heads · Lq
  lq: u32,
  heads: u32,
  qt_bstride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> q_rot: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> gr: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dd: array<f32>;

const D4: u32 = {{D4}}u;
const ROTATE_V: bool = {{ROTATE_V}};

{{ROTARY}}

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
  let trow = (b * p.qt_bstride + q) * ROT4;
  var acc = vec4<f32>(0.0);
  for (var c = 0u; c < D4; c++) {
    var g = dout[base + c];
    acc = fma(g, o[base + c], acc);
    if (ROTATE_V && c < ROT4) {
      g = rotate_chunk(g, q_rot[trow + c], 1.0);
    }
    gr[row * D4 + c] = g;
  }
  dd[row] = (acc.x + acc.y) + (acc.z + acc.w);
}
