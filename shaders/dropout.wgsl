// Dropout (src/ops/dropout.ts): out[i] = keep(i) ? x[i] / (1 − p) : 0, with keep(i) drawn from
// Philox4x32-10 (shaders/philox.wgsl, prepended): key = (seed, stream), counter = (i / 4, step, rank, 0),
// word i % 4, keep when unit(word) ≥ p. The backward pass runs the same kernel on the gradient, which
// redraws the identical mask (no mask is stored).
//
// Bindings: 0 uniform Params; 1 uniform StepState {step, seed, rank, salt} (written once per step);
//           2 x (read, f32 [n]); 3 out (read_write, f32 [n]).
// Workgroup: 64 threads, each handling one Philox block of 4 consecutive elements (one generator call
// per 4 outputs). Grid folded into (x, y).

struct Params {
  n: u32,
  stream: u32,
  p: f32,
  scale: f32,   // 1 / (1 − p)
}

struct StepState {
  step: u32,
  seed: u32,
  rank: u32,
  salt: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<uniform> st: StepState;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let block = (wg.y * nwg.x + wg.x) * 64u + lid;
  let i0 = block * 4u;
  if (i0 >= prm.n) { return; }
  let words = philox4x32(vec4<u32>(block, st.step, st.rank, 0u), vec2<u32>(st.seed, prm.stream ^ st.salt));
  for (var j = 0u; j < 4u; j++) {
    let i = i0 + j;
    if (i < prm.n) {
      out[i] = select(0.0, x[i] * prm.scale, philox_unit(words[j]) >= prm.p);
    }
  }
}
