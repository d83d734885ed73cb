// Dynamic loss scaling of 16-mixed (src/optim/grad_scaler.ts), on the GPU so a step never waits for the
// host. The loss gradient is seeded with the scale S (state.scale); after backward `find_non_finite`
// raises state.found_inf when any gradient element is ±inf or NaN; the optimizer (shaders/optimizer.wgsl,
// unscale_clip) unscales by 1/S and skips the update when found_inf is set; then `update_scale` follows
// PyTorch's GradScaler: on overflow S ← S·backoff, growth tracker ← 0, skipped steps + 1; otherwise the
// tracker counts clean steps and S ← S·growth after `growth_interval` of them (when S·growth is finite).
//
// State (16 bytes, read by the optimizer as 4 f32): scale, growth_tracker (an integer count as f32),
// skipped_steps (integer count as f32), found_inf (u32 bits: 0 or the bits of 1.0, so readers of f32 see
// 0.0 or 1.0). The flag is set with atomicOr (order-free, hence deterministic) and cleared by update_scale.
// Non-finite detection is on the bit patterns (exponent all ones), which no fast-math assumption removes.
//
// Bindings: 0 uniform Params; 1 grads (read, the flat gradient buffer as u32 bits); 2 state (rw).

struct Params {
  n: u32,                // gradient elements to check
  row: u32,              // elements per grid row (grid x · 256)
  growth_interval: u32,
  pad: u32,
  growth_factor: f32,
  backoff_factor: f32,
  pad1: f32,
  pad2: f32,
}

struct State {
  scale: f32,
  growth_tracker: f32,
  skipped_steps: f32,
  found_inf: atomic<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grads: array<u32>;
@group(0) @binding(2) var<storage, read_write> state: State;

var<workgroup> wg_found: atomic<u32>;

const ONE_BITS: u32 = 0x3f800000u;

@compute @workgroup_size(256)
fn find_non_finite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { atomicStore(&wg_found, 0u); }
  workgroupBarrier();
  let i = gid.y * p.row + gid.x;
  if (i < p.n && (grads[i] & 0x7f800000u) == 0x7f800000u) { atomicOr(&wg_found, ONE_BITS); }
  workgroupBarrier();
  if (lid == 0u && atomicLoad(&wg_found) != 0u) { atomicOr(&state.found_inf, ONE_BITS); }
}

@compute @workgroup_size(1)
fn update_scale() {
  if (atomicLoad(&state.found_inf) != 0u) {
    state.scale = state.scale * p.backoff_factor;
    state.growth_tracker = 0.0;
    state.skipped_steps = state.skipped_steps + 1.0;
  } else {
    let successful = state.growth_tracker + 1.0;
    if (successful >= f32(p.growth_interval)) {
      let grown = state.scale * p.growth_factor;
      if ((bitcast<u32>(grown) & 0x7f800000u) != 0x7f800000u) { state.scale = grown; }
      state.growth_tracker = 0.0;
    } else {
      state.growth_tracker = successful;
    }
  }
  atomicStore(&state.found_inf, 0u);
}
