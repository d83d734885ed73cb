// Embedding lookup and its deterministic backward (src/ops/embedding.ts).
//
//   gather:   out[t, j] = table[idx[t], j]                              (idx outside [0, V) gives 0)
//   backward: dtable[v, j] = Σ_{k = start[v]}^{start[v+1]−1} dy[order[k], j]
//             with (start, order) the rows' token lists sorted by row then token (CSR, built on the host
//             from the indices it uploaded), summed serially in increasing token order — no atomics,
//             the same bits every run. Rows with no token get 0; the padding row is forced to 0.
//
// Bindings (gather):   0 uniform Params; 1 table (read [V, D]); 2 idx (read i32 [T]); 3 out (rw [T, D]).
// Bindings (backward): 0 uniform Params; 1 dy (read [T, D]); 2 csr (read i32 [V + 1 + T]: start, then
//                      order); 3 dtable (rw [V, D]).
// Workgroup: 256 threads, one output element each (adjacent threads → adjacent j: coalesced rows).

struct Params {
  rows: u32,      // T for gather, V for backward
  d: u32,
  vocab: u32,
  padding: i32,   // padding row whose gradient is zero (−1: none)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> ints: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let e = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (e >= p.rows * p.d) { return; }
  let t = e / p.d;
  let j = e % p.d;
  let row = ints[t];
  if (row < 0 || u32(row) >= p.vocab) {
    out[e] = 0.0;
  } else {
    out[e] = src[u32(row) * p.d + j];
  }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let e = (wg.y * nwg.x + wg.x) * 256u + lid;
  if (e >= p.rows * p.d) { return; }
  let v = e / p.d;
  let j = e % p.d;
  var acc = 0.0;
  if (i32(v) != p.padding) {
    let k0 = u32(ints[v]);
    let k1 = u32(ints[v + 1u]);
    for (var k = k0; k < k1; k++) {
      acc += src[u32(ints[p.vocab + 1u + k]) * p.d + j];
    }
  }
  out[e] = acc;
}
