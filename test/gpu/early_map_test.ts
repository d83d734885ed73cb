/**
 * Early maps (`src/gpu/early_map.ts`): on the pinned runtime the bytes are readable when `mapAsync` returns;
 * read-backs taken early equal the buffer's contents at the point of the stream where they were recorded,
 * through staging-buffer reuse while earlier maps' promises are still pending, for every read-back kind.
 */
import assert from "node:assert/strict";
import { forEachMapMode } from "./map_modes.ts";
import { bitPattern as pattern } from "./bit_pattern.ts";
import { Gpu } from "../../src/gpu/gpu.ts";
import { probeEarlyMaps } from "../../src/gpu/early_map.ts";

Deno.test({
  name: "early maps: the pinned runtime maps during the mapAsync call (probe)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create({ earlyMaps: false });
    try {
      assert.equal(
        await probeEarlyMaps(gpu.device),
        true,
        `Deno ${Deno.version.deno} no longer maps eagerly`,
      );
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test({
  name:
    "early maps: readback, readbackInto and held readbackMapped return the recorded bytes, reusing staging",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await forEachMapMode(async (gpu, earlyMaps) => {
      assert.equal(gpu.earlyMaps, earlyMaps);
      const bytes = 3 * 4096 + 12; // an odd tail crosses the 8-byte mapping alignment
      const buf = gpu.pool.acquire(bytes, "test.early_map");
      const rounds = earlyMaps ? 12 : 3;
      for (let round = 0; round < rounds; round++) {
        const first = pattern(bytes / 4, round);
        gpu.write(buf, first);
        const whole = gpu.readback(buf, 0, bytes);
        const into = new Uint8Array(bytes);
        const intoDone = gpu.readbackInto(buf, 8, bytes - 8, into);
        const held = gpu.readbackMapped(buf, 0, bytes, { hold: true });
        gpu.submit();
        // Overwritten after the copies were recorded: every read-back must still see `first`.
        gpu.write(buf, pattern(bytes / 4, round + 100));
        assert.equal(gpu.mapHeldReadbacks(), 1);
        assert.deepEqual(new Uint32Array(await whole), first);
        await intoDone;
        assert.deepEqual(new Uint32Array(into.buffer, 0, (bytes - 8) / 4), first.subarray(2));
        const mapped = await held;
        const out = new Uint8Array(bytes);
        if (round % 2 === 0) {
          mapped.copyTo(out);
        } else {
          // In parts, as the gradient exchange copies a bucket across boundaries; odd cuts included.
          for (const [start, end] of [[0, 4100], [4100, 4100], [4100, 9001], [9001, bytes]]) {
            mapped.copyRange(out, start, end);
          }
          mapped.release();
          assert.throws(() => mapped.copyRange(out, 0, 8), /already copied or released/);
        }
        assert.deepEqual(new Uint32Array(out.buffer), first);
      }
      await gpu.sync();
      if (earlyMaps) {
        // Each staging buffer's first map is awaited (it records the map mode), later ones are early.
        assert.ok(gpu.counters.earlyMaps >= 3 * (rounds - 1), `early maps: ${gpu.counters.earlyMaps}`);
      } else {
        assert.equal(gpu.counters.earlyMaps, 0);
      }
    });
  },
});
