// GELU with the exact erf form and the GEGLU split (src/ops/gelu.ts).
//
//   gelu(x)  = x · Φ(x),  Φ(x) = ½ · erfc(−x / √2),  gelu'(x) = Φ(x) + x · φ(x),  φ(x) = e^{−x²/2} / √(2π)
//   geglu(h) = a ⊙ gelu(g) where h = [a | g] along the last axis (a = first F columns, g = last F).
// WGSL has no erf: erfc uses the Chebyshev-fitted form of Numerical Recipes (`erfcc`, fractional error
// < 1.2e-7 everywhere), so Φ keeps its relative accuracy deep in the negative tail where 1 + erf(x)
// would cancel.
//
// Entry points and bindings (0 is the uniform Params everywhere):
//   gelu_forward:   1 x (read [n]); 2 unused (read); 3 y (rw [n])
//   gelu_backward:  1 x (read [n]); 2 dy (read [n]); 3 dx (rw [n])
//   geglu_forward:  1 h (read [R, 2F]); 2 unused (read); 3 y (rw [R, F])
//   geglu_backward: 1 h (read [R, 2F]); 2 dy (read [R, F]); 3 dh (rw [R, 2F])
// Workgroup: 256 threads, one element each; grid folded into (x, y).

struct Params {
  n: u32,      // elements of the output (gelu) or of y (geglu: R·F)
  f: u32,      // GEGLU half width F
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn erfc_approx(z: f32) -> f32 {
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.5 * a);
  let poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(poly);
  return select(2.0 - r, r, z >= 0.0);
}

fn phi_cdf(v: f32) -> f32 {
  return 0.5 * erfc_approx(-v * 0.70710678118654752);
}

fn gelu(v: f32) -> f32 {
  return v * phi_cdf(v);
}

fn gelu_grad(v: f32) -> f32 {
  return phi_cdf(v) + v * exp(-0.5 * v * v) * 0.39894228040143268;
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = gelu(x[i]);
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= p.n) { return; }
  out[i] = dy[i] * gelu_grad(x[i]);
}

@compute @workgroup_size(256)
fn geglu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let r = i / p.f;
  let c = i % p.f;
  let a = x[r * 2u * p.f + c];
  let g = x[r * 2u * p.f + p.f + c];
  out[i] = a * gelu(g);
}

@compute @workgroup_size(256)
fn geglu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = index(wg, nwg, lid);
  if (i >= p.n) { return; }
  let r = i / p.f;
  let c = i % p.f;
  let ia = r * 2u * p.f + c;
  let a = x[ia];
  let g = x[ia + p.f];
  let d = dy[i];
  out[ia] = d * gelu(g);
  out[ia + p.f] = d * a * gelu_grad(g);
}
