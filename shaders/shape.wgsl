// Block copy along one axis, the kernel behind slice, concat and their gradients (src/ops/shape.ts).
// Both tensors are viewed as [outer, axis, inner]:
//   dst[o, dst_start + k, i] = src[o, src_start + k, i]   for k < count
// Bindings: 0 uniform Params; 1 src (read f32); 2 dst (rw f32).
// Workgroup: 256 threads, one copied element each (adjacent threads → adjacent i: coalesced).

struct Params {
  outer: u32,
  inner: u32,
  count: u32,
  src_axis: u32,
  dst_axis: u32,
  src_start: u32,
  dst_start: u32,
  n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (e >= p.n) { return; }
  let i = e % p.inner;
  let ok = e / p.inner;
  let k = ok % p.count;
  let o = ok / p.count;
  dst[(o * p.dst_axis + p.dst_start + k) * p.inner + i] = src[(o * p.src_axis + p.src_start + k) * p.inner + i];
}
