// Rotary time embedding kernels (src/ops/rotary.ts). Entry points:
//   embed: out[b, l, h, 4c..4c+3] = rotate_chunk(x[b, l, h, 4c..4c+3], rotary_cs(c, t), p.sign) for the
//          rotating chunks c < ROT4 (the others are copied), t = time[b·p.time_bstride + l]
//          (`rotaryEmbed`; attention kernels do not use it).
//   table: out[n, c] = rotary_cs(c, time[n]) for n < N, c < ROT4: the (cos, sin, cos, sin) table that
//          attention kernels read while loading tiles (`rotaryTable`).
//
// Bindings: 0 uniform Params; 1 x (read, vec4<f32>, [B·L·heads·DH4] contiguous; table: unused scratch);
//           2 time (read, f32: embed [B, L] with p.time_bstride = L or [L] with 0; table [N]);
//           3 out (read_write, vec4<f32>: embed like x; table [N·ROT4]).
// Workgroup: 256 threads, one vec4 each; the 1-D grid is folded into (x, y) (≤ 65535 per axis).
// Generated part: the ROTARY placeholder becomes ROT4, rotary_div, rotary_cs and rotate_chunk for this
// head width and period range (src/ops/rotary.ts rotaryWgsl).

struct Params {
  count: u32,        // embed: B · L · heads · DH4; table: N · ROT4
  len: u32,          // embed: L
  heads: u32,        // embed: heads
  time_bstride: u32, // embed: L, or 0 when the times are shared by the batch
  sign: f32,         // embed: +1 rotate by t, −1 rotate by −t
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> time: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

const DH4: u32 = {{DH4}}u;

{{ROTARY}}

@compute @workgroup_size(256)
fn embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.count) { return; }
  let c = i % DH4;
  let row = i / (DH4 * p.heads);
  let b = row / p.len;
  let l = row % p.len;
  var v = x[i];
  if (c < ROT4) {
    v = rotate_chunk(v, rotary_cs(c, time[b * p.time_bstride + l]), p.sign);
  }
  out[i] = v;
}

@compute @workgroup_size(256)
fn table(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (i >= p.count) { return; }
  out[i] = rotary_cs(i % ROT4, time[i / ROT4]);
}
