// Optimizer kernels over flat parameter storage (src/optim/optimizer.ts): AdamW, LAMB and SparseLamb,
// per-tensor norms as deterministic two-level reductions, global-norm gradient clipping, and EMA.
//
// The flat buffers (params, grads, exp_avg m, exp_avg_sq v, update u) hold every trainable tensor at the
// offsets of its table entry. Work is split into BLOCKS that never cross a tensor (and, for sparse
// tensors, hold whole rows): one workgroup per block, 256 threads striding over its elements.
//
// Tables (read-only storage, u32):
//   blocks[4·b ..]:  tensor index, first element, end element (exclusive), first row (sparse) / 0
//   tensors[8·t ..]: offset, size, row width, flags (1 = sparse), first block, end block, 0, 0
// Hyper (uniform, rewritten every step): lr, beta1, beta2, eps, weight_decay, bias_correction1,
//   bias_correction2, max_grad_norm (0: no clipping), ema_decay, n_blocks, n_tensors, kind, norm_offset,
//   n_blocks_all, step_number (optimizer steps including this one), loss_scaled (1 with a grad scaler),
//   1 − β1, 1 − β2.
// Scalars (rw storage f32): [0] gradient coefficient (clip coefficient, times 1/S with a grad scaler, 0 on
//   a skipped step), [1] global gradient norm (before clipping, unscaled), [2] skip flag (1 = non-finite
//   gradients: leave params, moments and EMA untouched), [3] loss scale S of the step, [4] [5] bias
//   corrections 1 and 2 (with a grad scaler: counted over the steps not skipped).
// Grad scaler state (read, 16 bytes as f32): scale S, growth tracker, skipped steps, found_inf (0.0 or
//   1.0; src/optim/grad_scaler.ts and shaders/grad_scaler.wgsl).
//
// Entry points and bindings. Every entry point keeps the module's slots: 0 Hyper, 1 in1 (read),
// 2 blocks, 3 tensors, 4 in4 (read), 5 out/params (rw), 6 m (rw), 7 v (rw), 8 u (rw); an entry point's
// pipeline layout covers only the slots it uses (src/optim/optimizer.ts lists them):
//   block_sumsq:   in1 = x (any flat buffer), out = partial [n_blocks]               Σ x² per block
//   tensor_reduce: in1 = partial, out = per-tensor sums [n_tensors]                  Σ partials per tensor, in order
//   clip:          in1 = ‖g_t‖² [n_tensors], out = scalars                          coef = min(1, max/(‖g‖+1e-6))
//   unscale_clip:  in1 = ‖S·g_t‖² [n_tensors], in4 = grad scaler state, out = scalars  clip of ‖g‖, ·1/S, skip
//   adamw:         in1 = grads, in4 = scalars, out = params, m, v
//   lamb_moments:  in1 = grads, in4 = scalars, out = params (only read), m, v, u
//   lamb_apply:    in1 = grads, in4 = ‖p_t‖² then ‖u_t‖² from norm_offset, out = params, m-slot = u (only read)
//   ema:           in1 = params, in4 = scalars (skip flag), out = ema weights
// Workgroup: 256 threads; per-block sums are fixed 256-lane trees, so every norm is bit-reproducible.

