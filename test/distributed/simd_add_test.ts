import assert from "node:assert/strict";
import { jsReductionKernel, WasmReductionKernel } from "../../src/distributed/simd_add.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

Deno.test("WASM SIMD add/divide are bit-identical to binary32 JS arithmetic, any offset and tail", () => {
  const wasm = new WasmReductionKernel();
  for (const length of [0, 1, 3, 4, 7, 8, 9, 31, 33, 1000, 65_537]) {
    const base = seededGradients(1, 2, 3, 4, length);
    const add = seededGradients(5, 6, 7, 8, length);
    const a = wasm.workspace(base);
    const b = jsReductionKernel.workspace(base.slice());
    for (const offset of [0, 1, 5].filter((o) => o <= length)) {
      const values = add.subarray(0, length - offset);
      a.accumulate(offset, values);
      b.accumulate(offset, values);
      a.divide(offset, length - offset, 3);
      b.divide(offset, length - offset, 3);
    }
    assert.deepEqual(
      new Uint32Array(a.work.slice().buffer),
      new Uint32Array(b.work.slice().buffer),
      `length ${length}`,
    );
    const target = new Float32Array(length);
    const published = wasm.workspace(target);
    published.work.set(a.work);
    published.publish(0, length);
    assert.deepEqual(target, a.work.slice());
    a.release();
    published.release();
  }
});

Deno.test("WASM kernel pool: concurrent workspaces do not share memory; memory is reused", () => {
  const wasm = new WasmReductionKernel();
  const x = wasm.workspace(new Float32Array(100).fill(1));
  const y = wasm.workspace(new Float32Array(100).fill(2));
  x.accumulate(0, new Float32Array(100).fill(1));
  assert.ok(x.work.every((v) => v === 2) && y.work.every((v) => v === 2));
  x.release();
  const z = wasm.workspace(new Float32Array(50).fill(7));
  assert.equal(z.work.buffer, x.work.buffer);
  assert.notEqual(y.work.buffer, z.work.buffer);
});
