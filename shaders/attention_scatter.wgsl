// Rotary attention, materialized path (src/ops/attention_materialized.ts): the inverse of
// attention_rotate.wgsl. Copies a head-major buffer (the attention output before its rotation, or the
// gradient of a rotated role) into a column slice of a packed row-major tensor, rotated back by −t:
//
//   out[b, l, off + h·dh + 4c .. +3] = R(−t_{b,l}) src[b, h, l, 4c..4c+3]   (p.rotate = 0: a plain copy)
//
// Rotation is orthogonal, so rotating by −t is both the output's inverse rotation and the backward of the
// input's rotation by +t.
//
// Bindings: 0 uniform Params; 1 src (read, vec4<f32> [B, heads, L, D4]); 2 table (read, vec4<f32>):
//   rotary table (src/ops/rotary.ts rotaryTable) of the times, row b·p.t_bstride + l; 3 out (read_write,
//   vec4<f32>): rows [B, L] of p.stride vec4, head h at vec4 column p.off + h·D4 (other columns untouched).
// Workgroup: 256 threads, one vec4 each (1-D grid folded into (x, y)); consecutive threads read
//   consecutive vec4 of a head row and write consecutive vec4 of a packed row.

struct Params {
  count: u32,     // B · heads · L · D4
  len: u32,       // L
  heads: u32,
  stride: u32,    // vec4 per out row
  off: u32,       // vec4 column of head 0
  t_bstride: u32, // L, or 0 for times shared by the batch
  rotate: u32,    // 1 rotate by −t, 0 copy
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> table: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

const D4: u32 = {{D4}}u;

{{ROTARY}}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.count) { return; }
  let c = i % D4;
  let row = i / D4;
  let l = row % p.len;
  let bh = row / p.len;
  let h = bh % p.heads;
  let b = bh / p.heads;
  var x = src[i];
  if (p.rotate == 1u && c < ROT4) {
    x = rotate_chunk(x, table[(b * p.t_bstride + l) * ROT4 + c], -1.0);
  }
  out[(b * p.len + l) * p.stride + p.off + h * D4 + c] = x;
}
