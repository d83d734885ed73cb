// Deterministic sum over the middle axis of a tensor viewed as [outer, r, inner] (src/ops/reduce.ts).
//
// out[o, c, i] = Σ_{k = c·chunk}^{min((c+1)·chunk, r) − 1} x[o, k, i]   summed serially in increasing k.
// With chunk ≥ r this is the full sum; otherwise the host runs the kernel again over the partials
// (a fixed two-level tree: the order depends only on r and chunk, never on the dispatch).
//
// Bindings: 0 uniform Params; 1 x (read, f32, outer·r·inner); 2 out (read_write, f32,
//           outer·ceil(r/chunk)·inner).
// Dispatch: one thread per output element, 1-D grid of 256-thread workgroups folded into (x, y).
// Adjacent threads handle adjacent `inner` indices, so reads are coalesced when inner > 1.

struct Params {
  outer: u32,
  r: u32,
  inner: u32,
  chunk: u32,
  n_chunks: u32,
  n_out: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let e = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (e >= p.n_out) { return; }
  let i = e % p.inner;
  let oc = e / p.inner;
  let c = oc % p.n_chunks;
  let o = oc / p.n_chunks;
  let k0 = c * p.chunk;
  let k1 = min(k0 + p.chunk, p.r);
  var acc = 0.0;
  var idx = (o * p.r + k0) * p.inner + i;
  for (var k = k0; k < k1; k++) {
    acc += x[idx];
    idx += p.inner;
  }
  out[e] = acc;
}
