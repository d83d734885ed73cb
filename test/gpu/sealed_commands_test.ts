/**
 * Gpu.seal / detachRecorded / attachRecorded: sealed commands keep their place in the stream, and detached
 * commands run where they are attached, after work submitted in between and after host writes issued
 * before the attach (what the step engine's look-ahead relies on).
 */
import assert from "node:assert/strict";
import { bitPattern as pattern } from "./bit_pattern.ts";
import { testGpu } from "../ops/op_harness.ts";

const BYTES = 1024;

Deno.test({
  name: "sealed commands: run before commands recorded after them, in one submit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const [a, b] = [gpu.pool.acquire(BYTES), gpu.pool.acquire(BYTES)];
    const first = pattern(BYTES / 4, 0x11);
    gpu.write(a, first);
    gpu.copy(a, b, BYTES); // b = first
    gpu.seal();
    gpu.clear(a, BYTES); // then a = 0
    const submits = gpu.counters.submits;
    gpu.submit();
    assert.equal(gpu.counters.submits, submits + 1, "sealed and later commands go in one submit");
    assert.deepEqual(new Uint32Array(await gpu.read(b, 0, BYTES)), first);
    assert.deepEqual(new Uint32Array(await gpu.read(a, 0, BYTES)), new Uint32Array(BYTES / 4));
    gpu.pool.release(a);
    gpu.pool.release(b);
  },
});

Deno.test({
  name: "detached commands: run where attached, after work submitted meanwhile and writes issued before",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const [x, y, z] = [gpu.pool.acquire(BYTES), gpu.pool.acquire(BYTES), gpu.pool.acquire(BYTES)];
    gpu.write(x, pattern(BYTES / 4, 0x22));
    gpu.submit();
    // Earlier work stays sealed for the next submit; only what follows the seal is detached.
    gpu.copy(x, z, BYTES); // z = 0x22 pattern, in this submit
    gpu.seal();
    gpu.copy(x, y, BYTES); // detached: y = x at the time it runs
    const detached = gpu.detachRecorded();
    assert.ok(detached);
    assert.equal(gpu.detachRecorded(), null, "nothing recorded since");
    // Work recorded and submitted in between runs first: it sets y, which the detached copy then overwrites.
    gpu.clear(y, BYTES);
    gpu.submit();
    assert.deepEqual(new Uint32Array(await gpu.read(z, 0, BYTES)), pattern(BYTES / 4, 0x22));
    // A host write issued before the attach lands before the detached copy.
    const later = pattern(BYTES / 4, 0x33);
    gpu.write(x, later);
    gpu.attachRecorded(detached);
    gpu.submit();
    assert.deepEqual(new Uint32Array(await gpu.read(y, 0, BYTES)), later);
    for (const buf of [x, y, z]) gpu.pool.release(buf);
  },
});

Deno.test({
  name: "discarded commands: sealed and recorded ones never run; read-backs they carried reject",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const [a, b] = [gpu.pool.acquire(BYTES), gpu.pool.acquire(BYTES)];
    const kept = pattern(BYTES / 4, 0x44);
    gpu.write(a, kept);
    gpu.write(b, kept);
    gpu.submit();
    gpu.clear(a, BYTES);
    gpu.seal();
    gpu.clear(b, BYTES);
    const read = gpu.readback(a, 0, BYTES);
    gpu.discardRecorded();
    await assert.rejects(read, /discarded/);
    gpu.submit(); // nothing left to run
    assert.deepEqual(new Uint32Array(await gpu.read(a, 0, BYTES)), kept);
    assert.deepEqual(new Uint32Array(await gpu.read(b, 0, BYTES)), kept);
    // The staging buffer went back to the free list: the next read-back of that size works.
    assert.deepEqual(new Uint32Array(await gpu.read(a, 0, BYTES)), kept);
    gpu.pool.release(a);
    gpu.pool.release(b);
  },
});
