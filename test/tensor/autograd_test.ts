/**
 * Autograd's eager leaf accumulation: a leaf's gradient is accumulated (and reported by `onLeafReady`) as
 * soon as its last consumer ran backward, and no later command touches it.
 */
import assert from "node:assert/strict";
import { testGpu } from "../ops/op_harness.ts";
import { backward } from "../../src/tensor/autograd.ts";
import { Scope, Tensor } from "../../src/tensor/tensor.ts";
import { add, gelu, matmul, mul, sum } from "../../src/ops/mod.ts";

Deno.test({
  name: "autograd: onLeafReady reports each leaf once, when its gradient is final (a read-back taken then " +
    "equals the gradient after backward), last-used leaves first",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const gpu = await testGpu();
    const scope = Scope.begin();
    try {
      const leaf = (name: string, data: number[], shape: number[]) => {
        const t = Tensor.fromArray(gpu, new Float32Array(data), shape);
        t.requiresGrad = true;
        t.grad = Tensor.zeros(gpu, shape);
        t.name = name;
        return t;
      };
      const x = leaf("x", [0.5, -1, 2, 0.25, 1.5, -0.75], [2, 3]);
      const w1 = leaf("w1", [0.1, 0.2, -0.3, 0.4, 0.5, -0.6], [3, 2]);
      const w2 = leaf("w2", [1.5, -0.5, 0.25, 2], [2, 2]);
      // w1 feeds the first layer only; x feeds the first layer and (again) the very last op; w2 the second.
      const h = gelu(matmul(x, w1));
      const y = matmul(h, w2);
      const squares = (t: Tensor) => sum(sum(mul(t, t), 1), 0);
      const loss = add(squares(y), squares(x));
      const reported: string[] = [];
      const atReport = new Map<string, Promise<ArrayBuffer>>();
      backward(loss, undefined, {
        onLeafReady: (t) => {
          reported.push(t.name ?? `#${t.id}`);
          atReport.set(t.name!, gpu.readback(t.grad!.binding(), 0, t.grad!.byteLength));
        },
      });
      const final = new Map<string, Promise<ArrayBuffer>>();
      for (const t of [x, w1, w2]) final.set(t.name!, gpu.readback(t.grad!.binding(), 0, t.grad!.byteLength));
      gpu.submit();
      assert.deepEqual([...reported].sort(), ["w1", "w2", "x"], "each leaf reported exactly once");
      assert.ok(reported.indexOf("w2") < reported.indexOf("w1"), `w2 is final before w1: ${reported}`);
      for (const name of reported) {
        const early = new Float32Array(await atReport.get(name)!);
        const late = new Float32Array(await final.get(name)!);
        assert.deepEqual(early, late, `${name}'s gradient changed after it was reported`);
        assert.ok(late.some((v) => v !== 0), `${name} got a gradient`);
      }
    } finally {
      scope.end();
    }
  },
});
