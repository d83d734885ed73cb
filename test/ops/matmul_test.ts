/** Matmul dispatch decisions that are pure functions of the problem shape (no GPU needed). */
import assert from "node:assert/strict";
import { splitKChunk } from "../../src/ops/matmul.ts";

Deno.test("splitKChunk: small outputs with long K split into power-of-two chunks; big outputs and small work do not", () => {
  const dW = (m: number, n: number, k: number) => ({
    batch: 1,
    m,
    n,
    k,
    transA: true,
    transB: false,
    bias: false,
    alpha: 1,
    beta: 0,
  });
  assert.equal(splitKChunk(dW(128, 64, 83200)), 512); // 1 tile × 162 chunks ≥ 128
  assert.equal(splitKChunk(dW(192, 64, 4096)), 256); // 2 tiles: even 256-row chunks give only 32
  assert.equal(splitKChunk(dW(1024, 1024, 83200)), null); // 64 tiles: not split...
  assert.equal(splitKChunk(dW(1024, 512, 83200)), 2048); // ...32 tiles × 40 chunks ≥ 128
  assert.equal(splitKChunk(dW(16, 16, 4096)), null); // 1M multiply-adds: one dispatch
  assert.equal(splitKChunk(dW(32, 20, 4 * 2048 + 37)), 256); // matmul_half_test's split-K case
  assert.equal(splitKChunk(dW(4096, 4096, 83200)), null); // output fills the GPU
  assert.equal(splitKChunk({ ...dW(128, 64, 83200), beta: 1 }), null); // accumulating products stay whole
  assert.equal(splitKChunk(dW(128, 64, 83200), { kernel: "general" }), null);
});
