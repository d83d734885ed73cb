/**
 * Gpu.readback: immediate and spread read-backs return exactly the bytes of the buffer at the point of the
 * stream where they were recorded, whether later submits carry the slice copies or the deadline does.
 */
import assert from "node:assert/strict";
import { bitPattern as pattern } from "./bit_pattern.ts";
import { Gpu, SPREAD_SLICE_BYTES } from "../../src/gpu/gpu.ts";

Deno.test({
  name: "readback: spread copies over later submits and by the deadline equal immediate ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create();
    try {
      // 2.5 slices and an odd tail, so slices cross the 8-byte mapping alignment.
      const bytes = Math.floor(2.5 * SPREAD_SLICE_BYTES) + 12;
      const buf = gpu.pool.acquire(bytes, "test.readback");
      const first = pattern(bytes / 4, 0x1234);
      gpu.device.queue.writeBuffer(buf.buffer, 0, first);
      const immediate = gpu.readback(buf, 0, bytes);
      const spread = gpu.readback(buf, 0, bytes, { spread: true });
      const offset = gpu.readback(buf, 256, bytes - 256 - 4, { spread: true });
      gpu.submit();
      // Overwrite after the copies were recorded: the read-backs must still see `first`.
      const second = pattern(bytes / 4, 0x5678);
      gpu.device.queue.writeBuffer(buf.buffer, 0, second);
      const later = gpu.readback(buf, 0, bytes, { spread: true });
      assert.deepEqual(new Uint32Array(await immediate), first);
      // Drive the spread copies with (empty) submits, as training steps would.
      let submits = 0;
      let done = false;
      spread.then(() => (done = true));
      while (!done && submits < 100) {
        gpu.submit();
        submits++;
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(new Uint32Array(await spread), first);
      assert.deepEqual(new Uint32Array(await offset), first.subarray(64, first.length - 1));
      assert.ok(submits >= 1, "the spread copy took at least one further submit");
      // No further submits: the deadline finishes `later` on its own.
      assert.deepEqual(new Uint32Array(await later), second);
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test({
  name:
    "readbackInto: immediate and spread read-backs land in caller memory (shared too) and round-trip via write",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create();
    try {
      const bytes = SPREAD_SLICE_BYTES + 20;
      const buf = gpu.pool.acquire(bytes, "test.readback_into");
      const first = pattern(bytes / 4, 0x9abc);
      gpu.device.queue.writeBuffer(buf.buffer, 0, first);
      const shared = new Uint8Array(new SharedArrayBuffer(bytes + 64), 32, bytes + 8);
      const plain = new Uint8Array(bytes);
      const a = gpu.readbackInto(buf, 0, bytes, shared);
      const b = gpu.readbackInto(buf, 0, bytes, plain, { spread: true });
      assert.throws(() => gpu.readbackInto(buf, 0, bytes, new Uint8Array(bytes - 4)), /Cannot read/);
      gpu.submit();
      await a;
      assert.deepEqual(new Uint32Array(shared.slice(0, bytes).buffer), first);
      let done = false;
      b.then(() => (done = true));
      for (let i = 0; i < 100 && !done; i++) {
        gpu.submit();
        await new Promise((r) => setTimeout(r, 5));
      }
      await b;
      assert.deepEqual(new Uint32Array(plain.buffer), first);
      // A shared view goes back to the GPU as is (the gradient sync writes reduced buckets this way).
      const doubled = new Float32Array(shared.buffer, shared.byteOffset, bytes / 4);
      gpu.write(buf, doubled, 0);
      const back = new Uint8Array(await gpu.read(buf, 0, bytes));
      assert.deepEqual(back, shared.slice(0, bytes));
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test({
  name: "readbackMapped: copied out when the caller asks, in order, or released; each only once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create();
    try {
      // Over two copy slices with an odd tail, at an offset inside the source.
      const bytes = (2 << 20) + 36;
      const buf = gpu.pool.acquire(bytes + 512, "test.readback_mapped");
      const values = pattern((bytes + 512) / 4, 0x2468);
      gpu.device.queue.writeBuffer(buf.buffer, 0, values);
      const a = gpu.readbackMapped(buf, 512, bytes);
      const b = gpu.readbackMapped(buf, 0, 64);
      gpu.submit();
      const [ma, mb] = await Promise.all([a, b]); // both mapped, nothing copied yet
      assert.equal(ma.size, bytes);
      assert.throws(() => ma.copyTo(new Uint8Array(bytes - 4)), /Cannot copy/);
      const into = new Uint8Array(new SharedArrayBuffer(bytes));
      ma.copyTo(into);
      assert.deepEqual(new Uint32Array(into.slice().buffer), values.subarray(128, 128 + bytes / 4));
      assert.throws(() => ma.copyTo(into), /already copied or released/);
      mb.release();
      mb.release(); // a second release is a no-op
      // The staging buffers are free again: later read-backs work as before.
      const again = gpu.readback(buf, 0, 64);
      gpu.submit();
      assert.deepEqual(new Uint32Array(await again), values.subarray(0, 16));
    } finally {
      gpu.destroy();
    }
  },
});
