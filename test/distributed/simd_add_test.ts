import assert from "node:assert/strict";
import { jsReductionKernel, WasmReductionKernel } from "../../src/distributed/simd_add.ts";
import { seededGradients } from "./fixtures/seeded_gradients.ts";

Deno.test("WASM SIMD add / add-divide are bit-identical to binary32 JS arithmetic, any length and tail", () => {
  const wasm = new WasmReductionKernel();
  for (const length of [0, 1, 3, 4, 7, 8, 9, 31, 33, 1000, 65_537, 1_048_576 + 5]) {
    const received = seededGradients(1, 2, 3, 4, length);
    const local = seededGradients(5, 6, 7, 8, length);
    for (const divisor of [null, 3, 8]) {
      const a = received.slice(), b = received.slice();
      if (divisor === null) {
        wasm.addInto(a, local);
        jsReductionKernel.addInto(b, local);
      } else {
        wasm.addDivideInto(a, local, divisor);
        jsReductionKernel.addDivideInto(b, local, divisor);
      }
      assert.deepEqual(
        new Uint32Array(a.buffer),
        new Uint32Array(b.buffer),
        `length ${length} divisor ${divisor}`,
      );
      // Against the definition, element by element.
      for (let i = 0; i < Math.min(length, 50); i++) {
        const sum = Math.fround(received[i] + local[i]);
        assert.equal(a[i], divisor === null ? sum : Math.fround(sum / divisor));
      }
    }
  }
  assert.throws(() => wasm.addInto(new Float32Array(3), new Float32Array(4)), /different lengths/);
});

Deno.test("WASM kernel works on subarray views at any offset", () => {
  const wasm = new WasmReductionKernel();
  const big = seededGradients(9, 9, 9, 9, 1000);
  const local = seededGradients(1, 1, 1, 1, 1000);
  const a = big.slice(), b = big.slice();
  wasm.addInto(a.subarray(3, 997), local.subarray(5, 999));
  jsReductionKernel.addInto(b.subarray(3, 997), local.subarray(5, 999));
  assert.deepEqual(a, b);
  assert.equal(a[0], big[0]);
  assert.equal(a[999], big[999]);
});
