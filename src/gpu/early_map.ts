/**
 * Early maps: reading a `MAP_READ` buffer as soon as Deno's `mapAsync` call returns, ~10 ms before its
 * promise resolves.
 *
 * Deno 2.9.6's `GPUBuffer.mapAsync` runs its op eagerly: the call itself blocks the thread in a waiting
 * device poll until the GPU has run everything submitted so far, and wgpu maps the buffer inside that poll.
 * The op then sleeps a 10 ms timer before it resolves the promise (`ext/webgpu/buffer.rs`: poll, sleep,
 * check). So every read-back costs ≥ ~11 ms after the work it reads, even on an idle GPU — the floor that
 * capped a 13 ms `poyo_1_3m` synced step at 54 % (docs/performance.md).
 *
 * The bytes are there when the call returns: `getMappedRange` reads them from wgpu's mapping. Two rules keep
 * that safe:
 * - Only on a buffer that has completed a `READ` map before. Deno 2.9.6 records the map mode when a map's
 *   promise resolves and never clears it; `getMappedRange` on a buffer with no recorded mode panics the
 *   process instead of throwing.
 * - Only when wgpu reports the buffer mapped: {@linkcode mappedNow} tries an 8-byte `getMappedRange`, which
 *   throws (an `OperationError`) while the map is still pending, e.g. on a runtime that polls lazily.
 *
 * Unmapping before the promise resolves is harmless there (the op only sets `mapState` to "mapped" when its
 * timer ends; wgpu's state, which `getMappedRange` and the next `mapAsync` check, is the real one). Whether
 * the runtime behaves so is checked once per device by {@linkcode probeEarlyMaps}; anything else falls back
 * to awaiting the promise.
 *
 * @module
 */

/**
 * Whether this runtime hands out a buffer's bytes right after the `mapAsync` call: writes a pattern, maps a
 * buffer once the normal way (so its map mode is recorded), then twice more reading right after the call,
 * and compares the bytes. Costs one ordinary map (~11 ms) per device.
 *
 * @example
 * ```ts ignore
 * const early = await probeEarlyMaps(device); // true on Deno 2.9.6
 * ```
 */
export async function probeEarlyMaps(device: GPUDevice): Promise<boolean> {
  const bytes = 256;
  const source = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  });
  const staging = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    await staging.mapAsync(GPUMapMode.READ);
    staging.unmap();
    for (let round = 1; round <= 2; round++) {
      const pattern = new Uint32Array(bytes / 4).map((_, i) => (i * 2654435761 + round) >>> 0);
      device.queue.writeBuffer(source, 0, pattern);
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      const mapping = staging.mapAsync(GPUMapMode.READ);
      mapping.catch(() => {});
      if (!mappedNow(staging)) {
        await mapping.catch(() => {});
        return false;
      }
      const got = new Uint32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      if (!got.every((v, i) => v === pattern[i])) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    source.destroy();
    // The last map's promise still runs its timer; destroying the buffer under it is harmless.
    staging.destroy();
  }
}

/**
 * Whether wgpu has mapped `buffer` (an 8-byte `getMappedRange` succeeds). Call it only on a buffer that
 * completed a `READ` map before (see the module docs).
 */
export function mappedNow(buffer: GPUBuffer): boolean {
  try {
    buffer.getMappedRange(0, 8);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether early maps are switched off by the environment (`ORION_EARLY_MAPS=0`, for measuring what they
 * save).
 */
export function earlyMapsDisabledByEnv(): boolean {
  try {
    return Deno.env.get("ORION_EARLY_MAPS") === "0";
  } catch {
    return false; // no env permission: not set
  }
}
