/**
 * Staged writes (`src/gpu/staged_writes.ts`): a captured stream's host writes staged in slices and copied into
 * place land the same bytes as the writes themselves, in queue order with the copies of the data staged
 * before; bad loads and early copies are refused.
 */
import assert from "node:assert/strict";
import { bitPattern as pattern } from "./bit_pattern.ts";
import { type CapturedGraph, Gpu } from "../../src/gpu/gpu.ts";
import { STAGED_SLICE_BYTES, StagedWrites } from "../../src/gpu/staged_writes.ts";

Deno.test({
  name: "staged writes: slices staged at any time, copied into place, equal the captured writes bit for bit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create();
    try {
      // One write larger than a slice (several queue writes), one at an offset, one empty (a view of no bytes
      // into a non-empty buffer: Deno 2.9.6 panics on a write from an ArrayBuffer of length 0).
      const none = () => new Uint32Array(4).subarray(2, 2);
      const bigWords = (STAGED_SLICE_BYTES * 2 + 1024) / 4;
      const big = gpu.pool.acquire(bigWords * 4, "test.staged_big");
      const small = gpu.pool.acquire(4096, "test.staged_small");
      gpu.beginCapture();
      gpu.write(big, pattern(bigWords, 0));
      gpu.write(small, pattern(24, 0), 256);
      gpu.write(small, none(), 512);
      const graph = gpu.endCapture()!;
      assert.equal(graph.writes, 3);
      gpu.submit();
      const staged = new StagedWrites(gpu.device, [graph]);
      assert.equal(staged.writes, 3);
      assert.equal(staged.bytes, bigWords * 4 + 96);
      for (let round = 1; round <= 3; round++) {
        const data = [pattern(bigWords, round), pattern(24, 100 + round), none()];
        staged.load(data);
        assert.equal(staged.complete, false);
        // A deadline already passed stages nothing.
        assert.equal(staged.writeUntil(performance.now() - 1), false);
        assert.equal(staged.stagedBytes, 0);
        assert.throws(() => gpu.copyStaged(staged), /Cannot copy staged writes into place as 0 of/);
        assert.equal(staged.writeUntil(Infinity), true);
        assert.equal(staged.complete, true);
        assert.equal(staged.stagedBytes, staged.bytes);
        // The data staged for the next round is written while this round's copies are still unsubmitted:
        // only the copies recorded now carry this round's bytes.
        gpu.copyStaged(staged);
        gpu.submit();
        const gotBig = new Uint32Array(await gpu.read(big, 0, bigWords * 4));
        const gotSmall = new Uint32Array(await gpu.read(small, 256, 96));
        assert.deepEqual(gotBig, data[0], `round ${round}: the large write`);
        assert.deepEqual(gotSmall, data[1], `round ${round}: the write at an offset`);
      }
      // Queue order: the copies of round A read the staging buffer before round B's writes overwrite it.
      staged.load([pattern(bigWords, 7), pattern(24, 7), none()]);
      staged.writeUntil(Infinity);
      gpu.copyStaged(staged);
      gpu.submit();
      staged.load([pattern(bigWords, 8), pattern(24, 8), none()]);
      staged.writeUntil(Infinity);
      assert.deepEqual(new Uint32Array(await gpu.read(small, 256, 96)), pattern(24, 7));
      staged.destroy();
      gpu.pool.release(big);
      gpu.pool.release(small);
    } finally {
      gpu.destroy();
    }
  },
});

Deno.test({
  name: "staged writes: refuses loads that do not match the captured writes and writes it cannot copy",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await Gpu.create();
    try {
      const buf = gpu.pool.acquire(256, "test.staged_refuse");
      gpu.beginCapture();
      gpu.write(buf, new Float32Array(8));
      const graph = gpu.endCapture()!;
      gpu.submit();
      const staged = new StagedWrites(gpu.device, [graph]);
      assert.throws(() => staged.writeUntil(Infinity), /Cannot stage writes before data was loaded/);
      assert.throws(
        () => staged.load([]),
        /Cannot stage 0 arrays for 1 captured writes: current value is 0/,
      );
      assert.throws(
        () => staged.load([new Float32Array(4)]),
        /Cannot stage array 0 of 16 bytes as its captured write has 32: current value is 16/,
      );
      const odd: CapturedGraph = {
        commands: [{ kind: "write", buffer: buf.buffer, bufferId: buf.id, offset: 0, bytes: 6 }],
        writes: 1,
        signature: "w",
      };
      assert.equal(StagedWrites.supports([graph]), true);
      assert.equal(StagedWrites.supports([graph, odd]), false);
      assert.throws(
        () => new StagedWrites(gpu.device, [odd]),
        /Cannot stage a write of 6 bytes at offset 0 as GPU copies need multiples of 4/,
      );
      staged.destroy();
      gpu.pool.release(buf);
    } finally {
      gpu.destroy();
    }
  },
});
