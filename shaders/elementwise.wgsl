// Elementwise kernels over f32 tensors of rank ≤ 4 (src/ops/elementwise.ts).
//
// Entry points:
//   binary:      out[i] = a[idx_a(i)] (op) b[idx_b(i)]   op: 0 add, 1 sub, 2 mul, 3 div; NumPy broadcasting
//                through per-input strides (stride 0 on broadcast dimensions).
//   affine:      out[i] = a[i] * p.alpha + p.beta
//   fill:        out[i] = p.beta
//   accumulate:  out[i] += a[i]                       (in place; out is read-write)
//   strided_copy: out[i] = a[idx_a(i)]                (materializes a permuted/strided view)
//
// Bindings: 0 uniform Params; 1 a (read, f32); 2 b (read, f32; unused except by `binary`, bind `a` again);
//           3 out (read_write, f32, n elements, contiguous row-major over p.shape).
// Dispatch: 1-D grid of 256-thread workgroups folded into (x, y) so n may exceed 65535·256;
// element i = (wg.y · num_workgroups.x + wg.x) · 256 + local index. 256 threads: a full wave on every
// vendor and the common maximum of maxComputeInvocationsPerWorkgroup.

struct Params {
  n: u32,
  op: u32,
  alpha: f32,
  beta: f32,
  shape: vec4<u32>,     // output shape, right-aligned to rank 4 (leading 1s)
  stride_a: vec4<u32>,  // element strides of a over the output shape (0 = broadcast)
  stride_b: vec4<u32>,
  offset_a: u32,        // element offsets of a and b
  offset_b: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn element_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * 256u + lid;
}

fn strided(i: u32, s: vec4<u32>) -> u32 {
  let i3 = i % p.shape.w;
  let r3 = i / p.shape.w;
  let i2 = r3 % p.shape.z;
  let r2 = r3 / p.shape.z;
  let i1 = r2 % p.shape.y;
  let i0 = r2 / p.shape.y;
  return i0 * s.x + i1 * s.y + i2 * s.z + i3 * s.w;
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = element_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let x = a[p.offset_a + strided(i, p.stride_a)];
  let y = b[p.offset_b + strided(i, p.stride_b)];
  var r: f32;
  switch p.op {
    case 0u: { r = x + y; }
    case 1u: { r = x - y; }
    case 2u: { r = x * y; }
    default: { r = x / y; }
  }
  out[i] = r;
}

@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = element_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = a[p.offset_a + i] * p.alpha + p.beta;
}

@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = element_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = out[i] + a[p.offset_a + i];
}

@compute @workgroup_size(256)
fn strided_copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = element_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = a[p.offset_a + strided(i, p.stride_a)];
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = element_index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = p.beta;
}