struct Hyper {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  weight_decay: f32,
  bias_correction1: f32,
  bias_correction2: f32,
  max_grad_norm: f32,
  ema_decay: f32,
  n_blocks: u32,
  n_tensors: u32,
  kind: u32,        // 0 adamw, 1 lamb (bias-corrected), 2 sparse_lamb
  norm_offset: u32, // where ‖u_t‖² starts in lamb_apply's in4 (256-byte aligned in elements)
  n_blocks_all: u32, // blocks of the all-parameters table (EMA)
  step_number: u32, // optimizer steps including this one (bias corrections under a grad scaler)
  loss_scaled: u32, // 1: gradients carry the loss scale; bias corrections come from scalars[4..5]
  one_minus_beta1: f32, // 1 − β1 and 1 − β2 rounded once from f64 (bias corrections under a grad scaler)
  one_minus_beta2: f32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> h: Hyper;
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> blocks: array<u32>;
@group(0) @binding(3) var<storage, read> tensors: array<u32>;
@group(0) @binding(4) var<storage, read> in4: array<f32>;
@group(0) @binding(5) var<storage, read_write> params: array<f32>;
@group(0) @binding(6) var<storage, read_write> m: array<f32>;
@group(0) @binding(7) var<storage, read_write> v: array<f32>;
@group(0) @binding(8) var<storage, read_write> u: array<f32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> row_touched: array<atomic<u32>, 256>;

fn block_id(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.y * nwg.x + wg.x;
}

fn tree256(lid: u32) -> f32 {
  for (var s = 128u; s > 0u; s >>= 1u) {
    workgroupBarrier();
    if (lid < s) { red[lid] += red[lid + s]; }
  }
  workgroupBarrier();
  return red[0];
}

// For sparse tensors: marks rows of this block whose gradient has a nonzero entry (integer OR: exact).
fn mark_rows(b: u32, lid: u32, t: u32) {
  row_touched[lid] = 0u;
  workgroupBarrier();
  if ((tensors[8u * t + 3u] & 1u) == 1u) {
    let start = blocks[4u * b + 1u];
    let end = blocks[4u * b + 2u];
    let width = tensors[8u * t + 2u];
    for (var i = start + lid; i < end; i += 256u) {
      if (in1[i] != 0.0) { atomicOr(&row_touched[(i - start) / width], 1u); }
    }
  }
  workgroupBarrier();
}

fn touched(b: u32, t: u32, i: u32) -> bool {
  if ((tensors[8u * t + 3u] & 1u) == 0u) { return true; }
  let start = blocks[4u * b + 1u];
  return atomicLoad(&row_touched[(i - start) / tensors[8u * t + 2u]]) != 0u;
}

@compute @workgroup_size(256)
fn block_sumsq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let b = block_id(wg, nwg);
  if (b >= h.n_blocks) { return; }
  var s = 0.0;
  for (var i = blocks[4u * b + 1u] + lid; i < blocks[4u * b + 2u]; i += 256u) {
    let x = in1[i];
    s += x * x;
  }
  red[lid] = s;
  let total = tree256(lid);
  if (lid == 0u) { params[b] = total; }
}

// Binding 3 (`tensors`) and 5 (`params`) keep their slots: tensor_reduce reads partials from in1 and
// writes per-tensor sums to params (bound to the output buffer).
@compute @workgroup_size(64)
fn tensor_reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
  let t = gid.x;
  if (t >= h.n_tensors) { return; }
  var s = 0.0;
  for (var b = tensors[8u * t + 4u]; b < tensors[8u * t + 5u]; b++) { s += in1[b]; }
  params[t] = s;
}

@compute @workgroup_size(1)
fn clip() {
  var total = 0.0;
  for (var t = 0u; t < h.n_tensors; t++) { total += in1[t]; }
  let norm = sqrt(total);
  var coef = 1.0;
  if (h.max_grad_norm > 0.0) { coef = min(1.0, h.max_grad_norm / (norm + 1e-6)); }
  params[0] = coef;
  params[1] = norm;
}

// 1 − βᵗ without the cancellation of 1 − pow(β, t) near β = 1 (and without relying on log/exp, whose
// WGSL accuracy near 1 is only absolute): −expm1(t·log1p(β − 1)), log1p from the atanh series
// (|s| ≤ 1/3 for β ≥ 0.5), expm1 from its Taylor series when |y| ≤ 0.5 and from exp otherwise.
fn one_minus_pow(one_minus_beta: f32, t: f32) -> f32 {
  let x = -one_minus_beta;
  let s = x / (2.0 + x);
  let s2 = s * s;
  var series = 0.0;
  for (var k = 15; k >= 1; k -= 2) { series = series * s2 + 1.0 / f32(k); }
  let y = t * (2.0 * s * series);
  if (y < -0.5) { return 1.0 - exp(y); }
  var e = 0.0;
  for (var k = 12; k >= 1; k--) { e = (e + 1.0) * y / f32(k); }
  return -e;
}

// Grad scaler (16-mixed): the norms were summed from S·g. Unscales the norm (exact: S is a power of two),
// clips as `clip` does, folds 1/S into the coefficient, and on non-finite gradients sets the skip flag.
// Bias corrections count only the steps not skipped (PyTorch skips optimizer.step() on overflow).
@compute @workgroup_size(1)
fn unscale_clip() {
  var total = 0.0;
  for (var t = 0u; t < h.n_tensors; t++) { total += in1[t]; }
  let scale = in4[0];
  let inv = 1.0 / scale;
  let norm = sqrt(total) * inv;
  var coef = 1.0;
  if (h.max_grad_norm > 0.0) { coef = min(1.0, h.max_grad_norm / (norm + 1e-6)); }
  let found = in4[3] != 0.0;
  params[0] = select(coef * inv, 0.0, found);
  params[1] = norm;
  params[2] = select(0.0, 1.0, found);
  params[3] = scale;
  let skipped = u32(in4[2]);
  var bc1 = h.bias_correction1;
  var bc2 = h.bias_correction2;
  if (skipped > 0u && h.kind != 2u) {
    let t = f32(h.step_number - skipped);
    bc1 = one_minus_pow(h.one_minus_beta1, t);
    bc2 = one_minus_pow(h.one_minus_beta2, t);
  }
  params[4] = bc1;
  params[5] = bc2;
}

fn bias_corrections() -> vec2<f32> {
  if (h.loss_scaled == 1u) { return vec2<f32>(in4[4], in4[5]); }
  return vec2<f32>(h.bias_correction1, h.bias_correction2);
}

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let b = block_id(wg, nwg);
  if (b >= h.n_blocks) { return; }
  if (in4[2] != 0.0) { return; } // skipped step (non-finite gradients)
  let coef = in4[0];
  let bc = bias_corrections();
  let step_size = h.lr / bc.x;
  let bc2_sqrt = sqrt(bc.y);
  for (var i = blocks[4u * b + 1u] + lid; i < blocks[4u * b + 2u]; i += 256u) {
    let g = in1[i] * coef;
    // PyTorch AdamW: decoupled decay first, then the Adam step.
    var p = params[i] * (1.0 - h.lr * h.weight_decay);
    let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
    let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / bc2_sqrt + h.eps;
    params[i] = p - step_size * (mi / denom);
  }
}

@compute @workgroup_size(256)
fn lamb_moments(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let b = block_id(wg, nwg);
  if (b >= h.n_blocks) { return; }
  let t = blocks[4u * b];
  mark_rows(b, lid, t);
  let coef = in4[0];
  let skip = in4[2] != 0.0;
  let bc = bias_corrections();
  for (var i = blocks[4u * b + 1u] + lid; i < blocks[4u * b + 2u]; i += 256u) {
    if (skip) {
      // Skipped step: moments untouched, a zero update (lamb_apply then leaves the weights as they are).
      u[i] = 0.0;
      continue;
    }
    let p = params[i];
    if (!touched(b, t, i)) {
      // SparseLamb: untouched rows restart their moments and are not written; their update still
      // counts in ‖u‖ with m = v = 0.
      m[i] = 0.0;
      v[i] = 0.0;
      u[i] = h.weight_decay * p;
      continue;
    }
    let g = in1[i] * coef;
    let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
    let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    u[i] = (mi / bc.x) / (sqrt(vi / bc.y) + h.eps) + h.weight_decay * p;
  }
}

@compute @workgroup_size(256)
fn lamb_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let b = block_id(wg, nwg);
  if (b >= h.n_blocks) { return; }
  let t = blocks[4u * b];
  mark_rows(b, lid, t);
  let pn = sqrt(in4[t]);
  let un = sqrt(in4[h.norm_offset + t]);
  var ratio = 1.0;
  if (pn > 0.0 && un > 0.0) { ratio = min(pn, 10.0) / un; }
  let scale = h.lr * ratio;
  // Slot 6 (`m`) holds the update u in this entry point.
  for (var i = blocks[4u * b + 1u] + lid; i < blocks[4u * b + 2u]; i += 256u) {
    if (touched(b, t, i)) { params[i] = params[i] - scale * m[i]; }
  }
}

@compute @workgroup_size(256)
fn ema(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
  let b = block_id(wg, nwg);
  if (b >= h.n_blocks_all) { return; }
  if (in4[2] != 0.0) { return; } // skipped step: the weights did not change
  for (var i = blocks[4u * b + 1u] + lid; i < blocks[4u * b + 2u]; i += 256u) {
    params[i] = h.ema_decay * params[i] + (1.0 - h.ema_decay) * in1[i];
  }
}
